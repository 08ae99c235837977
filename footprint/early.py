"""Start reading an image while the interpreter is still importing the command line.

`footprint inspect IMAGE` is a race between decompressing IMAGE (~0.11 s for Debian's 126 MiB
zstd initrd) and importing what parses and prints (click, rich: ~0.07 s). Run one after the
other they cost half as much again as the codec alone. So the console script looks at argv
before anything heavy is imported: when it is `inspect` and exactly one of its arguments is a
regular file, a thread starts scanning that file. Once click has parsed the command line,
`inspect` claims the scan if its IMAGE is that same file; otherwise the guess is dropped and
IMAGE is scanned as usual. A wrong guess costs time, never a result.

Only `inspect` does this: the commands that fork (measure, boot, calibrate) must not start
with a thread running.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from footprint.image.reader import Inventory

_Identity = tuple[int, int, int, int]


class _Scan:
    def __init__(self, path: str, identity: _Identity) -> None:
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


def _identity(path: str) -> _Identity | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def start(argv: list[str]) -> None:
    """Begin scanning the image of `inspect …` in `argv` (the arguments after the program)."""
    global _started
    if argv[:1] != ["inspect"] or _started is not None:
        return
    found = [(a, i) for a in argv[1:] if not a.startswith("-") and (i := _identity(a))]
    if len(found) == 1:
        from footprint.image import ahead

        path, identity = found[0]
        ahead.prestart(path)
        _started = _Scan(path, identity)


def claim(path: str) -> Inventory | None:
    """The early scan of `path`, if one was started for that same file; None otherwise."""
    global _started
    scan, _started = _started, None
    if scan is None or _identity(path) != scan.identity:
        return None
    scan.thread.join()
    if scan.error is not None:
        raise scan.error
    return scan.inventory


def main() -> None:
    """The console script: start early if it can, then hand over to click."""
    start(sys.argv[1:])
    from footprint.cli import main as cli_main

    cli_main()
