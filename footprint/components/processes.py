"""Which component a running process belongs to: by the file it runs (a path inside the
image), or, where only its name is known (QEMU's probe reads /proc/*/status), by the file
of that name."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from footprint.analyze import Analysis

# Processes whose name is not the name of the file they run: process name -> file name.
RENAMED = {
    "(udev-worker)": "systemd-udevd",  # systemd >= 250 renames udevd's forked workers
}
COMM_BYTES = 15  # the kernel keeps this much of a process name (TASK_COMM_LEN - 1)


def owner_of(a: Analysis) -> Callable[[str], str]:
    """path inside the image -> the component that owns the file (symlinks resolved)."""
    rootfs, att = a.inventory.rootfs, a.attribution
    assert att is not None  # analyze() attributes by default

    def owner(path: str) -> str:
        node = rootfs.lookup(path.lstrip("/"))
        if node is None or node.inode is None:
            return "unknown"
        name = att.owner.get(node.path, "other")  # every hardlink name has its owner
        return "other" if name == "shared" else name

    return owner


def owner_by_name(a: Analysis, own: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """A process name (as /proc/*/status says it) -> the component of the file of that name.
    `own` names the processes footprint adds itself (the probe) and their component."""
    owner = owner_of(a)
    by_name: dict[str, str] = {}
    for path, node in sorted(a.inventory.rootfs.nodes.items()):
        if node.kind != "dir":  # symlinks too: systemd-udevd is udevadm under another name
            by_name.setdefault(os.path.basename(path)[:COMM_BYTES], owner(path))
    for name, file in RENAMED.items():
        by_name[name] = by_name.get(file[:COMM_BYTES], "unknown")
    by_name.update(own or {})
    return lambda name: by_name.get(name, "unknown")
