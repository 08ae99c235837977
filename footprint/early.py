"""Start reading an image while the interpreter is still importing the command line.

`footprint inspect IMAGE` is a race between decompressing IMAGE (~0.12 s for Debian's 126 MiB
zstd initrd) and the Python work around it: importing click and rich (~0.06 s), parsing the
cpio headers (~0.03 s). Run one after the other they cost twice the codec alone. So the
console script looks at argv before anything heavy is imported: when it is `inspect` and
exactly one of its arguments is a regular file, a child process starts decompressing that
file's first zstd member (footprint.image.forked), and a thread starts scanning the file.
Once click has parsed the command line, `inspect` claims the scan if its IMAGE is that same
file; otherwise the guess is dropped and IMAGE is scanned as usual. A wrong guess costs
time, never a result.

Only `inspect` does this: the commands that fork (measure, boot, calibrate) must not start
with a thread running.
"""

from __future__ import annotations

import os
import stat
import sys

from footprint.image import forked  # light (os, mmap, struct): it runs before the fork

TYPE_CHECKING = False  # typing costs 5 ms, before the fork
if TYPE_CHECKING:
    from footprint.image.reader import Inventory


class _Scan:
    def __init__(self, path: str, identity: forked.FileKey) -> None:
        import threading

        self.path, self.identity = path, identity
        self.inventory: Inventory | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="footprint-early", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            from footprint.image.reader import scan

            self.inventory = scan(self.path)
        except BaseException as e:  # raised again by claim(), in the main thread
            self.error = e


_started: _Scan | None = None
_claimed = False  # the command used the early scan


def _identity(path: str) -> forked.FileKey | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return forked.file_key(st) if stat.S_ISREG(st.st_mode) else None


def start(argv: list[str]) -> None:
    """Begin reading the image of `inspect …` in `argv` (the arguments after the program)."""
    global _started
    if argv[:1] != ["inspect"] or _started is not None:
        return
    found = [(a, i) for a in argv[1:] if not a.startswith("-") and (i := _identity(a))]
    if len(found) != 1:
        return
    path, identity = found[0]
    forked.prestart(path)  # first: a fork must come before any thread
    # The reader's modules now, while the child starts: the scanning thread can then keep
    # up with the child from its first chunk instead of importing while click imports.
    import footprint.image.reader  # noqa: F401

    _started = _Scan(path, identity)


def claim(path: str) -> Inventory | None:
    """The early scan of `path`, if one was started for that same file; None otherwise."""
    global _started
    scan, _started = _started, None
    if scan is None:
        return None
    if _identity(path) != scan.identity:  # a wrong guess: stop decompressing it
        forked.abandon()
        return None
    scan.thread.join()
    global _claimed
    _claimed = True
    if scan.error is not None:
        raise scan.error
    return scan.inventory


def main() -> None:
    """The console script: start early if it can, then hand over to click."""
    if sys.argv[1:2] == ["inspect"]:
        # No cycle collections in this short run: the imports trigger a dozen of them (~3 ms
        # of a core the decompressing child would rather have), and nothing builds cycles
        # worth collecting.
        import gc

        gc.disable()
    try:
        start(sys.argv[1:])
        from footprint.cli import main as cli_main
    except KeyboardInterrupt:  # before click's handlers exist: the same words and code
        from footprint.errors import EXIT_INTERRUPTED

        sys.stderr.write("footprint: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    try:
        cli_main()
    except SystemExit as e:
        # `inspect` read its image early and printed its answer: it has nothing to clean up
        # (no temporary file, no cgroup; its helper process is reaped), so skip the
        # interpreter's teardown (~10 ms of freeing modules it will never use again).
        if _claimed and isinstance(e.code, int | None):
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except Exception:  # let the interpreter's own exit deal with it
                raise e from None
            os._exit(e.code or 0)
        raise
