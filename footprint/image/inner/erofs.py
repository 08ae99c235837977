"""erofs read in-process for its uncompressed layouts; compressed files' data from erofs-utils.

The metadata — superblock, compact and extended inodes, directories — and the data of the
plain layouts (FLAT_PLAIN, FLAT_INLINE, CHUNK_BASED) are a few fixed structures
(Documentation/filesystems/erofs.rst, include/erofs_fs.h), read here with every offset
checked. The compressed layouts are another matter: lz4/lz4hc, lzma (MicroLZMA, which Python's
lzma cannot read), deflate and zstd in variable-sized physical clusters, with big pclusters,
tail packing, fragments and dedupe; no maintained Python reader exists, and a second
implementation of that would be the most bug-prone code here. So a compressed file's size and
metadata still come from the walk here, and its data from `fsck.erofs --extract` (Debian:
erofs-utils), run once per image on first need; without it those files' data is not read
(a warning), their sizes still are.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from footprint.errors import BadImage
from footprint.image.cpio import BLOCK, CHAR, DIR, FIFO, FILE, SOCKET, SYMLINK
from footprint.image.inner import InnerEntry, read_at, walk

SB_OFFSET = 1024
SUPER = struct.Struct("<IIIBBHQQIIII16s16sIHHHBBI")
COMPACT = struct.Struct("<HHHHIIIIHHI")  # 32 bytes
EXTENDED = struct.Struct("<HHHHQIIIIQII16s")  # 64 bytes
DIRENT = struct.Struct("<QHBB")  # 12 bytes
FLAT_PLAIN, COMPRESSED_FULL, FLAT_INLINE, COMPRESSED_COMPACT, CHUNK_BASED = range(5)
NULL_ADDR = 0xFFFFFFFF
INCOMPAT_48BIT = 0x80
INCOMPAT_COMPR_CFGS = 0x2
ALGORITHMS = ("lz4", "lzma", "deflate", "zstd")  # available_compr_algs bits
PATH_MAX = 4096
KINDS = {
    stat.S_IFDIR: DIR,
    stat.S_IFREG: FILE,
    stat.S_IFLNK: SYMLINK,
    stat.S_IFBLK: BLOCK,
    stat.S_IFCHR: CHAR,
    stat.S_IFIFO: FIFO,
    stat.S_IFSOCK: SOCKET,
}
# What the data of all compressed files together may take on disk once extracted.
MAX_EXTRACTED = 8 << 30
EXTRACT_TIMEOUT = 600


class _Inode:
    __slots__ = ("nid", "layout", "mode", "nlink", "size", "u", "uid", "gid", "mtime", "data")

    def __init__(self) -> None:
        self.nid = self.layout = self.mode = self.nlink = self.size = self.u = 0
        self.uid = self.gid = self.mtime = 0
        self.data = 0  # where the inline tail or chunk indexes start (after inode and xattrs)


class ErofsImage:
    fstype = "erofs"

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f, self._size = f, size
        self.warnings: list[str] = []
        raw = read_at(f, size, SB_OFFSET, SUPER.size, "the erofs superblock")
        (
            magic,
            _checksum,
            _compat,
            blkszbits,
            _extslots,
            self.root_nid,
            _inos,
            self.build_time,
            _nsec,
            blocks,
            self.meta_blkaddr,
            _xattr_blkaddr,
            _uuid,
            _volume,
            self.incompat,
            self.algs,
            extra_devices,
            _devt,
            _dirblkbits,
            _prefixes,
            _prefix_start,
        ) = SUPER.unpack(raw)
        if magic != 0xE0F5E1E2:
            raise BadImage("no erofs magic")
        if not 9 <= blkszbits <= 16:
            raise BadImage(f"erofs block size 2^{blkszbits} is invalid")
        if self.incompat & INCOMPAT_48BIT:
            raise BadImage("erofs with 48-bit block addresses is not read (erofs-utils 1.8+)")
        if extra_devices:
            raise BadImage("erofs with extra devices is not read (its data is elsewhere)")
        self.blkszbits, self.blksz = blkszbits, 1 << blkszbits
        self.compression = "none"
        self._files: dict[int, _Inode] = {}
        self._extracted: str | None = None  # fsck.erofs --extract's tree, made on first need
        self._tmp: str | None = None
        self._paths: dict[int, str] = {}  # nid -> its first path (where fsck.erofs puts it)

    # -- inodes -------------------------------------------------------------------------------
    def _inode(self, nid: int) -> _Inode:
        pos = self.meta_blkaddr * self.blksz + nid * 32
        head = read_at(self._f, self._size, pos, COMPACT.size, "an erofs inode")
        ino = _Inode()
        ino.nid = nid
        fmt = struct.unpack_from("<H", head)[0]
        ino.layout = (fmt >> 1) & 0x7
        if fmt & 1:
            raw = read_at(self._f, self._size, pos, EXTENDED.size, "an erofs inode")
            (_, icount, ino.mode, _, ino.size, ino.u, _ino, ino.uid, ino.gid, ino.mtime, _,
             ino.nlink, _) = EXTENDED.unpack(raw)  # fmt: skip
            isize = EXTENDED.size
        else:
            (_, icount, ino.mode, ino.nlink, ino.size, mtime, ino.u, _ino, ino.uid, ino.gid,
             _) = COMPACT.unpack(head)  # fmt: skip
            ino.mtime = self.build_time + mtime
            isize = COMPACT.size
        xattrs = 0 if icount == 0 else 12 + (icount - 1) * 4
        ino.data = pos + isize + xattrs
        if stat.S_IFMT(ino.mode) not in KINDS:
            raise BadImage(f"erofs inode {nid} has mode {ino.mode:#o}")
        if ino.layout > CHUNK_BASED:
            raise BadImage(f"erofs inode {nid} has data layout {ino.layout}")
        if ino.layout in (COMPRESSED_FULL, COMPRESSED_COMPACT):
            if stat.S_IFMT(ino.mode) != stat.S_IFREG:
                raise BadImage(f"erofs inode {nid} is compressed but not a regular file")
            self.compression = self._algorithms()
        if ino.size > self._size and ino.layout not in (
            COMPRESSED_FULL,
            COMPRESSED_COMPACT,
            CHUNK_BASED,
        ):
            raise BadImage(f"erofs inode {nid} says {ino.size} bytes, more than the image")
        return ino

    def _algorithms(self) -> str:
        """The compressors the superblock declares (COMPR_CFGS), else lz4, the only one before."""
        if not self.incompat & INCOMPAT_COMPR_CFGS:
            return "lz4"
        names = [n for bit, n in enumerate(ALGORITHMS) if self.algs >> bit & 1]
        return "+".join(names) or "lz4"

    # -- uncompressed data --------------------------------------------------------------------
    def _plain(self, ino: _Inode) -> Iterator[bytes]:
        """The data of a FLAT_PLAIN, FLAT_INLINE or CHUNK_BASED inode, in blocks."""
        bs, size = self.blksz, ino.size
        if ino.layout == CHUNK_BASED:
            yield from self._chunked(ino)
            return
        nblocks = (size + bs - 1) // bs
        inline = ino.layout == FLAT_INLINE and size > 0
        full = nblocks - 1 if inline else nblocks
        base = ino.u * bs
        for i in range(full):
            yield read_at(self._f, self._size, base + i * bs, min(bs, size - i * bs), "data")
        if inline:
            tail = size - full * bs
            if (ino.data % bs) + tail > bs:
                raise BadImage(f"erofs inode {ino.nid}'s inline tail crosses its block")
            yield read_at(self._f, self._size, ino.data, tail, "an inline tail")

    def _chunked(self, ino: _Inode) -> Iterator[bytes]:
        fmt = ino.u & 0xFFFF
        chunkbits = self.blkszbits + (fmt & 0x1F)
        if chunkbits > 40:
            raise BadImage(f"erofs inode {ino.nid} has chunks of 2^{chunkbits} bytes")
        chunk = 1 << chunkbits
        count = (ino.size + chunk - 1) >> chunkbits
        indexes = bool(fmt & 0x20)
        unit = 8 if indexes else 4
        pos = (ino.data + unit - 1) // unit * unit
        table = read_at(self._f, self._size, pos, unit * count, "a chunk table")
        left = ino.size
        for i in range(count):
            if indexes:
                _, device, addr = struct.unpack_from("<HHI", table, 8 * i)
                if device:
                    raise BadImage(f"erofs inode {ino.nid} has data on extra device {device}")
            else:
                (addr,) = struct.unpack_from("<I", table, 4 * i)
            want = min(chunk, left)
            left -= want
            if addr == NULL_ADDR:
                yield bytes(want)
                continue
            start = addr * self.blksz
            done = 0
            while done < want:
                n = min(1 << 20, want - done)
                yield read_at(self._f, self._size, start + done, n, "a chunk")
                done += n

    def _dirents(self, ino: _Inode) -> Iterator[tuple[str, int]]:
        if ino.layout not in (FLAT_PLAIN, FLAT_INLINE, CHUNK_BASED):
            raise BadImage(f"erofs directory inode {ino.nid} is compressed")
        if ino.size > self._size:
            raise BadImage(f"erofs directory inode {ino.nid} is larger than the image")
        data = b"".join(self._plain(ino))
        bs = self.blksz
        for start in range(0, len(data), bs):
            block = data[start : start + bs]
            if len(block) < DIRENT.size:
                raise BadImage(f"erofs directory inode {ino.nid} has a short block")
            first = DIRENT.unpack_from(block)[1]
            if first % DIRENT.size or not 0 < first <= len(block):
                raise BadImage(f"erofs directory inode {ino.nid}: bad name offset {first}")
            count = first // DIRENT.size
            ents = [DIRENT.unpack_from(block, DIRENT.size * i) for i in range(count)]
            for i, (nid, nameoff, _type, _) in enumerate(ents):
                end = ents[i + 1][1] if i + 1 < count else len(block)
                if not first <= nameoff < end <= len(block):
                    raise BadImage(f"erofs directory inode {ino.nid}: bad name offset {nameoff}")
                name = block[nameoff:end]
                if i + 1 == count:
                    name = name.split(b"\0", 1)[0]
                text = name.decode("utf-8", "surrogateescape")
                if text in (".", ".."):
                    continue
                if not text or "/" in text or "\0" in text:
                    raise BadImage(f"erofs directory entry has the name {text!r}")
                yield text, nid

    # -- the walk -------------------------------------------------------------------------------
    def entries(self) -> Iterator[InnerEntry]:
        return walk(
            "erofs",
            self._inode(self.root_nid),
            lambda node: ((name, self._inode(nid)) for name, nid in self._dirents(node)),
            lambda ino: stat.S_ISDIR(ino.mode),
            lambda ino: ino.nid,
            self._as_entry,
        )

    def _as_entry(self, path: str, ino: _Inode) -> InnerEntry:
        kind = KINDS[stat.S_IFMT(ino.mode)]
        target = None
        rdev = (0, 0)
        size = 0
        if kind == SYMLINK:
            if ino.size > PATH_MAX:
                raise BadImage(f"erofs symlink /{path} has a {ino.size}-byte target")
            raw = b"".join(self._plain(ino))
            target = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            size = ino.size
        elif kind in (BLOCK, CHAR):
            dev = ino.u
            rdev = ((dev & 0xFFF00) >> 8, (dev & 0xFF) | ((dev >> 12) & 0xFFF00))
        elif kind == FILE:
            size = ino.size
            self._files[ino.nid] = ino
            self._paths.setdefault(ino.nid, path)
        return InnerEntry(
            path, kind, ino.mode, ino.uid, ino.gid, ino.mtime, size, ino.nid, ino.nlink,
            target, rdev,
        )  # fmt: skip

    def chunks(self, entry: InnerEntry) -> Iterator[bytes]:
        ino = self._files.get(entry.ino)
        if ino is None:
            raise BadImage(f"erofs file /{entry.path} was not listed")
        if ino.layout not in (COMPRESSED_FULL, COMPRESSED_COMPACT):
            yield from self._plain(ino)
            return
        yield from self._from_extracted(ino)

    # -- compressed data, through erofs-utils ---------------------------------------------------
    def _from_extracted(self, ino: _Inode) -> Iterator[bytes]:
        root = self._extract()
        path = os.path.join(root, self._paths[ino.nid])
        if os.path.realpath(path) != path:
            raise BadImage(f"fsck.erofs put /{self._paths[ino.nid]} behind a symlink")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as e:
            raise BadImage(f"fsck.erofs did not extract /{self._paths[ino.nid]}: {e}") from None
        with os.fdopen(fd, "rb") as f:
            left = ino.size
            while left > 0:
                chunk = f.read(min(1 << 20, left))
                if not chunk:
                    raise BadImage(f"fsck.erofs extracted /{self._paths[ino.nid]} short")
                left -= len(chunk)
                yield chunk

    def _extract(self) -> str:
        if self._extracted is not None:
            return self._extracted
        # The whole tree is walked (and its names checked) before erofs-utils writes any of
        # it: the first compressed file may come before a name that would climb out.
        for _ in self.entries():
            pass
        total = sum(i.size for i in self._files.values())
        if total > MAX_EXTRACTED:
            raise BadImage(f"erofs files would take {total >> 20} MiB extracted — a bomb?")
        # FOOTPRINT_FSCK_EROFS: another erofs-utils than PATH's (bookworm's 1.5 reads lz4
        # only; lzma, deflate and zstd need 1.6-1.7 or newer)
        tool = shutil.which(os.environ.get("FOOTPRINT_FSCK_EROFS", "fsck.erofs"))
        if tool is None:
            raise BadImage(
                "compressed erofs files need fsck.erofs to read their data — "
                "apt-get install erofs-utils"
            )
        name = getattr(self._f, "name", None)
        if not isinstance(name, str) or not os.path.exists(name):
            raise BadImage("the erofs image has no path for fsck.erofs")
        self._tmp = tempfile.mkdtemp(prefix="footprint-erofs-")
        root = os.path.join(self._tmp, "root")
        try:
            done = subprocess.run(
                [tool, f"--extract={root}", "--no-preserve", name],
                capture_output=True,
                timeout=EXTRACT_TIMEOUT,
                check=False,
                cwd=self._tmp,
            )
        except subprocess.TimeoutExpired:
            raise BadImage(f"fsck.erofs --extract took more than {EXTRACT_TIMEOUT} s") from None
        if done.returncode != 0:
            last = (done.stderr or done.stdout).decode("utf-8", "replace").strip()
            last = last.splitlines()[-1] if last else f"exit {done.returncode}"
            raise BadImage(f"fsck.erofs --extract failed: {last}")
        self._extracted = os.path.realpath(root)
        return self._extracted

    def close(self) -> None:
        self._files.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
