"""Malformed images: a one-line error and exit 3, never a traceback, never a hang."""

from __future__ import annotations

import gzip
import stat
import zlib

import pytest
from click.testing import CliRunner
from conftest import EXPECTED, SAMPLES

from footprint.cli import cli, main
from footprint.errors import BadImage
from footprint.image.cpio import newc_entry, newc_trailer
from footprint.image.reader import scan

BAD = sorted(EXPECTED["bad"])


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.mark.parametrize("name", BAD)
def test_bad_sample_exits_3_with_one_line(name: str, capsys) -> None:
    code, out, err = run_main(["inspect", str(SAMPLES / name)], capsys)
    assert code == 3
    assert out == ""
    assert err.startswith("footprint: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


KERNEL_WORDS = {
    "invalid magic": "magic",
    "no cpio magic": "cpio",
    "incorrect cpio method used: use -H newc option": "newc",
    "bad data checksum": "checksum",
    "junk within compressed archive": "junk within compressed archive",
    "read error": "truncated",
    "junk at the end of compressed archive": "ends inside",
}


@pytest.mark.parametrize("name", BAD)
def test_bad_sample_names_the_kernels_complaint(name: str) -> None:
    kernel = EXPECTED["bad"][name]["kernel_error"]
    word = next(w for k, w in KERNEL_WORDS.items() if kernel.startswith(k))
    with pytest.raises(BadImage) as exc:
        scan(str(SAMPLES / name))
    assert word in str(exc.value)


def _image(tmp_path, data: bytes):
    p = tmp_path / "img"
    p.write_bytes(data)
    return str(p)


GOOD_CPIO = (
    newc_entry(".", stat.S_IFDIR | 0o755)
    + newc_entry("init", stat.S_IFREG | 0o755, b"#!/bin/sh\necho hi\n")
    + newc_trailer()
)


def test_handmade_archive_reads(tmp_path) -> None:
    inv = scan(_image(tmp_path, GOOD_CPIO))
    assert inv.entries == 2 and inv.rootfs.nodes["init"].size == 18


TRAILER_END = GOOD_CPIO.rindex(b"TRAILER!!!\0") + 11


@pytest.mark.parametrize("cut", range(1, len(GOOD_CPIO)))
def test_plain_truncated_at_every_byte(tmp_path, cut: int) -> None:
    if cut >= TRAILER_END:  # only the trailer's padding is missing: the kernel is content
        assert scan(_image(tmp_path, GOOD_CPIO[:cut])).entries == 2
        return
    with pytest.raises(BadImage):
        scan(_image(tmp_path, GOOD_CPIO[:cut]))


def test_gzip_truncated_at_every_byte(tmp_path) -> None:
    data = gzip.compress(GOOD_CPIO, mtime=0)
    for cut in range(1, len(data)):
        with pytest.raises(BadImage):
            scan(_image(tmp_path, data[:cut]))


@pytest.mark.parametrize(
    "data, words",
    [
        (b"070701" + b"0" * 94 + b"00000000" + b"00000000", "name size 0"),
        (b"070701" + b"0" * 88 + b"FFFFFFFF" + b"0" * 8, "out of range"),
        (b"070701" + b"Z" * 104, "not hexadecimal"),
        (b"070701" + b"0" * 88 + b"00000004" + b"0" * 8 + b"abcd" + b"\0\0", "NUL"),
        (b"0707" + b"01" + b" 0x" + b"0" * 101, "not hexadecimal"),
        (b"\x00" * 3 + b"0707010", "magic"),  # a cpio that starts unaligned
        (b"\x1f\x8b" + b"\x00" * 30, "gzip"),
        (b"\x28\xb5\x2f\xfd" + b"\xff" * 30, "zstd"),
        (b"BZh9" + b"\x00" * 30, "bzip2"),
        (b"\xfd7zXZ\x00" + b"\x00" * 30, "xz"),
        (b"PK\x03\x04", "invalid magic"),
    ],
)
def test_handmade_malformed_headers(tmp_path, data: bytes, words: str) -> None:
    with pytest.raises(BadImage) as exc:
        scan(_image(tmp_path, data))
    assert words in str(exc.value)


def test_absurd_body_size_is_truncation_not_allocation(tmp_path) -> None:
    entry = newc_entry("big", stat.S_IFREG | 0o644, b"x" * 8)
    size_field = slice(6 + 6 * 8, 6 + 7 * 8)  # c_filesize is the 7th field
    assert entry[size_field] == b"00000008"
    huge = entry[: size_field.start] + b"FFFFFFF0" + entry[size_field.stop :]
    with pytest.raises(BadImage, match="ends inside file data"):
        scan(_image(tmp_path, huge + newc_trailer()))


def test_missing_trailer_is_reported(tmp_path) -> None:
    with pytest.raises(BadImage):
        scan(_image(tmp_path, GOOD_CPIO[: -len(newc_trailer())]))


def test_zero_padding_between_members_is_fine(tmp_path) -> None:
    data = GOOD_CPIO + b"\0" * 100 + gzip.compress(GOOD_CPIO) + b"\0" * 3 + zlib.compress(b"")[:0]
    inv = scan(_image(tmp_path, data))
    assert [s.codec for s in inv.segments] == ["none", "gzip"]
    assert inv.padding_bytes == 103


def test_unaligned_member_after_plain_cpio_is_broken_padding(tmp_path) -> None:
    with pytest.raises(BadImage, match="broken padding"):
        scan(_image(tmp_path, GOOD_CPIO + b"\0" + gzip.compress(GOOD_CPIO)))


def test_empty_and_missing_files(tmp_path) -> None:
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert runner.invoke(cli, ["inspect", str(empty)]).exit_code != 0
    with pytest.raises(BadImage):
        scan(str(empty))


def test_missing_file_is_usage_error(capsys, tmp_path) -> None:
    code, _, err = run_main(["inspect", str(tmp_path / "nope.img")], capsys)
    assert code == 2 and "no such file" in err
