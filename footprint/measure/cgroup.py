"""A fresh memory cgroup for one measured run, on cgroup v2 or v1, removed on every path.

open_cgroup() picks v2 where the memory controller is on the unified hierarchy (pure v2 or
hybrid with memory there), else v1's memory hierarchy (this project's CI machine), else says
what would work. The cgroup is a context manager: on exit every process in it is killed and
reaped and the directory removed, also after an exception or a signal (KeyboardInterrupt).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from footprint import lifetime
from footprint.errors import EnvironmentUnavailable

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class MemoryStats:
    """What the cgroup was charged, from memory.stat (bytes)."""

    anon_bytes: int  # process heap, stacks, private dirty pages
    shmem_bytes: int  # tmpfs: the unpacked rootfs, /run, the journal
    file_bytes: int  # page cache (includes shmem on v2's "file")
    kernel_bytes: int  # slab, page tables, kernel stacks (v2; 0 where v1 does not say)


class MemoryCgroup(ABC):
    """One cgroup directory (or one per v1 hierarchy) that this process created."""

    version: int

    def __init__(self, path: Path) -> None:
        self.path = path
        self._locks: list[int] = []

    def __enter__(self) -> MemoryCgroup:
        # Locked while this run lives: a run killed before destroy() leaves it for the next
        # run to remove (footprint.lifetime.reap_stale).
        self._locks = [lifetime.hold(d) for d in self._dirs()]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    # -- reading and writing its files ----------------------------------------------------
    @staticmethod
    def _read(path: Path) -> str:
        return path.read_text()

    @staticmethod
    def _write(path: Path, value: str) -> None:
        with open(path, "w") as f:
            f.write(value)

    @staticmethod
    def _keyed(text: str) -> dict[str, int]:
        out = {}
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                out[key] = int(value)
        return out

    # -- the interface ----------------------------------------------------------------------
    @abstractmethod
    def set_limit(self, limit: int) -> None: ...

    @abstractmethod
    def set_pids_limit(self, limit: int) -> None: ...

    @abstractmethod
    def peak(self) -> int: ...

    @abstractmethod
    def current(self) -> int: ...

    @abstractmethod
    def stats(self) -> MemoryStats: ...

    @abstractmethod
    def oom_kills(self) -> int: ...

    @abstractmethod
    def procs_files(self) -> list[Path]: ...

    @abstractmethod
    def _dirs(self) -> list[Path]: ...

    def reset_peak(self) -> bool:
        """Restart the peak from the current charge; False where the kernel cannot."""
        return False

    def add(self, pid: int) -> None:
        for procs in self.procs_files():
            self._write(procs, str(pid))

    def pids(self) -> list[int]:
        found: set[int] = set()
        for procs in self.procs_files():
            with contextlib.suppress(FileNotFoundError):
                found.update(int(p) for p in self._read(procs).split())
        return sorted(found)

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL everything in the cgroup until it is empty (new forks included)."""
        deadline = time.monotonic() + timeout
        while True:
            pids = [p for p in self.pids() if p != os.getpid()]
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)

    def destroy(self) -> None:
        """Kill what is left, then remove the directories (retrying while they drain)."""
        self.kill_all()
        fd = getattr(self, "_peak_fd", None)
        if fd is not None:
            fd.close()
        for d in self._dirs():
            for _ in range(200):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        raise
                    self.kill_all(0.1)
                    time.sleep(0.01)
        for lock in self._locks:
            os.close(lock)
        self._locks = []


class CgroupV2(MemoryCgroup):
    version = 2

    def set_limit(self, limit: int) -> None:
        self._write(self.path / "memory.max", str(limit))
        swap = self.path / "memory.swap.max"  # no swap: the capture kernel has none
        if swap.exists():
            self._write(swap, "0")

    def set_pids_limit(self, limit: int) -> None:
        if (self.path / "pids.max").exists():
            self._write(self.path / "pids.max", str(limit))

    def current(self) -> int:
        return int(self._read(self.path / "memory.current"))

    def reset_peak(self) -> bool:
        # memory.peak takes a write to reset since Linux 6.12 (per open file; the kernel
        # keeps the watermark for that file description, so it must stay open).
        try:
            fd = open(self.path / "memory.peak", "r+")  # noqa: SIM115 — kept open, see above
            fd.write("reset\n")
            fd.flush()
        except OSError:
            return False
        self._peak_fd = fd
        return True

    _peak_fd: IO[str] | None = None

    def peak(self) -> int:
        if self._peak_fd is not None:
            self._peak_fd.seek(0)
            return int(self._peak_fd.read())
        peak = self.path / "memory.peak"  # Linux >= 5.19
        return int(self._read(peak)) if peak.exists() else self.current()

    def stats(self) -> MemoryStats:
        s = self._keyed(self._read(self.path / "memory.stat"))
        kernel = s.get(
            "kernel", s.get("slab", 0) + s.get("kernel_stack", 0) + s.get("pagetables", 0)
        )
        return MemoryStats(s.get("anon", 0), s.get("shmem", 0), s.get("file", 0), kernel)

    def oom_kills(self) -> int:
        return self._keyed(self._read(self.path / "memory.events")).get("oom_kill", 0)

    def procs_files(self) -> list[Path]:
        return [self.path / "cgroup.procs"]

    def _dirs(self) -> list[Path]:
        return [self.path]


class CgroupV1(MemoryCgroup):
    """v1: a directory in the memory hierarchy, and one in pids where it is mounted."""

    version = 1

    def __init__(self, path: Path, pids_path: Path | None) -> None:
        super().__init__(path)
        self.pids_path = pids_path

    def set_limit(self, limit: int) -> None:
        value = str(limit)
        self._write(self.path / "memory.limit_in_bytes", value)
        memsw = self.path / "memory.memsw.limit_in_bytes"  # no swap either, where accounted
        if memsw.exists():
            with contextlib.suppress(OSError):
                self._write(memsw, value)

    def set_pids_limit(self, limit: int) -> None:
        if self.pids_path is not None:
            self._write(self.pids_path / "pids.max", str(limit))

    def peak(self) -> int:
        return int(self._read(self.path / "memory.max_usage_in_bytes"))

    def reset_peak(self) -> bool:
        self._write(self.path / "memory.max_usage_in_bytes", "0")
        return True

    def current(self) -> int:
        return int(self._read(self.path / "memory.usage_in_bytes"))

    def stats(self) -> MemoryStats:
        s = self._keyed(self._read(self.path / "memory.stat"))
        kmem = self.path / "memory.kmem.usage_in_bytes"
        kernel = int(self._read(kmem)) if kmem.exists() else 0
        return MemoryStats(
            s.get("total_rss", s.get("rss", 0)),
            s.get("total_shmem", s.get("shmem", 0)),
            s.get("total_cache", s.get("cache", 0)),
            kernel,
        )

    def oom_kills(self) -> int:
        return self._keyed(self._read(self.path / "memory.oom_control")).get("oom_kill", 0)

    def procs_files(self) -> list[Path]:
        files = [self.path / "cgroup.procs"]
        if self.pids_path is not None:
            files.append(self.pids_path / "cgroup.procs")
        return files

    def _dirs(self) -> list[Path]:
        return [self.path] + ([self.pids_path] if self.pids_path is not None else [])


def _v2_root(root: Path) -> Path | None:
    """The unified hierarchy's mount point if the memory controller is on it."""
    for candidate in (root, root / "unified"):
        controllers = candidate / "cgroup.controllers"
        if controllers.exists() and "memory" in controllers.read_text().split():
            return candidate
    return None


def open_cgroup(root: Path = CGROUP_ROOT, prefix: str = "footprint") -> MemoryCgroup:
    """Create a fresh memory cgroup for one run; EnvironmentUnavailable says what would work."""
    name = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        v2 = _v2_root(root)
        if v2 is not None:
            subtree = v2 / "cgroup.subtree_control"
            if "memory" not in subtree.read_text().split():
                MemoryCgroup._write(subtree, "+memory")
            path = v2 / name
            path.mkdir()
            cg2 = CgroupV2(path)
            if "pids" in (v2 / "cgroup.controllers").read_text().split():
                with contextlib.suppress(OSError):
                    MemoryCgroup._write(subtree, "+pids")
            return cg2
        v1 = root / "memory"
        if (v1 / "memory.limit_in_bytes").exists():
            path = v1 / name
            path.mkdir()
            pids_root = root / "pids"
            pids = None
            if (pids_root / "pids.max").exists() or (pids_root / "cgroup.procs").exists():
                pids = pids_root / name
                try:
                    pids.mkdir()
                except OSError:
                    pids = None
            return CgroupV1(path, pids)
    except PermissionError:
        raise EnvironmentUnavailable(
            "cannot create a memory cgroup here (permission denied) — run as root, or in a "
            "delegated cgroup: systemd-run --user --scope -p Delegate=yes footprint …"
        ) from None
    raise EnvironmentUnavailable(
        f"no memory cgroup controller under {root} (neither cgroup v2 with memory nor v1's "
        "memory hierarchy) — enable the memory controller, or use `footprint boot` (QEMU)"
    )
