"""Machine shapes (issue 15): the ranged crashkernel= line from measured minima, the
distributions' lines judged at each shape, shapes side by side (--jobs), and the command line.
The integration test calibrates two small shapes of Debian's kdump-tools initrd for real."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REAL, SAMPLES, assert_schema, need, need_tool, real_image

from footprint.cli import cli
from footprint.errors import EXIT_USAGE
from footprint.measure.backend import Outcome, ProbeSample, QemuRun, RunResult
from footprint.measure.calibrate import Plan, calibrate
from footprint.measure.kdump import Split
from footprint.measure.qemu import QemuOptions
from footprint.measure.shapes import Shape, ShapeRun, Verdict, ranges, shapes
from footprint.measure.workflow import Stoppable, calibrate_shapes
from footprint.model.crashkernel import (
    DISTRO_LINES,
    as_config,
    distro_lines,
    parse_crashkernel,
    ranged,
)
from footprint.report.kernels import kernels_text
from footprint.units import MIB

G = 1 << 30


def test_the_ranged_line_gives_each_range_what_its_largest_machine_needs() -> None:
    line, basis = ranged({2 * G: 176 * MIB, 4 * G: 176 * MIB, 16 * G: 192 * MIB, 64 * G: 240 * MIB})
    assert line.text == "2G-4G:176M,4G-16G:192M,16G-:240M"
    assert [b.measured_at for b in basis] == [(2 * G, 4 * G), (4 * G, 16 * G), (16 * G, 64 * G)]
    assert basis[-1].note == (
        "the most that 16G and 64G need; above 64G not measured: larger machines may need more"
    )
    parsed = parse_crashkernel(line.text)  # the kernel's own syntax, read back
    assert parsed.ranges == line.ranges
    for ram, mib in ((2 * G, 176), (4 * G, 176), (16 * G, 192), (64 * G, 240)):
        assert parsed.reservation_for(ram) >= mib * MIB
    assert parsed.reservation_for(G) == 0  # below the smallest shape: as the distros do


def test_equal_needs_merge_into_one_range_and_odd_sizes_stay_in_mib() -> None:
    assert ranged({2 * G: 176 * MIB, 8 * G: 176 * MIB})[0].text == "2G-:176M"
    assert ranged({1536 * MIB: 200 * MIB})[0].text == "1536M-:200M"
    assert ranged({2 * G: 200 * MIB, 3 * G: 190 * MIB})[0].text == "2G-:200M"  # never less
    with pytest.raises(ValueError, match="no measured shape"):
        ranged({})


def test_config_formats() -> None:
    assert as_config("2G-:192M", "kernel") == "crashkernel=2G-:192M"
    assert as_config("2G-:192M", "kdump-utils") == (
        'grubby --update-kernel=ALL --args="crashkernel=2G-:192M"'
    )
    assert as_config("2G-:192M", "kdump-tools").splitlines()[1] == (
        'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT crashkernel=2G-:192M"'
    )
    for d in DISTRO_LINES:  # every shipped line parses
        assert parse_crashkernel(d.line).ranges
    assert [d.line for d in distro_lines("x86_64")] == [
        "384M-:128M",
        "512M-:192M",
        "2G-64G:256M,64G-:512M",
    ]


class _Needs:
    """A kdump backend whose capture succeeds from `base` + `per_gib` × the first kernel's
    GiB on (the search alone; the shape is the backend's)."""

    name = "kdump"

    def __init__(self, ram_mib: int, base: int, per_gib: int = 0, delay: float = 0.0) -> None:
        self.need = base + per_gib * (ram_mib // 1024)
        self.delay, self.runs = delay, []

    def run(self, image: str, memory: int) -> RunResult:
        time.sleep(self.delay)
        self.runs.append(memory // MIB)
        ok = memory >= self.need
        sample = ProbeSample(1.0, {"AnonPages": 3 * MIB, "Slab": 2 * MIB}, MIB, ())
        return RunResult(
            "kdump", image, memory, Outcome.SUCCESS if ok else Outcome.OOM, "", 1.0,
            min(memory, self.need), qemu=QemuRun("k", "tcg", (sample,)),
        )  # fmt: skip


PLAN = Plan(120 * MIB, 80 * MIB, 50 * MIB, 30 * MIB, 60 * MIB)


def _one(backends: dict[Shape, _Needs], stop: threading.Event):  # noqa: ANN202
    def one(shape: Shape, start: int | None) -> ShapeRun:
        b = Stoppable(backends[shape], stop)
        return ShapeRun(shape, calibrate(b, "x.img", PLAN, 4 * MIB, start=start))

    return one


def test_shapes_one_after_another_start_from_the_previous_minimum() -> None:
    wanted = shapes((8192, 2048), (1,))
    assert [s.label for s in wanted] == ["2G × 1 CPU", "8G × 1 CPU"]
    backends = {s: _Needs(s.ram_mib, 150 * MIB, MIB) for s in wanted}
    runs = calibrate_shapes(wanted, _one(backends, stop := threading.Event()), 120 * MIB, 1, stop)
    assert [r.marker.bisection.minimum_bytes // MIB for r in runs] == [152, 160]
    assert backends[wanted[0]].runs == [120, 128, 160, 144, 152, 148]
    assert backends[wanted[1]].runs == [152, 160, 156]  # from 2G's minimum: 3 trials
    rg = ranges(runs, distro_lines("x86_64"))
    assert rg is not None
    assert rg.line.text == "2G-:192M"  # 8G's 160 + 5 + 16, to 16
    by_name = {d.name: v for d, v in rg.distros}
    assert [(v.reserved_bytes // MIB, v.words) for v in by_name["debian-bookworm"]] == [
        (128, "too small by 24 MiB"),
        (128, "too small by 32 MiB"),
    ]
    assert [v.words for v in by_name["kdump-utils"]] == ["wastes 80 MiB", "wastes 64 MiB"]


def test_shapes_side_by_side_give_the_same_minima() -> None:
    wanted = shapes((2048, 8192), (1, 4))
    assert len(wanted) == 4
    backends = {s: _Needs(s.ram_mib, 150 * MIB, 2 * MIB, delay=0.01) for s in wanted}
    runs = calibrate_shapes(wanted, _one(backends, stop := threading.Event()), 120 * MIB, 2, stop)
    assert [(r.shape.ram_mib, r.shape.cpus) for r in runs] == [
        (2048, 1),
        (2048, 4),
        (8192, 1),
        (8192, 4),
    ]
    assert [r.marker.bisection.minimum_bytes // MIB for r in runs] == [156, 156, 168, 168]
    assert all(b.runs[0] == 120 for b in backends.values())  # each from the same start


def test_an_error_in_one_shape_stops_the_others() -> None:
    wanted = shapes((2048, 4096), (1,))

    class Broken(_Needs):
        def run(self, image: str, memory: int) -> RunResult:
            raise RuntimeError("the trial broke")

    backends = {wanted[0]: Broken(2048, 0), wanted[1]: _Needs(4096, 150 * MIB, delay=0.05)}
    with pytest.raises(RuntimeError, match="the trial broke"):
        calibrate_shapes(wanted, _one(backends, stop := threading.Event()), 120 * MIB, 2, stop)
    assert len(backends[wanted[1]].runs) <= 2  # its next trial was refused, not run


def test_verdict_words() -> None:
    s = Shape(2048, 4)
    assert Verdict(s, 128 * MIB, 176 * MIB, 208 * MIB).words == "too small by 48 MiB"
    assert Verdict(s, 192 * MIB, 176 * MIB, 208 * MIB).words == "within the margin"
    assert Verdict(s, 512 * MIB, 176 * MIB, 208 * MIB).words == "wastes 304 MiB"
    assert Verdict(s, 0, 176 * MIB, 208 * MIB).words == "reserves nothing: kdump is off"
    assert s.label == "2G × 4 CPUs"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ram", "2G"], "--ram and --cpus are machine shapes for --kdump"),
        (["--kdump", "--cpus", "1,4"], "--cpus needs --ram"),
        (["--kdump", "--ram", "2G,,4G"], "has an empty item"),
        (["--kdump", "--ram", "2G,lots"], "'lots' is not a size"),
        (["--kdump", "--ram", "128M"], "a first kernel needs 256M at least"),
        (["--kdump", "--ram", "2G", "--cpus", "0"], "0 is not in the range"),
        (["--kdump", "--ram", "2G", "--format", "yaml"], "'yaml' is not one of"),
    ],
)
def test_bad_shapes_are_usage_errors(tmp_path, args: list[str], message: str) -> None:  # noqa: ANN001
    image = tmp_path / "x.img"
    image.write_bytes(b"x")
    r = CliRunner().invoke(cli, ["calibrate", str(image), "--kernel", str(image), *args])
    assert r.exit_code == EXIT_USAGE, r.output
    assert message in r.output


@pytest.mark.slow
@pytest.mark.integration
def test_two_small_shapes_of_the_kdump_tools_initrd() -> None:
    """Two shapes side by side, each from the kernel profile's prediction (3 boots each)."""
    image = real_image("kdump-tools.img")
    need_tool("qemu-system-x86_64", "qemu-system-x86")
    kernel = Path("/boot/vmlinuz-6.1.0-57-amd64")  # the kernel the profile is of
    need(kernel.exists(), f"{kernel} is missing (apt-get install linux-image-amd64)")
    profile = Path(__file__).parent / "data" / "kernel-profile-6.1.0-57-amd64.json"
    r = CliRunner().invoke(
        cli,
        [
            "calibrate", str(image), "--kernel", str(kernel), "--kernel-profile", str(profile),
            "--kdump", "--ram", "1G,4G", "--jobs", "2", "--format", "kdump-utils", "--json",
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert_schema(doc)
    assert [(s["ram_mib"], s["cpus"]) for s in doc["shapes"]] == [(1024, 1), (4096, 1)]
    for s in doc["shapes"]:
        assert s["success_means"] == "marker"
        outcomes = {t["memory_mib"]: t["outcome"] for t in s["trials"]}
        assert outcomes[s["minimum_mib"]] == "success"
        assert outcomes[s["minimum_mib"] - 4] != "success"  # the boundary, both sides tried
        assert 100 <= s["minimum_mib"] <= 160
    most = max(s["recommended_mib"] for s in doc["shapes"])
    assert doc["crashkernel_ranges"] in (f"1G-:{most}M", f"1G-4G:{most}M,4G-:{most}M") or (
        doc["crashkernel_ranges"].startswith("1G-4G:")
    )
    assert doc["crashkernel_config"] == (
        f'grubby --update-kernel=ALL --args="crashkernel={doc["crashkernel_ranges"]}"'
    )
    ck = parse_crashkernel(doc["crashkernel_ranges"])
    for s in doc["shapes"]:
        assert ck.reservation_for(s["ram_mib"] * MIB) >= s["recommended_mib"] * MIB
    debian = {d["name"]: d for d in doc["distro_lines"]}["debian-bookworm"]
    assert [v["reserved_mib"] for v in debian["shapes"]] == [128, 128]


# -- crashkernel=X crashkernel=Y,cma ------------------------------------------------------------


@dataclass(frozen=True)
class _SplitNeeds:
    """A kdump backend with the KdumpBackend fields calibrate_cma replaces: the capture loads
    from `loads` bytes of fixed reservation on, and boots from `total` bytes in all."""

    options: QemuOptions
    first_kernel_mib: int | None = None
    split: Split | None = None
    loads: int = 80 * MIB
    total: int = 130 * MIB
    runs: list = field(default_factory=list, compare=False)
    name: str = "kdump"

    def run(self, image: str, memory: int) -> RunResult:
        x, y = self.split.parts(memory) if self.split else (memory, 0)
        self.runs.append((x // MIB, y // MIB))
        ok = x >= self.loads and x + y >= self.total
        outcome = (
            Outcome.SUCCESS
            if ok
            else (Outcome.LOAD_FAILED if x < self.loads else Outcome.UNPACK_FAILED)
        )
        sample = ProbeSample(1.0, {"AnonPages": 3 * MIB, "Slab": 2 * MIB}, MIB, ())
        return RunResult(
            "kdump", image, memory, outcome, "", 1.0, 0, qemu=QemuRun("k", "tcg", (sample,))
        )


def test_the_cma_split_bisects_the_fixed_part_then_the_cma_part_and_verifies_both(
    tmp_path: Path,
) -> None:
    from footprint.measure.cma import CmaKernel, calibrate_cma
    from footprint.model.kernel import read_kernel
    from footprint.report.shapes import cma_dict

    kernel = Path("/boot/vmlinuz-6.1.0-57-amd64")  # read for its size: no boot here
    need(kernel.exists(), f"{kernel} is missing (apt-get install linux-image-amd64)")
    image = tmp_path / "x.img"
    image.write_bytes(b"\0" * (4 * MIB))
    backend = _SplitNeeds(QemuOptions(kernel=str(kernel)), 2048)
    all_fixed = calibrate(backend, str(image), PLAN, 4 * MIB, bounds=(96 * MIB, 160 * MIB))
    assert all_fixed.bisection.minimum_bytes == 132 * MIB
    k = read_kernel(str(kernel))
    room = CmaKernel("seen", max(k.file_bytes, k.init_size))
    split = calibrate_cma(backend, str(image), PLAN, all_fixed, room, 4 * MIB, 1)
    assert split is not None
    doc = cma_dict(split)
    # X: 80 (+10 %, to 16 MiB: 96); Y: 36 (with X = 96) + 10 % of 132, to 16 MiB: 64
    assert (doc["fixed_minimum_mib"], doc["fixed_mib"]) == (80, 96)
    assert (doc["cma_minimum_mib"], doc["cma_mib"]) == (36, 64)
    assert doc["crashkernel"] == "crashkernel=96M crashkernel=64M,cma"
    assert (doc["all_fixed_mib"], doc["returned_mib"]) == (160, 64)
    assert [(t["fixed_mib"], t["cma_mib"], t["outcome"]) for t in doc["verify_trials"]] == [
        (96, 64, "success"),
        (96, 0, "unpack-failed"),
    ]
    assert doc["verified"] is True
    assert all(y == 160 for x, y in backend.runs[len(all_fixed.bisection.trials) :][:3])


def test_cma_is_refused_on_a_kernel_that_cannot_do_it() -> None:
    from footprint.errors import EXIT_ENVIRONMENT

    kernel = Path("/boot/vmlinuz-6.1.0-57-amd64")
    need(kernel.exists(), f"{kernel} is missing (apt-get install linux-image-amd64)")
    image = SAMPLES / "busybox-gzip.img"
    r = CliRunner().invoke(
        cli, ["calibrate", str(image), "--kernel", str(kernel), "--kdump", "--cma"]
    )
    assert r.exit_code == EXIT_ENVIRONMENT, r.output
    assert "6.1.0-57-amd64 does not take crashkernel=,cma (its vmlinux has no ',cma' suffix" in (
        r.output
    )
    r = CliRunner().invoke(cli, ["calibrate", str(image), "--kernel", str(kernel), "--cma"])
    assert r.exit_code == EXIT_USAGE and "add --kdump" in r.output


KERNELS = REAL / "kernels"


def _cma_kernel() -> tuple[str, str]:
    """The newest kernel `make samples-kernels` made that takes ,cma, and its kdump-tools
    initrd."""
    manifest = KERNELS / "manifest.json"
    need(manifest.exists(), f"{manifest} is missing: run `make samples-kernels`")
    kernels = [k for k in json.loads(manifest.read_text())["kernels"] if k["crashkernel_cma"]]
    need(kernels, "no kernel with crashkernel=,cma in `make samples-kernels`' manifest")
    k = kernels[-1]
    return str(KERNELS / k["vmlinuz"]), str(KERNELS / k["kdump_tools_image"])


def test_cma_support_is_read_from_the_kernel_image() -> None:
    from footprint.errors import EnvironmentUnavailable
    from footprint.measure.cma import cma_support

    kernel, _ = _cma_kernel()
    assert (
        "its vmlinux parses ',cma' and reports 'crashkernel CMA reserved'"
        in cma_support(kernel).detected
    )
    old = KERNELS / "vmlinuz-6.1.0-57-amd64"
    need(old.exists(), f"{old} is missing: run `make samples-kernels`")
    with pytest.raises(EnvironmentUnavailable, match="the option came with Linux 6.17"):
        cma_support(str(old))


@pytest.mark.slow
@pytest.mark.integration
def test_a_cma_pair_saves_what_its_fixed_part_alone_cannot() -> None:
    """One trial above and one below (bench/ bisects): on Debian's newest kernel the capture
    boots with 72M fixed + 192M in CMA (the CMA range reaches it through kexec -s -p), and
    fails with the 72M alone (found here: 72M is the smallest that loads, 116M all fixed)."""
    from footprint.measure.kdump import KdumpBackend

    need_tool("qemu-system-x86_64", "qemu-system-x86")
    kernel, image = _cma_kernel()
    backend = KdumpBackend(QemuOptions(kernel=kernel), 2048, Split(None, 192 * MIB))
    above = backend.run(image, 72 * MIB)
    assert above.outcome is Outcome.SUCCESS, above.detail
    assert "crashkernel CMA reserved: 192 MB" in above.console
    assert "footprint-stage1: crashkernel cma ranges:" in above.console
    assert "no /proc/vmcore" not in above.detail  # the probe saw the capture's vmcore
    alone = KdumpBackend(QemuOptions(kernel=kernel), 2048, Split(None, 0)).run(image, 72 * MIB)
    assert alone.outcome in (Outcome.OOM, Outcome.UNPACK_FAILED, Outcome.PANIC), alone.detail


# -- kernels side by side -----------------------------------------------------------------------


def test_images_and_kernels_pair_one_to_one_or_one_for_all(tmp_path: Path) -> None:
    image = tmp_path / "x.img"
    image.write_bytes(b"x")
    args = ["calibrate", str(image), str(image), str(image)]
    r = CliRunner().invoke(cli, [*args, "--kernel", str(image), "--kernel", str(image)])
    assert r.exit_code == EXIT_USAGE, r.output
    assert "3 images for 2 kernels: give one IMAGE per --kernel, in the same order" in r.output


def _manifest_kernels() -> list[dict]:
    manifest = KERNELS / "manifest.json"
    need(manifest.exists(), f"{manifest} is missing: run `make samples-kernels`")
    return json.loads(manifest.read_text())["kernels"]


@pytest.mark.slow
@pytest.mark.integration
def test_kernels_side_by_side_each_with_its_own_initrd(tmp_path: Path) -> None:
    """Debian 6.1 and trixie's 6.12, each with the kdump-tools initrd made for it, two at once
    at a 16 MiB resolution (a few boots each): one row per kernel with its own terms."""
    need_tool("qemu-system-x86_64", "qemu-system-x86")
    kernels = [k for k in _manifest_kernels() if k["kver"].startswith(("6.1.", "6.12."))]
    need(len(kernels) == 2, "make samples-kernels made no 6.1 and 6.12 kernels")
    args = [str(KERNELS / k["kdump_tools_image"]) for k in kernels]
    for k in kernels:
        args += ["--kernel", str(KERNELS / k["vmlinuz"])]
    r = CliRunner().invoke(
        cli, ["calibrate", *args, "--resolution", "16M", "--jobs", "2", "--json"]
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert_schema(doc)
    assert doc["kind"] == "kernels"
    for c in doc["calibrations"]:
        assert_schema(c)
    rows = doc["kernels"]
    assert [row["release"] for row in rows] == [k["kver"] for k in kernels]
    assert [row["image"] for row in rows] == args[:2]
    assert rows[0]["kernel_memory_mib"] != rows[1]["kernel_memory_mib"]  # each its own
    for row, c in zip(rows, doc["calibrations"], strict=True):
        assert row["kernel_memory_mib"] == c["kernel"]["memory_mib"] > 0
        outcomes = {t["memory_mib"]: t["outcome"] for t in c["trials"]}
        assert outcomes[row["minimum_mib"]] == "success"
        assert outcomes.get(row["minimum_mib"] - 16, "oom") != "success"
        assert 64 <= row["minimum_mib"] <= 192
        assert row["minimum_mib"] == c["minimum_mib"]
        assert row["kernel_runtime_mib"] == c["terms"]["kernel_runtime"]
    text = kernels_text(doc)
    assert text.splitlines()[-3].split() == [
        "kernel", "memory", "runtime", "rootfs", "minimum", "Δ", "kexec", "recommended",
    ]  # fmt: skip
    assert text.splitlines()[-2].split()[:1] == [kernels[0]["kver"]]
    from footprint.gate.merge import merge_files

    saved = tmp_path / "kernels.json"
    saved.write_text(r.stdout)
    matrix = merge_files([str(saved)])  # a cell per kernel, for a CI matrix to merge on
    assert [c["axes"]["kernel"] for c in matrix["cells"]] == [k["kver"] for k in kernels]
    assert [c["result"]["minimum_mib"] for c in matrix["cells"]] == [
        row["minimum_mib"] for row in rows
    ]
