"""Nothing of a run outlives footprint, even after SIGKILL: its children die with it, and the
next run removes the cgroups and temporary directories a killed run left.

A run holds an flock on every directory it makes for as long as it lives; the kernel drops
the lock when the run dies, however it dies. An entry is stale (and removed) when its name is
footprint's, it is ours, nobody holds its lock, and the process its name records is gone, or
started after the entry was last changed (its pid was reused: it cannot have made it).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
# v2 alone or hybrid, v1's memory and pids hierarchies: where open_cgroup() makes its own.
CGROUP_HIERARCHIES = (".", "unified", "memory", "pids")
TEMP_KINDS = ("measure", "boot", "kdump", "kvm", "ablate", "kernel")
_TEMP_NAME = re.compile(rf"footprint-(?:{'|'.join(TEMP_KINDS)})-([1-9][0-9]*)-[a-z0-9_]{{8}}")
_CGROUP_NAME = re.compile(r"footprint-([1-9][0-9]*)-[0-9a-f]{6}")
# /proc gives a start time in whole seconds of the boot time: a process that started this much
# later than an entry's mtime cannot be the one that made it.
REUSED_AFTER_S = 2.0
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, not in the child
# The wrapper tied() runs: standard library only (-I -S: nothing from the working directory).
_WRAPPER = """import ctypes, os, sys
if ctypes.CDLL(None).prctl(1, ctypes.c_ulong(9), 0, 0, 0):  # PR_SET_PDEATHSIG, SIGKILL
    sys.exit("footprint: prctl(PR_SET_PDEATHSIG) failed")
if os.getppid() != int(sys.argv[1]):  # footprint died before that took
    os._exit(137)
os.execv(sys.argv[2], sys.argv[2:])
"""


# -- children die with footprint ----------------------------------------------------------
def _parent() -> int:
    """The parent's pid, also from PID 1 of a new pid namespace (getppid() says 0 there) as
    long as /proc is still the host's."""
    ppid = os.getppid()
    if ppid:
        return ppid
    with open("/proc/self/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def die_with(parent: int) -> None:
    """Have the kernel SIGKILL this process when `parent` dies; exit now if it already has.

    The kernel sends the signal when the *thread* that forked this process ends, and clears
    the setting on fork and when the effective uid or gid changes: call it in the child,
    after any such change.
    """
    if _libc.prctl(ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGKILL), 0, 0, 0):
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if _parent() != parent:  # it died before the setting took: nobody would send the signal
        os._exit(128 + signal.SIGKILL)  # (PID 1 of a pid namespace cannot SIGKILL itself)


def tied(cmd: list[str]) -> list[str]:
    """`cmd` run through a small wrapper that ties it to this process's life, then execs it
    (a preexec_fn would run Python between fork and exec, unsafe with threads running). The
    thread that starts it must outlive it, as die_with() says."""
    return [sys.executable, "-I", "-S", "-c", _WRAPPER, str(os.getpid()), *cmd]


# -- what a run makes, locked for its life --------------------------------------------------
def hold(path: Path | str) -> int:
    """Lock a directory this run made; the descriptor keeps the lock until it is closed or
    the run dies. Blocks only while a reaper looks at it (it then sees the run alive)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


@contextlib.contextmanager
def temp_dir(kind: str, root: str | None = None) -> Iterator[str]:
    """A fresh temporary directory footprint-<kind>-<pid>-XXXXXXXX, locked while it lives and
    removed on exit (the lock is kept until it is gone)."""
    assert kind in TEMP_KINDS, kind
    made = tempfile.TemporaryDirectory(prefix=f"footprint-{kind}-{os.getpid()}-", dir=root)
    fd = hold(made.name)
    try:
        yield made.name
    finally:
        try:
            made.cleanup()
        finally:
            os.close(fd)


# -- the next run removes what a killed one left -------------------------------------------
@dataclass(frozen=True)
class Leftover:
    kind: str  # "cgroup" or "temporary directory"
    path: Path
    pid: int  # the run that made it


@dataclass(frozen=True)
class Reaped:
    removed: tuple[Leftover, ...] = ()
    failed: tuple[tuple[Leftover, str], ...] = ()  # and why


def _not_the_maker(pid: int, changed: float) -> bool:
    """Whether process `pid` is gone, or is not the one that changed an entry at `changed`."""
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped by its parent
            return True
        started: float = p.create_time()
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False
    return started > changed + REUSED_AFTER_S


def _mount_points() -> list[str]:
    def unescape(m: re.Match[str]) -> str:  # mountinfo escapes space, tab, newline, backslash
        return chr(int(m.group(1), 8))

    with open("/proc/self/mountinfo") as f:
        return [re.sub(r"\\([0-7]{3})", unescape, line.split()[4]) for line in f]


def _candidates(directory: Path, pattern: re.Pattern[str]) -> Iterator[tuple[Path, int]]:
    """Directories (not links) directly in `directory`, named by `pattern`, owned by us."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in sorted(names):
        m = pattern.fullmatch(name)
        if not m:
            continue
        path = directory / name
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
            yield path, int(m.group(1))


def _lock_if_stale(path: Path, pid: int, locks: contextlib.ExitStack) -> bool:
    """Whether no run holds `path` and the run `pid` is gone; if so, lock it until `locks`
    closes, so that no other reaper removes it at the same time."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    locks.callback(os.close, fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # its run is alive (or a child of it that still runs)
        return False
    return pid != os.getpid() and _not_the_maker(pid, os.fstat(fd).st_mtime)


def _remove_temp(path: Path) -> None:
    inside = str(path) + "/"
    if any(m == str(path) or m.startswith(inside) for m in _mount_points()):
        raise OSError(f"something is mounted in {path}")
    shutil.rmtree(path)


def _remove_cgroup(paths: list[Path]) -> None:
    """Kill what still runs in a stale cgroup, then remove its directory in each hierarchy."""
    from footprint.measure.cgroup import CgroupV1, CgroupV2

    for path in paths:
        v1 = path.parent.name in ("memory", "pids")
        (CgroupV1(path, None) if v1 else CgroupV2(path)).destroy()
        if path.exists():  # destroy() gives up on a cgroup that stays busy
            raise OSError(f"{path} is still busy")


def reap_stale(temp_root: Path | str | None = None, cgroup_root: Path = CGROUP_ROOT) -> Reaped:
    """Remove the stale cgroups under `cgroup_root` and temporary directories in
    `temp_root` (default: tempfile's) that killed runs left; say what was removed."""
    removed: list[Leftover] = []
    failed: list[tuple[Leftover, str]] = []
    by_name: dict[str, list[Path]] = {}
    pids: dict[str, int] = {}
    for hierarchy in CGROUP_HIERARCHIES:
        directory = cgroup_root / hierarchy
        if (directory / "cgroup.procs").exists():  # a cgroup hierarchy, not the tmpfs over them
            for path, pid in _candidates(directory, _CGROUP_NAME):
                by_name.setdefault(path.name, []).append(path)
                pids[path.name] = pid
    root = Path(temp_root if temp_root is not None else tempfile.gettempdir())
    found = [("cgroup", paths, pids[name]) for name, paths in by_name.items()]
    found += [("temporary directory", [path], pid) for path, pid in _candidates(root, _TEMP_NAME)]
    for kind, paths, pid in found:
        with contextlib.ExitStack() as locks:
            if not all(_lock_if_stale(p, pid, locks) for p in paths):
                continue
            leftover = Leftover(kind, paths[0], pid)
            try:
                _remove_cgroup(paths) if kind == "cgroup" else _remove_temp(paths[0])
                removed.append(leftover)
            except OSError as e:
                failed.append((leftover, e.strerror or str(e)))
    return Reaped(tuple(removed), tuple(failed))


def describe(reaped: Reaped) -> str:
    """One line for the user: what was removed, and what could not be; empty if nothing."""
    kinds = []
    for kind, plural in (("cgroup", "cgroups"), ("temporary directory", "temporary directories")):
        n = sum(r.kind == kind for r in reaped.removed)
        if n:
            kinds.append(f"{n} {kind if n == 1 else plural}")
    pids = sorted({r.pid for r in reaped.removed})
    parts = []
    if kinds:
        if len(pids) == 1:
            runs = f"a killed run (pid {pids[0]})"
        else:
            runs = f"killed runs (pids {', '.join(map(str, pids))})"
        parts.append(f"removed {' and '.join(kinds)} left by {runs}")
    parts += [f"could not remove {r.path} ({why})" for r, why in reaped.failed]
    return "; ".join(parts)
