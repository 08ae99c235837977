"""Unified kernel images: a PE (systemd-stub) carrying .linux, .initrd and .ucode sections.

lief is imported here only, and only for an input that starts with "MZ"; the sections' file
ranges are then read by the ordinary reader, never copied into memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from footprint.errors import BadImage

PE_MAGIC = b"MZ"


@dataclass(frozen=True)
class UkiSections:
    """Where the parts of a UKI lie in its file, and how big each is."""

    linux_bytes: int
    initrd_ranges: tuple[tuple[int, int], ...]  # .ucode first, as systemd-stub passes them
    sections: dict[str, int]  # every section name -> its size
    section_ranges: dict[str, tuple[int, int]]  # every section name -> (file offset, size)


def locate(path: str, need_initrd: bool = True) -> UkiSections:
    import lief

    lief.logging.disable()
    pe = lief.PE.parse(path)
    if pe is None:
        raise BadImage(f"{path} starts with 'MZ' but lief cannot read it as a PE file")
    sizes: dict[str, int] = {}
    ranges: dict[str, tuple[int, int]] = {}
    for section in pe.sections:
        name = str(section.name).rstrip("\0")
        raw = section.sizeof_raw_data
        size = min(section.virtual_size, raw) if section.virtual_size else raw
        sizes[name] = size
        ranges[name] = (section.pointerto_raw_data, size)
    if need_initrd and ".initrd" not in ranges and ".ucode" not in ranges:
        raise BadImage(
            f"{path} is a PE file without an .initrd section: not a unified kernel "
            "image with an initramfs"
        )
    parts = tuple(ranges[n] for n in (".ucode", ".initrd") if n in ranges and ranges[n][1])
    return UkiSections(sizes.get(".linux", 0), parts, sizes, ranges)
