"""The command line through click's CliRunner: contracts of the JSON and the exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import EXPECTED, SAMPLES

from footprint.cli import cli

IMG = str(SAMPLES / "busybox-early-zstd.img")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_inspect_json_contract() -> None:
    r = invoke("inspect", "--json", IMG)
    assert r.exit_code == 0
    doc = json.loads(r.output)
    assert doc["schema_version"] == 1
    seg = doc["segments"][0]
    assert set(seg) >= {
        "offset",
        "end",
        "codec",
        "compressed_bytes",
        "uncompressed_bytes",
        "entries",
    }
    assert [s["codec"] for s in doc["segments"]] == ["none", "zstd"]
    assert set(doc["totals"]) >= {
        "files",
        "dirs",
        "symlinks",
        "devices",
        "hardlinks",
        "unique_bytes",
        "page_rounded_bytes",
        "overwritten_bytes",
    }
    assert (
        doc["totals"]["unique_bytes"]
        == EXPECTED["images"]["busybox-early-zstd.img"]["unique_bytes"]
    )
    boot = doc["boot"]
    assert boot["compressed_held_bytes"] == doc["image"]["bytes"]
    assert boot["peak_bytes"] == boot["compressed_held_bytes"] + boot["rootfs_bytes"]
    assert boot["ram_floor_tmpfs_bytes"] == 2 * boot["rootfs_tmpfs_bytes"]
    # busybox's own /init, no generator's markers and no lib/modules
    assert (doc["generator"], doc["kernel_versions"]) == ("unknown", [])
    assert doc["largest"][0]["path"] == "/bin/busybox"
    assert "files" not in doc


def test_inspect_text_is_for_humans() -> None:
    r = invoke("inspect", IMG)
    assert r.exit_code == 0
    assert "zstd" in r.output and "/bin/busybox" in r.output and "RAM >=" in r.output
    assert not r.output.lstrip().startswith("{")


def test_files_listing_and_sort() -> None:
    r = invoke("inspect", "--json", "--files", "--sort", "size", IMG)
    files = json.loads(r.output)["files"]
    sizes = [f["size"] for f in files]
    assert sizes == sorted(sizes, reverse=True)
    assert files[0]["path"] == "/bin/busybox"
    links = [f for f in files if f["kind"] == "symlink"]
    assert links and all("target" in f for f in links)
    text = invoke("inspect", "--files", "--sort", "name", IMG).output
    assert "/bin/sh -> busybox" in text


def test_page_size_option() -> None:
    small = json.loads(invoke("inspect", "--json", IMG).output)["totals"]
    big = json.loads(invoke("inspect", "--json", "--page-size", "65536", IMG).output)["totals"]
    assert (small["page_rounded_bytes"], big["page_rounded_bytes"]) == (1994752, 2228224)
    for command in ("inspect", "components", "profile", "diff"):
        extra = [IMG] if command == "diff" else []
        r = invoke(command, "--page-size", "5000", IMG, *extra)
        assert r.exit_code == 2
        assert "5000 is not a power of two" in r.output


def test_extract_cli(tmp_path) -> None:
    out = tmp_path / "root"
    r = invoke("extract", IMG, str(out))
    assert r.exit_code == 0, r.output
    assert (out / "bin" / "busybox").stat().st_size > 1_000_000
    again = CliRunner().invoke(cli, ["extract", IMG, str(out)])
    assert again.exit_code == 2 and "not empty" in again.output


def test_help_lists_exit_codes() -> None:
    r = invoke("--help")
    assert r.exit_code == 0 and "Exit codes" in r.output and "bad or unsupported image" in r.output


def test_profile_output_never_replaces_a_device_or_fifo(tmp_path) -> None:
    """`-o /dev/null` must write to the device, not rename a regular file over it."""
    import os
    import stat

    import pytest

    from footprint.report.files import write_atomically

    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    dev = tmp_path / "null"
    os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    write_atomically(str(dev), "{}")
    assert stat.S_ISCHR(os.lstat(dev).st_mode)
    out = tmp_path / "p.json"
    out.write_text("old")
    write_atomically(str(out), "new")
    assert out.read_text() == "new"
    assert {p.name for p in tmp_path.iterdir()} == {"null", "p.json"}  # no temporary left


@pytest.mark.parametrize("args", [["inspect"], ["inspect", "--json"]])
def test_a_full_disk_for_the_output_is_one_line_and_exit_4(args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        r = subprocess.run(
            [sys.executable, "-m", "footprint", *args, IMG],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    assert r.returncode == 4
    assert r.stderr == "footprint: error: cannot write the output: No space left on device\n"
