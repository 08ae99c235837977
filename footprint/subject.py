"""What a result is of: the image (path, bytes, sha256), the kernel (path, release, memory) and
the architecture, so that documents made on many machines can be told apart and merged.

One record for every kind of document; `of_document` reads it back from any of them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from footprint.units import MIB

# lief's ELF machine names (ElfFacts.machine) as `uname -m` says them
ELF_ARCH = {
    "X86_64": "x86_64",
    "AARCH64": "aarch64",
    "PPC64": "ppc64le",
    "S390": "s390x",
    "RISCV": "riscv64",
    "I386": "i686",
    "ARM": "armv7l",
}


@dataclass(frozen=True)
class Subject:
    """What a calibration, boot or profile is of."""

    image: str
    image_bytes: int
    image_sha256: str
    kernel: str  # "" when none was given (a profile without --kernel)
    kernel_release: str  # as the kernel image says it ("" when it does not)
    kernel_memory_bytes: int  # the kernel's PT_LOAD memory
    arch: str = "x86_64"  # booted, or (a profile) the image's programs'; "" when unknown

    @classmethod
    def of(
        cls, image: str, kernel: str, kernel_release: str, kernel_bytes: int, arch: str
    ) -> Subject:
        return cls(
            image, os.path.getsize(image), sha256_of(image), kernel, kernel_release,
            kernel_bytes, arch,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """As calibration documents carry it: `arch`, `image` and `kernel` keys."""
        return {
            "arch": self.arch,
            "image": {"path": self.image, "bytes": self.image_bytes, "sha256": self.image_sha256},
            "kernel": {
                "path": self.kernel,
                "release": self.kernel_release,
                "memory_mib": round(self.kernel_memory_bytes / MIB, 1),
            },
        }


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def elf_arch(machines: list[str]) -> str:
    """The architecture of an image's programs: their most common ELF machine ("" if none)."""
    known = [ELF_ARCH.get(m, m.lower()) for m in machines if m]
    return max(sorted(set(known)), key=known.count) if known else ""


def of_document(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The subject as `Subject.to_dict` gives it, from a calibration (its top-level `arch`,
    `image` and `kernel`), a boot or a profile (their `subject`); None if it has none."""
    if doc.get("kind") == "calibration":
        if not isinstance(doc.get("image"), dict):
            return None
        return {"arch": doc.get("arch", ""), "image": doc["image"], "kernel": doc["kernel"]}
    s = doc.get("subject")
    if not isinstance(s, dict):
        return None
    return {
        "arch": s.get("arch", ""),
        "image": {"path": s["image"], "bytes": s["image_bytes"], "sha256": s["image_sha256"]},
        "kernel": {
            "path": s["kernel"],
            "release": s["kernel_release"],
            "memory_mib": round(s["kernel_memory_bytes"] / MIB, 1),
        },
    }
