"""Write a copy of an image without some of its files (component ablation).

The copy is one cpio member, compressed with the image's main codec where footprint can write
it (gzip, bzip2, lzma, xz with CRC32 as the kernel needs, zstd; lz4 and lzo fall back to
zstd), entries in their original order, streamed: the image is read once and never held.
Inode numbers are renumbered per source archive so hardlinks stay exactly as they were.
"""

from __future__ import annotations

import bz2
import lzma
import os
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO

from footprint.errors import UsageError
from footprint.image.cpio import NEWC, CpioEntry, EntryData, newc_entry, newc_trailer
from footprint.image.reader import Inventory, scan
from footprint.image.rootfs import LAYER_SEP, Node


def _compressor(codec: str) -> tuple[str, Any]:
    if codec == "gzip":
        return codec, zlib.compressobj(6, zlib.DEFLATED, 31)
    if codec == "bzip2":
        return codec, bz2.BZ2Compressor(9)
    if codec == "xz":
        return codec, lzma.LZMACompressor(
            lzma.FORMAT_XZ,
            check=lzma.CHECK_CRC32,
            filters=[{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 20}],
        )
    if codec == "lzma":
        return codec, lzma.LZMACompressor(lzma.FORMAT_ALONE)
    if codec == "none":
        return codec, None
    try:
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        from backports import zstd
    return "zstd", zstd.ZstdCompressor(level=3)


@dataclass(frozen=True)
class Repacked:
    path: str
    codec: str
    dropped_files: int
    dropped_bytes: int
    kept_files: int


class _Writer:
    def __init__(self, out: BinaryIO, codec: str, drop: set[str]) -> None:
        self.out, self.drop = out, drop
        self.codec, self.comp = _compressor(codec)
        self.inos: dict[tuple[int, int, int], int] = {}
        self.dropped_files = self.dropped_bytes = self.kept_files = 0
        self.written = 0

    def _emit(self, data: bytes) -> None:
        self.written += len(data)
        self.out.write(self.comp.compress(data) if self.comp is not None else data)

    def visit(self, entry: CpioEntry, data: EntryData | None, node: Node | None) -> None:
        if node is not None and node.layer:
            return  # a file inside an inner image: the image file carries it
        if node is not None and node.path in self.drop:
            self.dropped_files += entry.kind == "file"
            self.dropped_bytes += entry.size if entry.kind == "file" else 0
            return
        body = b""
        if data is not None:
            body = data.read()
        elif entry.target is not None:
            body = os.fsencode(entry.target)
        key = (entry.segment, entry.archive, entry.ino)
        ino = self.inos.setdefault(key, len(self.inos) + 1)
        self.kept_files += entry.kind == "file"
        self._emit(
            newc_entry(
                entry.name,
                entry.mode,
                body,
                ino=ino,
                nlink=entry.nlink,
                uid=entry.uid,
                gid=entry.gid,
                mtime=entry.mtime,
                rdev=(entry.rdev_major, entry.rdev_minor),
                magic=NEWC,
            )
        )

    def close(self) -> None:
        trailer = newc_trailer()
        self._emit(trailer + b"\0" * (-(self.written + len(trailer)) % 512))
        if self.comp is not None:
            self.out.write(self.comp.flush())


def main_codec(inv: Inventory) -> str:
    """The codec of the image's largest member."""
    if not inv.segments:
        return "none"
    return max(inv.segments, key=lambda s: s.uncompressed_bytes).codec


def repack(image: str, out_path: str, drop: set[str], codec: str) -> Repacked:
    """Copy `image` to `out_path`, compressed with `codec` (main_codec() of its inventory,
    which the caller has already), without the files whose tree paths are in `drop`."""
    inner = sorted(p for p in drop if LAYER_SEP in p)
    if inner:
        image_file = inner[0].split(LAYER_SEP, 1)[0]
        raise UsageError(
            f"cannot remove /{inner[0]} and {len(inner) - 1} more: they are inside "
            f"/{image_file}, an inner filesystem image — removing them means rebuilding it "
            "(measure the component with an image built without it)"
        )
    with open(out_path, "wb") as out:
        writer = _Writer(out, codec, drop)
        scan(image, visit=writer.visit)
        writer.close()
    return Repacked(
        out_path, writer.codec, writer.dropped_files, writer.dropped_bytes, writer.kept_files
    )
