"""What every measurement backend is and returns: the Backend protocol, one Outcome vocabulary
and the RunResult record (with each backend's own detail as a typed sub-record).

A RunResult reads back from its to_dict() as an equal object, so a run made on another
machine (a CI job, a colleague's laptop) is the same data here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from footprint.measure.cgroup import MemoryStats
from footprint.schemas import plain, typed


class Outcome(str, enum.Enum):
    """How a run ended; only SUCCESS and DUMP_SAVED count as the image fitting in the memory
    given (DUMP_SAVED where a dump on the root disk is what success means)."""

    SUCCESS = "success"  # the marker appeared, the entry exited 0, or init settled
    OOM = "oom"  # the OOM killer ran after the unpack
    UNPACK_FAILED = "unpack-failed"  # the rootfs did not fit (or the unpack failed)
    PANIC = "panic"  # the kernel panicked (QEMU), or QEMU stopped without an outcome
    TIMEOUT = "timeout"  # no outcome in the time given
    FAILED = "failed"  # the entry exited non-zero, or the sandbox could not start it
    LOAD_FAILED = "load-failed"  # kdump: kexec -p could not load the capture kernel
    DUMP_SAVED = "dump-saved"  # kdump with a root disk: the capture's tooling saved a dump
    DUMP_FAILED = "dump-failed"  # it ran and failed, or wrote no readable dump

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Killed:
    """A process the OOM killer killed, as the kernel log names it."""

    pid: int
    name: str


# -- the cgroup runner's detail -------------------------------------------------------------
@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Sample:
    t: float
    bytes: int  # the cgroup's charge
    stats: MemoryStats
    processes: tuple[ProcessSample, ...]


@dataclass(frozen=True)
class ComponentRun:
    name: str
    anon_peak_bytes: int = 0  # its own peak of summed RssAnon
    anon_at_peak_bytes: int = 0  # at the moment of the cgroup's peak
    rss_peak_bytes: int = 0
    pss_peak_bytes: int = 0
    hwm_bytes: int = 0  # largest VmHWM of one of its processes
    processes: tuple[str, ...] = ()  # the process names seen, sorted


@dataclass(frozen=True)
class CgroupRun:
    cgroup_version: int
    exit_status: int | None
    unpacked_bytes: int  # file bytes the unpack wrote into the tmpfs
    unpack_peak_bytes: int  # the cgroup's peak while unpacking (the unpacker's memory too)
    rootfs_charge_bytes: int  # what the cgroup was charged once the unpack was done
    peak_stats: MemoryStats | None  # memory.stat at the sampled peak
    oom_kills: int
    components: tuple[ComponentRun, ...]  # by name
    timeline: tuple[Sample, ...]


# -- QEMU's detail (direct boot and kdump) --------------------------------------------------
@dataclass(frozen=True)
class ProbeProcess:
    pid: int
    name: str
    hwm_bytes: int
    anon_bytes: int


@dataclass(frozen=True)
class ProbeSample:
    t: float
    meminfo: dict[str, int]  # bytes
    modules_bytes: int
    processes: tuple[ProbeProcess, ...]

    @property
    def used_bytes(self) -> int:
        """MemTotal - MemFree: the kernel, the rootfs and userspace."""
        return self.meminfo.get("MemTotal", 0) - self.meminfo.get("MemFree", 0)


@dataclass(frozen=True)
class QemuRun:
    kernel: str
    accel: str  # kvm or tcg
    samples: tuple[ProbeSample, ...]


class DumpFormat(str, enum.Enum):
    """The formats makedumpfile (and the kernel's /proc/vmcore) write, by their first bytes."""

    KDUMP_COMPRESSED = "kdump-compressed"  # makedumpfile -c/-l/-p/-z: "KDUMP   "
    FLATTENED = "flattened"  # makedumpfile -F: "makedumpfile" (for a pipe or ssh)
    ELF = "elf"  # an ELF core (makedumpfile -E, or a copy of /proc/vmcore)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class DumpFile:
    """The dump a capture saved on the root disk, as read back from the trial's overlay."""

    path: str  # on the root disk, e.g. /var/crash/202501011200/dump.202501011200
    bytes: int
    format: DumpFormat
    dmesg_path: str  # the dmesg saved beside it ("" when there is none)


@dataclass(frozen=True)
class RunResult:
    """One run of an image in `memory_bytes` (a cgroup limit, QEMU's -m, or crashkernel=)."""

    backend: str  # the Backend's name
    image: str
    memory_bytes: int
    outcome: Outcome
    detail: str  # what ended it, in words
    duration_s: float
    peak_bytes: int  # the cgroup's peak charge, or the probe's largest MemTotal - MemFree
    killed: tuple[Killed, ...] = ()
    console: str = ""
    cgroup: CgroupRun | None = None
    qemu: QemuRun | None = None
    dump: DumpFile | None = None  # kdump with a root disk: the dump saved (dump-saved)

    @property
    def succeeded(self) -> bool:
        return self.outcome in (Outcome.SUCCESS, Outcome.DUMP_SAVED)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; from_dict() reads them back into an equal RunResult."""
        out: dict[str, Any] = plain(self)
        return out

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> RunResult:
        return typed(cls, doc, "a run result")


class Backend(Protocol):
    """A way to run an image in a given amount of memory (configured when it is made)."""

    @property
    def name(self) -> str: ...

    def run(self, image: str, memory: int) -> RunResult: ...
