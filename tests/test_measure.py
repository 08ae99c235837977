"""`footprint measure`: real cgroups, real namespaces, real images — and nothing left behind
after any ending (success, OOM, timeout, exception, SIGINT, SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner
from conftest import SAMPLES, assert_schema, need, real_image

from footprint.cli import cli
from footprint.image.cpio import newc_entry, newc_trailer
from footprint.image.reader import scan
from footprint.measure.backend import RunResult
from footprint.measure.bisect import bisect
from footprint.measure.runner import CgroupOptions, measure

pytestmark = pytest.mark.slow
BUSYBOX = str(SAMPLES / "busybox-gzip.img")
MARKER = "footprint-sample: init reached"


@pytest.fixture(autouse=True)
def root_only() -> None:
    need(os.geteuid() == 0, "measure needs root (user namespaces mapped by root, cgroups)")


def leftovers() -> dict[str, object]:
    """What a run could leave behind: cgroups, mounts, processes, temporary directories."""
    cgroups = set()
    for h in (
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/unified",
    ):
        if os.path.isdir(h):
            cgroups |= {f"{h}/{d}" for d in os.listdir(h) if d.startswith("footprint")}
    with open("/proc/self/mountinfo") as f:
        mounts = sorted(line.split()[4] for line in f)
    children = sorted(p.pid for p in psutil.Process().children(recursive=True))
    tmp = sorted(p for p in os.listdir(tempfile.gettempdir()) if p.startswith("footprint-measure-"))
    return {"cgroups": cgroups, "mounts": mounts, "children": children, "tmp": tmp}


@pytest.fixture
def clean():
    before = leftovers()
    yield
    for _ in range(50):  # the kernel frees a cgroup a moment after its last process
        if leftovers() == before:
            break
        time.sleep(0.1)
    assert leftovers() == before


def test_busybox_sample_reaches_its_marker(clean) -> None:
    m = measure(BUSYBOX, 128 << 20, CgroupOptions(until=MARKER, timeout=30))
    assert m.outcome == "success" and m.succeeded and m.backend == "cgroup"
    assert m.detail == f"the marker appeared: {MARKER}"
    assert m.cgroup is not None
    static = sum(
        page
        for page in [
            4096 * -(-n.size // 4096) for n in scan(BUSYBOX).rootfs.nodes.values() if n.inode
        ]
    )
    assert m.cgroup.unpacked_bytes == scan(BUSYBOX).rootfs.nodes["bin/busybox"].size + sum(
        n.size for p, n in scan(BUSYBOX).rootfs.nodes.items() if n.inode and p != "bin/busybox"
    )
    assert m.cgroup.rootfs_charge_bytes >= static
    assert m.peak_bytes >= m.cgroup.rootfs_charge_bytes
    assert "init reached" in m.console
    assert RunResult.from_dict(json.loads(json.dumps(m.to_dict()))) == m


def test_oom_in_userspace_names_the_killed_process(clean) -> None:
    r = CliRunner().invoke(
        cli,
        [
            "measure",
            BUSYBOX,
            "--memory",
            "64M",
            "--json",
            "--run",
            "/bin/sh -c 'dd if=/dev/zero of=/dev/null bs=100M count=1'",
        ],
    )
    assert r.exit_code == 1, r.output
    doc = json.loads(r.output)
    assert_schema(doc)
    assert doc["outcome"] == "oom" and doc["success"] is False and doc["oom"]["kills"] >= 1
    assert any(k["name"] == "dd" for k in doc["oom"]["killed"])
    assert doc["peak_bytes"] <= 64 << 20


def test_too_small_for_the_rootfs_is_an_unpack_failure(clean) -> None:
    m = measure(BUSYBOX, 3 << 20, CgroupOptions(until=MARKER, timeout=30))
    assert m.outcome == "unpack-failed" and not m.succeeded


def test_timeout_is_reported(clean) -> None:
    m = measure(BUSYBOX, 64 << 20, CgroupOptions(argv=("/bin/sleep", "30"), timeout=1.0))
    assert m.outcome == "timeout" and 1.0 <= m.duration_s < 10


def test_exception_while_sampling_leaves_nothing(clean) -> None:
    def boom(sample: object) -> None:
        raise RuntimeError("sampler failed")

    with pytest.raises(RuntimeError):
        measure(
            BUSYBOX,
            64 << 20,
            CgroupOptions(argv=("/bin/sleep", "30"), timeout=20, on_sample=boom),
        )


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_leave_nothing(clean, sig: int, code: int) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "footprint",
            "measure",
            BUSYBOX,
            "--run",
            "/bin/sleep 60",
            "--timeout",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_sigint_default,  # a CI started in the background ignores SIGINT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the sandbox runs
        if any(p.name() == "sleep" for p in psutil.Process(proc.pid).children(recursive=True)):
            break
        time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err


def test_bisect_converges_and_repeats() -> None:
    def run(limit: int):
        return measure(BUSYBOX, limit, CgroupOptions(until=MARKER, timeout=30))

    step = 256 << 10
    a = bisect(run, 1 << 20, 64 << 20, step)
    b = bisect(run, 1 << 20, 64 << 20, step)
    assert a.minimum_bytes and b.minimum_bytes
    assert abs(a.minimum_bytes - b.minimum_bytes) <= 2 * step
    assert any(not t.succeeded for t in a.trials) and any(t.succeeded for t in a.trials)
    below = [t for t in a.trials if t.limit_bytes < a.minimum_bytes]
    assert below and all(not t.succeeded for t in below if t.limit_bytes <= a.low_bytes)


def test_bisect_cli_prints_every_trial_and_the_run_at_the_minimum(clean) -> None:
    r = CliRunner().invoke(
        cli, ["measure", BUSYBOX, "--until", MARKER, "--bisect", "--resolution", "1M", "--json"]
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert_schema(doc)
    trials = doc["bisect"]["trials"]
    passed = [t["memory_bytes"] for t in trials if t["success"]]
    failed = [t["memory_bytes"] for t in trials if not t["success"]]
    assert doc["minimum_bytes"] == min(passed) == doc["limit_bytes"]
    assert max(failed) == doc["minimum_bytes"] - (1 << 20)  # to the resolution
    assert doc["outcome"] == "success" and doc["trials"] == trials
    # rootfs .. 4 x rootfs + 256 MiB, from the static rootfs
    assert trials[0]["memory_bytes"] == -(
        -(4 * doc["static_rootfs_bytes"] + (256 << 20)) // (1 << 20)
    ) * (1 << 20)


def _hostile_image(tmp_path: Path) -> str:
    busybox = {}

    def grab(entry, data, node):  # noqa: ANN001
        if node is not None and node.path == "bin/busybox" and data is not None:
            busybox["b"] = data.read()

    scan(BUSYBOX, visit=grab)
    script = f"""#!/bin/busybox sh
echo hostile-start
ls /.oldroot >/dev/null 2>&1 && echo SAW-OLDROOT
ls {tmp_path} >/dev/null 2>&1 && echo SAW-HOST-TMP
grep -q footprint-measure /proc/mounts && echo SAW-HOST-MOUNTS
mknod /dev/sdx b 8 0 2>/dev/null && echo MKNOD-OK
echo 1 > /sys/kernel/mm/ksm/run 2>/dev/null && echo SYS-WRITE
mount -t proc proc /mnt 2>/dev/null && echo PROC-REMOUNT
touch {tmp_path}/pwned 2>/dev/null && echo WROTE-HOST
kill -9 -1 2>/dev/null
i=0; while [ $i -lt 3000 ]; do sleep 30 & i=$((i+1)); done 2>/dev/null
echo hostile-end
"""
    d, f, x = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o755, stat.S_IFLNK | 0o777
    entries = [
        newc_entry(".", d),
        newc_entry("bin", d),
        newc_entry("mnt", d),
        newc_entry("bin/busybox", f, busybox["b"]),
        newc_entry("bin/sh", x, b"busybox"),
        newc_entry("bin/sleep", x, b"busybox"),
        newc_entry("init", f, script.encode()),
    ]
    img = tmp_path / "hostile.img"
    img.write_bytes(b"".join(entries) + newc_trailer())
    return str(img)


def test_hostile_image_stays_inside(clean, tmp_path) -> None:
    img = _hostile_image(tmp_path)
    m = measure(img, 256 << 20, CgroupOptions(until="hostile-end", timeout=60, pids_max=64))
    assert m.cgroup is not None
    assert "hostile-start" in m.console
    for escape in (
        "SAW-OLDROOT",
        "SAW-HOST-TMP",
        "SAW-HOST-MOUNTS",
        "MKNOD-OK",
        "SYS-WRITE",
        "PROC-REMOUNT",
        "WROTE-HOST",
    ):
        assert escape not in m.console, m.console
    assert not (tmp_path / "pwned").exists()
    assert max(len(s.processes) for s in m.cgroup.timeline) <= 64


@pytest.mark.integration
def test_debian_initramfs_tools_runs_to_its_root_wait(clean) -> None:
    image = real_image("initramfs-tools-zstd.img")
    r = CliRunner().invoke(
        cli,
        [
            "measure",
            str(image),
            "--memory",
            "512M",
            "--json",
            "--until",
            "Gave up waiting for root",
            "--timeout",
            "120",
        ],
    )
    assert r.exit_code == 0, r.output[-2000:]
    doc = json.loads(r.output)
    assert doc["outcome"] == "success"
    assert doc["detail"] == "the marker appeared: Gave up waiting for root"
    assert doc["peak_bytes"] >= doc["unpacked_bytes"] >= 100 << 20
    assert doc["rootfs_bytes"] >= doc["static_rootfs_bytes"] * 0.95
    udev = next(c for c in doc["components"] if c["name"] == "udev")
    assert "systemd-udevd" in udev["processes"] and udev["anon_peak_bytes"] > 0
    assert udev["static_proportional_bytes"] > 0
    assert doc["timeline"]
    assert_schema(doc)


@pytest.mark.integration
def test_debian_image_below_its_rootfs_fails_clearly(clean) -> None:
    image = real_image("initramfs-tools-zstd.img")
    m = measure(str(image), 96 << 20, CgroupOptions(until="Gave up waiting for root", timeout=60))
    assert m.outcome in ("unpack-failed", "oom")


def _sigint_default() -> None:
    """In the child: SIGINT as a terminal gives it (a shell's background job inherits it
    ignored, and Python then never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
