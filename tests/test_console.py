"""`footprint inspect` as a user runs it (python -m footprint): the same answers as the
in-process command, one-line errors, Ctrl-C."""

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
        text=True,
    )
    deadline = time.monotonic() + 10
    while psutil.Process(proc.pid).num_threads() < 2 and time.monotonic() < deadline:
        time.sleep(0.002)  # until the decompressing thread runs
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out, err) == (130, "", "footprint: interrupted\n")
