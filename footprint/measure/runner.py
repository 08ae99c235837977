"""Measure an image's userspace running under a cgroup memory limit (the parent side).

measure() creates the cgroup, forks the sandbox child into it, maps its user namespace, then
samples the cgroup and its processes every `interval` while it reads the console, until the
entry exits, the marker appears, an OOM kill happens or the timeout passes. Whatever ends it
(success, failure, an exception, SIGINT or SIGTERM), every process is killed and reaped and
the cgroup and the temporary directory removed.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import os
import re
import select
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psutil

from footprint.errors import EnvironmentUnavailable, Terminated
from footprint.measure.cgroup import MemoryCgroup, MemoryStats, open_cgroup
from footprint.measure.cmdline import kdump_cmdline
from footprint.measure.sandbox import (
    EXIT_SETUP_FAILED,
    EXIT_UNPACK_FAILED,
    ID_BASE,
    SandboxSpec,
    child_main,
    write_id_maps,
)

DEFAULT_CMDLINE = kdump_cmdline()
OOM_KILLED = re.compile(r"Killed process (\d+) \(([^)]*)\)")

# Outcomes
COMPLETED, MARKER, TIMEOUT, OOM, UNPACK_FAILED, FAILED = (
    "completed",
    "marker",
    "timeout",
    "oom",
    "unpack-failed",
    "failed",
)
SUCCESS = (COMPLETED, MARKER)


@dataclass
class ProcessSample:
    pid: int
    name: str
    exe: str
    component: str
    rss: int
    uss: int
    pss: int
    anon: int  # RssAnon
    hwm: int  # VmHWM


@dataclass
class Sample:
    t: float
    bytes: int  # the cgroup's charge
    stats: MemoryStats
    processes: list[ProcessSample]


@dataclass
class ComponentRun:
    name: str
    anon_peak_bytes: int = 0  # its own peak of summed RssAnon
    anon_at_peak_bytes: int = 0  # at the moment of the cgroup's peak
    rss_peak_bytes: int = 0
    pss_peak_bytes: int = 0
    hwm_bytes: int = 0  # largest VmHWM of one of its processes
    processes: set[str] = field(default_factory=set)


@dataclass
class Measurement:
    image: str
    limit_bytes: int
    outcome: str
    detail: str
    exit_status: int | None
    duration_s: float
    peak_bytes: int
    unpacked_bytes: int  # file bytes the unpack wrote into the tmpfs
    unpack_peak_bytes: int  # the cgroup's peak while unpacking (the unpacker's memory too)
    rootfs_charge_bytes: int  # what the cgroup was charged once the unpack was done
    peak_stats: MemoryStats | None
    oom_kills: int
    killed: list[tuple[int, str]]
    components: dict[str, ComponentRun]
    timeline: list[Sample]
    console: str
    cgroup_version: int

    @property
    def succeeded(self) -> bool:
        return self.outcome in SUCCESS


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (any pid namespace: the host sees all)."""
    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True) + [root]
    except psutil.Error:
        return
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()


def _status_fields(pid: int) -> tuple[int, int]:
    anon = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    return anon, hwm


def _identify(pid: int, owner: Callable[[str], str]) -> tuple[str, str, str] | None:
    """(name, exe inside the sandbox, component): scripts count for the script, not the shell."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        with open(f"/proc/{pid}/comm") as f:
            name = f.read().strip()
    except OSError:  # it exited, or is not ours to read
        return None
    exe = exe.removesuffix(" (deleted)")
    target = exe
    base = os.path.basename(exe)
    if base in ("busybox", "sh", "dash", "bash") and len(argv) > 1 and argv[1].startswith("/"):
        target = argv[1]
    return name, exe, owner(target)


@functools.cache
def _own_exe() -> tuple[int, int] | None:
    try:
        me = os.stat(sys.executable)
    except OSError:
        return None
    return (me.st_dev, me.st_ino)


def _is_footprint(pid: int) -> bool:
    """A sandbox helper that has not exec'd the image's code yet (it runs our Python)."""
    try:
        exe = os.stat(f"/proc/{pid}/exe")
    except OSError:
        return False
    return (exe.st_dev, exe.st_ino) == _own_exe()


def sample_processes(
    cg: MemoryCgroup, owner: Callable[[str], str], exclude: int = 0
) -> list[ProcessSample]:
    out = []
    for pid in cg.pids():
        if pid in (os.getpid(), exclude) or _is_footprint(pid):
            continue
        try:
            info = psutil.Process(pid).memory_full_info()
        except (psutil.Error, OSError):
            continue
        identity = _identify(pid, owner)
        if identity is None:
            continue
        name, exe, component = identity
        anon, hwm = _status_fields(pid)
        out.append(
            ProcessSample(
                pid, name, exe, component, info.rss, info.uss, getattr(info, "pss", 0), anon, hwm
            )
        )
    return out


class _Kmsg:
    """The kernel log from now on, for the names of OOM-killed processes (root only)."""

    def __init__(self) -> None:
        try:
            self.fd: int | None = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError:
            self.fd = None

    def killed(self) -> list[tuple[int, str]]:
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
            m = OOM_KILLED.search(record)
            if m:
                found.append((int(m.group(1)), m.group(2)))
        return found

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


def measure(
    image: str,
    limit: int,
    *,
    argv: tuple[str, ...] = ("/init",),
    cmdline: str = DEFAULT_CMDLINE,
    until: str | None = None,
    timeout: float = 60.0,
    interval: float = 0.05,
    pids_max: int = 512,
    owner: Callable[[str], str] = lambda path: "unknown",
    on_sample: Callable[[Sample], None] | None = None,
) -> Measurement:
    """One run of the image under `limit` bytes; see the module docstring."""
    if os.geteuid() != 0:
        raise EnvironmentUnavailable(
            "measure needs root to map a user namespace for the sandbox and create its cgroup "
            "— run it as root (e.g. with sudo)"
        )
    marker = re.compile(until) if until else None
    with contextlib.ExitStack() as stack:
        stack.enter_context(_sigterm_raises())
        cg = stack.enter_context(open_cgroup())
        cg.set_limit(limit)
        cg.set_pids_limit(pids_max)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="footprint-measure-"))
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        os.chmod(tmp, 0o755)
        cmdline_file = os.path.join(tmp, "cmdline")
        with open(cmdline_file, "w") as f:
            f.write(cmdline.strip() + "\n")
        # The kernel's rootfs is ramfs (uncapped) when the command line has root=, as a kdump
        # one does, and tmpfs capped at half the RAM otherwise.
        capped = not re.search(r"(^|\s)root=", cmdline)
        cap = max(limit // 2, 1 << 20) if capped else limit
        spec = SandboxSpec(image, root, cmdline_file, argv, tmpfs_bytes=cap)
        kmsg = _Kmsg()
        stack.callback(kmsg.close)
        return _run(spec, cg, limit, marker, timeout, interval, owner, kmsg, stack, on_sample)
    raise AssertionError("unreachable")


def _run(
    spec: SandboxSpec,
    cg: MemoryCgroup,
    limit: int,
    marker: re.Pattern[str] | None,
    timeout: float,
    interval: float,
    owner: Callable[[str], str],
    kmsg: _Kmsg,
    stack: contextlib.ExitStack,
    on_sample: Callable[[Sample], None] | None,
) -> Measurement:
    from footprint.image.reader import open_image

    image_file = open_image(spec.image)
    stack.callback(image_file.close)
    master, slave = os.openpty()
    stack.callback(os.close, master)
    console_path = os.ttyname(slave)
    # The sandbox owns the pty it uses as its console (ids are shifted inside).
    os.chown(console_path, ID_BASE, ID_BASE)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    status_r, status_w = os.pipe()
    gate_r, gate_w = os.pipe()
    for fd in (ready_r, go_w, status_r, gate_w):
        stack.callback(os.close, fd)
    pid = os.fork()
    if pid == 0:  # C1: never returns
        code = EXIT_SETUP_FAILED
        try:
            os.close(master)
            for fd in (ready_r, go_w, status_r, gate_w):
                os.close(fd)
            code = child_main(spec, image_file, console_path, ready_w, go_r, status_w, gate_r)
        except BaseException:
            with contextlib.suppress(BaseException):
                import traceback

                os.write(status_w, f"setup-failed {traceback.format_exc(limit=3)!r}\n".encode())
        finally:
            os._exit(code)
    reaped = False

    def reap() -> None:
        if not reaped:
            _kill_tree(pid)  # the sandbox's helpers live outside the cgroup until admitted
            cg.kill_all()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

    stack.callback(reap)
    for fd in (slave, ready_w, go_r, status_w, gate_r):
        os.close(fd)
    if os.read(ready_r, 1) != b"u":
        raise EnvironmentUnavailable(
            "the sandbox could not create its namespaces (is "
            "unprivileged user namespace creation disabled?)"
        )
    write_id_maps(pid)
    os.write(go_w, b"g")
    os.set_blocking(status_r, False)

    start = time.monotonic()
    console = bytearray()
    status_text = ""
    samples: list[Sample] = []
    outcome, detail, exit_status = "", "", None
    text = ""  # the console decoded, for the marker; only what arrives is decoded
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    phases = _Phases()
    next_sample = start
    while not outcome:
        wait = max(0.0, next_sample - time.monotonic())
        readable, _, _ = select.select([master, status_r], [], [], wait)
        if master in readable:
            chunk = b""
            with contextlib.suppress(OSError):  # EIO once every holder of the pty is gone
                chunk = os.read(master, 65536)
            console += chunk
            if marker is not None and chunk:
                before = len(text)
                text += decoder.decode(chunk)
                m = marker.search(text, max(0, before - 4096))
                if m:
                    outcome, detail = MARKER, m.group(0)
        if status_r in readable:
            with contextlib.suppress(BlockingIOError):
                status_text += os.read(status_r, 65536).decode(errors="replace")
            status_text = _admit(status_text, cg, gate_w, phases, time.monotonic() - start)
        now = time.monotonic()
        if now >= next_sample:
            next_sample = now + interval
            s = Sample(
                now - start,
                cg.current(),
                cg.stats(),
                sample_processes(cg, owner, exclude=phases.unpacker),
            )
            samples.append(s)
            if on_sample is not None:
                on_sample(s)
        if not outcome and cg.oom_kills():
            if phases.run_start is None:
                outcome, detail = UNPACK_FAILED, "the OOM killer ran while unpacking"
            else:
                outcome, detail = OOM, "the cgroup's OOM killer ran"
        if not outcome:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                reaped = True
                exit_status = os.waitstatus_to_exitcode(status)
                outcome, detail = _ended(exit_status, status_text, cg)
        if not outcome and now - start > timeout:
            outcome, detail = TIMEOUT, f"no {'marker' if marker else 'exit'} in {timeout:g} s"
    duration = time.monotonic() - start
    if phases.run_start is not None:  # a last look before everything is killed
        samples.append(
            Sample(
                duration,
                cg.current(),
                cg.stats(),
                sample_processes(cg, owner, exclude=phases.unpacker),
            )
        )
    peak = cg.peak()
    oom_kills = cg.oom_kills()
    killed = kmsg.killed()
    deadline = time.monotonic() + 1.0
    while oom_kills and not killed and time.monotonic() < deadline:  # the line may trail
        time.sleep(0.05)
        killed = kmsg.killed()
    if oom_kills and outcome not in (OOM, UNPACK_FAILED):
        outcome, detail = OOM, f"{outcome} after an OOM kill"
    cg.kill_all()
    if not reaped:
        _kill_tree(pid)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        reaped = True
    with contextlib.suppress(OSError):
        console += os.read(master, 65536)
    with contextlib.suppress(OSError):
        status_text += os.read(status_r, 65536).decode(errors="replace")
    unpacked = 0
    for line in status_text.splitlines():
        if line.startswith("unpacked "):
            unpacked = int(line.split()[1])
    start_t = phases.run_start if phases.run_start is not None else float("inf")
    run_samples = [s for s in samples if s.t >= start_t]
    if phases.run_start is None:  # it never got past the unpack
        unpack_peak, rootfs_charge = peak, 0
    else:
        unpack_peak, rootfs_charge = phases.unpack_peak, phases.rootfs_charge
        if not phases.peak_reset:  # the kernel cannot reset the peak: use the samples
            peak = max((s.bytes for s in run_samples), default=rootfs_charge)
    return Measurement(
        spec.image,
        limit,
        outcome,
        detail,
        exit_status,
        duration,
        peak,
        unpacked,
        unpack_peak,
        rootfs_charge,
        _at_peak(run_samples),
        oom_kills,
        killed,
        _components(run_samples),
        samples,
        console.decode(errors="replace"),
        cg.version,
    )


@dataclass
class _Phases:
    """What the cgroup showed when init was admitted: the unpack is over by then."""

    admitted: int = 0
    unpacker: int = 0  # footprint's own process: not part of the image's userspace
    unpack_peak: int = 0
    rootfs_charge: int = 0
    peak_reset: bool = False
    run_start: float | None = None


def _admit(status_text: str, cg: MemoryCgroup, gate_w: int, phases: _Phases, now: float) -> str:
    """Put each process the sandbox announces into the cgroup, then let it go on: first the
    unpacker, then init (by which time the unpacker has exited, leaving the rootfs)."""
    kept = []
    for line in status_text.splitlines(keepends=True):
        if line.startswith("join ") and line.endswith("\n"):
            phases.admitted += 1
            if phases.admitted == 1:
                phases.unpacker = int(line.split()[1])
            if phases.admitted == 2:
                phases.unpack_peak, phases.rootfs_charge = cg.peak(), cg.current()
                phases.peak_reset = cg.reset_peak()
                phases.run_start = now
            cg.add(int(line.split()[1]))
            os.write(gate_w, b"g")
        else:
            kept.append(line)
    return "".join(kept)


def _ended(code: int, status_text: str, cg: MemoryCgroup) -> tuple[str, str]:
    if code == EXIT_UNPACK_FAILED or "unpack-failed" in status_text:
        why = next(
            (
                ln[len("unpack-failed ") :]
                for ln in status_text.splitlines()
                if ln.startswith("unpack-failed ")
            ),
            "",
        )
        return UNPACK_FAILED, why or "the unpack did not finish"
    if code == -signal.SIGKILL and cg.oom_kills():
        return (
            UNPACK_FAILED if "unpacked " not in status_text else OOM,
            "killed by the OOM killer",
        )
    if code == EXIT_SETUP_FAILED or "setup-failed" in status_text:
        why = next((ln for ln in status_text.splitlines() if ln.startswith("setup-failed")), "")
        return FAILED, f"the sandbox could not start the image: {why}"
    if code == 0:
        return COMPLETED, "the entry exited with status 0"
    return FAILED, f"the entry exited with status {code}"


def _at_peak(samples: list[Sample]) -> MemoryStats | None:
    return max(samples, key=lambda s: s.bytes).stats if samples else None


def _components(samples: list[Sample]) -> dict[str, ComponentRun]:
    out: dict[str, ComponentRun] = {}
    peak = max(samples, key=lambda s: s.bytes) if samples else None
    for s in samples:
        sums: dict[str, list[int]] = {}
        for p in s.processes:
            c = out.setdefault(p.component, ComponentRun(p.component))
            c.processes.add(p.name)
            c.hwm_bytes = max(c.hwm_bytes, p.hwm)
            acc = sums.setdefault(p.component, [0, 0, 0])
            acc[0] += p.anon
            acc[1] += p.rss
            acc[2] += p.pss
        for name, (anon, rss, pss) in sums.items():
            c = out[name]
            c.anon_peak_bytes = max(c.anon_peak_bytes, anon)
            c.rss_peak_bytes = max(c.rss_peak_bytes, rss)
            c.pss_peak_bytes = max(c.pss_peak_bytes, pss)
            if s is peak:
                c.anon_at_peak_bytes = anon
    return out
