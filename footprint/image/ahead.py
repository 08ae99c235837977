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
from collections.abc import Callable

from footprint.errors import BadImage
from footprint.image.stream import AheadSource, FileRange

# The kernel accepts windows up to 128 MiB (lib/decompress_unzstd.c).
ZSTD_WINDOW_LOG_MAX = 27
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 4 << 20  # decompressed bytes per hand-over: few GIL round trips, ~2 chunks in flight
DEPTH = 2


def zstd_frame_size(pread: Callable[[int, int], bytes], offset: int, limit: int) -> int | None:
    """The length of the zstd frame at `offset`, from its header and block headers alone
    (RFC 8878, 3.1.1), or None if they do not add up to a frame that ends by `limit`.

    The libraries measure a frame (get_frame_size, ZSTD_findFrameCompressedSize) only in
    memory: mapping the member for them would make every page of it resident (the kernel's
    fault-around maps 64 KiB per touch and blocks are closer than that); this reads the
    3-byte block headers, ~1 per 30 KiB, with pread.
    """
    head = pread(14, offset)  # magic, descriptor, window, dictionary id, content size
    if len(head) < 5 or head[:4] != b"\x28\xb5\x2f\xfd":
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
    # FileRange has the one method stream_reader calls on its source: read(n).
    dctx = zstandard.ZstdDecompressor(max_window_size=1 << ZSTD_WINDOW_LOG_MAX)
    reader = dctx.stream_reader(FileRange(fd, offset, size), read_size=CHUNK // 4)  # type: ignore[arg-type]

    def produce() -> bytes:
        try:
            return bytes(reader.read(CHUNK))
        except zstandard.ZstdError as e:
            raise BadImage(f"corrupt zstd data: {e}", offset) from None

    return AheadSource(produce, end_offset=offset + size, depth=DEPTH)
