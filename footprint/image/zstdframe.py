"""A zstd frame on disk: where it ends, and a decompressing reader over it.

Kept free of imports beyond os: the child that `footprint inspect` forks (footprint.image.
forked) starts with this module, and every import there is on the critical path.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs 5 ms, and this is imported before a fork
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# The kernel accepts windows up to 128 MiB (lib/decompress_unzstd.c).
ZSTD_WINDOW_LOG_MAX = 27


def zstd_frame_size(pread: Callable[[int, int], bytes], offset: int, limit: int) -> int | None:
    """The length of the zstd frame at `offset`, from its header and block headers alone
    (RFC 8878, 3.1.1), or None if they do not add up to a frame that ends by `limit`.

    The libraries measure a frame (get_frame_size, ZSTD_findFrameCompressedSize) only in
    memory: mapping the member for them would make every page of it resident (the kernel's
    fault-around maps 64 KiB per touch and blocks are closer than that); this reads the
    3-byte block headers, ~1 per 30 KiB, with pread.
    """
    head = pread(14, offset)  # magic, descriptor, window, dictionary id, content size
    if len(head) < 5 or head[:4] != ZSTD_MAGIC:
        return None
    fhd = head[4]
    single_segment, checksum = fhd >> 5 & 1, fhd >> 2 & 1
    if fhd & 0x08:  # reserved bit
        return None
    fcs = (single_segment, 2, 4, 8)[fhd >> 6]
    pos = offset + 5 + (not single_segment) + (0, 1, 2, 4)[fhd & 3] + fcs
    while True:
        block = pread(3, pos)
        if len(block) < 3:
            return None
        h = int.from_bytes(block, "little")
        kind, size = h >> 1 & 3, h >> 3
        if kind == 3 or size > 128 << 10:  # reserved type; over Block_Maximum_Size
            return None
        pos += 3 + (1 if kind == 1 else size)
        if h & 1:  # last block
            break
    pos += 4 * checksum
    return pos - offset if pos <= limit else None


class FileRange:
    """A byte range of an open file, read with pread: a file-like source for a library."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self._fd, self._pos, self._end = fd, offset, offset + size

    def read(self, n: int = -1) -> bytes:
        n = self._end - self._pos if n < 0 else min(n, self._end - self._pos)
        data = os.pread(self._fd, n, self._pos) if n > 0 else b""
        self._pos += len(data)
        return data


def frame_reader(fd: int, offset: int, size: int, read_size: int) -> Any:
    """A zstandard stream_reader over the frame [offset, offset+size) of the file `fd`
    (read with pread, so the file's own position does not matter)."""
    import zstandard

    dctx = zstandard.ZstdDecompressor(max_window_size=1 << ZSTD_WINDOW_LOG_MAX)
    # FileRange has the one method stream_reader calls on its source: read(n).
    return dctx.stream_reader(FileRange(fd, offset, size), read_size=read_size)  # type: ignore[arg-type]
