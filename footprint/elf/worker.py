"""lief in a worker process: its import and its parsing overlap the main process's
decompression, and a crash or hang in lief costs one file a warning, never the run.

The parent streams batches of (path, bytes, what) through a pipe from a sender thread (so the
decompressor never waits on the child) and collects facts on a receiver thread. If the child
dies or stops answering, the batches it had not answered are parsed again one file at a time
in fresh children, and the file that kills one of those is reported, not parsed. `what` is
ELF (an ELF file's facts: facts.read_facts) or MODULE (a kernel module's .modinfo:
modules.read_modinfo).
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue
import signal
import threading
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

from footprint.elf.facts import OTHER, ElfFacts

ELF, MODULE = "elf", "module"
Item = tuple[str, bytes, str]  # path, bytes, what to read of them

BATCH_BYTES = 2 << 20
OUTBOX_BATCHES = 2  # batches waiting for the child, beyond the one it parses
FILE_TIMEOUT = 20.0  # seconds one file may take when parsed alone


def _child(conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    import lief

    from footprint.elf import facts, modules

    lief.logging.disable()
    readers = {
        ELF: (facts.read_facts, facts.parser_config(lief)),
        MODULE: (modules.read_modinfo, facts.parser_config(lief, notes=False)),
    }
    while True:
        try:
            batch = pickle.loads(conn.recv_bytes())
        except EOFError:
            return
        if batch is None:
            return
        out = []
        for path, data, what in batch:
            read, cfg = readers[what]
            try:
                out.append((what, read(lief, cfg, path, data)))
            except Exception as e:  # lief raising on hostile input
                out.append((what, _failed(path, data, f"{e}")))
        conn.send_bytes(pickle.dumps(out))


def _failed(path: str, data: bytes, error: str) -> dict[str, Any]:
    return {"path": path, "size": len(data), "kind": OTHER, "error": error}


class _Child:
    def __init__(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=_child, args=(child_conn,), daemon=True)
        self.proc.start()
        child_conn.close()

    def stop(self) -> None:
        try:
            self.conn.close()
        finally:
            if self.proc.is_alive():
                self.proc.kill()
            self.proc.join(5)

    def describe_death(self) -> str:
        code = self.proc.exitcode
        if code is not None and code < 0:
            return f"lief crashed on it ({signal.Signals(-code).name})"
        return "lief did not finish parsing it in time" if code is None else "lief failed on it"


class ElfWorker:
    """Context manager: submit() ELF files as they stream past, then results()."""

    def __init__(self, batch_bytes: int = BATCH_BYTES) -> None:
        self._batch_bytes = batch_bytes
        self._batch: list[Item] = []
        self._batch_size = 0
        self._child: _Child | None = None
        # Bounded: when lief is slower than the decompressor, submit() waits instead of
        # holding every ELF file of the image in memory.
        self._outbox: queue.Queue[list[Item] | None] = queue.Queue(OUTBOX_BATCHES)
        self._in_flight: deque[list[Item]] = deque()
        self._facts: dict[str, ElfFacts] = {}
        self._modinfo: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> ElfWorker:
        self._child = _Child()
        for target in (self._send_loop, self._receive_loop):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._outbox.put(None)
        if self._child is not None:
            self._child.stop()
        for t in self._threads:
            t.join(5)

    @property
    def pid(self) -> int | None:
        return self._child.proc.pid if self._child else None

    # -- main thread ------------------------------------------------------------------------
    def submit(self, path: str, data: bytes, what: str = ELF) -> None:
        self._batch.append((path, data, what))
        self._batch_size += len(data)
        if self._batch_size >= self._batch_bytes:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            with self._lock:
                self._in_flight.append(self._batch)
            self._outbox.put(self._batch)
            self._batch, self._batch_size = [], 0

    def results(self, timeout: float = 300.0) -> dict[str, ElfFacts]:
        """Every submitted file's facts; waits for the child, recovers from its death."""
        self._flush()
        self._outbox.put(None)  # the child exits once it has answered everything before it
        assert self._child is not None
        receiver = self._threads[1]
        receiver.join(timeout)
        if receiver.is_alive():  # lief hangs: stop it, and redo what it had not answered
            self._child.stop()
            receiver.join(5)
        with self._lock:
            leftover = [item for batch in self._in_flight for item in batch]
            self._in_flight.clear()
        if leftover:
            self._threads[0].join(1.0)  # let the sender see the sentinel before the pipe closes
            self._child.stop()
            self._parse_alone(leftover)
        return self._facts

    def modinfo(self) -> dict[str, dict[str, Any]]:
        """Every submitted module's modinfo (name, firmware or error), after results()."""
        return self._modinfo

    def _keep(self, what: str, answer: dict[str, Any]) -> None:
        if what == MODULE:
            self._modinfo[answer["path"]] = answer
        else:
            self._facts[answer["path"]] = ElfFacts.from_dict(answer)

    def _parse_alone(self, items: list[Item]) -> None:
        """One file per request, in fresh children as needed: find what kills lief."""
        child: _Child | None = None
        try:
            for path, data, what in items:
                if child is None:
                    child = _Child()
                try:
                    child.conn.send_bytes(pickle.dumps([(path, data, what)]))
                    if not child.conn.poll(FILE_TIMEOUT + 1.0):
                        raise TimeoutError
                    ((_, answer),) = pickle.loads(child.conn.recv_bytes())
                    self._keep(what, answer)
                except (EOFError, OSError, TimeoutError):
                    child.stop()
                    self._keep(what, _failed(path, data, child.describe_death()))
                    child = None
        finally:
            if child is not None:
                child.stop()

    # -- threads ----------------------------------------------------------------------------
    def _send_loop(self) -> None:
        assert self._child is not None
        conn = self._child.conn
        broken = False
        while True:
            batch = self._outbox.get()
            if not broken:
                try:
                    conn.send_bytes(pickle.dumps(batch))
                except (OSError, ValueError, TypeError):  # the child or the pipe is gone:
                    # results() redoes what was not answered
                    broken = True
            if batch is None:
                return

    def _receive_loop(self) -> None:
        assert self._child is not None
        conn = self._child.conn
        while True:
            try:
                answers: list[tuple[str, dict[str, Any]]] = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):  # the child exited, normally or not
                return
            with self._lock:
                self._in_flight.popleft()
                for what, answer in answers:
                    self._keep(what, answer)
