"""Boot an image in QEMU (direct kernel boot) with a memory probe, and classify the outcome.

The probe is a small extra cpio member appended to a copy of the image (the kernel merges
members; the user's file is never touched), started by rdinit=. It needs /bin/sh (busybox,
dash or bash) and `mount`, `sleep` in the image; it mounts /proc and devtmpfs, samples
/proc/meminfo, /proc/modules and every process's VmHWM/RssAnon with shell builtins onto the
second serial port, and execs the image's own init. QEMU runs with KVM when a short trial boot
shows it works (nested KVM can hang), else TCG, always under a wall-clock timeout, and is
always reaped.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import re
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from footprint import lifetime
from footprint.arch import DEFAULT, Arch
from footprint.errors import EnvironmentUnavailable, UsageError
from footprint.image.cpio import newc_entry, newc_trailer
from footprint.image.uki import PE_MAGIC
from footprint.measure import kernel_log
from footprint.measure.backend import Outcome, ProbeProcess, ProbeSample, QemuRun, RunResult
from footprint.measure.cmdline import KDUMP_CMDLINE
from footprint.measure.rootdisk import RootDisk, drive_option, open_disk, overlay

PROBE_PATH = "footprint-probe"

PROBE = r"""#!/bin/sh
# footprint probe: memory samples on the second serial port, then the image's own init.
mount -t proc proc /proc 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
out=/dev/@PROBE_SERIAL@
[ -c "$out" ] || out=/dev/console
# After switch_root (run-init, switch_root, systemd's) has emptied the rootfs and moved /proc
# and /dev to the real root, the sampler goes on from its own proc mount (those delete nothing
# on another filesystem) with builtins only (no `[`: busybox may run it from /bin) and no file
# it opens in /dev (its stderr is already /dev/null), sleeping with read -t on a FIFO it holds
# open where the shell has it: the sleep binary is gone then.
P=/proc
mkdir -p /.fp-proc 2>/dev/null && mount -t proc proc /.fp-proc 2>/dev/null && P=/.fp-proc
_fp_sample() {
  read up idle <$P/uptime
  echo "@@ t $up"
  while read k v u; do
    case "$k" in
      MemTotal:|MemFree:|MemAvailable:|Shmem:|Cached:|Unevictable:|Slab:|SUnreclaim:|\
AnonPages:|KernelStack:|PageTables:|Percpu:) echo "@@ m ${k%:} $v" ;;
    esac
  done <$P/meminfo
  mods=0
  while read n s r; do mods=$((mods + s)); done <$P/modules
  echo "@@ mod $mods"
  for st in $P/[0-9]*/status; do
    name= hwm=0 anon=0
    while read k v r; do
      case "$k" in Name:) name=$v ;; VmHWM:) hwm=$v ;; RssAnon:) anon=$v; break ;; esac
    done <"$st"
    pid=${st#$P/}
    case "$name:$hwm" in :*|*:0) ;; *) echo "@@ p ${pid%/status} $name $hwm $anon" ;; esac
  done
  echo "@@ end"
}
_fp_nap() { sleep @INTERVAL@; }
# $P, not /proc: initramfs-tools images (kdump-tools') have no /proc directory to mount on.
[ -e $P/vmcore ] && echo "@@ vmcore present" >"$out"
_fp_sample >"$out" 2>/dev/null
(
  if mkfifo /.fp-nap 2>/dev/null && true 3<>/.fp-nap; then
    exec 3<>/.fp-nap
    rm -f /.fp-nap
    read -t 0.01 _x <&3 2>/dev/null
    nap=$?
    [ "$nap" = 1 ] || [ "$nap" -gt 128 ] && _fp_nap() { read -t @INTERVAL@ _x <&3; }
  fi
  while :; do _fp_nap; _fp_sample; done
) >"$out" 2>/dev/null &
exec @INIT@ "$@"
"""


@dataclass(frozen=True)
class QemuOptions:
    """How a QEMU backend boots an image (the memory is given to each run)."""

    kernel: str  # a bzImage (Debian: /boot/vmlinuz-*) or a UKI
    append: str = ""  # added to the kdump-like command line
    cmdline: str | None = None  # replaces the kdump-like command line
    until: str | None = None  # success when this regular expression is on the console
    timeout: float = 120.0
    settle: float = 5.0  # without `until`: success this long after the first probe sample
    init: str = "/init"  # the image's init, which the probe hands over to
    interval: float = 0.25  # seconds between probe samples
    accel: str = "auto"  # kvm, tcg, or auto: KVM if a trial boot works
    arch: Arch = DEFAULT
    cpus: int = 1  # QEMU's -smp (the kdump command line still says nr_cpus=1)
    root_disk: str | None = None  # a raw or qcow2 root disk, attached through an overlay
    root: str | None = None  # root= for the capture (default: from the disk's layout)
    stage1_root: str | None = None  # --kdump: where the stage-1's busybox and kexec come from


def resolve_arch(kernel: str | None, name: str | None) -> Arch:
    """The architecture to boot `kernel` as: its own, read from the image; `name` (--arch)
    where the image does not say, and checked against it where it does."""
    from footprint.arch import by_name
    from footprint.model.kernel import kernel_arch

    own = kernel_arch(kernel) if kernel else None
    if name is None:
        return own or DEFAULT
    chosen = by_name(name)
    if own is not None and own is not chosen:
        raise UsageError(f"--arch {name}, but {kernel} is an {own.name} kernel")
    return chosen


@dataclass(frozen=True)
class QemuBackend:
    """Direct kernel boot: -kernel, -initrd (the image with the probe), -m `memory`."""

    options: QemuOptions
    name: str = field(default="qemu", init=False)

    def run(self, image: str, memory: int) -> RunResult:
        return boot(image, memory, self.options)


def parse_probe(text: str) -> list[ProbeSample]:
    samples: list[ProbeSample] = []
    t: float | None = None
    meminfo: dict[str, int] = {}
    modules = 0
    processes: list[ProbeProcess] = []
    for line in text.splitlines():
        parts = line.strip().split()
        if len(parts) < 2 or parts[0] != "@@":
            continue
        kind = parts[1]
        try:
            if kind == "t":
                t, meminfo, modules, processes = float(parts[2]), {}, 0, []
            elif t is None:
                continue
            elif kind == "m":
                meminfo[parts[2]] = int(parts[3]) * 1024
            elif kind == "mod":
                modules = int(parts[2])
            elif kind == "p":
                pid, name, hwm, anon = int(parts[2]), parts[3], int(parts[4]), int(parts[5])
                processes.append(ProbeProcess(pid, name, hwm * 1024, anon * 1024))
            elif kind == "end":
                samples.append(ProbeSample(t, meminfo, modules, tuple(processes)))
                t = None
        except (IndexError, ValueError):
            continue  # a line cut by the end of the boot
    return samples


def capture_cmdline(
    cmdline: str | None, append: str, arch: Arch = DEFAULT, root: str | None = None
) -> str:
    """The command line the image's kernel boots with: console, the probe, kdump's options;
    with a root disk its `root` replaces the root= there (or is added)."""
    line = KDUMP_CMDLINE if cmdline is None else cmdline
    if root is not None:
        words = [w for w in line.split() if not w.startswith("root=")]
        line = " ".join([f"root={root}", *words])
    parts = (arch.console_cmdline, f"rdinit=/{PROBE_PATH}", line, append)
    return " ".join(p for p in parts if p)


def qemu_binary(arch: Arch = DEFAULT) -> str:
    found = shutil.which(arch.qemu_binary)
    if found is None:
        raise EnvironmentUnavailable(
            f"{arch.qemu_binary} is not installed — apt-get install {arch.qemu_package}"
        )
    return found


def probe_image(
    image: str,
    directory: str,
    init: str = "/init",
    interval: float = 0.25,
    arch: Arch = DEFAULT,
) -> str:
    """A copy of `image` with the probe appended as an uncompressed cpio member."""
    from footprint.image.reader import open_image

    out = os.path.join(directory, "initrd-with-probe.img")
    with open_image(image) as src, open(out, "wb") as dst:
        if src.read(2) == PE_MAGIC:  # a UKI: its .ucode and .initrd, as systemd-stub passes them
            from footprint.image.uki import locate

            for offset, length in locate(image).initrd_ranges:
                src.seek(offset)
                dst.write(src.read(length))
        else:
            src.seek(0)
            shutil.copyfileobj(src, dst, 1 << 20)
        dst.write(b"\0" * (-dst.tell() % 512))  # a plain cpio must start 4-byte aligned
        script = (
            PROBE.replace("@INIT@", init)
            .replace("@INTERVAL@", f"{interval:g}")
            .replace("@PROBE_SERIAL@", arch.probe_serial)
        )
        dst.write(newc_entry(PROBE_PATH, stat.S_IFREG | 0o755, script.encode()) + newc_trailer())
    return out


def kernel_file(kernel: str, directory: str) -> str:
    """A file QEMU (and kexec) can boot: the bzImage or arm64 Image itself, a UKI's .linux
    section, or the arm64 Image decompressed out of an EFI zboot or gzip'ed file."""
    from footprint.image.uki import linux_section
    from footprint.model.kernel import GZIP_MAGIC, is_zboot, read_kernel

    with open(kernel, "rb") as f:
        head = f.read(0x40)
        if is_zboot(head) or head[:2] == GZIP_MAGIC:
            image = read_kernel(kernel).image
            if image is not None:
                out = os.path.join(directory, "Image")
                with open(out, "wb") as dst:
                    dst.write(image)
                return out
        linux = linux_section(f, kernel)
        if linux is None:
            return kernel
        f.seek(linux[0])
        out = os.path.join(directory, "linux")
        with open(out, "wb") as dst:
            dst.write(f.read(linux[1]))
        return out


def qemu_command(
    qemu: str,
    arch: Arch,
    accel: str,
    memory_mib: int,
    kernel: str,
    initrd: str | None,
    append: str,
    console: str,
    probe: str | None,
    cpus: int = 1,
    disk: str | None = None,
) -> list[str]:
    cmd = [
        qemu,
        "-machine",
        f"{arch.machine},memory-backend=ram0",
        "-accel",
        accel,
        "-m",
        str(memory_mib),
        # RAM the host reserves nothing for: a first kernel larger than this machine (64G
        # on 24G) boots, and costs only the pages the guest touches.
        "-object",
        f"memory-backend-ram,id=ram0,size={memory_mib}M,reserve=off",
        "-smp",
        str(cpus),
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-kernel",
        kernel,
        "-append",
        append,
        "-chardev",
        f"file,id=con,path={console}",
        "-serial",
        "chardev:con",
    ]
    if accel == "tcg":
        cmd += ["-cpu", arch.cpu_tcg]
    if initrd:
        cmd += ["-initrd", initrd]
    if probe:
        cmd += ["-chardev", f"file,id=probe,path={probe}", *arch.probe_device]
    if disk:
        cmd += drive_option(disk)
    return cmd


@functools.lru_cache(maxsize=4)
def choose_accel(qemu: str, kernel: str, arch: Arch = DEFAULT, wait: float = 8.0) -> str:
    """kvm if a trial boot reaches the kernel's first panic (no root) in time, else tcg."""
    forced = os.environ.get("FOOTPRINT_QEMU_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK) or platform.machine() != arch.name:
        return "tcg"
    with lifetime.temp_dir("kvm") as tmp:
        log = os.path.join(tmp, "console")
        line = f"{arch.console_cmdline} panic=-1"
        cmd = qemu_command(qemu, arch, "kvm", 128, kernel, None, line, log, None)
        with _running(cmd) as proc:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                text = read_log(log)
                if "Kernel panic" in text or "VFS:" in text:
                    return "kvm"
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
    return "tcg"


# QEMU processes running now, from any thread: trials run side by side (--jobs) end at once
# when the command is interrupted (kill_all), not when each one's timeout comes.
_LIVE: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()


def kill_all() -> None:
    """Kill every QEMU this process runs; each trial's own exit path then reaps it."""
    with _LIVE_LOCK:
        for proc in _LIVE:
            if proc.poll() is None:
                proc.kill()


@contextlib.contextmanager
def _running(cmd: list[str]):  # type: ignore[no-untyped-def]
    proc = subprocess.Popen(
        lifetime.tied(cmd),  # QEMU dies with footprint, even of SIGKILL
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    with _LIVE_LOCK:
        _LIVE.add(proc)
    try:
        yield proc
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc)
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def _wait_for(done: Callable[[], bool], proc: subprocess.Popen[bytes], seconds: float) -> None:
    """Poll `done` for a little longer while QEMU still runs (a line the kernel is writing)."""
    deadline = time.monotonic() + seconds
    while not done() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)


def read_log(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def classify(
    console: str, marker: re.Pattern[str] | None, settled: bool, exited: bool
) -> Ending | None:
    """The outcome the console shows so far, or None if the boot is still going."""
    unpack = kernel_log.UNPACK_FAILED.search(console)
    if unpack:
        return Outcome.UNPACK_FAILED, unpack.group(0)
    if kernel_log.OOM.search(console):
        if not any(line in console for line in kernel_log.UNPACK_OVER):
            return Outcome.UNPACK_FAILED, "out of memory while unpacking the initramfs"
        killed = kernel_log.KILLED_PROCESS.search(console)
        if killed is None and kernel_log.NO_KILLABLE in console:
            return Outcome.OOM, "out of memory and no killable processes"
        who = f": killed {killed.group(2)} ({killed.group(1)})" if killed else ""
        return Outcome.OOM, f"the OOM killer ran{who}"
    panic = kernel_log.PANIC.search(console)
    if panic:
        return Outcome.PANIC, panic.group(1).strip()
    if marker is not None:
        m = marker.search(console)
        if m:
            return Outcome.SUCCESS, m.group(0)
    elif settled:
        return Outcome.SUCCESS, "init settled (no panic, no OOM)"
    if exited:
        if any(line in console for line in kernel_log.POWERED_OFF):
            return Outcome.SUCCESS, "init finished and powered off"
        return Outcome.PANIC, "QEMU exited"
    return None


@dataclass(frozen=True)
class Prepared:
    """What every QEMU run of an image needs, made in its temporary directory."""

    tmp: str
    qemu: str  # the binary
    kernel: str  # a file -kernel takes (a UKI's .linux copied out)
    accel: str  # kvm or tcg
    initrd: str  # the image with the probe appended
    cmdline: str  # the capture kernel's command line
    console_log: str
    probe_log: str
    marker: re.Pattern[str] | None
    disk: RootDisk | None = None  # the root disk, when one is attached
    overlay: str | None = None  # the qcow2 overlay of it this run writes to


@contextlib.contextmanager
def prepared(image: str, o: QemuOptions, kind: str) -> Iterator[Prepared]:
    """The QEMU binary, kernel file, accelerator, probed copy and command line of a run of
    `image`, in a temporary directory that lives as long as the context."""
    from footprint.model.kernel import kernel_arch

    own = kernel_arch(o.kernel)
    if own is not None and own is not o.arch:
        raise UsageError(f"{o.kernel} is an {own.name} kernel, not {o.arch.name}")
    qemu = qemu_binary(o.arch)
    marker = re.compile(o.until) if o.until else None
    with lifetime.temp_dir(kind) as tmp:
        disk = open_disk(o.root_disk, tmp, o.root) if o.root_disk else None
        kfile = kernel_file(o.kernel, tmp)
        mode = choose_accel(qemu, kfile, o.arch) if o.accel == "auto" else o.accel
        yield Prepared(
            tmp,
            qemu,
            kfile,
            mode,
            probe_image(image, tmp, o.init, o.interval, o.arch),
            capture_cmdline(o.cmdline, o.append, o.arch, disk.root if disk else o.root),
            os.path.join(tmp, "console"),
            os.path.join(tmp, "probe"),
            marker,
            disk,
            overlay(disk, tmp) if disk else None,
        )


def boot(image: str, memory: int, options: QemuOptions) -> RunResult:
    """Boot `image` with the options' kernel in `memory` bytes of RAM and classify the end."""
    o = options
    with prepared(image, o, "boot") as p:
        cmd = qemu_command(
            p.qemu,
            o.arch,
            p.accel,
            max(1, memory >> 20),
            p.kernel,
            p.initrd,
            p.cmdline,
            p.console_log,
            p.probe_log,
            o.cpus,
            p.overlay,
        )
        return watch(cmd, p.tmp, Identity("qemu", image, o.kernel, memory, p.accel), p.marker, o)


Ending = tuple[Outcome, str]


@dataclass(frozen=True)
class Identity:
    """What a RunResult of watch() is about."""

    backend: str
    image: str
    kernel: str
    memory_bytes: int
    accel: str


def watch(
    cmd: list[str],
    tmp: str,
    identity: Identity,
    marker: re.Pattern[str] | None,
    options: QemuOptions,
    section: Callable[[str], str | None] = lambda console: console,
    before: Callable[[str, bool, float], Ending | None] | None = None,
) -> RunResult:
    """Run QEMU until the boot under test has an outcome, and collect what it showed.

    `section` cuts the console of the boot under test out of the whole console (None: it
    has not started); `before` may end the run earlier, from the whole console, whether
    QEMU exited and the seconds spent (kdump: the first kernel failed). Logs are
    tmp/console and tmp/probe.
    """
    timeout, settle, interval = options.timeout, options.settle, options.interval
    console_log, probe_log = os.path.join(tmp, "console"), os.path.join(tmp, "probe")
    start = time.monotonic()
    outcome: Ending | None = None
    first_sample: float | None = None
    with _running(cmd) as proc:
        while outcome is None:
            time.sleep(0.1)
            console = read_log(console_log)
            now = time.monotonic()
            exited = proc.poll() is not None
            outcome = before(console, exited, now - start) if before is not None else None
            part = section(console) if outcome is None else None
            if part is not None:
                if first_sample is None and "@@ end" in read_log(probe_log):
                    first_sample = now
                settled = first_sample is not None and now - first_sample >= settle
                outcome = classify(part, marker, settled, exited)
            if outcome is None and now - start > timeout:
                outcome = (Outcome.TIMEOUT, f"no outcome in {timeout:g} s")
        if outcome[0] is Outcome.OOM:
            _wait_for(
                lambda: (
                    kernel_log.KILLED_PROCESS.search(section(read_log(console_log)) or "")
                    is not None
                ),
                proc,
                3.0,
            )
        if outcome[0] is Outcome.SUCCESS and proc.poll() is None:
            # One more probe sample, taken after the marker, before QEMU is stopped.
            ends = read_log(probe_log).count("@@ end")
            deadline = time.monotonic() + interval * 4 + 0.5
            while time.monotonic() < deadline and read_log(probe_log).count("@@ end") <= ends:
                time.sleep(0.05)
    console, probe = read_log(console_log), read_log(probe_log)
    # Where the guest has no probe port (its driver is a module), the probe wrote to the console.
    samples = tuple(parse_probe(probe) or parse_probe(section(console) or ""))
    return RunResult(
        identity.backend,
        identity.image,
        identity.memory_bytes,
        outcome[0],
        outcome[1],
        time.monotonic() - start,
        max((s.used_bytes for s in samples), default=0),
        tuple(kernel_log.killed(section(console) or "")),
        console,
        qemu=QemuRun(identity.kernel, identity.accel, samples),
    )
