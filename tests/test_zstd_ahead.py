"""zstd members are decompressed on a second thread: same results, same errors, no thread left.

The ahead path needs the frame's length before decompressing (zstd_frame_size, from the block
headers); anything it cannot vouch for goes through the plain single-threaded path.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import EXPECTED, SAMPLES, real_image

from footprint.errors import BadImage
from footprint.image import ahead
from footprint.image.cpio import newc_entry, newc_trailer
from footprint.image.reader import scan
from footprint.image.segments import ImageReader
from footprint.image.summary import summarize
from footprint.image.zstdframe import zstd_frame_size

try:
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd

ZSTD_SAMPLES = [SAMPLES / "small-zstd.img", SAMPLES / "busybox-early-zstd.img"]
ZSTD_REAL = ["initramfs-tools-zstd.img", "kdump-tools.img"]


def _zstd_offsets(data: bytes) -> list[int]:
    with io.BytesIO(data) as f:
        reader = ImageReader(f)
        for _ in reader.entries():
            pass
        return [s.offset for s in reader.segments if s.codec == "zstd"]


def _pread(data: bytes):
    return lambda n, offset: data[offset : offset + n]


def _frame_sizes_agree(path: Path) -> None:
    data = path.read_bytes()
    offsets = _zstd_offsets(data)
    assert offsets
    for offset in offsets:
        size = zstd_frame_size(_pread(data), offset, len(data))
        assert size == zstd.get_frame_size(memoryview(data)[offset:])


@pytest.mark.parametrize("path", ZSTD_SAMPLES, ids=lambda p: p.name)
def test_frame_size_agrees_with_the_library(path: Path) -> None:
    _frame_sizes_agree(path)


@pytest.mark.integration
@pytest.mark.parametrize("name", ZSTD_REAL)
def test_frame_size_agrees_with_the_library_on_real_images(name: str) -> None:
    _frame_sizes_agree(real_image(name))


def test_frame_size_refuses_what_does_not_add_up() -> None:
    data = (SAMPLES / "small-zstd.img").read_bytes()
    (offset,) = _zstd_offsets(data)
    size = zstd_frame_size(_pread(data), offset, len(data))
    assert size is not None
    for cut in range(offset, offset + size, max(1, size // 200)):
        assert zstd_frame_size(_pread(data[:cut]), offset, cut) is None
    assert zstd_frame_size(_pread(b"\x28\xb5\x2f\xfd\x08"), 0, 5) is None  # reserved bit
    assert zstd_frame_size(_pread(b"\x1f\x8b" + bytes(20)), 0, 22) is None


def _ahead_used(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    made: list[int] = []
    real = ahead.AheadSource

    def spy(*args, **kwargs):
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ahead, "AheadSource", spy)
    return made


@pytest.mark.parametrize("path", ZSTD_SAMPLES, ids=lambda p: p.name)
def test_ahead_path_reads_the_same_as_the_plain_path(path: Path, monkeypatch) -> None:
    made = _ahead_used(monkeypatch)
    ahead = scan(str(path))
    assert made, "the ahead path was not taken for a regular file"
    facts = EXPECTED["images"][path.name]
    assert summarize(ahead).totals.unique_bytes == facts["unique_bytes"]
    with io.BytesIO(path.read_bytes()) as f:  # no file descriptor: the plain path
        plain = ImageReader(f)
        names = [entry.name for entry, _ in plain.entries()]
    assert len(made) == 1
    assert [(s.offset, s.end, s.uncompressed_bytes, s.entries) for s in ahead.segments] == [
        (s.offset, s.end, s.uncompressed_bytes, s.entries) for s in plain.segments
    ]
    assert ahead.entries == len(names)


def test_a_pipe_is_refused_in_one_line(tmp_path: Path) -> None:
    data = (SAMPLES / "small-zstd.img").read_bytes()
    r = subprocess.run(
        [sys.executable, "-m", "footprint", "inspect", "/dev/stdin"],
        input=data,
        capture_output=True,
        check=False,
    )
    assert r.returncode == 2
    assert b"not a regular file" in r.stderr and r.stderr.count(b"\n") == 1


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


def test_errors_inside_the_member_stop_the_thread() -> None:
    """A cpio error in the middle of a valid zstd frame, and corrupt data inside a frame whose
    block headers add up: both are one BadImage, and no decompressing thread is left."""
    before = _threads()
    body = newc_entry("a", 0o100644, b"x" * 300_000) + b"0707" + b"z" * 2000  # broken header
    frame = zstd.compress(body, level=1)
    with pytest.raises(BadImage):
        scan_bytes(frame)
    body = newc_entry("a", 0o100644, os.urandom(300_000)) + newc_trailer()
    good = zstd.compress(body, options={zstd.CompressionParameter.checksum_flag: 1})
    corrupt = bytearray(good)
    corrupt[len(good) // 2] ^= 0x5A  # inside a raw block: only the checksum can tell
    assert zstd_frame_size(_pread(bytes(corrupt)), 0, len(good)) == len(good)
    with pytest.raises(BadImage, match="zstd"):
        scan_bytes(bytes(corrupt))
    assert _threads() <= before


def test_stopping_early_stops_the_thread() -> None:
    before = _threads()
    path = SAMPLES / "busybox-early-zstd.img"
    with open(path, "rb") as f:
        entries = ImageReader(f).entries()
        next(entries)
        next(entries)
        entries.close()
    assert _threads() <= before


_SCAN_DIR: list[Path] = []


@pytest.fixture(autouse=True)
def _scan_dir(tmp_path: Path):
    _SCAN_DIR[:] = [tmp_path]
    yield


def scan_bytes(data: bytes):
    path = _SCAN_DIR[0] / "image"
    path.write_bytes(data)
    return scan(str(path))


def test_truncated_member_reports_truncation_through_the_cli(tmp_path: Path) -> None:
    data = (SAMPLES / "small-zstd.img").read_bytes()
    bad = tmp_path / "cut.img"
    bad.write_bytes(data[: len(data) - 7])
    r = subprocess.run(
        [sys.executable, "-m", "footprint", "inspect", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 3, r.stderr
    assert "truncated" in r.stderr and r.stderr.count("\n") == 1
