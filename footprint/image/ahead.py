"""zstd members decompressed on a second core, a few chunks ahead of the parser.

zstandard releases the GIL while it decompresses, so a thread can run the codec while the
reader parses what it produced: the scan then costs about what decompression alone costs.
The thread needs to know where the member ends before it starts (the next member begins
there); zstd_frame_size() reads that from the frame's block headers.

`footprint inspect` starts the member at offset 0 as soon as the process starts (prestart,
from footprint.early), before click and rich are even imported; the reader claims it when
it reaches that member of that file.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable

from footprint.errors import BadImage
from footprint.image.stream import AheadSource, FileRange

# The kernel accepts windows up to 128 MiB (lib/decompress_unzstd.c).
ZSTD_WINDOW_LOG_MAX = 27
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 4 << 20  # decompressed bytes per hand-over: few GIL round trips, ~2 chunks in flight
DEPTH = 2

FileKey = tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns


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


def file_key(st: os.stat_result) -> FileKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


_lock = threading.Lock()
_started: dict[tuple[FileKey, int], tuple[AheadSource, int]] = {}  # -> (member, its fd)


def prestart(path: str) -> None:
    """Start decompressing the image at `path` if it begins with a zstd member."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and os.pread(fd, 4, 0) == ZSTD_MAGIC:
            member = zstd_member(fd, 0, st.st_size)
            if member is not None:
                with _lock:
                    _started[(file_key(st), 0)] = (member, fd)
                return
    except OSError:
        pass
    os.close(fd)


def claim(fd: int, offset: int) -> AheadSource | None:
    """The member prestarted at `offset` of the file open as `fd`, if there is one."""
    with _lock:
        if not _started:
            return None
        found = _started.pop((file_key(os.fstat(fd)), offset), None)
    if found is None:
        return None
    member, own_fd = found
    member.on_close(lambda: os.close(own_fd))
    return member
