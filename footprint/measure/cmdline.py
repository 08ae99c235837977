"""The kdump-like kernel command line: what the cgroup runner shows the image in /proc/cmdline
and what QEMU boots the capture kernel with, written once.

Like kdump-tools' KDUMP_CMDLINE_APPEND it resets devices, boots one CPU and no USB; root= is
there (so the kernel's rootfs is ramfs, as in a real kdump) but names no disk.
"""

from __future__ import annotations

from footprint.arch import DEFAULT, Arch

KDUMP_CMDLINE = (
    "BOOT_IMAGE=/vmlinuz root=UUID=00000000-0000-0000-0000-000000000000 ro "
    "reset_devices nr_cpus=1 irqpoll nousb udev.children-max=2 panic=10 rootdelay=3"
)


def kdump_cmdline(arch: Arch = DEFAULT) -> str:
    """KDUMP_CMDLINE with the console on `arch`'s first serial port."""
    return f"{KDUMP_CMDLINE} console={arch.console}"
