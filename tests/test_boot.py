"""`footprint boot` and `calibrate` in QEMU (TCG where KVM does not work), on the committed
busybox sample, on images made here for each failure class, and on Debian's kernel."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SAMPLES, assert_schema, need, need_tool

from footprint.cli import cli
from footprint.image.cpio import newc_entry, newc_trailer
from footprint.image.reader import scan
from footprint.image.summary import summarize
from footprint.measure.backend import RunResult
from footprint.measure.qemu import QemuOptions, boot

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BUSYBOX = str(SAMPLES / "busybox-gzip.img")
MARKER = "footprint-sample: init reached"
MIB = 1 << 20


@pytest.fixture(scope="module")
def kernel() -> str:
    need_tool("qemu-system-x86_64", "qemu-system-x86")
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    need(kernels, "no kernel in /boot (apt-get install linux-image-amd64)")
    return str(kernels[-1])


def _busybox() -> bytes:
    out = {}

    def grab(entry, data, node):  # noqa: ANN001
        if node is not None and node.path == "bin/busybox" and data is not None:
            out["b"] = data.read()

    scan(BUSYBOX, visit=grab)
    return out["b"]


def _image(tmp_path: Path, init: str, extra: dict[str, bytes] | None = None) -> str:
    d, f, link = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o755, stat.S_IFLNK | 0o777
    entries = [newc_entry(n, d) for n in (".", "bin", "proc", "dev", "sys", "data")]
    entries.append(newc_entry("bin/busybox", f, _busybox()))
    for applet in ("sh", "mount", "sleep", "dd", "cat", "poweroff", "echo"):
        entries.append(newc_entry(f"bin/{applet}", link, b"busybox"))
    for name, data in (extra or {}).items():
        entries.append(newc_entry(name, stat.S_IFREG | 0o644, data))
    entries.append(newc_entry("init", f, init.encode()))
    img = tmp_path / "made.img"
    img.write_bytes(b"".join(entries) + newc_trailer())
    return str(img)


def test_boot_reports_the_probe(kernel: str) -> None:
    r = boot(BUSYBOX, 256 * MIB, QemuOptions(kernel, cmdline="", until=MARKER, timeout=120))
    assert r.outcome == "success", r.console[-2000:]
    assert r.qemu is not None and r.qemu.samples, "the probe sent samples on the second port"
    total = r.qemu.samples[0].meminfo["MemTotal"]
    assert 0.6 * 256 * MIB < total <= 256 * MIB
    # No root= on the command line: the rootfs is tmpfs, its pages are Shmem (short symlinks
    # take none there).
    rootfs = summarize(scan(BUSYBOX)).boot.rootfs_tmpfs_bytes
    assert max(s.meminfo.get("Shmem", 0) for s in r.qemu.samples) >= 0.95 * rootfs
    assert r.peak_bytes > rootfs
    assert RunResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_boot_cli_json(kernel: str) -> None:
    res = CliRunner().invoke(
        cli, ["boot", BUSYBOX, "--kernel", kernel, "--memory", "192M", "--until", MARKER, "--json"]
    )
    assert res.exit_code == 0, res.output[-2000:]
    doc = json.loads(res.stdout)
    assert_schema(doc)
    assert doc["outcome"] == "success" and doc["backend"] == "qemu"
    assert doc["memory_mib"] == 192 and doc["accel"] in ("kvm", "tcg")
    assert doc["timeline"] and doc["breakdown"]["memtotal_bytes"] > 0


def test_unpack_failure_is_classified(kernel: str, tmp_path) -> None:
    pad = os.urandom(80 * MIB)  # incompressible: held compressed and unpacked at once
    img = _image(tmp_path, f"#!/bin/sh\necho {MARKER}\npoweroff -f\n", {"data/pad": pad})
    r = boot(img, 160 * MIB, QemuOptions(kernel, until=MARKER, timeout=120))
    assert (r.outcome, r.detail) == (
        "unpack-failed",
        "out of memory while unpacking the initramfs",
    ), r.console[-2000:]


def test_oom_in_userspace_is_classified(kernel: str, tmp_path) -> None:
    init = (
        "#!/bin/sh\nmount -t proc proc /proc\necho 1 > /proc/sys/vm/overcommit_memory\n"
        "dd if=/dev/zero of=/dev/null bs=300M count=1\n"
        "echo after-dd\nsleep 30\n"
    )
    img = _image(tmp_path, init)
    r = boot(img, 160 * MIB, QemuOptions(kernel, until="after-dd", timeout=120))
    assert r.outcome == "oom", r.console[-2000:]
    assert any(k.name == "dd" for k in r.killed)


def test_panic_is_classified(kernel: str) -> None:
    r = boot(BUSYBOX, 192 * MIB, QemuOptions(kernel, init="/no-such-init", until=MARKER))
    assert r.outcome == "panic", r.console[-2000:]
    assert r.detail.startswith("Attempted to kill init!"), r.detail


def test_calibrate_small_image(kernel: str) -> None:
    res = CliRunner().invoke(
        cli, ["calibrate", BUSYBOX, "--kernel", kernel, "--until", MARKER, "--json"]
    )
    assert res.exit_code == 0, res.output[-3000:]
    doc = json.loads(res.stdout)
    assert_schema(doc)
    assert doc["minimum_mib"] and len(doc["trials"]) <= 10
    assert doc["at_minimum"]["memory_mib"] == doc["minimum_mib"]
    assert doc["kernel_cma_mib"] == 0  # Debian's amd64 6.1: CONFIG_CMA is not set
    below = [t for t in doc["trials"] if t["memory_mib"] < doc["minimum_mib"]]
    assert below and all(not t["success"] for t in below)
    assert all(t["outcome"] in ("panic", "oom", "unpack-failed", "timeout") for t in below)
    assert doc["recommended_crashkernel"].startswith("crashkernel=")
    assert doc["recommended_mib"] > doc["minimum_mib"]
    assert doc["model_mib"] > 0 and doc["kdumpctl_formula_mib"] > 0


def test_ablation_of_a_known_padding(kernel: str, tmp_path) -> None:
    """A 16 MiB incompressible padding component: held compressed and unpacked during the
    unpack, so removing it must save about 32 MiB; the model says the same within 4 MiB."""
    import gzip

    pad = gzip.compress(
        newc_entry("data", stat.S_IFDIR | 0o755)
        + newc_entry("data/pad", stat.S_IFREG | 0o644, os.urandom(16 * MIB))
        + newc_trailer(),
        1,
    )
    image = tmp_path / "padded.img"
    image.write_bytes(Path(BUSYBOX).read_bytes() + pad)
    rules = tmp_path / "rules.toml"
    rules.write_text('[[component]]\nname = "padding"\npatterns = ["data/*"]\n')
    res = CliRunner().invoke(
        cli,
        [
            "calibrate",
            str(image),
            "--kernel",
            kernel,
            "--until",
            MARKER,
            "--rules",
            str(rules),
            "--without",
            "padding",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output[-3000:]
    doc = json.loads(res.stdout)
    assert_schema(doc)
    row = doc["ablations"][0]
    assert row["component"] == "padding" and row["static_marginal_mib"] == 16.0
    assert abs(row["measured_delta_mib"] - row["static_marginal_unpack_mib"]) <= 4 + 4
    assert 16 <= row["measured_delta_mib"] <= 40


def test_ablation_refuses_what_the_boot_needs(kernel: str) -> None:
    res = CliRunner().invoke(
        cli, ["calibrate", BUSYBOX, "--kernel", kernel, "--until", MARKER, "--without", "busybox"]
    )
    assert res.exit_code == 2 and "cannot ablate busybox" in res.output


def test_kdump_crash_boots_the_capture_kernel_in_the_reservation(kernel: str) -> None:
    from footprint.measure.kdump import kdump_boot

    options = QemuOptions(kernel, until=MARKER, timeout=180)
    r = kdump_boot(BUSYBOX, 160 * MIB, options)
    assert r.outcome == "success", r.console[-3000:]
    assert "no /proc/vmcore" not in r.detail, "the capture kernel sees the crashed kernel"
    assert "footprint-stage1: loaded" in r.console and "sysrq: Trigger a crash" in r.console
    assert RunResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    assert r.qemu is not None and r.backend == "kdump"
    total = r.qemu.samples[0].meminfo["MemTotal"]
    assert total < 160 * MIB, "the capture kernel runs inside the reservation"
    small = kdump_boot(BUSYBOX, 8 * MIB, options)
    assert small.outcome == "load-failed", small.console[-2000:]


def test_calibrate_kdump_small_image(kernel: str) -> None:
    res = CliRunner().invoke(
        cli, ["calibrate", BUSYBOX, "--kernel", kernel, "--until", MARKER, "--kdump", "--json"]
    )
    assert res.exit_code == 0, res.output[-3000:]
    doc = json.loads(res.stdout)
    assert_schema(doc)
    k = doc["kdump"]
    assert (doc["backend"], k["backend"]) == ("qemu", "kdump")
    assert k["minimum_mib"] and doc["minimum_mib"]
    assert abs(doc["kexec_minus_direct_mib"]) <= 32
    below = [t for t in k["trials"] if t["memory_mib"] < k["minimum_mib"]]
    assert below and all(not t["success"] for t in below)
    assert k["recommended_crashkernel"].startswith("crashkernel=")
