"""squashfs 4.0 read in-process, every compressor through codecs.decompress_block.

Why not a library: PyPI's readers were tried. PySquashfsImage's last release is from 2023;
dissect.squashfs (maintained) decompresses every block without a bound (a bomb block costs any
memory), loops forever on a metadata block cut short by the end of the file, and brings its own
pure-Python lzo and lz4. This reader follows the format (the kernel's fs/squashfs, the
squashfs-tools layout): superblock, metadata blocks of 8 KiB (each compressed on its own or
stored), inode table, directory table, fragment table, id table; every offset is checked
against the image and every decompression bounded by the block size.
"""

from __future__ import annotations

import stat
import struct
from collections.abc import Iterator
from functools import lru_cache
from typing import BinaryIO

from footprint.errors import BadImage
from footprint.image.codecs import decompress_block
from footprint.image.cpio import BLOCK, CHAR, DIR, FIFO, FILE, SOCKET, SYMLINK
from footprint.image.inner import InnerEntry, read_at, walk

SUPER = struct.Struct("<IIIIIHHHHHHQQQQQQQQ")  # 96 bytes
METADATA_SIZE = 8192
COMPRESSORS = {1: "zlib", 2: "lzma", 3: "lzo", 4: "xz", 5: "lz4", 6: "zstd"}
NAMES = {"zlib": "gzip"}  # what mksquashfs -comp calls them
NO_FRAGMENT = 0xFFFFFFFF
# inode types: basic 1..7, extended 8..14 (the same kinds, in the same order)
KINDS = {1: DIR, 2: FILE, 3: SYMLINK, 4: BLOCK, 5: CHAR, 6: FIFO, 7: SOCKET}
IFMT = {
    DIR: stat.S_IFDIR,
    FILE: stat.S_IFREG,
    SYMLINK: stat.S_IFLNK,
    BLOCK: stat.S_IFBLK,
    CHAR: stat.S_IFCHR,
    FIFO: stat.S_IFIFO,
    SOCKET: stat.S_IFSOCK,
}
PATH_MAX = 4096


class _Cursor:
    """Reads a metadata table front to back from (block, offset), across its blocks."""

    def __init__(self, image: SquashfsImage, pos: int, offset: int) -> None:
        self._image, self._pos, self._offset = image, pos, offset

    def read(self, n: int, what: str) -> bytes:
        out: list[bytes] = []
        need = n
        while need > 0:
            data, nxt = self._image._meta_block(self._pos)
            if self._offset >= len(data):
                if self._offset > len(data):
                    raise BadImage(f"squashfs {what}: offset {self._offset} past its block")
                self._pos, self._offset = nxt, 0
                continue
            take = data[self._offset : self._offset + need]
            out.append(take)
            need -= len(take)
            self._offset += len(take)
        return b"".join(out)


class _Inode:
    __slots__ = (
        "kind", "mode", "uid", "gid", "mtime", "number", "nlink", "size",
        "start", "offset", "sizes", "fragment", "target", "rdev",
    )  # fmt: skip

    def __init__(self) -> None:
        self.kind, self.mode, self.uid, self.gid, self.mtime = FILE, 0, 0, 0, 0
        self.number = self.nlink = self.size = 0
        self.start = self.offset = 0  # directories: listing; files: first block, fragment offset
        self.sizes: tuple[int, ...] = ()  # files: each block's size word
        self.fragment = NO_FRAGMENT
        self.target = b""
        self.rdev = (0, 0)


class SquashfsImage:
    fstype = "squashfs"

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f, self._size = f, size
        self.warnings: list[str] = []
        if size < SUPER.size:
            raise BadImage(f"squashfs image of {size} bytes is shorter than its superblock")
        (
            magic,
            self.inode_count,
            _mtime,
            self.block_size,
            self.fragment_count,
            comp,
            block_log,
            _flags,
            id_count,
            major,
            minor,
            self.root_ref,
            used,
            id_start,
            _xattr_start,
            self.inode_start,
            self.dir_start,
            frag_start,
            _export_start,
        ) = SUPER.unpack(read_at(f, size, 0, SUPER.size, "the squashfs superblock"))
        if magic != 0x73717368:
            raise BadImage("no squashfs magic")
        if (major, minor) != (4, 0):
            raise BadImage(f"squashfs {major}.{minor}: only 4.0 is read")
        if comp not in COMPRESSORS:
            raise BadImage(f"squashfs compressor id {comp} is unknown")
        self.method = COMPRESSORS[comp]
        self.compression = NAMES.get(self.method, self.method)
        if not 12 <= block_log <= 20 or self.block_size != 1 << block_log:
            raise BadImage(f"squashfs block size {self.block_size} (log {block_log}) is invalid")
        if used > size:
            raise BadImage(f"squashfs says it uses {used} bytes, the file has {size}")
        self._size = used
        for name, start in (("inode", self.inode_start), ("directory", self.dir_start)):
            if start >= used:
                raise BadImage(f"squashfs {name} table starts at {start}, past its end {used}")
        self._ids = self._table(id_start, id_count, 4, "id")
        self._fragments = (
            self._table(frag_start, self.fragment_count, 16, "fragment")
            if self.fragment_count
            else []
        )
        self._meta_block = lru_cache(maxsize=256)(self._read_meta_block)  # type: ignore[method-assign]
        self._fragment_block = lru_cache(maxsize=4)(self._read_fragment_block)
        self._files: dict[int, _Inode] = {}  # inode number -> its inode, as listed

    # -- blocks -------------------------------------------------------------------------------
    def _read_meta_block(self, pos: int) -> tuple[bytes, int]:
        """The decompressed metadata block at `pos` and where the next one starts."""
        (word,) = struct.unpack("<H", read_at(self._f, self._size, pos, 2, "a metadata header"))
        n = word & 0x7FFF
        if n == 0 or n > METADATA_SIZE:
            raise BadImage(f"squashfs metadata block at byte {pos} has size {n}")
        raw = read_at(self._f, self._size, pos + 2, n, "a metadata block")
        data = raw if word & 0x8000 else decompress_block(self.method, raw, METADATA_SIZE)
        if not data:
            raise BadImage(f"squashfs metadata block at byte {pos} is empty")
        return data, pos + 2 + n

    def _meta_block(self, pos: int) -> tuple[bytes, int]:  # replaced by its cache
        return self._read_meta_block(pos)

    def _table(self, start: int, count: int, width: int, what: str) -> list[int]:
        """The block pointers of a table of `count` entries of `width` bytes."""
        blocks = (count * width + METADATA_SIZE - 1) // METADATA_SIZE
        raw = read_at(self._f, self._size, start, 8 * blocks, f"the {what} table index")
        pointers = list(struct.unpack(f"<{blocks}Q", raw))
        for p in pointers:
            if p >= self._size:
                raise BadImage(f"squashfs {what} table points at byte {p}, past its end")
        return pointers

    def _entry(self, pointers: list[int], index: int, width: int, what: str) -> bytes:
        block, offset = divmod(index * width, METADATA_SIZE)
        if block >= len(pointers):
            raise BadImage(f"squashfs {what} {index} is not in its table")
        return _Cursor(self, pointers[block], offset).read(width, f"{what} {index}")

    def _id(self, index: int) -> int:
        (value,) = struct.unpack("<I", self._entry(self._ids, index, 4, "id"))
        return int(value)

    def _read_fragment_block(self, index: int) -> bytes:
        start, word, _ = struct.unpack("<QII", self._entry(self._fragments, index, 16, "fragment"))
        return self._data_block(start, word, self.block_size)

    def _data_block(self, pos: int, word: int, expect: int) -> bytes:
        n = word & 0xFFFFFF
        if n > self.block_size or word >> 25:
            raise BadImage(f"squashfs data block at byte {pos} has size word {word:#x}")
        raw = read_at(self._f, self._size, pos, n, "a data block")
        if word & (1 << 24):
            return raw
        return decompress_block(self.method, raw, expect)

    # -- inodes ---------------------------------------------------------------------------------
    def _inode(self, ref: int) -> _Inode:
        block, offset = ref >> 16, ref & 0xFFFF
        if offset >= METADATA_SIZE:
            raise BadImage(f"squashfs inode reference {ref:#x} has offset {offset}")
        cur = _Cursor(self, self.inode_start + block, offset)
        itype, perm, uid_i, gid_i, mtime, number = struct.unpack("<HHHHII", cur.read(16, "inode"))
        basic = itype - 7 if itype > 7 else itype
        if basic not in KINDS:
            raise BadImage(f"squashfs inode type {itype} is unknown")
        ino = _Inode()
        ino.kind = KINDS[basic]
        ino.mode = IFMT[ino.kind] | (perm & 0o7777)
        ino.uid, ino.gid, ino.mtime, ino.number = self._id(uid_i), self._id(gid_i), mtime, number
        ext = itype > 7
        if ino.kind == DIR:
            if ext:
                nlink, fsize, start, _parent, _idx, off, _x = struct.unpack(
                    "<IIIIHHI", cur.read(24, "inode")
                )
            else:
                start, nlink, fsize, off, _parent = struct.unpack("<IIHHI", cur.read(16, "inode"))
            ino.nlink, ino.size, ino.start, ino.offset = nlink, fsize, start, off
        elif ino.kind == FILE:
            if ext:
                blocks, fsize, _sparse, nlink, frag, foff, _x = struct.unpack(
                    "<QQQIIII", cur.read(40, "inode")
                )
            else:
                blocks, frag, foff, fsize = struct.unpack("<IIII", cur.read(16, "inode"))
                nlink = 1
            ino.nlink, ino.size = nlink, fsize
            bs = self.block_size
            full = fsize // bs if frag != NO_FRAGMENT else (fsize + bs - 1) // bs
            if full * 4 > self._size or fsize > (self._size + 1) * bs:
                raise BadImage(f"squashfs file of {fsize} bytes cannot fit the image")
            sizes = struct.unpack(f"<{full}I", cur.read(4 * full, "a block list"))
            ino.start, ino.sizes, ino.fragment, ino.offset = blocks, sizes, frag, foff
        elif ino.kind == SYMLINK:
            nlink, tsize = struct.unpack("<II", cur.read(8, "inode"))
            if tsize > PATH_MAX:
                raise BadImage(f"squashfs symlink target of {tsize} bytes")
            target = cur.read(tsize, "a symlink target")
            ino.nlink, ino.size, ino.target = nlink, tsize, target
        elif ino.kind in (BLOCK, CHAR):
            nlink, dev = struct.unpack("<II", cur.read(8, "inode"))
            major, minor = (dev >> 8) & 0xFFF, (dev & 0xFF) | ((dev >> 12) & 0xFFF00)
            ino.nlink, ino.rdev = nlink, (major, minor)
        else:
            (ino.nlink,) = struct.unpack("<I", cur.read(4, "inode"))
        return ino

    def _listing(self, ino: _Inode) -> Iterator[tuple[str, int]]:
        """(name, inode reference) of each entry of a directory."""
        start, off = ino.start, ino.offset
        length = ino.size - 3  # the size counts "." and ".."
        if length <= 0:
            return
        if off >= METADATA_SIZE or length > self._size * 64:
            raise BadImage(f"squashfs directory listing at {start}+{off} of {length} bytes")
        cur = _Cursor(self, self.dir_start + int(start), int(off))
        done = 0
        while done < length:
            count, iblock, _base = struct.unpack("<III", cur.read(12, "a directory header"))
            done += 12
            if count >= 256:
                raise BadImage(f"squashfs directory header of {count + 1} entries (at most 256)")
            for _ in range(count + 1):
                ioff, _delta, _type, nsize = struct.unpack("<HhHH", cur.read(8, "a dirent"))
                name = cur.read(nsize + 1, "a name")
                done += 8 + nsize + 1
                text = name.decode("utf-8", "surrogateescape")
                if "/" in text or "\0" in text or text in (".", ".."):
                    raise BadImage(f"squashfs directory entry has the name {text!r}")
                yield text, (iblock << 16) | ioff

    # -- the walk ---------------------------------------------------------------------------------
    def entries(self) -> Iterator[InnerEntry]:
        return walk(
            "squashfs",
            self._inode(self.root_ref),
            lambda node: ((name, self._inode(ref)) for name, ref in self._listing(node)),
            lambda ino: ino.kind == DIR,
            lambda ino: ino.number,
            self._as_entry,
        )

    def _as_entry(self, path: str, ino: _Inode) -> InnerEntry:
        target = None
        if ino.kind == SYMLINK:
            target = ino.target.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        size = ino.size if ino.kind in (FILE, SYMLINK) else 0
        entry = InnerEntry(
            path,
            ino.kind,
            ino.mode,
            ino.uid,
            ino.gid,
            ino.mtime,
            size,
            ino.number,
            ino.nlink,
            target,
            ino.rdev,
        )
        if ino.kind == FILE:
            self._files[ino.number] = ino
        return entry

    def chunks(self, entry: InnerEntry) -> Iterator[bytes]:
        ino = self._files.get(entry.ino)
        if ino is None:
            raise BadImage(f"squashfs file /{entry.path} was not listed")
        frag, foff = ino.fragment, ino.offset
        bs, left, pos = self.block_size, ino.size, ino.start
        for word in ino.sizes:
            want = min(bs, left)
            if word == 0:  # a sparse block
                block = bytes(want)
            else:
                block = self._data_block(pos, word, bs)
                pos += word & 0xFFFFFF
                if len(block) < want:
                    raise BadImage(f"squashfs block of /{entry.path} is short")
                block = block[:want]
            left -= want
            yield block
        if left > 0:
            if frag == NO_FRAGMENT:
                raise BadImage(f"squashfs file /{entry.path} lacks {left} bytes")
            fragment = self._fragment_block(frag)
            tail = fragment[foff : foff + left]
            if len(tail) != left:
                raise BadImage(f"squashfs fragment of /{entry.path} is short")
            yield tail

    def close(self) -> None:
        self._files.clear()
