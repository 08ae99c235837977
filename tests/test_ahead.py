"""Every compressed member, decompressed as the parser asks (stream.BoundedSource): the member
ends exactly where the next one starts, a codec's error is the reader's one-line BadImage,
and memory stays bounded."""

from __future__ import annotations

import bz2
import lzma
import os
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest
from conftest import EXPECTED, SAMPLES

from footprint.errors import BadImage
from footprint.image.cpio import newc_entry, newc_trailer
from footprint.image.reader import scan

try:
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd

try:
    import lzo  # noqa: F401

    LZO = ["small-lzo.img"]
except ImportError:
    LZO = []

# One member per codec; lz4 last, as the kernel's unlz4 takes what follows it for blocks.
MEMBERS = [
    "busybox-gzip.img",
    "small-bzip2.img",
    "small-lzma.img",
    "small-xz.img",
    "small-zstd.img",
    *LZO,
    "small-lz4.img",
]
MIB = 1 << 20


def _compress(codec: str, data: bytes) -> bytes:
    if codec == "gzip":
        c = zlib.compressobj(6, wbits=31)
        return c.compress(data) + c.flush()
    if codec == "bzip2":
        return bz2.compress(data)
    if codec == "xz":
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    assert codec == "zstd"
    return zstd.compress(data, options={zstd.CompressionParameter.checksum_flag: 1})


def _sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_each_member_ends_where_the_next_one_starts(tmp_path: Path) -> None:
    image, want = b"", []
    for name in MEMBERS:
        data = _sample(name)
        want.append((EXPECTED["images"][name]["segments"][0]["codec"], len(image), len(data)))
        image += data + bytes(-len(data) % 4 + 4)  # zero padding between members
    path = tmp_path / "all.img"
    path.write_bytes(image)
    inv = scan(str(path))
    assert [(s.codec, s.offset, s.compressed_bytes) for s in inv.segments] == want
    assert inv.entries == sum(EXPECTED["images"][n]["entries"] for n in MEMBERS)
    assert inv.padding_bytes == sum(-len(d) % 4 + 4 for d in map(_sample, MEMBERS))


@pytest.mark.parametrize("codec", ["gzip", "bzip2", "xz", "zstd"])
def test_corrupt_data_is_one_bad_image(codec: str, tmp_path: Path) -> None:
    body = newc_entry("a", 0o100644, os.urandom(300_000)) + newc_trailer()
    image = bytearray(_compress(codec, body))
    image[len(image) // 2] ^= 0x5A  # each of these formats checks its data
    path = tmp_path / "corrupt.img"
    path.write_bytes(image)
    with pytest.raises(BadImage, match=f"^corrupt {codec} data: ") as e:
        scan(str(path))
    assert e.value.offset == 0 and "\n" not in str(e.value)


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_a_cpio_error_inside_a_member_is_reported_from_the_reader(
    codec: str, tmp_path: Path
) -> None:
    body = newc_entry("a", 0o100644, b"x" * 300_000) + b"0707" + b"z" * 2000  # broken header
    path = tmp_path / "broken.img"
    path.write_bytes(_compress(codec, body))
    with pytest.raises(BadImage) as e:
        scan(str(path))
    assert str(e.value) == (
        f"no cpio magic (found b'0707zz') (at byte 300112 of the {codec} member's "
        "decompressed data; the member starts at byte 0)"
    )


def test_a_truncated_member_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "cut.img"
    path.write_bytes(_sample("small-zstd.img")[:-7])
    with pytest.raises(BadImage) as e:
        scan(str(path))
    assert str(e.value) == "zstd member is truncated (at byte 0)"


@pytest.mark.slow
@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_peak_memory_is_bounded(codec: str, tmp_path: Path) -> None:
    """256 MiB of 1 MiB files: the reader's promise is 64 MiB + the largest file, however far
    the codec could run ahead of the parser."""
    path = tmp_path / f"big-{codec}.img"
    files = b"".join(newc_entry(f"f{i}", 0o100644, bytes(MIB)) for i in range(256))
    path.write_bytes(_compress(codec, files + newc_trailer()))
    # VmHWM of the process that ran the command: ru_maxrss would count pytest's own pages,
    # which the child held until it exec'ed.
    run = (
        "import runpy, sys\n"
        f"sys.argv = ['footprint', 'inspect', {str(path)!r}]\n"
        "try:\n    runpy.run_module('footprint', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print(open('/proc/self/status').read(), file=sys.stderr)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", run], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert r.returncode == 0, r.stderr
    (peak,) = [int(line.split()[1]) for line in r.stderr.splitlines() if line.startswith("VmHWM")]
    assert peak * 1024 <= 64 * MIB + MIB


def test_a_stalled_parser_holds_a_chunk_not_the_member(tmp_path: Path) -> None:
    """A parser that stalls (here: on its first entry) holds a few MiB of decompressed data,
    not the whole 128 MiB member."""
    path = tmp_path / "big.img"
    files = b"".join(newc_entry(f"f{i}", 0o100644, bytes(MIB)) for i in range(128))
    path.write_bytes(_compress("zstd", files + newc_trailer()))
    del files
    stalled: list[int] = []

    def stall(*_: object) -> None:
        if not stalled:
            stalled.append(1)
            time.sleep(0.5)

    tracemalloc.start()
    try:
        inv = scan(str(path), visit=stall)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert inv.entries == 128
    assert peak < 8 * MIB
