"""Byte sources the reader pulls from: the image file, or a decompressed member of it.

A Source hands out exact reads for headers and cheap skips and chunk views for file data,
so the reader never holds a whole stream or a whole file it does not need.
"""

from __future__ import annotations

import os
import queue
import stat
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO

from footprint.errors import BadImage

READ_CHUNK = 1 << 20  # what is read from the image file at a time


class Truncated(BadImage):
    """The stream ended where more bytes were required."""


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
            # bytes.lstrip is C-speed; memoryviews are converted once per chunk at most.
            tail = buf[pos:] if isinstance(buf, bytes) else bytes(buf[pos:])
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
        """Release what the stream holds (a thread, a helper process); nothing by default."""


class FileSource(Source):
    """A byte range of the image file (the whole file by default)."""

    def __init__(self, f: BinaryIO, start: int = 0, length: int | None = None) -> None:
        super().__init__()
        self._f = f
        self._f.seek(start)
        self._left = length
        self._base = start

    def _fill(self) -> bytes:
        size = READ_CHUNK if self._left is None else min(READ_CHUNK, self._left)
        if size <= 0:
            return b""
        chunk = self._f.read(size)
        if self._left is not None:
            self._left -= len(chunk)
        return chunk

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

    @property
    def whole_file(self) -> bool:
        """Whether this is the plain image file (stream offsets are file offsets), with a
        descriptor that another thread can pread from."""
        if self._left is not None:  # a range of the file (a UKI section), not the file
            return False
        try:
            return stat.S_ISREG(os.fstat(self._f.fileno()).st_mode)  # not a pipe
        except (OSError, AttributeError, ValueError):  # BytesIO and the like
            return False

    @property
    def size(self) -> int:
        return os.fstat(self._f.fileno()).st_size

    @property
    def fileno(self) -> int:
        return self._f.fileno()

    def seek(self, offset: int) -> None:
        """Continue reading at `offset` of the file (after a member read another way)."""
        self._f.seek(offset)
        self._buf, self._pos, self._base, self._eof = b"", 0, offset, False


class AheadSource(Source):
    """A stream produced by a background thread, up to `depth` chunks ahead of its reader.

    For a decompressor that releases the GIL while it works (zstandard): it then runs on
    another core while this thread parses what it has already produced. `produce` returns
    the next chunk, empty at the end; whatever it raises is raised here, by _fill().
    close() stops the thread; a reader that stops early must call it.
    """

    def __init__(self, produce: Callable[[], bytes], end_offset: int, depth: int) -> None:
        super().__init__()
        self.end_offset = end_offset  # where the member ends in the image
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(produce,), name="footprint-decompress", daemon=True
        )
        self._thread.start()

    def _run(self, produce: Callable[[], bytes]) -> None:
        try:
            while True:
                chunk = produce()
                if not self._put(chunk) or not chunk:
                    return
        except BaseException as e:  # handed to the reader, which raises it
            self._put(e)

    def _put(self, item: bytes | BaseException) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self) -> bytes:
        item = self._queue.get()
        if isinstance(item, BaseException):
            self.close()
            raise item
        if not item:
            self._thread.join()
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class PulledSource(Source):
    """A stream whose chunks come from `pull` (empty at the end): a helper process's shared
    ring (footprint.image.forked). A chunk's memory is reused once the next one is pulled,
    so views from chunks() must not outlive the loop that reads them."""

    def __init__(
        self, pull: Callable[[], bytes | memoryview], end_offset: int, close: Callable[[], None]
    ) -> None:
        super().__init__()
        self.end_offset = end_offset
        self._pull, self._close = pull, close

    def _fill(self) -> bytes | memoryview:
        return self._pull()

    def close(self) -> None:
        self._close()


class MultiRangeSource(FileSource):
    """Several byte ranges of one file read as one stream (a UKI's .ucode then .initrd)."""

    def __init__(self, f: BinaryIO, ranges: list[tuple[int, int]]) -> None:
        self._ranges = list(ranges)
        first_start, first_len = self._ranges.pop(0)
        super().__init__(f, first_start, first_len)
        self._base = 0

    def _fill(self) -> bytes:
        chunk = super()._fill()
        while not chunk and self._ranges:
            start, length = self._ranges.pop(0)
            self._f.seek(start)
            self._left = length
            chunk = super()._fill()
        return chunk
