"""Read a whole image into an Inventory: its segments and the tree the kernel would unpack.

scan() is the one entry point; `visit` lets extraction and ELF analysis see each entry's
data as it streams past, so the image is decompressed once.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from footprint.errors import BadImage, UsageError
from footprint.image.cpio import CpioEntry, EntryData
from footprint.image.rootfs import Node, Rootfs
from footprint.image.segments import ImageReader, Segment
from footprint.image.uki import PE_MAGIC, UkiSections, locate

Visitor = Callable[[CpioEntry, EntryData | None, Node | None], None]


@dataclass
class Inventory:
    """What an image holds: its members and its unpacked tree (metadata only)."""

    path: str
    image_bytes: int  # the initrd bytes the kernel holds while unpacking (a UKI's .initrd+.ucode)
    file_bytes: int
    segments: list[Segment]
    padding_bytes: int
    rootfs: Rootfs
    entries: int
    uki: UkiSections | None = None


def open_image(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not an image file") from None
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied — run as a user who can read it") from None


def scan(
    path: str,
    visit: Visitor | None = None,
    rootfs: Rootfs | None = None,
    file: BinaryIO | None = None,
) -> Inventory:
    """Read the image at `path` (or from `file`, opened already, left open).

    `visit` sees each entry, its data and the node where it landed in the tree.
    """
    if file is not None:
        file.seek(0)
        return _scan(path, file, visit, rootfs)
    with open_image(path) as f:
        return _scan(path, f, visit, rootfs)


# A tree whose bookkeeping would take more memory than this is refused: real initramfs
# images have a few thousand entries, this allows half a million (the data is bounded by
# each codec's max_unpacked).
MAX_TREE_BYTES = 256 << 20  # ENTRY_COST per entry, plus its name and symlink target
ENTRY_COST = 512  # what one entry of the tree costs footprint in memory, about


def _scan(path: str, f: BinaryIO, visit: Visitor | None, rootfs: Rootfs | None) -> Inventory:
    st = os.fstat(f.fileno())
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{path} is not a regular file: save the image to a file first")
    file_bytes = st.st_size
    if file_bytes == 0:
        raise BadImage(f"{path} is empty")
    uki = locate(path) if f.read(2) == PE_MAGIC else None
    f.seek(0)
    reader = ImageReader(f, list(uki.initrd_ranges) if uki else None)
    rootfs = Rootfs() if rootfs is None else rootfs
    entries = tree = 0
    add = rootfs.add
    for entry, data in reader.entries():
        entries += 1
        tree += ENTRY_COST + len(entry.name) + (entry.size if entry.target is not None else 0)
        if tree > MAX_TREE_BYTES:
            raise BadImage(
                f"refused: its tree passes {MAX_TREE_BYTES >> 20} MiB of names and entries (at "
                f"entry {entries}), more than any initramfs — a decompression bomb?"
            )
        node = add(entry, (entry.segment, entry.archive))
        if visit is not None:
            visit(entry, data, node)
    image_bytes = sum(n for _, n in uki.initrd_ranges) if uki else file_bytes
    return Inventory(
        path, image_bytes, file_bytes, reader.segments, reader.padding_bytes, rootfs, entries, uki
    )
