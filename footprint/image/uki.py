"""Unified kernel images: a PE (systemd-stub) carrying .linux, .initrd and .ucode sections.

lief is imported here only, and only for an input that starts with "MZ"; the sections' file
ranges are then read by the ordinary reader, never copied into memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from footprint.errors import BadImage

PE_MAGIC = b"MZ"


@dataclass(frozen=True)
class UkiSections:
    """Where the parts of a UKI lie in its file, and how big each is."""

    initrd_ranges: tuple[tuple[int, int], ...]  # .ucode first, as systemd-stub passes them
    section_ranges: dict[str, tuple[int, int]]  # every section name -> (file offset, size)

    @property
    def sections(self) -> dict[str, int]:
        """Every section name -> its size."""
        return {name: size for name, (_, size) in self.section_ranges.items()}

    @property
    def linux_bytes(self) -> int:
        return self.section_ranges.get(".linux", (0, 0))[1]


def locate(path: str, need_initrd: bool = True) -> UkiSections:
    import lief

    lief.logging.disable()
    pe = lief.PE.parse(path)
    if pe is None:
        raise BadImage(f"{path} starts with 'MZ' but lief cannot read it as a PE file")
    ranges: dict[str, tuple[int, int]] = {}
    for section in pe.sections:
        name = str(section.name).rstrip("\0")
        raw = section.sizeof_raw_data
        size = min(section.virtual_size, raw) if section.virtual_size else raw
        ranges[name] = (section.pointerto_raw_data, size)
    if need_initrd and ".initrd" not in ranges and ".ucode" not in ranges:
        raise BadImage(
            f"{path} is a PE file without an .initrd section: not a unified kernel "
            "image with an initramfs"
        )
    parts = tuple(ranges[n] for n in (".ucode", ".initrd") if n in ranges and ranges[n][1])
    return UkiSections(parts, ranges)


def is_kernel_pe(head: bytes) -> bool:
    """Whether a PE file that starts with `head` (0x206 bytes) is an EFI-stub kernel."""
    return head[0x202:0x206] == b"HdrS" or head[0x38:0x3C] == b"ARM\x64" or head[4:8] == b"zimg"


def linux_section(f: BinaryIO, path: str) -> tuple[int, int] | None:
    """Where a UKI's kernel (.linux) lies in the kernel file `f`; None when the file is the
    kernel itself: not a PE, or an EFI-stub kernel, a PE that is a kernel of its own (the x86
    boot header "HdrS" at 0x202, the arm64 Image magic "ARM\\x64" at 0x38, or EFI zboot's
    "zimg" at 4, as Debian's arm64 vmlinuz is)."""
    f.seek(0)
    head = f.read(0x206)
    if head[:2] != PE_MAGIC or is_kernel_pe(head):
        return None
    linux = locate(path, need_initrd=False).section_ranges.get(".linux")
    if not linux:
        raise BadImage(f"{path} is a PE file without a .linux section")
    return linux
