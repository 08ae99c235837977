"""The cgroup runner's process sampling: who is in the cgroup, which component's file each
process runs, its RSS/USS/PSS, RssAnon and VmHWM; and the per-component peaks over a run."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from footprint.measure.backend import ComponentRun, ProcessSample, Sample
from footprint.measure.cgroup import MemoryCgroup, MemoryStats

SHELLS = ("busybox", "sh", "dash", "bash")  # a script counts for the script, not the shell


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
    if base in SHELLS and len(argv) > 1 and argv[1].startswith("/"):
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
) -> tuple[ProcessSample, ...]:
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
    return tuple(out)


def sample(cg: MemoryCgroup, t: float, owner: Callable[[str], str], exclude: int) -> Sample:
    """The cgroup's charge and stats and its processes, at `t` seconds into the run."""
    return Sample(t, cg.current(), cg.stats(), sample_processes(cg, owner, exclude))


def at_peak(samples: list[Sample]) -> MemoryStats | None:
    return max(samples, key=lambda s: s.bytes).stats if samples else None


@dataclass
class _Peaks:
    anon: int = 0
    anon_at_peak: int = 0
    rss: int = 0
    pss: int = 0
    hwm: int = 0
    processes: set[str] = field(default_factory=set)


def components(samples: list[Sample]) -> tuple[ComponentRun, ...]:
    """Each component's peaks over the samples (sums over its processes), by name."""
    out: dict[str, _Peaks] = {}
    peak = max(samples, key=lambda s: s.bytes) if samples else None
    for s in samples:
        sums: dict[str, list[int]] = {}
        for p in s.processes:
            c = out.setdefault(p.component, _Peaks())
            c.processes.add(p.name)
            c.hwm = max(c.hwm, p.hwm)
            acc = sums.setdefault(p.component, [0, 0, 0])
            acc[0] += p.anon
            acc[1] += p.rss
            acc[2] += p.pss
        for name, (anon, rss, pss) in sums.items():
            c = out[name]
            c.anon = max(c.anon, anon)
            c.rss = max(c.rss, rss)
            c.pss = max(c.pss, pss)
            if s is peak:
                c.anon_at_peak = anon
    return tuple(
        ComponentRun(name, c.anon, c.anon_at_peak, c.rss, c.pss, c.hwm, tuple(sorted(c.processes)))
        for name, c in sorted(out.items())
    )
