"""A real crash: a first kernel boots with crashkernel=X, its tiny stage-1 initrd loads the
capture kernel with `kexec -p` and the image under test (probe appended), then panics; the
capture kernel boots inside the reservation exactly as in production.

The stage-1 initrd is written by footprint's own cpio writer: the host's static busybox, the
host's kexec with its library closure (footprint's resolver), the kernel and the image. For a
kernel of another architecture they come from a root of that architecture (--stage1-root, or
a root/ directory beside the kernel: build-arm64.sh's chroot).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field, replace

from footprint.arch import DEFAULT, Arch
from footprint.errors import EnvironmentUnavailable
from footprint.image.cpio import newc_entry, newc_trailer
from footprint.measure import dump, kernel_log
from footprint.measure.backend import Outcome, RunResult
from footprint.measure.qemu import (
    Ending,
    Identity,
    QemuOptions,
    prepared,
    qemu_command,
    read_log,
    watch,
)
from footprint.measure.rootdisk import RootDisk, read_disk

MIN_TIMEOUT = 180.0
DUMP_TIMEOUT = 360.0  # with a root disk: systemd boots on it and makedumpfile writes the dump
FIRST_KERNEL_MIB = 3072  # ample: under TCG it costs nothing until touched
DUMP_INTERVAL = 1.0  # seconds between probe samples of a dump trial: its walk costs CPU
ROOT_DISK_FIRST_KERNEL_MIB = 2048  # with a root disk: the machine shape the dump is of
CRASH = "sysrq: Trigger a crash"
# @KEXEC@ is `kexec -p` (kexec_load), or `kexec -s -p` (kexec_file_load) with a CMA part: the
# kernel adds the crashkernel=,cma ranges to the capture's memory map only on the
# kexec_file_load path; bookworm's kexec-tools 2.0.25 builds the capture's e820 for kexec_load
# from /proc/iomem's "Crash kernel" ranges, where CMA ranges never appear (seen on 7.3: with
# `kexec -p` the capture gets the fixed part alone). The CMA line is for the trial's record.
STAGE1_INIT = """#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
if [ -r /sys/kernel/kexec_crash_cma_ranges ]; then
  echo "footprint-stage1: crashkernel cma ranges: $(cat /sys/kernel/kexec_crash_cma_ranges)"
fi
echo "footprint-stage1: loading the capture kernel"
if @KEXEC@ /capture/vmlinuz --initrd=/capture/initrd.img --append="$(cat /capture/cmdline)"
then
  echo "footprint-stage1: loaded"
else
  echo "footprint-stage1: load failed"
  poweroff -f
fi
echo 1 > /proc/sys/kernel/sysrq
echo c > /proc/sysrq-trigger
"""
STAGE1_LOAD_FAILED = "footprint-stage1: load failed"  # what STAGE1_INIT says when kexec -p fails
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
KEXEC_CANDIDATES = ("/sbin/kexec", "/usr/sbin/kexec")


def _find(candidates: tuple[str, ...], package: str, root: str = "/") -> str:
    for path in candidates:
        if os.path.isfile(os.path.join(root, path.lstrip("/"))):
            return path
    where = "" if root == "/" else f" in {root}"
    raise EnvironmentUnavailable(f"{candidates[0]} is missing{where} — apt-get install {package}")


def static_busybox(root: str = "/") -> str:
    """The statically linked busybox of `root` (the host's by default), for the initrds
    footprint writes itself: its path on the host."""
    from footprint.elf.facts import ElfFacts
    from footprint.elf.host import HostFacts

    root = os.path.realpath(root)  # the paths below are taken relative to it
    busybox = _find(BUSYBOX_CANDIDATES, "busybox-static", root)
    full = os.path.join(root, busybox.lstrip("/"))
    real = os.path.relpath(os.path.realpath(full), root)
    facts: ElfFacts | None = HostFacts(root).get(real)
    if facts is None or facts.dynamic:
        raise EnvironmentUnavailable(
            f"{full} is not statically linked — apt-get install busybox-static"
        )
    return full


def stage1_root(arch: Arch, kernel: str, given: str | None) -> str:
    """Where the stage-1's busybox and kexec come from: `given` (--stage1-root); the host for
    its own architecture; else a root/ directory beside the kernel (build-arm64.sh's)."""
    import platform

    if given is not None:
        return given
    if platform.machine() == arch.name:
        return "/"
    beside = os.path.join(os.path.dirname(os.path.abspath(kernel)), "root")
    if os.path.isdir(beside):
        return beside
    raise EnvironmentUnavailable(
        f"--kdump of an {arch.name} kernel on this {platform.machine()} host needs an "
        f"{arch.name} kexec and static busybox: --stage1-root DIR (a chroot with kexec-tools "
        "and busybox-static, as sample_initrds/build-arm64.sh makes)"
    )


def stage1(
    directory: str,
    kernel: str,
    capture_initrd: str,
    capture_cmdline: str,
    arch: Arch = DEFAULT,
    kexec_file: bool = False,
    root: str = "/",
) -> str:
    """Write the stage-1 initrd (uncompressed newc) and return its path; its init loads the
    capture with `kexec -s -p` (kexec_file_load) if `kexec_file`, else `kexec -p`. Its
    busybox and kexec (with kexec's libraries) are `root`'s."""
    from footprint.elf.host import host_closure

    root = os.path.realpath(root)  # host_closure's paths are relative to the resolved root
    busybox = static_busybox(root)
    kexec = _find(KEXEC_CANDIDATES, "kexec-tools", root)
    objects, missing = host_closure(kexec, root)
    if missing:
        where = "this host" if root == "/" else root
        raise EnvironmentUnavailable(f"{kexec} needs {', '.join(missing)}, not in {where}")
    d, link = stat.S_IFDIR | 0o755, stat.S_IFLNK | 0o777
    dirs = {
        ".",
        "bin",
        "sbin",
        "proc",
        "sys",
        "dev",
        "capture",
        "lib",
        arch.lib_dir,
        "lib64",
    }
    records: list[bytes] = []

    def add_file(name: str, source: str, mode: int = 0o755) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
        with open(source, "rb") as f:
            records.append(newc_entry(name, stat.S_IFREG | mode, f.read()))

    add_file("bin/busybox", busybox)
    for applet in ("sh", "mount", "echo", "cat", "poweroff"):
        records.append(newc_entry(f"bin/{applet}", link, b"busybox"))
    for i, (name, found) in enumerate(objects):
        path = os.path.join(root, found.lstrip("/"))
        if i == 0:
            add_file("sbin/kexec", path)
        elif name.startswith("/"):  # the interpreter, at its PT_INTERP path
            add_file(name.lstrip("/"), path)
        else:  # a library, under the name it is asked for, where ld.so looks by default
            add_file(f"{arch.lib_dir}/{name}", path, 0o644)
    add_file("capture/vmlinuz", kernel, 0o644)
    add_file("capture/initrd.img", capture_initrd, 0o644)
    records.append(newc_entry("capture/cmdline", stat.S_IFREG | 0o644, capture_cmdline.encode()))
    init = STAGE1_INIT.replace("@KEXEC@", "kexec -s -p" if kexec_file else "kexec -p")
    records.append(newc_entry("init", stat.S_IFREG | 0o755, init.encode()))
    out = os.path.join(directory, "stage1.img")
    with open(out, "wb") as f:
        for name in sorted(dirs, key=lambda p: (p.count("/"), p)):
            f.write(newc_entry(name, d))
        for r in records:
            f.write(r)
        f.write(newc_trailer())
    return out


@dataclass(frozen=True)
class Split:
    """`crashkernel=X crashkernel=Y,cma` (Linux 6.17+): a run's memory is X where
    `fixed_bytes` is None, else Y with X = `fixed_bytes`; `cma_bytes` is Y where the run's
    memory is X (0: no CMA part at all)."""

    fixed_bytes: int | None = None
    cma_bytes: int = 0

    def parts(self, memory: int) -> tuple[int, int]:
        """(X, Y) for a run given `memory`."""
        if self.fixed_bytes is None:
            return memory, self.cma_bytes
        return self.fixed_bytes, memory


@dataclass(frozen=True)
class KdumpBackend:
    """A real crash: `memory` is the first kernel's crashkernel= reservation (with `split`:
    its fixed or its CMA part)."""

    options: QemuOptions
    first_kernel_mib: int | None = None  # the crashing kernel's RAM (-m); None: the default
    split: Split | None = None
    name: str = field(default="kdump", init=False)

    def run(self, image: str, memory: int) -> RunResult:
        fixed, cma = self.split.parts(memory) if self.split is not None else (memory, 0)
        return kdump_boot(image, fixed, self.options, self.first_kernel_mib, cma)


def kdump_boot(
    image: str,
    crashkernel: int,
    options: QemuOptions,
    first_kernel_mib: int | None = None,
    cma: int = 0,
) -> RunResult:
    """Crash a first kernel of `first_kernel_mib` MiB booted with crashkernel=`crashkernel`
    into the image under test (the capture kernel's elfcorehdr describes that RAM).

    Without a root disk the run ends as the image does (marker, settled, powered off); with
    one it ends when QEMU does (the capture's tooling reboots once it has saved the dump,
    -no-reboot stops QEMU then), and succeeds only with a dump on the disk: dump-saved, or
    dump-failed with what went wrong. The first kernel has FIRST_KERNEL_MIB, or
    ROOT_DISK_FIRST_KERNEL_MIB with a root disk, unless `first_kernel_mib` says otherwise.
    The timeout is at least MIN_TIMEOUT (DUMP_TIMEOUT with a root disk): the first kernel
    boots before the one under test.

    With `cma` (bytes) the first kernel also reserves `crashkernel=<cma>,cma` and the stage-1
    loads with `kexec -s -p` (kexec_file_load), the only path on which the capture gets the
    CMA ranges (bookworm's `kexec -p` gives it the fixed part alone); the crashing kernel then
    waits about 10 s for in-flight DMA before it boots the capture."""
    dump = options.root_disk is not None
    if first_kernel_mib is None:
        first_kernel_mib = ROOT_DISK_FIRST_KERNEL_MIB if dump else FIRST_KERNEL_MIB
    o = replace(options, timeout=max(options.timeout, DUMP_TIMEOUT if dump else MIN_TIMEOUT))
    if dump:  # only QEMU's exit ends a dump trial well: no marker, never settled
        o = replace(
            o,
            until=None,
            settle=float("inf"),
            cmdline=_dump_cmdline(o),
            interval=max(o.interval, DUMP_INTERVAL),
        )
    arch = o.arch
    with prepared(image, o, "kdump") as p:
        root = stage1_root(arch, o.kernel, o.stage1_root)
        s1 = stage1(p.tmp, p.kernel, p.initrd, p.cmdline, arch, kexec_file=cma > 0, root=root)
        os.unlink(p.initrd)
        reserve = f"crashkernel={crashkernel >> 20}M" + (
            f" crashkernel={cma >> 20}M,cma" if cma else ""
        )
        first = f"{arch.console_cmdline} {reserve} panic=1 rdinit=/init"
        cmd = qemu_command(
            p.qemu,
            arch,
            p.accel,
            first_kernel_mib,
            p.kernel,
            s1,
            first,
            p.console_log,
            p.probe_log,
            o.cpus,
            p.overlay,
        )
        result = watch(
            cmd,
            p.tmp,
            Identity("kdump", image, o.kernel, crashkernel, p.accel),
            p.marker,
            o,
            section=_capture_console,
            before=_before_capture,
        )
        if p.disk is not None and p.overlay is not None:
            return _with_dump(result, p.disk, p.overlay, p.tmp, first_kernel_mib << 20)
        if result.succeeded and "vmcore" not in read_log(p.probe_log):
            return replace(result, detail=result.detail + " (no /proc/vmcore seen by the probe)")
        return result


def _dump_cmdline(o: QemuOptions) -> str | None:
    """The capture's command line as the disk's kdump tooling makes it: the first kernel's
    (root=, ro) and what the disk's kdump-tools appends; the options' own if they give one."""
    if o.cmdline is not None or o.root_disk is None:
        return o.cmdline
    disk = read_disk(o.root_disk, o.root)
    append = dump.disk_facts(disk).capture_append
    if append is None:  # not kdump-tools: footprint's kdump-like line
        return None
    return f"BOOT_IMAGE=/vmlinuz root={disk.root} ro {append}"


def _with_dump(result: RunResult, disk: RootDisk, overlay: str, tmp: str, ram: int) -> RunResult:
    """A dump trial's result: where the capture ended well (its tooling rebooted), whether
    the dump is on the disk; other endings (OOM, panic, timeout...) stay as they are."""
    if result.outcome is not Outcome.SUCCESS:
        return result
    raw = dump.raw_copy(overlay, os.path.join(tmp, "root.raw"))
    try:
        before = dump.disk_facts(disk).dumps
        check = dump.check_dump(dump.Filesystem(raw, disk.offset), before, ram)
    finally:
        os.unlink(raw)
    if check.dump is not None:
        f = check.dump
        return replace(
            result,
            outcome=Outcome.DUMP_SAVED,
            detail=f"{f.format} dump saved: {f.path} ({f.bytes} bytes)",
            dump=f,
        )
    said = kernel_log.dump_tooling(_capture_console(result.console) or "")
    why = f"{check.problem}; {said}" if said else check.problem
    return replace(result, outcome=Outcome.DUMP_FAILED, detail=why)


def _capture_console(console: str) -> str | None:
    """What the capture kernel printed: the console after the first kernel's deliberate
    panic and the sysrq crash line; None until then."""
    after = console.split(CRASH, 1)
    if len(after) < 2 or "sysrq triggered crash" not in after[1]:
        return None
    return after[1].split("sysrq triggered crash", 1)[1]


def _before_capture(console: str, exited: bool, elapsed: float) -> Ending | None:
    """The first kernel's failures: kexec -p could not load, or it stopped before the crash."""
    if STAGE1_LOAD_FAILED in console or kernel_log.CRASHKERNEL_FAILED in console:
        why = kernel_log.KEXEC_LOAD_FAILED.search(console)
        return (Outcome.LOAD_FAILED, why.group(0) if why else "kexec -p failed")
    if CRASH not in console and exited:
        return (Outcome.PANIC, "the first kernel stopped before the crash")
    return None
