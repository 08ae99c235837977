"""Read a whole image into an Inventory: its segments and the tree the kernel would unpack.

scan() is the one entry point; `visit` lets extraction and ELF analysis see each entry's
data as it streams past, so the image is decompressed once.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, cast

from footprint.errors import BadImage, UsageError
from footprint.image import inner as inner_images
from footprint.image.cpio import FILE, CpioEntry, EntryData
from footprint.image.rootfs import Layer, Node, Rootfs
from footprint.image.segments import ImageReader, Segment
from footprint.image.stream import FileSource, Source
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

    `visit` sees each entry, its data and the node where it landed in the tree; a file
    holding a filesystem image (squashfs, erofs) is followed by its inner entries (node.layer
    is the image's path; the entry's name is the node's key; offset -1).
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
        fmt = None
        if node is not None and data is not None and node.kind == FILE and data.size:
            fmt = inner_images.detect(data.peek(inner_images.HEAD_BYTES))
        if fmt is None:
            if visit is not None:
                visit(entry, data, node)
            continue
        assert node is not None and data is not None
        import tempfile

        with tempfile.NamedTemporaryFile(prefix="footprint-inner-") as spool:
            # A filesystem is read at random: its bytes are kept in a temporary file (not in
            # memory) while its entries are read, then dropped.
            for chunk in data.chunks():
                spool.write(chunk)
            spool.flush()
            spooled = cast(BinaryIO, spool.file)
            if visit is not None:
                visit(entry, EntryData(FileSource(spooled, 0, data.size), data.size, False), node)
            tree += _read_layer(rootfs, node, fmt, spooled, data.size, entry, visit, tree)
    image_bytes = sum(n for _, n in uki.initrd_ranges) if uki else file_bytes
    return Inventory(
        path, image_bytes, file_bytes, reader.segments, reader.padding_bytes, rootfs, entries, uki
    )


# What the files of an inner image may declare, all together: past it the image is a bomb
# (sparse blocks, holes cost nothing to store). dracut's images unpack ~3-4x.
INNER_RATIO = 64
INNER_FLOOR = 256 << 20


class _ChunkSource(Source):
    """A file of an inner image, as the chunks its reader yields."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks

    def _fill(self) -> bytes:
        return next(self._chunks, b"")


def _read_layer(
    rootfs: Rootfs,
    container: Node,
    fmt: inner_images.InnerFormat,
    f: BinaryIO,
    size: int,
    outer: CpioEntry,
    visit: Visitor | None,
    tree: int,
) -> int:
    """Add the files of the filesystem image in `f` to the tree as a layer; what they cost the
    tree's bookkeeping. A malformed image is the layer's warning, never the image's error."""
    layer = Layer(container.path, fmt.name, "unknown", size, Rootfs())
    rootfs.layers[container.path] = layer
    cost = 0
    image: inner_images.InnerImage | None = None
    try:
        image = fmt.open(f, size)
        layer.compression = image.compression
        given: set[int] = set()  # inodes whose data a visitor saw (a hardlink's first name)
        declared, limit = 0, max(INNER_FLOOR, size * INNER_RATIO)
        for ie in image.entries():
            layer.compression = image.compression
            first = ie.kind == FILE and ie.ino not in given
            if first:
                given.add(ie.ino)
                declared += ie.size
                if declared > limit:
                    raise BadImage(
                        f"its files declare more than {limit >> 20} MiB, {INNER_RATIO} times "
                        "the image — a decompression bomb?"
                    )
            cost += ENTRY_COST + len(ie.path) + (ie.size if ie.target is not None else 0)
            if tree + cost > MAX_TREE_BYTES:
                raise BadImage(f"its tree passes {MAX_TREE_BYTES >> 20} MiB of names and entries")
            entry = CpioEntry(
                ie.path, ie.mode, ie.uid, ie.gid, ie.nlink, ie.mtime, ie.size, ie.ino, 0, 0,
                ie.rdev[0], ie.rdev[1], -1, outer.segment, outer.archive, ie.target,
            )  # fmt: skip
            node = rootfs.add_inner(layer, entry)
            if visit is None:
                continue
            entry.name = layer.key(ie.path)
            data = None
            if first and node is not None:
                data = EntryData(_ChunkSource(image.chunks(ie)), ie.size, False)
            visit(entry, data, node)  # data it did not read is never decompressed
    except BadImage as e:
        layer.warning = f"{fmt.name} image /{container.path} read only in part: {e}"
    finally:
        if image is not None:
            image.close()
    return cost
