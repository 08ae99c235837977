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
import os
import re
import select
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psutil

from footprint import lifetime
from footprint.errors import EnvironmentUnavailable, Terminated
from footprint.measure import messages
from footprint.measure.backend import CgroupRun, Outcome, RunResult, Sample
from footprint.measure.cgroup import MemoryCgroup, open_cgroup
from footprint.measure.cmdline import kdump_cmdline
from footprint.measure.kernel_log import Kmsg
from footprint.measure.messages import Kind, Message
from footprint.measure.sampling import at_peak, components, sample
from footprint.measure.sandbox import (
    EXIT_SETUP_FAILED,
    EXIT_UNPACK_FAILED,
    ID_BASE,
    SandboxSpec,
    child_main,
    write_id_maps,
)

DEFAULT_CMDLINE = kdump_cmdline()


def _unknown(path: str) -> str:
    return "unknown"


@dataclass(frozen=True)
class CgroupOptions:
    """How the cgroup backend runs an image (the limit is given to each run)."""

    argv: tuple[str, ...] = ("/init",)  # the entry, inside the image
    cmdline: str = DEFAULT_CMDLINE  # what the image reads in /proc/cmdline
    until: str | None = None  # success when this regular expression is on the console
    timeout: float = 60.0
    interval: float = 0.05  # seconds between samples
    pids_max: int = 512
    owner: Callable[[str], str] = _unknown  # path inside the image -> its component
    on_sample: Callable[[Sample], None] | None = None


@dataclass(frozen=True)
class CgroupBackend:
    """The image's userspace under a cgroup memory limit (no kernel of its own)."""

    options: CgroupOptions = field(default_factory=CgroupOptions)
    name: str = field(default="cgroup", init=False)

    def run(self, image: str, memory: int) -> RunResult:
        return measure(image, memory, self.options)


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


def measure(image: str, limit: int, options: CgroupOptions | None = None) -> RunResult:
    """One run of the image under `limit` bytes; see the module docstring."""
    o = options or CgroupOptions()
    if os.geteuid() != 0:
        raise EnvironmentUnavailable(
            "measure needs root to map a user namespace for the sandbox and create its cgroup "
            "— run it as root (e.g. with sudo)"
        )
    marker = re.compile(o.until) if o.until else None
    with contextlib.ExitStack() as stack:
        stack.enter_context(_sigterm_raises())
        cg = stack.enter_context(open_cgroup())
        cg.set_limit(limit)
        cg.set_pids_limit(o.pids_max)
        tmp = stack.enter_context(lifetime.temp_dir("measure"))
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        os.chmod(tmp, 0o755)
        cmdline_file = os.path.join(tmp, "cmdline")
        with open(cmdline_file, "w") as f:
            f.write(o.cmdline.strip() + "\n")
        # The kernel's rootfs is ramfs (uncapped) when the command line has root=, as a kdump
        # one does, and tmpfs capped at half the RAM otherwise.
        capped = not re.search(r"(^|\s)root=", o.cmdline)
        cap = max(limit // 2, 1 << 20) if capped else limit
        spec = SandboxSpec(image, root, cmdline_file, o.argv, tmpfs_bytes=cap)
        kmsg = Kmsg()
        stack.callback(kmsg.close)
        return _run(spec, cg, limit, marker, o, kmsg, stack)
    raise AssertionError("unreachable")


def _run(
    spec: SandboxSpec,
    cg: MemoryCgroup,
    limit: int,
    marker: re.Pattern[str] | None,
    o: CgroupOptions,
    kmsg: Kmsg,
    stack: contextlib.ExitStack,
) -> RunResult:
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

                failure = messages.encode(Kind.SETUP_FAILED, traceback.format_exc(limit=3))
                os.write(status_w, failure)
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
    if os.read(ready_r, 1) != messages.READY:
        raise EnvironmentUnavailable(
            "the sandbox could not create its namespaces (is "
            "unprivileged user namespace creation disabled?)"
        )
    write_id_maps(pid)
    os.write(go_w, messages.GO)
    os.set_blocking(status_r, False)

    start = time.monotonic()
    console = bytearray()
    status = messages.Reader()
    received: list[Message] = []  # every message but join
    samples: list[Sample] = []
    outcome: Outcome | None = None
    detail, exit_status = "", None
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
                    outcome, detail = Outcome.SUCCESS, f"the marker appeared: {m.group(0)}"
        if status_r in readable:
            with contextlib.suppress(BlockingIOError):
                arrived = status.feed(os.read(status_r, 65536))
                received += _admit(arrived, cg, gate_w, phases, time.monotonic() - start)
        now = time.monotonic()
        if now >= next_sample:
            next_sample = now + o.interval
            s = sample(cg, now - start, o.owner, phases.unpacker)
            samples.append(s)
            if o.on_sample is not None:
                o.on_sample(s)
        if not outcome and cg.oom_kills():
            if phases.run_start is None:
                outcome, detail = Outcome.UNPACK_FAILED, "the OOM killer ran while unpacking"
            else:
                outcome, detail = Outcome.OOM, "the cgroup's OOM killer ran"
        if not outcome:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                reaped = True
                exit_status = os.waitstatus_to_exitcode(wait_status)
                outcome, detail = _ended(exit_status, received, cg)
        if not outcome and now - start > o.timeout:
            what = "marker" if marker else "exit"
            outcome, detail = Outcome.TIMEOUT, f"no {what} in {o.timeout:g} s"
    duration = time.monotonic() - start
    if phases.run_start is not None:  # a last look before everything is killed
        samples.append(sample(cg, duration, o.owner, phases.unpacker))
    peak = cg.peak()
    oom_kills = cg.oom_kills()
    killed = kmsg.killed()
    deadline = time.monotonic() + 1.0
    while oom_kills and not killed and time.monotonic() < deadline:  # the line may trail
        time.sleep(0.05)
        killed = kmsg.killed()
    if oom_kills and outcome not in (Outcome.OOM, Outcome.UNPACK_FAILED):
        outcome, detail = Outcome.OOM, f"{outcome} ({detail}) after an OOM kill"
    cg.kill_all()
    if not reaped:
        _kill_tree(pid)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        reaped = True
    with contextlib.suppress(OSError):
        console += os.read(master, 65536)
    with contextlib.suppress(OSError):
        received += status.feed(os.read(status_r, 65536))
    unpacked = next((m.number for m in received if m.kind is Kind.UNPACKED), 0)
    start_t = phases.run_start if phases.run_start is not None else float("inf")
    run_samples = [s for s in samples if s.t >= start_t]
    if phases.run_start is None:  # it never got past the unpack
        unpack_peak, rootfs_charge = peak, 0
    else:
        unpack_peak, rootfs_charge = phases.unpack_peak, phases.rootfs_charge
        if not phases.peak_reset:  # the kernel cannot reset the peak: use the samples
            peak = max((s.bytes for s in run_samples), default=rootfs_charge)
    assert outcome is not None
    run = CgroupRun(
        cg.version,
        exit_status,
        unpacked,
        unpack_peak,
        rootfs_charge,
        at_peak(run_samples),
        oom_kills,
        components(run_samples),
        tuple(samples),
    )
    return RunResult(
        "cgroup",
        spec.image,
        limit,
        outcome,
        detail,
        duration,
        peak,
        tuple(killed),
        console.decode(errors="replace"),
        cgroup=run,
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


def _admit(
    arrived: list[Message], cg: MemoryCgroup, gate_w: int, phases: _Phases, now: float
) -> list[Message]:
    """Put each process the sandbox announces into the cgroup, then let it go on: first the
    unpacker, then init (by which time the unpacker has exited, leaving the rootfs). Returns
    the other messages."""
    kept = []
    for m in arrived:
        if m.kind is not Kind.JOIN:
            kept.append(m)
            continue
        phases.admitted += 1
        if phases.admitted == 1:
            phases.unpacker = m.number
        if phases.admitted == 2:
            phases.unpack_peak, phases.rootfs_charge = cg.peak(), cg.current()
            phases.peak_reset = cg.reset_peak()
            phases.run_start = now
        cg.add(m.number)
        os.write(gate_w, messages.GO)
    return kept


def _ended(code: int, received: list[Message], cg: MemoryCgroup) -> tuple[Outcome, str]:
    said = {m.kind: m.text for m in received}
    if code == EXIT_UNPACK_FAILED or Kind.UNPACK_FAILED in said:
        return Outcome.UNPACK_FAILED, said.get(Kind.UNPACK_FAILED) or "the unpack did not finish"
    if code == -signal.SIGKILL and cg.oom_kills():
        return (
            Outcome.UNPACK_FAILED if Kind.UNPACKED not in said else Outcome.OOM,
            "killed by the OOM killer",
        )
    if code == EXIT_SETUP_FAILED or Kind.SETUP_FAILED in said:
        why = said.get(Kind.SETUP_FAILED, "")
        return Outcome.FAILED, f"the sandbox could not start the image: {why}"
    if code == 0:
        return Outcome.SUCCESS, "the entry exited with status 0"
    return Outcome.FAILED, f"the entry exited with status {code}"
