"""Filesystem images inside the tree (dracut's squash modules put the real root in one):
recognised by magic bytes, read into InnerEntry records and file data; one module per format.

A reader takes a seekable file holding the image and raises BadImage for anything malformed;
every loop is bounded by the image's size or by MAX_ENTRIES, every offset checked.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, TypeVar

MAX_ENTRIES = 1 << 20  # names in one inner image (real ones hold a few thousand)
MAX_DEPTH = 128  # directory nesting
HEAD_BYTES = 1028  # enough for every format's magic (erofs: at 1024)

N = TypeVar("N")  # a format's inode


@dataclass(frozen=True, slots=True)
class InnerEntry:
    """One name in an inner filesystem, its parents before it."""

    path: str  # relative to the inner root, never "" (the root itself is not an entry)
    kind: str  # the cpio module's kinds: file, dir, symlink, char, block, fifo, socket
    mode: int
    uid: int
    gid: int
    mtime: int
    size: int  # regular files: data bytes; symlinks: target bytes
    ino: int  # names sharing an inode (hardlinks) share it
    nlink: int
    target: str | None = None
    rdev: tuple[int, int] = (0, 0)


class InnerImage(Protocol):
    fstype: str
    compression: str  # "none" or the codec of its data
    warnings: list[str]

    def entries(self) -> Iterator[InnerEntry]: ...

    def chunks(self, entry: InnerEntry) -> Iterator[bytes]:
        """The data of a regular file, `entry.size` bytes in all."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class InnerFormat:
    name: str
    matches: Callable[[bytes], bool]
    open: Callable[[BinaryIO, int], InnerImage]  # the file and the image's size in it


def _is_squashfs(head: bytes) -> bool:
    return head[:4] == b"hsqs"


def _is_erofs(head: bytes) -> bool:
    return len(head) >= 1028 and struct.unpack_from("<I", head, 1024)[0] == 0xE0F5E1E2


def _open_squashfs(f: BinaryIO, size: int) -> InnerImage:
    from footprint.image.inner.squashfs import SquashfsImage

    return SquashfsImage(f, size)


def _open_erofs(f: BinaryIO, size: int) -> InnerImage:
    from footprint.image.inner.erofs import ErofsImage

    return ErofsImage(f, size)


# In order; the first whose magic matches reads the file.
FORMATS: tuple[InnerFormat, ...] = (
    InnerFormat("squashfs", _is_squashfs, _open_squashfs),
    InnerFormat("erofs", _is_erofs, _open_erofs),
)


def detect(head: bytes) -> InnerFormat | None:
    for fmt in FORMATS:
        if fmt.matches(head):
            return fmt
    return None


def read_at(f: BinaryIO, size: int, offset: int, n: int, what: str) -> bytes:
    """Exactly n bytes at offset, inside the image's `size` bytes; BadImage otherwise."""
    from footprint.errors import BadImage

    if offset < 0 or n < 0 or offset + n > size:
        raise BadImage(f"{what} at byte {offset} (+{n}) lies outside the {size}-byte image")
    f.seek(offset)
    data = f.read(n)
    if len(data) != n:
        raise BadImage(f"image ends inside {what} at byte {offset}")
    return data


def walk(
    fs: str,
    root: N,
    listing: Callable[[N], Iterable[tuple[str, N]]],
    is_dir: Callable[[N], bool],
    ident: Callable[[N], Hashable],
    entry: Callable[[str, N], InnerEntry],
) -> Iterator[InnerEntry]:
    """Every entry under the directory `root`, depth first in directory order, its path
    relative to the root; BadImage (naming `fs`) for more than MAX_ENTRIES names, a directory
    met twice (a loop) or nesting deeper than MAX_DEPTH."""
    from footprint.errors import BadImage

    if not is_dir(root):
        raise BadImage(f"{fs} root inode is not a directory")
    seen_dirs = {ident(root)}
    stack: list[tuple[str, N, int]] = [("", root, 0)]
    count = 0
    while stack:
        path, node, depth = stack.pop()
        children: list[tuple[str, N, int]] = []
        for name, child in listing(node):
            count += 1
            if count > MAX_ENTRIES:
                raise BadImage(f"{fs} image has more than {MAX_ENTRIES} names")
            cpath = f"{path}/{name}" if path else name
            yield entry(cpath, child)
            if is_dir(child):
                if ident(child) in seen_dirs or depth + 1 > MAX_DEPTH:
                    raise BadImage(f"{fs} directory /{cpath} loops or nests too deep")
                seen_dirs.add(ident(child))
                children.append((cpath, child, depth + 1))
        stack.extend(reversed(children))
