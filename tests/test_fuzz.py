"""Property: whatever the bytes, the reader returns an Inventory or raises BadImage; every
finding of the fuzzing campaign (fuzz/) stays fixed; a brief campaign finds nothing."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import SAMPLES, need
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from footprint.errors import BadImage
from footprint.image.reader import scan

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from fuzz.targets import TARGETS  # noqa: E402

FINDINGS = sorted((ROOT / "fuzz" / "findings").glob("*/*"))

SEEDS = [
    (SAMPLES / n).read_bytes()
    for n in (
        "small-none.img",
        "small-crc.img",
        "small-zstd.img",
        "small-xz.img",
        "small-lz4.img",
        "small-bzip2.img",
        "small-lzma.img",
        "small-hardlinks.img",
        "multi-member.img",
        "overwrite.img",
        "devices.img",
    )
]
EXAMPLES = int(os.environ.get("FOOTPRINT_FUZZ_EXAMPLES", "300"))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "zero", "hex"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "zero":
            data[pos : pos + draw(st.integers(1, 64))] = b"\0" * 4
        elif op == "hex":  # an absurd header field: large sizes are the classic parser bug
            data[pos : pos + 8] = draw(st.sampled_from([b"FFFFFFFF", b"7FFFFFFF", b"00001000"]))
    return bytes(data)


def _check(data: bytes) -> None:
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        with contextlib.suppress(BadImage):
            scan(f.name)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_images_never_crash(data: bytes) -> None:
    _check(data)


@settings(max_examples=EXAMPLES // 3, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_crash(data: bytes) -> None:
    _check(data)


@pytest.mark.parametrize("finding", FINDINGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_finding_of_the_campaign_stays_fixed(finding: Path) -> None:
    TARGETS[finding.parent.name](finding.read_bytes())  # returns, or raises a FootprintError


@pytest.mark.slow
@pytest.mark.integration
def test_a_brief_campaign_finds_nothing() -> None:
    """Each target under atheris for a few seconds (CI's minute of fuzzing)."""
    need(importlib.util.find_spec("atheris"), "atheris is not installed (pip install atheris)")
    seconds = os.environ.get("FOOTPRINT_FUZZ_SECONDS", "12")
    r = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "campaign.py"), "--time", seconds],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:]}
    assert set(rows) == set(TARGETS)
    assert all(int(row[1]) > 100 for row in rows.values()), r.stdout  # inputs tried
