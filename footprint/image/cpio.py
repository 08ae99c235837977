"""cpio newc (070701) and crc (070702) archives, parsed the way init/initramfs.c does.

iter_archive() walks one archive up to its TRAILER!!!, yielding each entry with a handle on
its data that the caller may read or ignore; unread data is skipped, never copied.
"""

from __future__ import annotations

import os
import re
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from footprint.errors import BadImage
from footprint.image.stream import Source

NEWC = b"070701"
CRC = b"070702"
HEADER_SIZE = 110
PATH_MAX = 4096
TRAILER = "TRAILER!!!"
_HEX_FIELDS = re.compile(rb"[0-9A-Fa-f]{104}")
_FIELDS = struct.Struct(">13I")

# Entry kinds, derived from the mode's S_IFMT bits.
FILE, DIR, SYMLINK, CHAR, BLOCK, FIFO, SOCKET, UNKNOWN = (
    "file",
    "dir",
    "symlink",
    "char",
    "block",
    "fifo",
    "socket",
    "unknown",
)
_KINDS = {
    stat.S_IFREG: FILE,
    stat.S_IFDIR: DIR,
    stat.S_IFLNK: SYMLINK,
    stat.S_IFCHR: CHAR,
    stat.S_IFBLK: BLOCK,
    stat.S_IFIFO: FIFO,
    stat.S_IFSOCK: SOCKET,
}


@dataclass(slots=True)
class CpioEntry:
    """One header of an archive (never the trailer). Treat as immutable."""

    name: str  # as stored, decoded with the filesystem encoding
    mode: int
    uid: int
    gid: int
    nlink: int
    mtime: int
    size: int  # body length: file data, or the symlink target
    ino: int
    dev_major: int
    dev_minor: int
    rdev_major: int
    rdev_minor: int
    offset: int  # of the header, within its member's (decompressed) stream
    segment: int
    archive: int  # which archive of its segment (hardlinks reset at each trailer)
    target: str | None = None  # symlink target
    skipped: str | None = None  # why the kernel would not create it, if it would not

    @property
    def kind(self) -> str:
        return _KINDS.get(stat.S_IFMT(self.mode), UNKNOWN)

    @property
    def inode_key(self) -> tuple[int, int, int, int]:
        """What the kernel's find_link() matches hardlinks on."""
        return (self.ino, self.dev_major, self.dev_minor, stat.S_IFMT(self.mode))


def byte_sum(view: memoryview) -> int:
    """The sum of the bytes (a crc cpio's checksum before its mask), at memory speed: summed
    in Python, a 4 GiB file took 50 s."""
    import numpy  # here: only crc archives need it (~60 ms to import)

    return int(numpy.frombuffer(view, numpy.uint8).sum(dtype=numpy.uint64))


class EntryData:
    """The body of a regular file, readable once while its entry is current."""

    __slots__ = ("_src", "_left", "size", "_sum")

    def __init__(self, src: Source, size: int, checksum: bool) -> None:
        self._src, self._left, self.size = src, size, size
        self._sum: int | None = 0 if checksum else None

    def chunks(self) -> Iterator[memoryview]:
        for view in self._src.chunks(self._left, "file data"):
            self._left -= len(view)
            if self._sum is not None:
                self._sum += byte_sum(view)
            yield view

    def read(self) -> bytes:
        return b"".join(bytes(v) for v in self.chunks())

    def peek(self, n: int) -> bytes:
        """The first n bytes (fewer if the file is shorter), before anything is read."""
        if self._left != self.size:
            raise ValueError("peek() after reading")
        return self._src.peek(min(n, self.size))

    def finish(self) -> int | None:
        """Consume what the caller did not read; return the byte sum if it was asked for."""
        if self._left:
            if self._sum is None:
                self._src.skip(self._left, "file data")
                self._left = 0
            else:
                for _ in self.chunks():
                    pass
        return None if self._sum is None else self._sum & 0xFFFFFFFF


def _pad4(src: Source, lenient: bool = False) -> None:
    rem = src.offset & 3
    if rem:
        src.skip(len(src.peek(4 - rem)) if lenient else 4 - rem, "padding")


def iter_archive(
    src: Source, segment: int, archive: int = 0
) -> Iterator[tuple[CpioEntry, EntryData | None]]:
    """Entries of the archive starting at src's position, up to and including its trailer."""
    while True:
        offset = src.offset
        header = src.read(HEADER_SIZE, "a cpio header")
        magic = header[:6]
        if magic == NEWC:
            checksum = False
        elif magic == CRC:
            checksum = True
        elif magic == b"070707":
            raise BadImage(
                "old portable (odc) cpio archive: the kernel refuses it "
                "('incorrect cpio method used: use -H newc option')",
                offset,
            )
        elif header[:2] in (b"\xc7\x71", b"\x71\xc7"):
            raise BadImage(
                "old binary cpio archive: the kernel refuses it — rebuild with cpio -H newc", offset
            )
        else:
            raise BadImage(f"no cpio magic (found {bytes(magic)!r})", offset)
        if not _HEX_FIELDS.fullmatch(header, 6):
            raise BadImage("cpio header has a field that is not hexadecimal", offset)
        (ino, mode, uid, gid, nlink, mtime, size, dmaj, dmin, rmaj, rmin, namesize, check) = (
            _FIELDS.unpack(bytes.fromhex(header[6:].decode("ascii")))
        )
        if namesize == 0 or namesize > PATH_MAX:
            raise BadImage(f"cpio name size {namesize} is out of range (1..{PATH_MAX})", offset)
        raw = src.read(namesize, "a cpio name")
        if raw[-1] != 0:
            raise BadImage("cpio name is not NUL-terminated", offset)
        name = os.fsdecode(raw[:-1].split(b"\0", 1)[0])
        if name == TRAILER:
            # An image may end right after the trailer's name: the kernel is content.
            _pad4(src, lenient=True)
            if size:
                src.skip(size, "the trailer")
                _pad4(src, lenient=True)
            return
        _pad4(src)
        entry = CpioEntry(
            name,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            size,
            ino,
            dmaj,
            dmin,
            rmaj,
            rmin,
            offset,
            segment,
            archive,
        )
        kind = entry.kind
        data = None
        if kind == FILE:
            data = EntryData(src, size, checksum)
            yield entry, data
            total = data.finish()
            if checksum and total != check:
                raise BadImage(
                    f"crc cpio checksum mismatch for {name!r}: header says "
                    f"{check:#010x}, data sums to {total:#010x}",
                    offset,
                )
        elif kind == SYMLINK:
            if size > PATH_MAX:
                entry.skipped = f"symlink target of {size} bytes exceeds PATH_MAX"
                src.skip(size, "a symlink target")
            else:
                # The kernel takes the target as a C string: it ends at the first NUL.
                target = src.read(size, "a symlink target").split(b"\0", 1)[0]
                entry.target = os.fsdecode(target)
            yield entry, None
        else:
            if size:
                # init/initramfs.c only reads the name of a non-regular entry without a body.
                entry.skipped = f"{kind} entry carries {size} bytes of data"
                src.skip(size, "entry data")
            yield entry, None
        _pad4(src)


def _pad(n: int) -> bytes:
    return b"\0" * (-n & 3)


def newc_entry(
    name: str,
    mode: int,
    data: bytes = b"",
    *,
    ino: int = 0,
    nlink: int = 1,
    uid: int = 0,
    gid: int = 0,
    mtime: int = 0,
    rdev: tuple[int, int] = (0, 0),
    magic: bytes = NEWC,
    check: int = 0,
) -> bytes:
    """One newc (or crc) record: header, NUL-terminated name and data, each padded to 4.

    For appending a member to an image (the boot probe) and for tests; it assumes the
    archive starts 4-byte aligned.
    """
    raw = os.fsencode(name) + b"\0"
    fields = (ino, mode, uid, gid, nlink, mtime, len(data), 0, 0, rdev[0], rdev[1], len(raw), check)
    header = magic + b"".join(b"%08X" % f for f in fields)
    return header + raw + _pad(HEADER_SIZE + len(raw)) + data + _pad(len(data))


def newc_trailer() -> bytes:
    return newc_entry(TRAILER, 0, nlink=1)
