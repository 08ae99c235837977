"""The measurement layer's data without running anything: the Outcome vocabulary and the
schemas that carry it, RunResult's round trip, the sandbox's messages, the kernel's words,
the arch record and the process → component table."""

from __future__ import annotations

import json

import jsonschema
import pytest
from conftest import SAMPLES, assert_schema

from footprint.arch import ARCHES, X86_64
from footprint.errors import BadDocument
from footprint.measure import kernel_log, messages
from footprint.measure.backend import (
    CgroupRun,
    ComponentRun,
    Killed,
    Outcome,
    ProbeProcess,
    ProbeSample,
    ProcessSample,
    QemuRun,
    RunResult,
    Sample,
)
from footprint.measure.bisect import Bisection, Trial
from footprint.measure.cgroup import MemoryStats
from footprint.measure.cmdline import KDUMP_CMDLINE, kdump_cmdline
from footprint.measure.messages import Kind, Message
from footprint.measure.qemu import capture_cmdline, parse_probe
from footprint.measure.runner import DEFAULT_CMDLINE
from footprint.schemas import schema

MIB = 1 << 20
KINDS = ("measurement", "boot", "calibration")


def test_every_schema_is_valid_and_names_the_outcomes() -> None:
    for kind in KINDS:
        doc = schema(kind)
        jsonschema.Draft202012Validator.check_schema(doc)
        assert doc["$defs"]["outcome"]["enum"] == [o.value for o in Outcome]
    assert [o.value for o in Outcome] == [
        "success",
        "oom",
        "unpack-failed",
        "panic",
        "timeout",
        "failed",
        "load-failed",
        "dump-saved",
        "dump-failed",
    ]


def test_outcome_is_its_value_as_text() -> None:
    assert str(Outcome.UNPACK_FAILED) == "unpack-failed"
    assert f"{Outcome.LOAD_FAILED}" == "load-failed"
    assert json.dumps(Outcome.OOM) == '"oom"'
    assert Outcome("panic") is Outcome.PANIC


def _cgroup_result() -> RunResult:
    stats = MemoryStats(4096, 8192, 12288, 0)
    p = ProcessSample(7, "init", "/bin/busybox", "busybox", 100, 50, 75, 40, 120)
    return RunResult(
        "cgroup",
        "x.img",
        64 * MIB,
        Outcome.OOM,
        "the cgroup's OOM killer ran",
        0.25,
        3 * MIB,
        (Killed(9, "dd"),),
        "console\n",
        cgroup=CgroupRun(
            1,
            None,
            1000,
            2 * MIB,
            MIB,
            stats,
            1,
            (ComponentRun("busybox", 40, 40, 100, 75, 120, ("init",)),),
            (Sample(0.05, 2 * MIB, stats, (p,)),),
        ),
    )


def _qemu_result() -> RunResult:
    sample = ProbeSample(
        1.5, {"MemTotal": 100 * MIB, "MemFree": 60 * MIB}, 4096, (ProbeProcess(1, "sh", 8, 4),)
    )
    return RunResult(
        "qemu",
        "x.img",
        128 * MIB,
        Outcome.SUCCESS,
        "init settled (no panic, no OOM)",
        4.0,
        40 * MIB,
        qemu=QemuRun("/boot/vmlinuz", "tcg", (sample,)),
    )


@pytest.mark.parametrize("make", [_cgroup_result, _qemu_result])
def test_run_result_reads_back_equal_through_json(make) -> None:  # noqa: ANN001
    r = make()
    back = RunResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r
    assert back.outcome is r.outcome and isinstance(back.killed, tuple)


def test_run_result_rejects_an_unknown_outcome() -> None:
    doc = _qemu_result().to_dict()
    doc["outcome"] = "marker"
    with pytest.raises(BadDocument, match=r"Invalid enum value 'marker' - at `\$.outcome`"):
        RunResult.from_dict(doc)
    doc["outcome"], doc["memory_bytes"] = "success", "512M"
    with pytest.raises(BadDocument, match=r"Expected `int`, got `str` - at `\$.memory_bytes`"):
        RunResult.from_dict(doc)


def test_wrong_documents_fail_their_schema() -> None:
    from footprint.measure.calibrate import Calibration, Plan
    from footprint.report.boot import boot_dict, calibration_dict
    from footprint.report.measure import measurement_dict

    m = measurement_dict(_cgroup_result())
    b = boot_dict(_qemu_result(), {"sh": "busybox"})
    bis = Bisection(128 * MIB, 4 * MIB, 124 * MIB, 128 * MIB, [Trial.of(128 * MIB, _qemu_result())])
    bis.at_minimum = _qemu_result()
    c = calibration_dict(Calibration("qemu", bis, Plan(130 * MIB, 200 * MIB, 0, 0, 0), None, None))
    for doc in (m, b, c):
        assert_schema(doc)
    assert b["processes"] == [
        {
            "name": "sh",
            "hwm_bytes": 8,
            "anon_peak_bytes": 4,
            "component": "busybox",
            "package": None,
        }
    ]
    assert c["at_minimum"]["kind"] == "boot" and c["trials"][0]["outcome"] == "success"
    for doc, key, value in (
        (m, "outcome", "marker"),
        (m, "limit_bytes", "64M"),
        (b, "accel", "hvf"),
        (c, "trials", []),
        (c, "kind", "boot"),
    ):
        wrong = dict(doc, **{key: value})
        with pytest.raises(jsonschema.ValidationError):
            assert_schema(wrong)
    missing = {k: v for k, v in b.items() if k != "detail"}
    with pytest.raises(jsonschema.ValidationError):
        assert_schema(missing)


def test_messages_round_trip_across_partial_reads() -> None:
    data = (
        messages.encode(Kind.JOIN, 1234)
        + messages.encode(Kind.UNPACK_FAILED, "no space\nleft \\ here")
        + b"noise the image wrote\n"
        + messages.encode(Kind.UNPACKED, 4096)
    )
    reader = messages.Reader()
    got = [m for i in range(len(data)) for m in reader.feed(data[i : i + 1])]
    assert got == [
        Message(Kind.JOIN, "1234"),
        Message(Kind.UNPACK_FAILED, "no space\nleft \\ here"),
        Message(Kind.UNPACKED, "4096"),
    ]
    assert got[0].number == 1234


def test_kernel_log_patterns() -> None:
    line = "[ 3.1] Out of memory: Killed process 212 (systemd-udevd) total-vm:1kB"
    assert kernel_log.OOM.search(line)
    assert kernel_log.killed(line) == [Killed(212, "systemd-udevd")]
    assert kernel_log.PANIC.search("Kernel panic - not syncing: VFS: Unable").group(1) == (
        "VFS: Unable"
    )
    assert kernel_log.UNPACK_FAILED.search("Initramfs unpacking failed: write error")
    assert not kernel_log.UNPACK_FAILED.search("Freeing initrd memory: 2048K")


def test_one_kdump_command_line_for_every_backend() -> None:
    assert DEFAULT_CMDLINE == KDUMP_CMDLINE + " console=ttyS0" == kdump_cmdline(X86_64)
    assert capture_cmdline(None, "quiet") == (
        f"console=ttyS0 rdinit=/footprint-probe {KDUMP_CMDLINE} quiet"
    )
    assert "panic=10" in KDUMP_CMDLINE and KDUMP_CMDLINE.count("panic=") == 1


def test_the_x86_64_record() -> None:
    assert list(ARCHES) == ["x86_64", "aarch64", "ppc64le", "s390x"]
    assert ARCHES["x86_64"] is X86_64
    assert (X86_64.qemu_binary, X86_64.console, X86_64.probe_serial) == (
        "qemu-system-x86_64",
        "ttyS0",
        "ttyS1",
    )
    assert X86_64.lib_dir == "lib/x86_64-linux-gnu" and X86_64.struct_page_bytes == 64


def test_parse_probe_keeps_whole_samples_only() -> None:
    text = (
        "@@ t 1.25\n@@ m MemTotal 1000\n@@ m MemFree 400\n@@ mod 12\n"
        "@@ p 1 sh 800 300\n@@ end\n@@ t 1.5\n@@ m MemTotal 1000\n"
    )
    assert parse_probe(text) == [
        ProbeSample(
            1.25,
            {"MemTotal": 1024000, "MemFree": 409600},
            12,
            (ProbeProcess(1, "sh", 819200, 307200),),
        )
    ]


def test_renamed_processes_count_for_their_file() -> None:
    from footprint.analyze import analyze
    from footprint.components.processes import owner_by_name

    a = analyze(str(SAMPLES / "busybox-gzip.img"))
    owner = owner_by_name(a, {"footprint-probe": "footprint-probe"})
    assert owner("busybox") == a.attribution.owner["bin/busybox"]
    assert owner("footprint-probe") == "footprint-probe"
    assert owner("(udev-worker)") == "unknown"  # no systemd-udevd in this image
    assert owner("no-such-process") == "unknown"


def test_backends_and_the_bounds_policy() -> None:
    from footprint.measure.backend import Backend
    from footprint.measure.calibrate import BOUNDS, Plan, model_bounds, rootfs_bounds
    from footprint.measure.kdump import KdumpBackend
    from footprint.measure.qemu import QemuBackend, QemuOptions
    from footprint.measure.runner import CgroupBackend

    backends: list[Backend] = [
        CgroupBackend(),
        QemuBackend(QemuOptions("vmlinuz")),
        KdumpBackend(QemuOptions("vmlinuz")),
    ]
    assert [b.name for b in backends] == list(BOUNDS) == ["cgroup", "qemu", "kdump"]
    plan = Plan(100 * MIB, 0, 0, 0, 10 * MIB)
    assert model_bounds(plan, 4 * MIB) == (72 * MIB, 132 * MIB)
    assert rootfs_bounds(plan, 4 * MIB) == (10 * MIB, 296 * MIB)


class _Threshold:
    """A backend whose runs succeed from `needs` bytes on: the search's logic alone."""

    name = "qemu"

    def __init__(self, needs: int, probe: bool, console: str = "") -> None:
        self.needs, self.probe, self.runs, self.console = needs, probe, [], console

    def run(self, image: str, memory: int) -> RunResult:
        self.runs.append(memory)
        ok = memory >= self.needs
        sample = ProbeSample(1.0, {"AnonPages": 3 * MIB, "Slab": 2 * MIB}, MIB, ())
        return RunResult(
            self.name,
            image,
            memory,
            Outcome.SUCCESS if ok else Outcome.OOM,
            "",
            1.0,
            min(memory, self.needs),
            console=self.console,
            qemu=QemuRun("k", "tcg", (sample,)) if self.probe else None,
        )


def test_calibrate_keeps_every_trial_and_repeats_the_boundary() -> None:
    from footprint.measure.calibrate import Plan, calibrate

    backend = _Threshold(101 * MIB, probe=True)
    c = calibrate(backend, "x.img", Plan(100 * MIB, 0, 0, 0, 0), 4 * MIB, repeat=2)
    assert backend.runs == [mib * MIB for mib in (132, 104, 88, 96, 100, 104, 100)]
    assert [t.succeeded for t in c.bisection.trials] == [True, True, False, False, False]
    assert c.bisection.minimum_bytes == 104 * MIB
    assert [(t.limit_bytes // MIB, t.outcome) for t in c.repeats] == [
        (104, Outcome.SUCCESS),
        (100, Outcome.OOM),
    ]
    assert c.terms is not None and (c.terms.userspace_peak, c.terms.kernel_runtime) == (
        3 * MIB,
        3 * MIB,
    )
    # 104 + makedumpfile 5 + margin 12 (10 %, to 4 MiB) = 121, to 16 MiB
    assert c.recommended_bytes == 128 * MIB
    no_probe = calibrate(_Threshold(101 * MIB, probe=False), "x.img", Plan(100 * MIB, 0, 0, 0, 0))
    assert no_probe.bisection.minimum_bytes == 104 * MIB
    assert (no_probe.terms, no_probe.recommended_bytes) == (None, None)


def test_calibrate_and_measure_print_trials_alike() -> None:
    from footprint.measure.ablate import Ablation
    from footprint.measure.calibrate import Plan, calibrate
    from footprint.measure.shapes import Shape, ShapeRun
    from footprint.measure.workflow import AblationRun, CalibrateRun, Skipped
    from footprint.report.boot import calibrate_run_dict, calibration_text
    from footprint.report.measure import bisection_dict, measurement_text

    plan = Plan(100 * MIB, 150 * MIB, 10 * MIB, 5 * MIB, 20 * MIB)
    direct = calibrate(_Threshold(101 * MIB, probe=True), "x.img", plan, 4 * MIB, repeat=2)
    kdump = calibrate(_Threshold(121 * MIB, probe=True), "x.img", plan, 4 * MIB)
    ablated = calibrate(_Threshold(81 * MIB, probe=True), "x.img", Plan(80 * MIB, 0, 0, 0, 0))
    pad = Ablation("pad", frozenset({"data/pad"}), 16 * MIB, 20 * MIB)
    run = CalibrateRun(
        direct,
        (ShapeRun(Shape(3072, 1), kdump),),
        (AblationRun(pad, ablated, "gzip"),),
        (Skipped("glibc", 3 * MIB, "needed"),),
    )
    doc = calibrate_run_dict(run)
    assert_schema(doc)
    assert (doc["minimum_mib"], doc["kdump"]["minimum_mib"], doc["kexec_minus_direct_mib"]) == (
        104,
        124,
        20,
    )
    assert doc["ablations"][0]["measured_delta_mib"] == 20
    text = calibration_text(doc).splitlines()
    assert text[1:3] == [
        "     132 MiB → success        peak    101 MiB    1.0 s",
        "     104 MiB → success        peak    101 MiB    1.0 s",
    ]
    assert "     100 MiB → oom            peak    100 MiB    1.0 s (repeat)" in text
    assert "recommended        crashkernel=160M" in text  # kdump: 124 + 5 + 16, to 16 MiB
    measured = measurement_text({"bisect": bisection_dict(direct.bisection)}).splitlines()
    assert measured[1:6] == text[1:6]


# Debian 6.1 arm64's first kernel (3G) and its capture, as their consoles say it
ARM64_CONSOLE = """[    0.000000] Linux version 6.1.0-50-arm64 (debian-kernel@lists.debian.org)
[    0.000000] cma: Reserved 64 MiB at 0x00000000f4200000
[    0.000000] Kernel command line: console=ttyAMA0 earlycon {first} panic=1 rdinit=/init
[    3.401167] Starting crashdump kernel...
[    0.000000] Linux version 6.1.0-50-arm64 (debian-kernel@lists.debian.org)
[    0.000000] Kernel command line: console=ttyAMA0 earlycon rdinit=/footprint-probe {append}
"""


@pytest.mark.parametrize(
    "first, append, cma",
    [
        ("crashkernel=80M", "nr_cpus=1", 64),
        ("crashkernel=80M", "nr_cpus=1 cma=0", 0),  # the capture does without
        ("crashkernel=80M crashkernel=64M,cma", "nr_cpus=1", 0),  # maybe crashkernel's range
    ],
)
def test_a_kernel_default_cma_is_said_unless_the_capture_sets_cma(
    first: str, append: str, cma: int
) -> None:
    from footprint.measure.calibrate import Plan, calibrate
    from footprint.measure.shapes import Shape, ShapeRun
    from footprint.measure.workflow import CalibrateRun
    from footprint.report.boot import calibrate_run_dict, calibration_text

    console = ARM64_CONSOLE.format(first=first, append=append)
    plan = Plan(100 * MIB, 150 * MIB, 10 * MIB, 5 * MIB, 20 * MIB)
    direct = calibrate(_Threshold(81 * MIB, probe=True), "x.img", plan, 4 * MIB)
    kdump = calibrate(_Threshold(81 * MIB, probe=True, console=console), "x.img", plan, 4 * MIB)
    doc = calibrate_run_dict(CalibrateRun(direct, (ShapeRun(Shape(3072, 1), kdump),), (), ()))
    assert_schema(doc)
    assert (doc["kernel_cma_mib"], doc["kdump"]["kernel_cma_mib"]) == (0, cma)
    warned = [line for line in calibration_text(doc).splitlines() if "CMA" in line]
    assert warned == (
        [
            "  warning: this kernel sets aside 64 MiB of CMA at boot (CONFIG_CMA_SIZE_MBYTES), "
            "and so does the capture wherever crashkernel= has room for it: a larger "
            "crashkernel= can then fail where this one boots. cma=0 on the capture's command "
            "line (kdump-tools: KDUMP_CMDLINE_APPEND) avoids it"
        ]
        if cma
        else []
    )
