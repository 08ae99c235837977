"""Property: whatever the bytes, the reader returns an Inventory or raises BadImage."""

from __future__ import annotations

import contextlib
import os
import tempfile

from conftest import SAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from footprint.errors import BadImage
from footprint.image.reader import scan

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
