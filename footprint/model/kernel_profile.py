"""A kernel profile: one kernel's runtime terms, measured once by `calibrate-kernel` from
footprint's own minimal initrds, as the typed `kernel-profile` document (to_dict / load).

Each term is a base (the smallest memory a minimal initrd boots in) or a slope (how that
minimum moves per byte of rootfs, of held initrd, of loaded module, per CPU, per byte of
first-kernel RAM, per rootfs entry), and names the measured minima — each with its trials —
it came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from footprint.errors import BadDocument
from footprint.schemas import decode_json, document, plain, read_json, typed
from footprint.schemas.fields import Bytes, Count

KIND: Final = "kernel-profile"

# The terms every kernel profile has, by name (RuntimeTerm.name).
DIRECT_BASE: Final = "direct_base"  # bytes: -m of the minimal initrd
KDUMP_BASE: Final = "kdump_base"  # bytes: crashkernel= of the minimal initrd
ROOTFS: Final = "rootfs"  # bytes per byte of page-rounded rootfs
INITRD_HELD: Final = "initrd_held"  # bytes per byte of initrd held (compressed) during unpack
MODULES: Final = "modules"  # bytes per byte of module file loaded (insmod)
CPU: Final = "cpu"  # bytes per CPU booted
FIRST_KERNEL_RAM: Final = "first_kernel_ram"  # bytes per byte of first-kernel RAM (elfcorehdr)
# Optional (kernel profiles made before it lack it): bytes of RAM a kexec -p capture kernel
# does not get of its reservation, against a direct boot of the same -m (MemTotal, both).
KDUMP_RAM_LOSS: Final = "kdump_ram_loss"
# Optional too: bytes per inode (with its dentry) the unpack creates in the rootfs.
ENTRIES: Final = "rootfs_entries"


@dataclass(frozen=True)
class KernelTrial:
    memory_bytes: Bytes  # -m, or crashkernel=
    outcome: str
    success: bool
    duration_s: float


@dataclass(frozen=True)
class Minimum:
    """One bisection: the smallest memory a minimal initrd boots in, on one machine shape."""

    name: str
    backend: Literal["qemu", "kdump"]
    minimum_bytes: Bytes
    resolution_bytes: Bytes
    initrd_bytes: Bytes  # the initrd file (what the kernel holds until it is unpacked)
    rootfs_bytes: Bytes  # its page-rounded unpacked files
    modules_bytes: Bytes  # module files loaded with insmod
    modules: tuple[str, ...]  # their names
    cpus: Count
    first_kernel_bytes: Bytes  # kdump: the crashing kernel's RAM; 0 for direct boot
    trials: tuple[KernelTrial, ...]
    entries: Count = 0  # inodes its unpack creates (0 in kernel profiles made before it)


@dataclass(frozen=True)
class InitSnapshot:
    """The minimal initrd's memory when its init starts, at a fixed RAM and CPU count: what
    openSUSE's calibrate (run-qemu.py, trackrss as /init) reads to make calibrate.conf."""

    memory_bytes: Bytes  # -m
    cpus: Count
    meminfo: dict[str, int]  # bytes: the probe's first sample, as init starts
    kernel_freed_bytes: Bytes  # "Freeing … memory" once the unpack began, less the initrd's
    initrd_freed_bytes: Bytes  # "Freeing initrd memory"
    user_bytes: Bytes  # VmHWM of the processes in that sample, summed
    sizeof_page: Count  # struct page, bytes (the architecture's)
    duration_s: float


@dataclass(frozen=True)
class RamSeen:
    """MemTotal of one boot of the minimal initrd: to compare backends at the same memory."""

    name: str
    backend: Literal["qemu", "kdump"]
    memory_bytes: Bytes  # -m, or crashkernel=
    memtotal_bytes: Bytes


@dataclass(frozen=True)
class RuntimeTerm:
    name: str
    value: float  # bytes for a base; bytes per unit for a slope
    unit: str  # "bytes", "bytes per byte of page-rounded rootfs", "bytes per CPU", …
    uncertainty: float  # the same unit: two resolutions over the delta (the minima's rounding)
    measured_from: tuple[str, ...]  # the Minimum names it was derived from
    how: str


@dataclass(frozen=True)
class KernelRef:
    path: str
    release: str  # `uname -r`: the version string's first word
    version: str  # the whole version string of the boot header
    build_id: str  # GNU build-id of the vmlinux inside the image, hex; "" when unknown
    build_id_note: str  # where it was read, or why not
    file_bytes: Bytes


@dataclass(frozen=True)
class KernelProfile:
    schema_version: Literal[1]
    kind: Literal["kernel-profile"]
    tool: str
    kernel: KernelRef
    accel: str  # kvm or tcg
    resolution_bytes: Bytes
    terms: tuple[RuntimeTerm, ...]
    minima: tuple[Minimum, ...]
    boots: Count
    duration_s: float
    created: str  # UTC, ISO 8601
    snapshot: InitSnapshot | None = None  # None in kernel profiles made before it
    ram_seen: tuple[RamSeen, ...] = ()

    def has(self, name: str) -> bool:
        return any(t.name == name for t in self.terms)

    def term(self, name: str) -> RuntimeTerm:
        for t in self.terms:
            if t.name == name:
                return t
        raise BadDocument(f"the kernel profile of {self.kernel.release} has no {name!r} term")

    def minimum(self, name: str) -> Minimum:
        for m in self.minima:
            if m.name == name:
                return m
        raise BadDocument(f"the kernel profile of {self.kernel.release} has no {name!r} minimum")

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = plain(self)
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"


REQUIRED_TERMS = (DIRECT_BASE, KDUMP_BASE, ROOTFS, INITRD_HELD, MODULES, CPU, FIRST_KERNEL_RAM)


def load(path: str) -> KernelProfile:
    """A saved kernel profile; BadDocument (one line) if it is not a valid one."""
    return _checked(read_json(path), path)


def parse(data: bytes, where: str) -> KernelProfile:
    return _checked(decode_json(data, where), where)


def _checked(doc: Any, where: str) -> KernelProfile:
    make = "footprint calibrate-kernel VMLINUZ -o kernel.json"
    doc = document(doc, where, KIND, "kernel profile", make)
    kp = typed(KernelProfile, doc, f"{where} is not a valid kernel profile")
    names = {t.name for t in kp.terms}
    missing = [n for n in REQUIRED_TERMS if n not in names]
    if missing:
        raise BadDocument(f"{where} is not a valid kernel profile: no {', '.join(missing)} term")
    return kp


def json_schema(kind: str = KIND) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the kernel profile, from its types."""
    made: dict[str, Any] = msgspec.json.schema(KernelProfile)
    defs = made["$defs"]
    root = defs.pop("KernelProfile")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **root,
        "title": f"footprint {kind}",
        "$defs": defs,
    }
