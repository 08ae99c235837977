"""Small images that expand to something large or strange: what a fuzzing campaign found to
crash, hang or blow up footprint. Each is made in a second from a few parameters."""

from __future__ import annotations

import os
from pathlib import Path

from footprint.image.cpio import newc_entry, newc_trailer

try:
    from compression import zstd  # type: ignore[import-not-found]  # Python 3.14
except ImportError:
    from backports import zstd  # type: ignore[no-redef]

CRC = b"070702"
CHUNK = bytes(16 << 20)


def _header(name: str, mode: int, size: int, magic: bytes = b"070701", check: int = 0) -> bytes:
    """A newc/crc header for a body of `size` bytes that is streamed after it."""
    head = newc_entry(name, mode, b"", magic=magic, check=check)
    return head[:54] + b"%08X" % size + head[62:]  # c_filesize: 8 hex digits after 6 + 6 * 8


def large_file(
    path: Path, name: str, size: int, start: bytes = b"", magic: bytes = b"070701", wrong=False
) -> None:
    """A zstd image of one file of `size` bytes, `start` then zeros, in its directories; in the
    crc format, with the right checksum or (`wrong`) one off by one."""
    check = (sum(start) + wrong) & 0xFFFFFFFF
    parts = name.split("/")
    dirs = [newc_entry("/".join(parts[:i]) or ".", 0o040755) for i in range(len(parts))]
    c = zstd.ZstdCompressor()
    with open(path, "wb") as out:
        out.write(c.compress(b"".join(dirs) + _header(name, 0o100755, size, magic, check)))
        out.write(c.compress(start))
        left = size - len(start)
        while left:
            n = min(left, len(CHUNK))
            out.write(c.compress(CHUNK[:n]))
            left -= n
        out.write(c.compress(b"\0" * (-size % 4) + newc_trailer()))
        out.write(c.flush())


def zero_padding(path: Path, size: int) -> int:
    """A zstd member of an empty archive then `size` zeros; returns the archive's length."""
    archive = newc_entry(".", 0o040755) + newc_trailer()
    c = zstd.ZstdCompressor()
    with open(path, "wb") as out:
        out.write(c.compress(archive))
        for _ in range(size // len(CHUNK)):
            out.write(c.compress(CHUNK))
        out.write(c.compress(CHUNK[: size % len(CHUNK)]))
        out.write(c.flush())
    return len(archive)


def strange_names(path: Path) -> None:
    """Names and symlink targets that are not UTF-8, and a target with a NUL inside."""
    parts = [
        newc_entry(".", 0o040755),
        newc_entry("bin", 0o040755),
        newc_entry("bin/true", 0o100755, b"#!/bin/sh\n"),
        newc_entry(os.fsdecode(b"bin/na\xffme"), 0o100644, b"hello"),
        newc_entry("bin/latin", 0o120777, b"\xe9t\xe9"),
        newc_entry("bin/cut", 0o120777, b"true\0/etc/shadow"),
    ]
    path.write_bytes(b"".join(parts) + newc_trailer())
