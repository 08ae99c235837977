"""What a path inside an image is, by the conventions of the kernel and of the generators:
kernel modules, firmware and microcode, the modules directory."""

from __future__ import annotations

import re

_RAW_BYTE = re.compile("[\udc80-\udcff]")  # a byte that is not UTF-8, under surrogateescape
# json.dumps' escape of such a byte, after an even number of backslashes (none escaped)
_JSON_RAW_BYTE = re.compile(r"(?<!\\)((?:\\\\)*)\\udc([89a-f][0-9a-f])")

MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")
MODULES_DIR = re.compile(r"(?:usr/)?lib/modules/([^/]+)")  # group 1: the kernel version
EARLY_MICROCODE = "kernel/x86/microcode/"  # the early cpio the kernel reads microcode from


def is_module(path: str) -> bool:
    """A loadable kernel module, compressed or not (no leading slash needed)."""
    return path.endswith(MODULE_SUFFIXES)


def is_firmware(path: str) -> bool:
    """Firmware the kernel loads, or CPU microcode in the early cpio."""
    return "lib/firmware/" in path or path.lstrip("/").startswith(EARLY_MICROCODE)


def shown(text: str) -> str:
    """`text` with every byte that is not UTF-8 written as \\xNN. Names and symlink targets
    are bytes to the kernel; footprint decodes them with surrogateescape (extract writes the
    bytes back) and shows them escaped."""
    if text.isascii():
        return text
    return _RAW_BYTE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text)


def json_text(doc: object, indent: int | None = 2) -> str:
    """`doc` as ASCII JSON where a byte that is not UTF-8 in a string is the four characters
    \\xNN (json.dumps would write a lone surrogate, \\udcNN, that UTF-8 cannot hold)."""
    import json

    text = json.dumps(doc, indent=indent)
    if "\\udc" not in text:
        return text
    return _JSON_RAW_BYTE.sub(r"\1\\\\x\2", text)
