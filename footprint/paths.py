"""What a path inside an image is, by the conventions of the kernel and of the generators:
kernel modules, firmware and microcode, the modules directory."""

from __future__ import annotations

import re

MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")
MODULES_DIR = re.compile(r"(?:usr/)?lib/modules/([^/]+)")  # group 1: the kernel version
EARLY_MICROCODE = "kernel/x86/microcode/"  # the early cpio the kernel reads microcode from


def is_module(path: str) -> bool:
    """A loadable kernel module, compressed or not (no leading slash needed)."""
    return path.endswith(MODULE_SUFFIXES)


def is_firmware(path: str) -> bool:
    """Firmware the kernel loads, or CPU microcode in the early cpio."""
    return "lib/firmware/" in path or path.lstrip("/").startswith(EARLY_MICROCODE)
