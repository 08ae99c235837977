"""`footprint inspect` starts reading its image before click is imported (footprint.early).

The guess must never change a result: same output as the in-process command, the right
error when the guess was wrong, and no early work for any other command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXPECTED, SAMPLES

from footprint import early
from footprint.cli import cli

ZSTD = SAMPLES / "busybox-early-zstd.img"
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
