"""The first zstd member of an image, decompressed by a child process from the first
millisecond of `footprint inspect`.

A thread (footprint.image.ahead) hides decompression only partly: it must take the GIL back
after every chunk, and at start-up the GIL is busy importing click and rich. A child forked
before any of that runs the codec on the other core with no GIL to share. It writes into a
small ring of shared memory (SLOTS slots of SLOT bytes) and the two sides pass slot numbers
over two pipes, so no decompressed byte is copied between them.

The protocol on `ready`, child to parent, int64 little-endian:
  first  the frame's compressed length, or 0 if its headers do not add up (the reader then
         takes the member the usual way, which reports what is wrong);
  then   n > 0: slot i % SLOTS holds n bytes; 0: the end; -n: an error message of n bytes
         follows (corrupt data).
On `free`, parent to child, one byte per slot handed back. The child exits when either pipe
closes, or on Ctrl-C (which reaches the whole process group): a parent that dies or stops
early never leaves it behind.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
import sys

# Imported late or not at all: this runs before anything else in `footprint inspect`, and
# every millisecond before the fork is a millisecond on the critical path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from footprint.image.stream import PulledSource

SLOT = 1 << 20
SLOTS = 8
_INT = struct.Struct("<q")


class ForkedZstd:
    """The zstd member at `offset` of the file open as `fd`, decompressing in a child."""

    def __init__(self, fd: int, offset: int, file_size: int) -> None:
        self.offset = offset
        self._ring = mmap.mmap(-1, SLOT * SLOTS)  # MAP_SHARED: the child writes, we read
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        free_r, free_w = os.pipe2(os.O_CLOEXEC)
        try:
            pid = os.fork()
        except OSError:  # no process to spare: the reader decompresses the usual way
            for end in (ready_r, ready_w, free_r, free_w):
                os.close(end)
            raise
        if pid == 0:  # pragma: no cover - the child; it never returns
            os.close(ready_r)
            os.close(free_w)
            _child(fd, offset, file_size, self._ring, ready_w, free_r)
        os.close(ready_w)
        os.close(free_r)
        self._pid: int | None = pid
        self._ready, self._free = ready_r, free_w
        self._view = memoryview(self._ring)
        self._slot = -1
        self._frame_size: int | None = None
        # The child is gone if this fails (pull() then says so); not contextlib.suppress:
        # importing contextlib costs 2 ms, before the fork.
        try:  # noqa: SIM105
            os.write(free_w, bytes(SLOTS))
        except BrokenPipeError:
            pass

    def frame_size(self) -> int | None:
        """The member's compressed length (the child's first message); None: not a frame."""
        if self._frame_size is None:
            size = self._message()
            self._frame_size = size if size > 0 else 0
        return self._frame_size or None

    def pull(self) -> memoryview:
        """The next decompressed chunk, a view of the ring valid until the next pull()."""
        import contextlib

        from footprint.errors import BadImage

        if self._slot >= 0:  # the previous chunk is consumed (a child that is done has gone)
            with contextlib.suppress(BrokenPipeError):
                os.write(self._free, b"\0")
        n = self._message()
        if n < 0:
            detail = self._read(-n).decode(errors="replace")
            raise BadImage(f"corrupt zstd data: {detail}", self.offset)
        if n == 0:
            self.close()
            return memoryview(b"")
        self._slot += 1
        start = (self._slot % SLOTS) * SLOT
        return self._view[start : start + n]

    def close(self) -> None:
        """Stop and reap the child (it exits on the closed pipes, or is killed)."""
        import contextlib
        import signal

        pid, self._pid = self._pid, None
        if pid is None:
            return
        os.close(self._ready)
        os.close(self._free)
        with contextlib.suppress(ProcessLookupError):  # done already, or reaped elsewhere
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)

    def kill(self) -> None:
        """Kill the child, if it has not been reaped (close() still reaps it)."""
        import contextlib
        import signal

        pid = self._pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _message(self) -> int:
        (value,) = _INT.unpack(self._read(_INT.size))
        return int(value)

    def _read(self, n: int) -> bytes:
        parts = []
        while n > 0:
            part = os.read(self._ready, n)
            if not part:
                from footprint.errors import EnvironmentUnavailable

                raise EnvironmentUnavailable(
                    "the process decompressing the zstd member was killed (out of memory?)"
                )
            parts.append(part)
            n -= len(part)
        return b"".join(parts)


def _child(fd: int, offset: int, file_size: int, ring: mmap.mmap, ready: int, free: int) -> None:
    """Decompress into the ring until done or the parent goes away; never returns."""
    code = 0
    try:  # Ctrl-C reaches this process too: KeyboardInterrupt, then a silent exit below
        import zstandard

        from footprint.image.zstdframe import frame_reader, zstd_frame_size

        size = zstd_frame_size(lambda n, at: os.pread(fd, n, at), offset, file_size)
        os.write(ready, _INT.pack(size or 0))
        if size:
            reader = frame_reader(fd, offset, size, read_size=SLOT)
            view, slot = memoryview(ring), 0
            while os.read(free, 1):  # empty: the parent closed its end
                start = (slot % SLOTS) * SLOT
                n = 0
                try:
                    while n < SLOT and (got := reader.readinto(view[start + n : start + SLOT])):
                        n += got
                except zstandard.ZstdError as e:
                    message = str(e).encode()
                    os.write(ready, _INT.pack(-len(message)) + message)
                    break
                os.write(ready, _INT.pack(n))
                if n == 0:
                    break
                slot += 1
    except BaseException:  # a closed pipe, Ctrl-C: nothing to report to anyone
        code = 1
    finally:
        os._exit(code)


FileKey = tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns

_started: dict[tuple[FileKey, int], ForkedZstd] = {}  # filled before any thread runs
_forked: list[ForkedZstd] = []  # every one made, claimed or not, for abandon()


def file_key(st: os.stat_result) -> FileKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def prestart(path: str) -> None:
    """Start decompressing the image at `path` if it begins with a zstd member.

    Only from a process with no other thread yet (forking with threads running is unsafe).
    """
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        st = os.fstat(fd)
        offset = first_zstd_member(fd) if stat.S_ISREG(st.st_mode) else None
        if offset is not None:
            member = ForkedZstd(fd, offset, st.st_size)
            _started[(file_key(st), offset)] = member
            _forked.append(member)
    except OSError:
        pass
    finally:
        os.close(fd)  # the child has its own


def abandon() -> None:
    """Stop every child prestart() made: the guess was wrong. One nobody claimed is closed
    here; one a reader holds is killed, and that reader stops on it and closes it."""
    while True:  # popitem(), like claim()'s pop(): whoever takes a member owns it
        try:
            _, member = _started.popitem()
        except KeyError:
            break
        member.close()
    for member in list(_forked):
        member.kill()
    _forked.clear()


def first_zstd_member(fd: int) -> int | None:
    """Where the image's first zstd member starts, if it is the first compressed one: at 0,
    or after plain cpio archives (an early microcode cpio) and zero padding.

    Only a guess, from newc headers' name and file sizes: the reader claims the member only
    if it finds one at this very offset, so anything unexpected here just gives up.
    """
    from footprint.image.zstdframe import ZSTD_MAGIC

    pos = 0
    for _ in range(1 << 16):  # an early cpio has a handful of entries
        head = os.pread(fd, 110, pos)
        if head[:4] == ZSTD_MAGIC:
            return pos
        if head[:1] == b"\0":  # padding between members
            zeros = os.pread(fd, 1 << 16, pos)
            skipped = len(zeros) - len(zeros.lstrip(b"\0"))
            if not skipped:
                return None
            pos += skipped
            continue
        if len(head) < 110 or head[:6] not in (b"070701", b"070702"):
            return None  # another codec, or not an image
        try:
            filesize, namesize = int(head[54:62], 16), int(head[94:102], 16)
        except ValueError:
            return None
        pos += -(-(110 + namesize) // 4) * 4 + -(-filesize // 4) * 4
    return None


def claim(fd: int, offset: int) -> PulledSource | None:
    """The member prestarted at `offset` of the file open as `fd`, if there is one."""
    from footprint.errors import FootprintError

    if not _started:
        return None
    member = _started.pop((file_key(os.fstat(fd)), offset), None)  # atomic: one claimant
    if member is None:
        return None
    try:
        size = member.frame_size()
    except FootprintError:  # the child died before it started: read the usual way
        size = None
    if size is None:
        member.close()
        return None
    from footprint.image.stream import PulledSource

    return PulledSource(member.pull, end_offset=offset + size, close=member.close)
