"""What a fuzzing campaign found (issue 19), each as a regression test: bytes that are not
UTF-8 in names and targets, a NUL inside a symlink target, a 4 GiB crc file, a 1 GiB file
that starts like an ELF. None may end in an internal error, a hang or a memory blow-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SAMPLES
from hostile import CRC, large_file, strange_names, zero_padding

from footprint.cli import cli

MAX_ELF_PEAK = 400 << 20  # the bound for the 1 GiB ELF-magic file


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def strange(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("strange") / "strange.img"
    strange_names(path)
    return path


def test_bytes_that_are_not_utf8_are_shown_escaped(strange: Path) -> None:
    r = run("inspect", str(strange), "--files")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert "-rw-r--r--          5 /bin/na\\xffme" in lines
    assert "lrwxrwxrwx          3 /bin/latin -> \\xe9t\\xe9" in lines
    doc = json.loads(run("inspect", str(strange), "--files", "--json").stdout)
    rows = {f["path"]: f for f in doc["files"]}
    assert rows["/bin/na\\xffme"]["size"] == 5
    assert (rows["/bin/latin"]["target"], rows["/bin/latin"]["size"]) == ("\\xe9t\\xe9", 3)
    groups = json.loads(run("components", str(strange), "--by", "file", "--json").stdout)
    assert "/bin/na\\xffme" in {g["name"] for g in groups["groups"]}


def test_a_profile_with_such_names_reads_back_and_diffs_clean(strange: Path, tmp_path) -> None:
    profile = tmp_path / "p.json"
    assert run("profile", str(strange), "-o", str(profile)).exit_code == 0
    profile.read_text(encoding="utf-8")  # valid UTF-8
    r = run("diff", str(profile), str(strange), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["files"] == []


def test_a_symlink_target_ends_at_its_first_nul_as_in_the_kernel(strange: Path) -> None:
    doc = json.loads(run("inspect", str(strange), "--files", "--json").stdout)
    cut = next(f for f in doc["files"] if f["path"] == "/bin/cut")
    assert (cut["target"], cut["size"]) == ("true", 4)


def test_extract_writes_the_bytes_of_the_names(strange: Path, tmp_path) -> None:
    out = tmp_path / "tree"
    r = run("extract", str(strange), str(out))
    assert r.exit_code == 0, r.output
    root = os.fsencode(out)
    with open(root + b"/bin/na\xffme", "rb") as f:
        assert f.read() == b"hello"
    assert os.readlink(root + b"/bin/latin") == b"\xe9t\xe9"
    assert os.readlink(root + b"/bin/cut") == b"true"


def test_a_crc_checksum_is_verified_over_the_whole_file(tmp_path) -> None:
    good, bad = tmp_path / "good.img", tmp_path / "bad.img"
    large_file(good, "data", 1 << 20, start=b"\xff" * 7, magic=CRC)
    large_file(bad, "data", 1 << 20, start=b"\xff" * 7, magic=CRC, wrong=True)
    assert run("inspect", str(good)).exit_code == 0
    r = run("inspect", str(bad))
    assert r.exit_code == 3
    assert r.stderr == (
        "footprint: error: crc cpio checksum mismatch for 'data': header says 0x000006fa, "
        "data sums to 0x000006f9 (at byte 112 of the zstd member's decompressed data; the member "
        "starts at byte 0)\n"
    )


@pytest.mark.slow
def test_a_4_gib_crc_file_is_summed_at_the_reader_s_speed(tmp_path) -> None:
    image = tmp_path / "crc4g.img"
    size = (4 << 30) - 4  # the largest a cpio header can say
    large_file(image, "big", size, start=b"\xff" * 3, magic=CRC)
    assert image.stat().st_size < 256 << 10
    r = run("inspect", str(image), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["totals"]["unique_bytes"] == size


def test_a_1_gib_elf_magic_file_is_counted_not_parsed(tmp_path) -> None:
    image = tmp_path / "elf1g.img"
    large_file(image, "bin/huge", 1 << 30, start=b"\x7fELF\x02\x01\x01")
    assert image.stat().st_size < 64 << 10
    peak = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run([sys.executable, '-m', 'footprint', 'components', '--json', "
        "sys.argv[1]], capture_output=True, text=True)\n"
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stdout.write(r.stdout)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", peak, str(image)], capture_output=True, text=True, check=True
    )
    first, _, out = r.stdout.partition("\n")
    code, kib = map(int, first.split())
    assert code == 0
    assert kib << 10 <= MAX_ELF_PEAK, f"peak {kib >> 10} MiB"
    doc = json.loads(out)
    assert doc["total"]["page_rounded_bytes"] == 1 << 30
    assert doc["warnings"] == [
        "/bin/huge: not parsed: 1024 MiB, above the 64 MiB cap (no program or library of an "
        "initramfs is that large): it counts by its size, and what it loads is not followed"
    ]


def test_an_image_that_decompresses_past_the_bound_is_refused(monkeypatch) -> None:
    import dataclasses

    from footprint.image import codecs

    image = str(SAMPLES / "busybox-gzip.img")  # 1.9 MiB unpacked
    assert {c.name: c.max_unpacked for c in codecs.CODECS} == {
        "gzip": 2 << 30, "bzip2": 2 << 30, "lzma": 2 << 30, "xz": 2 << 30, "lzo": 2 << 30,
        "lz4": 8 << 30, "zstd": 8 << 30,
    }  # fmt: skip

    def bound(n: int) -> None:
        low = tuple(dataclasses.replace(c, max_unpacked=n) for c in codecs.CODECS)
        monkeypatch.setattr(codecs, "CODECS", low)

    bound(1 << 20)
    r = run("inspect", image)
    assert (r.exit_code, r.stderr) == (
        3,
        "footprint: error: refused: it decompresses to more than 1 MiB, more than any "
        "initramfs holds — a decompression bomb?\n",
    )
    bound(2 << 20)
    assert run("inspect", image).exit_code == 0


def test_a_tree_past_the_bound_is_refused(monkeypatch) -> None:
    from footprint.image import reader

    image = str(SAMPLES / "busybox-gzip.img")  # 27 entries
    monkeypatch.setattr(reader, "MAX_TREE_BYTES", 10 * reader.ENTRY_COST)
    r = run("inspect", image)
    assert r.exit_code == 3
    assert r.stderr.startswith("footprint: error: refused: its tree passes 0 MiB of names and ")
    assert "(at entry 10)" in r.stderr


@pytest.mark.slow
def test_zeros_after_the_trailer_are_skipped_whole(tmp_path) -> None:
    """4 GiB of zeros after the trailer inside a zstd member, which the kernel's
    flush_buffer() skips: read past at memory speed (bench/bounds.py times it)."""
    image = tmp_path / "padding.img"
    archive = zero_padding(image, 4 << 30)
    r = run("inspect", str(image), "--json")
    assert r.exit_code == 0, r.output
    (segment,) = json.loads(r.stdout)["segments"]
    assert segment["uncompressed_bytes"] == archive + (4 << 30)
