"""The kernel's words footprint reads, in one place: OOM kills and the process killed, panics,
failed initramfs unpacks, kexec -p failures; and /dev/kmsg from now on (the cgroup runner)."""

from __future__ import annotations

import os
import re

from footprint.measure.backend import Killed

KILLED_PROCESS = re.compile(r"Killed process (\d+) \(([^)]*)\)")
OOM = re.compile(r"Out of memory|oom-kill:|invoked oom-killer")
# The OOM killer found nothing to kill (the kernel then panics, or with panic=0 hangs).
NO_KILLABLE = "Out of memory and no killable processes"
PANIC = re.compile(r"Kernel panic - not syncing: ?(.*)")
UNPACK_FAILED = re.compile(
    r"Initramfs unpacking failed|rootfs image is not initramfs|"
    r"junk in compressed archive|write error"
)
# Lines that show the unpack is over (an OOM after them is userspace's, not the unpack's).
UNPACK_OVER = ("Freeing initrd memory", "Run /")
# The first one found names why kexec -p could not load: the kernel's own reservation
# failure first (a kernel before 6.17 given crashkernel=Y,cma rejects the whole option and
# reserves nothing), then kexec's.
KEXEC_LOAD_FAILED = re.compile(
    r"crashkernel: unrecognized char.*|crashkernel reservation failed.*|"
    r"kexec_file_load failed.*|Could not find a free area.*|Memory for crashkernel is not reserved"
)
CRASHKERNEL_FAILED = "crashkernel reservation failed"
# What the capture's dump tooling (kdump-tools, kdump-config, makedumpfile) says went wrong.
DUMP_TOOLING_FAILED = re.compile(
    r"(?:kdump-tools|kdump-config|makedumpfile)\S*:? .*(?:fail|error|cannot|can't|not ).*",
    re.IGNORECASE,
)
POWERED_OFF = ("reboot: Power down", "reboot: Restarting")
# The default CMA area a kernel sets aside at boot (CONFIG_CMA_SIZE_MBYTES, or cma=): a capture
# kernel does the same wherever crashkernel= has room for it, and cannot use it for its rootfs.
# crashkernel=Y,cma ranges are reported by the same line, so a kernel given one is not read.
CMA_RESERVED = re.compile(r"cma: Reserved (\d+) MiB")
CMDLINE = re.compile(r"Kernel command line: (.*)")
BANNER = "Linux version "  # the first line of every kernel's log
SETS_CMA = re.compile(r"(?:^|\s)cma=|,cma\b")


def killed(text: str) -> list[Killed]:
    """Every process the OOM killer named in `text`."""
    return [Killed(int(pid), name) for pid, name in KILLED_PROCESS.findall(text)]


def cma_reserved_mib(console: str) -> int:
    """The MiB of default CMA the kernels on `console` set aside at boot, read from the first
    whose command line sets no cma= and no crashkernel=,cma; 0 if none did, or if the last
    kernel's (under kdump, the capture's) sets cma= itself."""
    kernels = [(CMDLINE.search(k), CMA_RESERVED.search(k)) for k in console.split(BANNER)[1:]]
    if not kernels or (kernels[-1][0] and SETS_CMA.search(kernels[-1][0].group(1))):
        return 0
    for cmdline, reserved in kernels:
        if cmdline is None or SETS_CMA.search(cmdline.group(1)):
            continue
        if reserved:
            return int(reserved.group(1))
    return 0


def dump_tooling(console: str) -> str:
    """The last complaint of the capture's dump tooling on the console, "" if none."""
    said = DUMP_TOOLING_FAILED.findall(console)
    return said[-1].strip() if said else ""


class Kmsg:
    """The kernel log from now on, for the names of OOM-killed processes (root only)."""

    def __init__(self) -> None:
        try:
            self.fd: int | None = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError:
            self.fd = None

    def killed(self) -> list[Killed]:
        found = []
        while self.fd is not None:
            try:
                record = os.read(self.fd, 8192).decode(errors="replace")
            except BlockingIOError:
                break
            except OSError:  # EPIPE when records were overwritten: read on
                continue
            if not record:
                break
            found += killed(record)
        return found

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
