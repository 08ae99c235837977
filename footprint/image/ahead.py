"""zstd members decompressed on a second core, a few chunks ahead of the parser.

zstandard releases the GIL while it decompresses, so a thread can run the codec while the
reader parses what it produced: the scan then costs about what decompression alone costs.
The thread needs to know where the member ends before it starts (the next member begins
there); zstd_frame_size() reads that from the frame's block headers.

For `footprint inspect`, footprint.image.forked goes further: a child process started
before click and rich are imported.
"""

from __future__ import annotations

import os

from footprint.errors import BadImage
from footprint.image.stream import AheadSource
from footprint.image.zstdframe import frame_reader, zstd_frame_size

CHUNK = 4 << 20  # decompressed bytes per hand-over: few GIL round trips, ~2 chunks in flight
DEPTH = 2


def zstd_member(fd: int, offset: int, file_size: int) -> AheadSource | None:
    """The zstd member at `offset` of the regular file `fd`, decompressing on its own thread;
    None when its headers do not add up (the plain path then reports why) or zstandard is
    missing. Its end_offset is where the next member starts."""
    try:
        import zstandard
    except ImportError:
        return None

    def pread(n: int, at: int) -> bytes:
        return os.pread(fd, n, at)

    size = zstd_frame_size(pread, offset, file_size)
    if size is None:
        return None
    reader = frame_reader(fd, offset, size, read_size=CHUNK // 4)

    def produce() -> bytes:
        try:
            return bytes(reader.read(CHUNK))
        except zstandard.ZstdError as e:
            raise BadImage(f"corrupt zstd data: {e}", offset) from None

    return AheadSource(produce, end_offset=offset + size, depth=DEPTH)
