"""`footprint inspect` starts reading its image before click is imported (footprint.early).

The guess must never change a result: same output as the in-process command, the right
error when the guess was wrong, and no early work for any other command.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner
from conftest import EXPECTED, SAMPLES

from footprint import early
from footprint.cli import cli
from footprint.errors import BadImage, EnvironmentUnavailable
from footprint.image import forked
from footprint.image.cpio import newc_entry, newc_trailer
from footprint.image.reader import scan
from footprint.image.segments import ImageReader

try:
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd

ZSTD = SAMPLES / "busybox-early-zstd.img"  # an early plain cpio, then zstd
ZSTD_AT_0 = SAMPLES / "small-zstd.img"  # the member the child decompresses starts at 0
GZIP = SAMPLES / "busybox-gzip.img"


def console(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The console script's entry (footprint.early:main), as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "footprint", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


@pytest.mark.parametrize("image", [ZSTD, GZIP], ids=lambda p: p.name)
def test_same_document_as_the_in_process_command(image: Path) -> None:
    r = console("inspect", "--json", "--files", str(image))
    assert r.returncode == 0, r.stderr
    inproc = CliRunner().invoke(cli, ["inspect", "--json", "--files", str(image)])
    assert inproc.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc == json.loads(inproc.output)
    assert doc["totals"]["unique_bytes"] == EXPECTED["images"][image.name]["unique_bytes"]


def test_text_output_is_the_same_too() -> None:
    r = console("inspect", str(ZSTD))
    assert r.returncode == 0, r.stderr
    assert r.stdout == CliRunner().invoke(cli, ["inspect", str(ZSTD)]).output


def test_a_wrong_guess_is_dropped(tmp_path: Path) -> None:
    # `size` is the one existing file on this command line, but it is --sort's value: the
    # early scan reads it (and fails on it); IMAGE is missing, and that is what is reported.
    (tmp_path / "size").write_bytes(b"not an image at all")
    r = console("inspect", "--sort", "size", "missing.img", cwd=tmp_path)
    assert r.returncode == 2
    assert "missing.img" in r.stderr and "no such file" in r.stderr.lower()
    assert "magic" not in r.stderr
    # The image after a file-valued option: two candidates, no guess, the right answer.
    (tmp_path / "size").write_bytes(ZSTD.read_bytes())
    r = console("inspect", "--files", "--sort", "size", str(GZIP), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["segments"][0]["codec"] == "gzip"


def test_errors_of_the_early_scan_are_the_usual_ones() -> None:
    bad = SAMPLES / "bad" / "crc-mismatch.img"
    r = console("inspect", str(bad))
    assert r.returncode == 3
    assert r.stderr.startswith("footprint: error: ") and r.stderr.count("\n") == 1


def test_claim_only_the_same_file(tmp_path: Path) -> None:
    early.start(["inspect", str(ZSTD)])
    assert early.claim(str(GZIP)) is None  # a different file: dropped
    assert early.claim(str(ZSTD)) is None  # dropped means gone
    early.start(["inspect", "--json", str(ZSTD)])
    inv = early.claim(str(ZSTD))
    assert inv is not None and inv.entries == EXPECTED["images"][ZSTD.name]["entries"]


def test_only_inspect_starts_early() -> None:
    for argv in (["measure", str(ZSTD)], ["components", str(ZSTD)], ["inspect"], []):
        early.start(argv)
        assert early.claim(str(ZSTD)) is None


# -- the child that decompresses the first zstd member (footprint.image.forked) -------------


def _children() -> list[psutil.Process]:
    """This process's children, zombies included: a child not reaped counts."""
    return psutil.Process().children()


def _prestarted(path: Path) -> tuple[forked.ForkedZstd, int]:
    forked.prestart(str(path))
    ((member),) = forked._started.values()
    return member, len(_children())


@pytest.fixture
def no_threads():
    """prestart() forks only from a process with one thread: let earlier tests' finish."""
    for t in threading.enumerate():
        if t is not threading.main_thread():
            t.join(timeout=5)
    left = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    assert not left, f"threads left running by earlier tests: {left}"
    forked._started.clear()
    yield
    forked.abandon()


def test_the_child_reads_what_the_plain_path_reads(no_threads) -> None:
    member, children = _prestarted(ZSTD_AT_0)
    assert children == 1
    with open(ZSTD_AT_0, "rb") as f:
        reader = ImageReader(f)
        names = [entry.name for entry, _ in reader.entries()]
    assert not forked._started, "the reader claimed the prestarted member"
    assert _children() == []  # reaped
    with io.BytesIO(ZSTD_AT_0.read_bytes()) as f:  # no file descriptor: the plain path
        plain = ImageReader(f)
        assert names == [entry.name for entry, _ in plain.entries()]
    assert [(s.end, s.uncompressed_bytes) for s in reader.segments] == [
        (s.end, s.uncompressed_bytes) for s in plain.segments
    ]


def test_the_child_reports_corrupt_data_and_is_reaped(no_threads, tmp_path: Path) -> None:
    body = newc_entry("a", 0o100644, os.urandom(3 << 20)) + newc_trailer()
    image = bytearray(zstd.compress(body, options={zstd.CompressionParameter.checksum_flag: 1}))
    image[len(image) // 2] ^= 0x5A  # inside a raw block: only the checksum can tell
    path = tmp_path / "corrupt.img"
    path.write_bytes(image)
    _prestarted(path)
    with pytest.raises(BadImage, match="corrupt zstd data"):
        scan(str(path))
    assert _children() == []


def test_a_frame_that_does_not_add_up_goes_the_plain_way(no_threads, tmp_path: Path) -> None:
    path = tmp_path / "cut.img"
    path.write_bytes(ZSTD_AT_0.read_bytes()[:-9])
    _prestarted(path)
    with pytest.raises(BadImage, match="truncated"):
        scan(str(path))
    assert _children() == []


def test_a_reader_that_stops_early_stops_the_child(no_threads) -> None:
    _prestarted(ZSTD_AT_0)
    with open(ZSTD_AT_0, "rb") as f:
        entries = ImageReader(f).entries()
        next(entries)
        entries.close()
    assert _children() == []


def test_no_fork_once_a_thread_runs(no_threads) -> None:
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        forked.prestart(str(ZSTD_AT_0))
        assert not forked._started and _children() == []
    finally:
        stop.set()
        t.join()


def _helpers_of(image: Path) -> list[psutil.Process]:
    """footprint processes still running on `image` (a child outliving its parent)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "footprint" in cmd and str(image) in cmd and p.pid != os.getpid():
            found.append(p)
    return found


def _wait_gone(image: Path) -> list[psutil.Process]:
    deadline = time.monotonic() + 5
    while (left := _helpers_of(image)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_an_unclaimed_child_exits_with_its_parent(tmp_path: Path) -> None:
    image = tmp_path / "guess.img"  # the wrong guess: --sort's value is a zstd image
    image.write_bytes(ZSTD_AT_0.read_bytes())
    r = subprocess.run(
        [sys.executable, "-m", "footprint", "inspect", "--sort", str(image), "missing.img"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert r.returncode == 2
    assert _wait_gone(image) == []


def test_ctrl_c_leaves_no_child(tmp_path: Path) -> None:
    # Large enough that decompression is still running when SIGINT comes.
    image = tmp_path / "big.img"
    body = newc_entry("big", 0o100644, os.urandom(1 << 20) * 400) + newc_trailer()
    image.write_bytes(zstd.compress(body, level=1))
    proc = subprocess.Popen(
        [sys.executable, "-m", "footprint", "inspect", str(image)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 5
    while len(_helpers_of(image)) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert _wait_gone(image) == []


def test_a_killed_child_is_an_environment_error(no_threads, tmp_path: Path) -> None:
    path = tmp_path / "big.img"  # more than the ring holds: the child waits for the reader
    body = newc_entry("big", 0o100644, os.urandom(1 << 20) * (forked.SLOTS + 8)) + newc_trailer()
    path.write_bytes(zstd.compress(body, level=1))
    member, _ = _prestarted(path)
    assert member.frame_size() == path.stat().st_size
    assert member._pid is not None
    os.kill(member._pid, signal.SIGKILL)
    with pytest.raises(EnvironmentUnavailable, match="killed"):
        scan(str(path))
    assert _children() == []


def test_the_member_after_an_early_cpio_is_prestarted_too(no_threads) -> None:
    # Debian with microcode, dracut: a plain cpio first, then the compressed main part.
    facts = EXPECTED["images"][ZSTD.name]
    zstd_offset = next(s["offset"] for s in facts["segments"] if s["codec"] == "zstd")
    assert zstd_offset > 0
    fd = os.open(ZSTD, os.O_RDONLY)
    try:
        assert forked.first_zstd_member(fd) == zstd_offset
    finally:
        os.close(fd)
    _prestarted(ZSTD)
    inv = scan(str(ZSTD))
    assert not forked._started, "the reader claimed the prestarted member"
    assert _children() == []
    assert inv.entries == facts["entries"]


@pytest.mark.parametrize("name", ["busybox-gzip.img", "multi-member.img", "small-none.img"])
def test_no_child_when_the_first_compressed_member_is_not_zstd(name: str, no_threads) -> None:
    forked.prestart(str(SAMPLES / name))
    assert not forked._started and _children() == []


def test_a_wrong_guess_stops_its_child(no_threads, tmp_path: Path) -> None:
    path = tmp_path / "guessed.img"  # more than the ring holds: the child is still at work
    body = newc_entry("big", 0o100644, os.urandom(1 << 20) * (forked.SLOTS + 24)) + newc_trailer()
    path.write_bytes(zstd.compress(body, level=1))
    early.start(["inspect", str(path)])
    assert len(_children()) == 1
    assert early.claim(str(GZIP)) is None  # click's IMAGE was another file
    for t in threading.enumerate():
        if t.name == "footprint-early":
            t.join(timeout=10)
            assert not t.is_alive()
    assert _children() == []


def test_abandon_stops_children_claimed_or_not(no_threads, tmp_path: Path) -> None:
    path = tmp_path / "big.img"
    body = newc_entry("big", 0o100644, os.urandom(1 << 20) * (forked.SLOTS + 8)) + newc_trailer()
    path.write_bytes(zstd.compress(body, level=1))
    _prestarted(path)
    forked.abandon()  # nobody claimed it: closed and reaped at once
    assert _children() == [] and not forked._started
    _prestarted(path)
    with open(path, "rb") as f:
        member = forked.claim(f.fileno(), 0)
    assert member is not None
    forked.abandon()  # a reader holds it: killed, and the reader stops on it
    with pytest.raises(EnvironmentUnavailable):
        while member._fill():
            pass
    member.close()
    assert _children() == []
