"""Byte sources the reader pulls from: the image file, or a decompressed member of it.

A Source hands out exact reads for headers and cheap skips and chunk views for file data,
so the reader never holds a whole stream or a whole file it does not need.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import BinaryIO

from footprint.errors import BadImage

READ_CHUNK = 1 << 20  # what is read from the image file at a time


class Truncated(BadImage):
    """The stream ended where more bytes were required."""


@functools.lru_cache(maxsize=4)
def _zeros(n: int) -> bytes:
    return bytes(n)


class TooLarge(BadImage):
    """Decompressed data past the bound that keeps time and memory finite."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"refused: it decompresses to more than {limit >> 20} MiB, more than any "
            "initramfs holds — a decompression bomb?"
        )


class Source:
    """A stream of bytes consumed front to back; subclasses supply _fill()."""

    def __init__(self) -> None:
        self._buf: bytes | memoryview = b""
        self._pos = 0
        self._base = 0  # stream offset of _buf[0]
        self._eof = False

    # -- to implement -------------------------------------------------------------------
    def _fill(self) -> bytes | memoryview:
        """The next chunk of the stream, or empty at its end."""
        raise NotImplementedError

    # -- consuming ----------------------------------------------------------------------
    @property
    def offset(self) -> int:
        """Bytes consumed so far."""
        return self._base + self._pos

    def _advance(self) -> bool:
        """Replace the exhausted buffer with the next chunk; False at the end of the stream."""
        if self._eof:
            return False
        chunk = self._fill()
        self._base += len(self._buf)
        self._buf, self._pos = chunk, 0
        if not chunk:
            self._eof = True
            return False
        return True

    def read(self, n: int, what: str = "data") -> bytes:
        """Exactly n bytes; Truncated if the stream ends first."""
        buf, pos = self._buf, self._pos
        end = pos + n
        if end <= len(buf):
            self._pos = end
            return bytes(buf[pos:end])
        start = self.offset
        parts = [bytes(buf[pos:])]
        need = n - (len(buf) - pos)
        self._pos = len(buf)
        while need > 0:
            if not self._advance():
                raise Truncated(f"image ends inside {what}: {n - need} of {n} bytes", start)
            take = min(need, len(self._buf))
            parts.append(bytes(self._buf[:take]))
            self._pos = take
            need -= take
        return b"".join(parts)

    def skip(self, n: int, what: str = "data") -> None:
        """Consume n bytes without copying them."""
        start = self.offset
        need = n
        while True:
            left = len(self._buf) - self._pos
            if need <= left:
                self._pos += need
                return
            need -= left
            self._pos = len(self._buf)
            if not self._advance():
                raise Truncated(f"image ends inside {what}: {n - need} of {n} bytes", start)

    def chunks(self, n: int, what: str = "data") -> Iterator[memoryview]:
        """Consume n bytes, yielding them as views valid until the next call."""
        start = self.offset
        need = n
        while need > 0:
            left = len(self._buf) - self._pos
            if left == 0:
                if not self._advance():
                    raise Truncated(f"image ends inside {what}: {n - need} of {n} bytes", start)
                continue
            take = min(need, left)
            view = memoryview(self._buf)[self._pos : self._pos + take]
            self._pos += take
            need -= take
            yield view

    def peek(self, n: int) -> bytes:
        """Up to n next bytes without consuming them (fewer only at the end of the stream)."""
        while len(self._buf) - self._pos < n:
            rest = bytes(self._buf[self._pos :])
            if self._eof:
                return rest
            chunk = self._fill()
            if not chunk:
                self._eof = True
                return rest
            # Rebase so the unread rest and the new chunk form one buffer.
            self._base += self._pos
            self._buf, self._pos = rest + bytes(chunk), 0
        return bytes(self._buf[self._pos : self._pos + n])

    def skip_zeros(self) -> int:
        """Consume a run of NUL bytes; return how many."""
        count = 0
        while True:
            buf, pos = self._buf, self._pos
            end = len(buf)
            if pos == end:
                if not self._advance():
                    return count
                continue
            # A chunk of zeros compares equal at memcmp speed; lstrip (300 MB/s) only finds
            # where the run ends. Memoryviews are converted once per chunk at most.
            tail = buf[pos:] if isinstance(buf, bytes) else bytes(buf[pos:])
            if tail == _zeros(len(tail)):
                stripped = len(tail)
            else:
                stripped = len(tail) - len(tail.lstrip(b"\0"))
            count += stripped
            self._pos = pos + stripped
            if self._pos < end:
                return count

    def remaining(self) -> Iterator[memoryview]:
        """Consume the rest of the stream, chunk by chunk."""
        while self._pos < len(self._buf) or self._advance():
            view = memoryview(self._buf)[self._pos :]
            self._pos = len(self._buf)
            yield view

    def at_end(self) -> bool:
        return self._pos >= len(self._buf) and not self._advance()

    def close(self) -> None:
        """Release what the stream holds (a decompressor); nothing by default."""


class FileSource(Source):
    """A byte range of the image file (the whole file by default)."""

    def __init__(self, f: BinaryIO, start: int = 0, length: int | None = None) -> None:
        super().__init__()
        self._f = f
        self._f.seek(start)
        self._left = length
        self._base = start
        # Every chunk is read into this one buffer: a fresh megabyte per read costs its page
        # faults (~4 ms of inspect's 140 on initramfs-tools-zstd). Views of it are valid until
        # the next _fill, as chunks() promises; decompressors copy what input they keep.
        self._chunk = memoryview(b"")

    def _fill(self) -> memoryview:
        size = READ_CHUNK if self._left is None else min(READ_CHUNK, self._left)
        if size <= 0:
            return memoryview(b"")
        if len(self._chunk) < size:
            self._chunk = memoryview(bytearray(size))
        n = self._f.readinto(self._chunk[:size])  # type: ignore[attr-defined]
        if self._left is not None:
            self._left -= n
        return self._chunk[:n]

    def take(self, limit: int) -> memoryview:
        """Up to `limit` buffered bytes (refilling when empty) for a decompressor to consume."""
        if self._pos >= len(self._buf) and not self._advance():
            return memoryview(b"")
        end = min(len(self._buf), self._pos + limit)
        view = memoryview(self._buf)[self._pos : end]
        self._pos = end
        return view

    def give_back(self, n: int) -> None:
        """Return the last n bytes of what take() handed out (a decompressor's unused input)."""
        if n > self._pos:
            raise AssertionError("give_back beyond the current chunk")
        self._pos -= n


class BoundedSource(Source):
    """A decompressed member, refused past `limit` bytes (TooLarge): what keeps the time and
    memory a decompression bomb costs finite.

    It decompresses on the reader's own thread, chunk by chunk as the parser asks. A thread
    ahead of the parser was measured here (2 cores, bench/inspect.py): it made every codec
    slower or no faster (zstd 216 → 154 ms serial, lz4 128 → 105, xz 1554 → 1473, gzip 498 →
    505 on Debian's real images), the hand-off of each chunk costing more than the parsing it
    overlapped.
    """

    def __init__(self, member: Source, limit: int | None = None) -> None:
        super().__init__()
        self._member = member
        self._limit = limit
        self._produced = 0

    def _fill(self) -> bytes | memoryview:
        chunk = self._member._fill()
        self._produced += len(chunk)
        if self._limit is not None and self._produced > self._limit:
            raise TooLarge(self._limit)
        return chunk

    def close(self) -> None:
        self._member.close()


class MultiRangeSource(FileSource):
    """Several byte ranges of one file read as one stream (a UKI's .ucode then .initrd)."""

    def __init__(self, f: BinaryIO, ranges: list[tuple[int, int]]) -> None:
        self._ranges = list(ranges)
        first_start, first_len = self._ranges.pop(0)
        super().__init__(f, first_start, first_len)
        self._base = 0

    def _fill(self) -> memoryview:
        chunk = super()._fill()
        while not chunk and self._ranges:
            start, length = self._ranges.pop(0)
            self._f.seek(start)
            self._left = length
            chunk = super()._fill()
        return chunk
