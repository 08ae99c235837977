"""`footprint merge`: documents from separate real runs (profiles, boots, calibrations) as one
matrix; conflicts, duplicates and other schema versions refused with exit 5; merge of
merges; `report` and `check` of the matrix."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from footprint.cli import cli
from footprint.errors import EXIT_MERGE_CONFLICT
from footprint.image.cpio import newc_entry, newc_trailer
from tests.conftest import SAMPLES, assert_schema, need

BUSYBOX = SAMPLES / "busybox-gzip.img"
MARKER = "footprint-sample: init reached"
RISCV_ELF = Path("/usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.elf")


def run(*args: str):  # noqa: ANN201
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def kernel() -> str:
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    need(kernels, "no kernel in /boot (apt-get install linux-image-amd64)")
    return str(kernels[-1])


def profile(image: Path, out: Path, *extra: str) -> Path:
    res = run("profile", image, "-o", out, *extra)
    assert res.exit_code == 0, res.output
    return out


def riscv_image(tmp_path: Path) -> Path:
    """An image whose one program is a riscv64 ELF (QEMU's OpenSBI firmware): a profile of
    another architecture, made here without a cross toolchain."""
    need(RISCV_ELF.exists(), f"{RISCV_ELF} is missing (Debian package qemu-system-data)")
    d, f = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o755
    img = tmp_path / "riscv64.img"
    img.write_bytes(
        newc_entry(".", d) + newc_entry("bin", d)
        + newc_entry("bin/fw", f, RISCV_ELF.read_bytes()) + newc_trailer()
    )  # fmt: skip
    return img


@pytest.fixture(scope="module")
def profiles(tmp_path_factory: pytest.TempPathFactory, kernel: str) -> list[Path]:
    """Three profiles from three runs: busybox with Debian's kernel, small-zstd without one,
    and a riscv64 image."""
    tmp = tmp_path_factory.mktemp("profiles")
    return [
        profile(BUSYBOX, tmp / "busybox.json", "--kernel", kernel),
        profile(SAMPLES / "small-zstd.img", tmp / "zstd.json"),
        profile(riscv_image(tmp), tmp / "riscv.json"),
    ]


def merged(*paths: Path) -> dict:
    res = run("merge", *paths)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_merge_of_separate_runs(profiles: list[Path], kernel: str) -> None:
    m = merged(*profiles)
    assert_schema(m)
    assert len(m["cells"]) == 3
    for c in m["cells"]:
        assert_schema(c["document"])
    by_image = {c["axes"]["image"]: c for c in m["cells"]}
    assert set(by_image) == {"busybox-gzip.img", "small-zstd.img", "riscv64.img"}
    busybox = by_image["busybox-gzip.img"]
    release = Path(kernel).name.removeprefix("vmlinuz-")
    assert busybox["axes"] == {
        "arch": "x86_64",
        "kernel": release,
        "image": "busybox-gzip.img",
        "mode": "profile",
        "ram_mib": None,
        "cpus": None,
        "limit_mib": None,
        "shape": None,
    }
    assert busybox["image_sha256"] == hashlib.sha256(BUSYBOX.read_bytes()).hexdigest()
    assert busybox["document"] == json.loads(profiles[0].read_text())  # kept as written
    assert by_image["riscv64.img"]["axes"]["arch"] == "riscv64"
    assert by_image["small-zstd.img"]["axes"]["arch"] == ""  # no ELF in it: unknown
    assert by_image["small-zstd.img"]["axes"]["kernel"] == ""
    assert m["axes"]["arch"] == ["", "riscv64", "x86_64"]
    assert m["axes"]["mode"] == ["profile"]


def test_output_file_and_never_an_input(profiles: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "matrix.json"
    res = run("merge", *profiles, "-o", out)
    assert res.exit_code == 0 and "wrote" in res.output
    assert len(json.loads(out.read_text())["cells"]) == 3
    before = profiles[1].read_bytes()
    res = run("merge", *profiles, "-o", profiles[1])
    assert res.exit_code == 2
    assert res.output.strip().endswith("is one of the inputs: write the matrix elsewhere")
    assert profiles[1].read_bytes() == before


def test_the_same_cell_twice_is_refused(profiles: list[Path], tmp_path: Path) -> None:
    again = profile(SAMPLES / "small-zstd.img", tmp_path / "zstd-again.json")  # another run
    res = run("merge", *profiles, again)
    assert res.exit_code == EXIT_MERGE_CONFLICT == 5
    assert len(res.output.strip().splitlines()) == 1
    assert "are the same cell (? no kernel small-zstd.img profile)" in res.output


def test_one_name_two_images_is_a_conflict(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(SAMPLES / "small-zstd.img", tmp_path / "a" / "initrd.img")
    shutil.copy(SAMPLES / "small-xz.img", tmp_path / "b" / "initrd.img")
    a = profile(tmp_path / "a" / "initrd.img", tmp_path / "a.json")
    b = profile(tmp_path / "b" / "initrd.img", tmp_path / "b.json")
    res = run("merge", a, b)
    assert res.exit_code == 5
    assert "name one image, initrd.img (arch unknown), but hold different ones" in res.output


def test_one_release_two_kernels_is_a_conflict(profiles: list[Path], tmp_path: Path) -> None:
    doc = json.loads(profiles[0].read_text())  # an edge case: a real profile, edited
    other = tmp_path / "other.img"
    shutil.copy(SAMPLES / "busybox-early-zstd.img", other)
    p = profile(other, tmp_path / "other.json", "--kernel", doc["subject"]["kernel"])
    edited = json.loads(p.read_text())
    edited["subject"]["kernel_memory_bytes"] += 1 << 20
    p.write_text(json.dumps(edited))
    res = run("merge", profiles[0], p)
    assert res.exit_code == 5
    assert f"name one kernel, {doc['subject']['kernel_release']} (x86_64), but booted" in res.output


def test_another_schema_version_is_refused(profiles: list[Path], tmp_path: Path) -> None:
    doc = json.loads(profiles[1].read_text())
    doc["schema_version"] = 2
    future = tmp_path / "future.json"
    future.write_text(json.dumps(doc))
    res = run("merge", profiles[0], future)
    assert res.exit_code == 5
    assert f"{future} has schema_version 2, not 1" in res.output


def test_what_merge_does_not_take(profiles: list[Path], tmp_path: Path) -> None:
    res = run("merge", profiles[0], BUSYBOX)  # an image, not a document
    assert res.exit_code == 3 and "is not valid JSON" in res.output
    check = tmp_path / "check.json"
    budget = tmp_path / "budget.toml"
    budget.write_text('[limits]\ncompressed_bytes = "40M"\n')
    check.write_text(run("check", profiles[0], "--budget", budget, "--json").output)
    res = run("merge", profiles[0], check)
    assert res.exit_code == 3 and "a kind 'check' document" in res.output
    old = json.loads(profiles[1].read_text())
    del old["subject"]  # as profiles were saved before they named their subject
    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps(old))
    res = run("merge", legacy)
    assert res.exit_code == 3 and "does not say which image and kernel" in res.output


def test_merge_of_merges(profiles: list[Path], tmp_path: Path) -> None:
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    assert run("merge", *profiles[:2], "-o", first).exit_code == 0
    assert run("merge", profiles[2], "-o", second).exit_code == 0
    m = merged(first, second)
    assert_schema(m)
    assert m["cells"] == merged(*profiles)["cells"]  # the same cells, the same sources
    assert [c["source"] for c in m["cells"]] == sorted(
        map(str, profiles), key=[c["source"] for c in m["cells"]].index
    )
    res = run("merge", first, profiles[0])  # in `first` already
    assert res.exit_code == 5 and "are the same cell" in res.output


def test_report_renders_every_cell(profiles: list[Path], tmp_path: Path) -> None:
    matrix = tmp_path / "matrix.json"
    assert run("merge", *profiles, "-o", matrix).exit_code == 0
    text = run("report", matrix, "--text").output
    lines = text.splitlines()
    assert (
        lines[0] == "3 cells: 3 architectures (?, riscv64, x86_64), 2 kernels, 3 images; 0 failed"
    )
    rows = lines[3:]
    assert [r.split()[0] for r in rows] == ["?", "riscv64", "x86_64"]
    markdown = run("report", matrix, "--markdown").output
    assert markdown.count("\n| ") == 2 + 3  # head, rule, a row per cell
    assert "| riscv64 | - | riscv64.img | profile |" in markdown
    html = run("report", matrix).output
    assert html.count("<tr") == 1 + 3 and "riscv64.img" in html
    res = run("report", profiles[0], "--text")
    assert res.exit_code == 2 and "--text is for a matrix" in res.output


def test_check_gates_every_cell(profiles: list[Path], tmp_path: Path) -> None:
    matrix = tmp_path / "matrix.json"
    assert run("merge", *profiles, "-o", matrix).exit_code == 0
    budget = tmp_path / "budget.toml"
    budget.write_text('[limits]\ncompressed_bytes = "200K"\n')  # busybox is 1 MB
    res = run("check", matrix, "--budget", budget, "--json")
    assert res.exit_code == 1
    doc = json.loads(res.output)
    assert_schema(doc)
    failed = [v["name"] for v in doc["verdicts"] if v["status"] == "fail"]
    release = doc_release(profiles[0])
    assert failed == [f"x86_64 {release} busybox-gzip.img profile: limit compressed_bytes"]
    assert doc["counts"] == {"pass": 2, "warn": 0, "fail": 1}
    budget.write_text('[limits]\ncompressed_bytes = "200K"\n[baseline]\n')
    res = run("check", matrix, "--budget", budget, "--baseline", profiles[0])
    assert res.exit_code == 2 and "a matrix is gated by [limits]" in res.output


def doc_release(path: Path) -> str:
    return json.loads(path.read_text())["subject"]["kernel_release"]


@pytest.mark.slow
def test_calibration_boot_and_profile_in_one_matrix(
    profiles: list[Path], kernel: str, tmp_path: Path
) -> None:
    cal, boot = tmp_path / "cal.json", tmp_path / "boot.json"
    res = run(
        "calibrate", BUSYBOX, "--kernel", kernel, "--until", MARKER, "--resolution", "16M",
        "--accel", "tcg", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    cal.write_text(res.output[res.output.index("{") :])
    res = run(
        "boot", BUSYBOX, "--kernel", kernel, "--until", MARKER, "--memory", "192M",
        "--accel", "tcg", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    boot.write_text(res.output)
    boot_doc = json.loads(res.output)
    assert_schema(boot_doc)
    assert boot_doc["subject"]["arch"] == "x86_64" and boot_doc["subject"]["kernel_release"]
    m = merged(cal, boot, profiles[0])
    assert_schema(m)
    cells = {(c["document"]["kind"], c["axes"]["mode"]): c for c in m["cells"]}
    assert set(cells) == {("calibration", "direct"), ("boot", "direct"), ("profile", "profile")}
    assert cells[("boot", "direct")]["axes"]["ram_mib"] == 192
    c = cells[("calibration", "direct")]
    assert c["result"]["minimum_mib"] == json.loads(cal.read_text())["minimum_mib"]
    matrix = tmp_path / "m.json"
    matrix.write_text(json.dumps(m))
    budget = tmp_path / "budget.toml"
    budget.write_text('[limits]\nrecommended_bytes = "32M"\n')  # below any real boot
    res = run("check", matrix, "--budget", budget)
    assert res.exit_code == 1
    assert f"fail  {c['label']}: limit recommended_bytes" in res.output


@pytest.mark.slow
def test_cgroup_measurements_are_cells(profiles: list[Path], tmp_path: Path) -> None:
    """`measure` under a 128M limit and `measure --bisect`: two cgroup cells of one image, the
    first with its limit as an axis, beside its profile."""
    need(os.geteuid() == 0, "measure needs root (user namespaces mapped by root, cgroups)")
    one, bisect = tmp_path / "one.json", tmp_path / "bisect.json"
    for out, args in ((one, ("--memory", "128M")), (bisect, ("--bisect",))):
        res = run("measure", BUSYBOX, *args, "--until", MARKER, "--json")
        assert res.exit_code == 0, res.output
        out.write_text(res.output[res.output.index("{") :])
        assert_schema(json.loads(out.read_text()))
    m = merged(one, bisect, profiles[0])
    assert_schema(m)
    cgroup = [c for c in m["cells"] if c["axes"]["mode"] == "cgroup"]
    assert [c["axes"]["limit_mib"] for c in cgroup] == [128, None]
    assert [c["axes"]["arch"] for c in cgroup] == ["x86_64", "x86_64"]
    assert cgroup[0]["label"] == "x86_64 no kernel busybox-gzip.img cgroup limit 128M"
    minimum = json.loads(bisect.read_text())["minimum_bytes"] // (1 << 20)
    assert cgroup[1]["result"] == {
        "success": True,
        "minimum_mib": minimum,
        "recommended_mib": None,
        "peak_mib": round(json.loads(bisect.read_text())["peak_bytes"] / (1 << 20), 1),
        "estimate_mib": None,
    }
    matrix = tmp_path / "m.json"
    matrix.write_text(json.dumps(m))
    text = run("report", matrix, "--text").output
    assert "cgroup   limit 128M" in text
