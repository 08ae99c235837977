"""Text for pipes and CI logs: nothing is cut or wrapped (grep finds every path and name
whole, whatever COLUMNS says), tables have headers and totals, usage errors are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import SAMPLES, real_image

from footprint.cli import cli

ZSTD = str(SAMPLES / "busybox-early-zstd.img")
GZIP = str(SAMPLES / "busybox-gzip.img")


def run(*args: str) -> str:
    r = CliRunner().invoke(cli, list(args))
    assert r.exit_code == 0, r.output
    return r.stdout


def piped(*args: str, columns: str = "40") -> str:
    """The command as a user pipes it: stdout is not a terminal, the terminal is narrow."""
    env = {**os.environ, "COLUMNS": columns}
    r = subprocess.run(
        [sys.executable, "-m", "footprint", *args], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_components_has_a_total_row_and_sorts_and_cuts_as_asked() -> None:
    doc = json.loads(run("components", "--json", ZSTD))
    lines = run("components", ZSTD).splitlines()
    header = lines.index(next(line for line in lines if line.startswith("component ")))
    names = [line.split()[0] for line in lines[header + 1 : header + 1 + len(doc["components"])]]
    assert names == [c["name"] for c in doc["components"]]  # largest proportional first
    total = lines[header + 1 + len(doc["components"])]
    assert total.split() == ["total", "(4", "components)", "4", "1.9", "MiB", "908", "KiB",
                             "3.8", "MiB"]  # fmt: skip
    by_name = run("components", ZSTD, "--sort", "name", "--top", "2").splitlines()
    assert [line.split()[0] for line in by_name[3:6]] == ["base-config", "busybox", "…"]
    assert by_name[5] == "… 2 more (--top 0 or --json lists all)"
    assert by_name[6].startswith("total (4 components)")  # the total is the whole image's


def test_components_prose_follows_columns_and_tables_never_wrap() -> None:
    narrow = piped("components", ZSTD, columns="50").splitlines()
    wide = piped("components", ZSTD, columns="200").splitlines()
    table = [line for line in narrow if line.startswith(("component ", "busybox ", "total "))]
    assert table == [line for line in wide if line.startswith(("component ", "busybox ", "total "))]
    prose = [line for line in narrow if line and line not in wide]
    assert prose and all(len(line) <= 49 for line in prose)
    assert max(len(line) for line in wide) > 100  # the header line, whole, in one line


@pytest.mark.integration
def test_every_shared_library_and_user_is_whole_in_a_pipe() -> None:
    image = str(real_image("dracut-systemd.img"))
    doc = json.loads(run("components", "--json", image))
    lines = piped("components", image, columns="40").splitlines()
    assert len(doc["shared_libraries"]) > 15  # no longer cut at 15 rows
    for s in doc["shared_libraries"]:
        row = next(line for line in lines if f"  {s['path']}  " in line)
        assert row.endswith(", ".join(s["users"]))
    for c in doc["components"]:
        assert any(line.startswith(c["name"] + " ") for line in lines), c["name"]


def test_inspect_files_has_a_header_and_top_0_no_largest() -> None:
    lines = run("inspect", ZSTD, "--files", "--top", "0").splitlines()
    assert not any(line.lstrip().startswith("largest") for line in lines)
    paths = json.loads(run("inspect", ZSTD, "--files", "--json"))["files"]
    head = lines.index(f"mode            bytes path ({len(paths)} paths, every name)")
    assert lines[head + 1 :][: len(paths)][0].endswith(" " + paths[0]["path"])
    assert len(lines) == head + 1 + len(paths)


def test_diff_markdown_has_the_text_s_sections_and_counts_as_counts() -> None:
    text = run("diff", GZIP, ZSTD)
    md = run("diff", GZIP, ZSTD, "--markdown")
    sections = [s for s in ("totals", "segments", "components", "files") if f"\n{s} " in text]
    assert sections == ["totals", "segments", "components", "files"]
    assert [line[2:-2] for line in md.splitlines() if line.startswith("**")] == sections
    assert "| `files` | 3 | 4 | +1 |" in md.splitlines()
    assert "| `gzip` | 1004 KiB | gone | -1004 KiB |" in md.splitlines()
    assert "| name | old | new | delta | own Δ | excl. Δ | shared Δ |" in md.splitlines()


def test_output_dash_is_standard_output(tmp_path) -> None:
    profile = tmp_path / "p.json"
    assert CliRunner().invoke(cli, ["profile", ZSTD, "-o", str(profile)]).exit_code == 0
    for command in ("profile", "baseline"):
        r = CliRunner().invoke(cli, [command, ZSTD, "-o", "-"])
        assert r.exit_code == 0 and r.stderr == ""
        assert json.loads(r.stdout) == json.loads(profile.read_text())
    assert not (tmp_path / "-").exists() and not os.path.exists("-")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["components", "--top", "-1", ZSTD],
            "Invalid value for '--top': -1 is not in the range "
            "x>=0. (see 'footprint components --help')",
        ),  # fmt: skip
        (["inspect"], "Missing argument 'IMAGE'. (see 'footprint inspect --help')"),
        (["nope"], "No such command 'nope'. (see 'footprint --help')"),
        (["diff", ZSTD, ZSTD, "-x"], "No such option '-x'. (see 'footprint diff --help')"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], message: str) -> None:
    r = subprocess.run([sys.executable, "-m", "footprint", *args], capture_output=True, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", f"footprint: error: {message}\n")


def test_boot_and_calibration_text_keep_names_whole() -> None:
    from footprint.report.boot import boot_text

    long = "systemd-cryptsetup-generator-with-a-long-name"
    doc = {
        "image": "x.img", "outcome": "success", "memory_mib": 256, "accel": "tcg",
        "duration_s": 4.2, "detail": "init finished", "breakdown": None, "killed": [],
        "processes": [
            {"name": f"{long}-{i}", "hwm_bytes": 1 << 20, "anon_peak_bytes": 4096,
             "component": "systemd", "package": None}
            for i in range(14)
        ],
    }  # fmt: skip
    lines = boot_text(doc).splitlines()
    assert lines[2].split() == ["process", "VmHWM", "anon", "peak", "component"]
    assert lines[3].split() == [f"{long}-0", "1", "MiB", "4", "KiB", "systemd"]
    assert len(lines) == 3 + 12 + 1 and lines[-1] == "… 2 more (--json lists all)"
    doc["processes"][1]["package"] = "systemd-container"  # with a root disk: its packages
    lines = boot_text(doc).splitlines()
    assert lines[2].split() == [
        "process", "VmHWM", "anon", "peak", "component", "package", "(root", "disk)",
    ]  # fmt: skip
    assert lines[3].split()[-1] == "systemd"  # no package: the row ends with its component
    assert lines[4].split()[-2:] == ["systemd", "systemd-container"]
