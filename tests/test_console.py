"""`footprint inspect` as a user runs it (python -m footprint): the same answers as the
in-process command, whole paths when piped, one-line errors, Ctrl-C, and a light import."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner
from conftest import EXPECTED, SAMPLES

from footprint.cli import cli
from footprint.image.cpio import newc_entry, newc_trailer
from footprint.image.reader import scan
from footprint.image.summary import summarize
from footprint.report import inspect as render

ZSTD = SAMPLES / "busybox-early-zstd.img"  # an early plain cpio, then zstd
GZIP = SAMPLES / "busybox-gzip.img"


def console(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "footprint", *args], capture_output=True, text=True, check=False
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
    assert r.stdout == (
        f"{ZSTD}: 908 KiB initramfs, generator unknown, kernel none (no lib/modules)\n"
        "\n"
        "segment  offset  codec  compressed  unpacked  entries\n"
        "      0       0  none     4.74 KiB  4.74 KiB        5\n"
        "      1    5120  zstd      903 KiB  1.89 MiB       25\n"
        "\n"
        "tree    4 files (4 inodes), 8 dirs, 15 symlinks, 1 devices, 0 hardlinks\n"
        "data    1.89 MiB (1.9 MiB in 4 KiB pages)\n"
        "unpack  908 KiB compressed, held until unpacked + 1.96 MiB rootfs = 2.85 MiB peak\n"
        "RAM >=  3.8 MiB with a tmpfs rootfs (capped at 50 % of RAM), 2.85 MiB with ramfs\n"
        "\n"
        " largest  path\n"
        "1.89 MiB  /bin/busybox\n"
        "   4 KiB  /kernel/x86/microcode/GenuineIntel.bin\n"
        "   267 B  /init\n"
        "    17 B  /etc/hostname\n"
    )


def test_long_paths_are_printed_whole_when_piped(tmp_path: Path) -> None:
    deep = "/".join(["directory-with-a-long-name"] * 8)
    names = [f"{deep}/{'x' * 150}", "nowhere/orphan"]  # the second has no parent directory
    body = (
        b"".join(newc_entry("/".join(deep.split("/")[: i + 1]), 0o040755) for i in range(8))
        + newc_entry(names[0], 0o100644, b"data")
        + newc_entry(names[1], 0o100644)
        + newc_trailer()
    )
    path = tmp_path / "long.img"
    path.write_bytes(body)
    r = console("inspect", "--files", str(path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert f"    4 B  /{names[0]}" in lines
    assert f"-rw-r--r--          4 /{names[0]}" in lines
    assert (
        "warning: entry 'nowhere/orphan' (segment 0) is not created by the kernel: its parent "
        "directory does not exist"
    ) in lines
    assert "\x1b" not in r.stdout  # colour only on a terminal


def test_inspect_imports_neither_rich_nor_lief() -> None:
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "footprint", "inspect", str(ZSTD)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    modules = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert "footprint.report.inspect" in modules
    assert {m.split(".")[0] for m in modules} & {"rich", "lief", "zstandard"} == set()


def test_errors_are_one_line_with_exit_3() -> None:
    r = console("inspect", str(SAMPLES / "bad" / "crc-mismatch.img"))
    assert r.returncode == 3
    assert r.stderr.startswith("footprint: error: ") and r.stderr.count("\n") == 1


def test_ctrl_c_while_decompressing_exits_130(tmp_path: Path) -> None:
    image = tmp_path / "big.img"  # zeros: small on disk, ~0.5 s of inflating
    c = zlib.compressobj(1, wbits=31)
    with open(image, "wb") as f:
        for i in range(256):
            f.write(c.compress(newc_entry(f"f{i}", 0o100644, bytes(1 << 20))))
        f.write(c.compress(newc_trailer()) + c.flush())
    proc = subprocess.Popen(
        [sys.executable, "-m", "footprint", "inspect", str(image)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_sigint_default,  # a CI started in the background ignores SIGINT
        text=True,
    )
    deadline = time.monotonic() + 10
    watched = psutil.Process(proc.pid)
    while time.monotonic() < deadline:  # until it has the image open: decompressing
        if any(f.path == str(image) for f in watched.open_files()):
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out, err) == (130, "", "footprint: interrupted\n")


def test_colour_is_plain_ansi_bold_and_yellow(tmp_path: Path) -> None:
    path = tmp_path / "orphan.img"
    path.write_bytes(newc_entry("nowhere/orphan", 0o100644, b"hi") + newc_trailer())
    inv = scan(str(path))
    text = render.as_text(inv, summarize(inv), None, color=True)
    lines = text.splitlines()
    assert lines[0] == (
        f"\x1b[1m{path}\x1b[0m: 256 B initramfs, generator unknown, kernel none (no lib/modules)"
    )
    assert lines[2] == "\x1b[1msegment  offset  codec  compressed  unpacked  entries\x1b[0m"
    assert lines[5] == (
        "\x1b[1mtree  \x1b[0m  0 files (0 inodes), 0 dirs, 0 symlinks, 0 devices, 0 hardlinks"
    )
    assert lines[-2:] == [  # no file has data: no "largest" header over nothing
        "",
        "\x1b[33mwarning\x1b[0m: entry 'nowhere/orphan' (segment 0) is not created by the "
        "kernel: its parent directory does not exist",
    ]
    assert render.as_text(inv, summarize(inv), None) == "".join(
        line.replace("\x1b[1m", "").replace("\x1b[33m", "").replace("\x1b[0m", "") + "\n"
        for line in lines
    )


def _sigint_default() -> None:
    """In the child: SIGINT as a terminal gives it (a shell's background job inherits it
    ignored, and Python then never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
