"""aarch64 (issue 17): Debian 12's arm64 kernel read by content (the Image header's exact
image_size and page size, gzip'ed as distributions ship Image.gz), never taken for a UKI, and
booted and calibrated under qemu-system-aarch64 -machine virt (TCG) with the arm64 images
sample_initrds/build-arm64.sh makes from Debian's arm64 packages (`make samples-arm64`)."""

from __future__ import annotations

import gzip
import json
import os
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REAL, assert_schema, need, need_tool

from footprint.arch import AARCH64, X86_64, by_name
from footprint.cli import cli
from footprint.errors import UsageError
from footprint.image.uki import linux_section
from footprint.measure.qemu import QemuOptions, boot, kernel_file, resolve_arch
from footprint.model.kernel import kernel_arch, read_kernel

ARM64 = Path(os.environ.get("FOOTPRINT_ARM64_IMAGES", REAL / "arm64"))
MIB = 1 << 20
# What Debian's arm64 Image header says (image_size: text to the end of bss), per release.
IMAGE_SIZE = {"6.1.0-50-arm64": 33_619_968}
# initramfs-tools' init, past its modules and udev: looking for the (absent) root device.
ITOOLS_MARKER = "Begin: Running /scripts/local-block"


def _arm64(name: str) -> Path:
    path = ARM64 / name
    need(path.exists(), f"{path} is missing: run `make samples-arm64` (root, qemu-user-static)")
    return path


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(_arm64("manifest.json").read_text())


@pytest.fixture(scope="module")
def vmlinuz() -> Path:
    return _arm64("vmlinuz")


def test_the_arm64_image_header(vmlinuz: Path, manifest: dict) -> None:
    k = read_kernel(str(vmlinuz))
    data = vmlinuz.read_bytes()
    assert data[:2] == b"MZ" and data[0x38:0x3C] == b"ARM\x64"  # an EFI-stub Image
    assert (k.arch, k.format, k.file_bytes) == (AARCH64, "Image", len(data))
    (image_size,) = struct.unpack_from("<Q", data, 0x10)
    assert k.init_size == image_size > k.file_bytes
    if manifest["kver"] in IMAGE_SIZE:
        assert k.init_size == IMAGE_SIZE[manifest["kver"]]
    assert k.page_size == 4096 and k.text_offset == 0  # CONFIG_ARM64_4K_PAGES, flags 0b1010
    assert k.version.startswith(manifest["kver"] + " (debian-kernel@")
    assert k.vmlinux is None and k.image is None  # the file boots as it is


def test_a_gzipped_image_is_read_and_booted_decompressed(vmlinuz: Path, tmp_path: Path) -> None:
    data = vmlinuz.read_bytes()
    gz = tmp_path / "Image.gz"
    gz.write_bytes(gzip.compress(data, 1))
    k = read_kernel(str(gz))
    assert (k.arch, k.format, k.image) == (AARCH64, "Image.gz", data)
    assert k.init_size == read_kernel(str(vmlinuz)).init_size
    booted = kernel_file(str(gz), str(tmp_path))
    assert Path(booted).read_bytes() == data and kernel_arch(str(gz)) is AARCH64


def test_an_efi_zboot_image_is_read_through_its_header(vmlinuz: Path, tmp_path: Path) -> None:
    """EFI zboot (Fedora's aarch64 vmlinuz; Debian's bookworm and trixie arm64 kernels are
    bare Images) laid out as drivers/firmware/efi/libstub/zboot-header.S does, around the
    real Image gzip'ed: "MZ", "zimg" at 4, payload offset and size, "gzip" at 0x18, the PE
    header's machine arm64."""
    data = vmlinuz.read_bytes()
    payload = gzip.compress(data, 1)
    head = bytearray(0x200)
    head[0:2], head[4:8] = b"MZ", b"zimg"
    struct.pack_into("<II", head, 8, len(head), len(payload))
    head[0x18:0x1D] = b"gzip\0"
    struct.pack_into("<I", head, 0x3C, 0x40)
    head[0x40:0x46] = b"PE\0\0" + struct.pack("<H", 0xAA64)
    zboot = tmp_path / "vmlinuz.efi"
    zboot.write_bytes(bytes(head) + payload)
    k = read_kernel(str(zboot))
    assert (k.arch, k.format, k.image, k.file_bytes) == (
        AARCH64,
        "zboot",
        data,
        zboot.stat().st_size,
    )
    assert k.init_size == read_kernel(str(vmlinuz)).init_size
    assert kernel_arch(str(zboot)) is AARCH64
    with open(zboot, "rb") as f:
        assert linux_section(f, str(zboot)) is None  # no UKI either
    assert Path(kernel_file(str(zboot), str(tmp_path))).read_bytes() == data


def test_an_arm64_image_is_no_uki(vmlinuz: Path, tmp_path: Path) -> None:
    with open(vmlinuz, "rb") as f:
        assert linux_section(f, str(vmlinuz)) is None
    assert kernel_file(str(vmlinuz), str(tmp_path)) == str(vmlinuz)
    assert kernel_arch(str(vmlinuz)) is AARCH64
    assert kernel_arch(str(ARM64 / "manifest.json")) is None


def test_arm64_boots_print_before_their_console_binds() -> None:
    from footprint.measure.qemu import capture_cmdline

    assert capture_cmdline("", "", AARCH64).split()[:2] == ["console=ttyAMA0", "earlycon"]
    assert capture_cmdline("", "", X86_64).split()[:2] == [
        "console=ttyS0",
        "rdinit=/footprint-probe",
    ]


def test_the_kernel_says_its_architecture_and_arch_checks_it(vmlinuz: Path) -> None:
    with pytest.raises(UsageError, match="is an aarch64 kernel, not x86_64"):
        boot("unused.img", 256 * MIB, QemuOptions(str(vmlinuz)))  # QemuOptions' default arch
    assert resolve_arch(str(vmlinuz), None) is AARCH64
    assert resolve_arch(str(vmlinuz), "aarch64") is AARCH64
    assert by_name("arm64") is AARCH64 and by_name("amd64") is X86_64
    with pytest.raises(UsageError, match="is an aarch64 kernel"):
        resolve_arch(str(vmlinuz), "x86_64")
    r = CliRunner().invoke(
        cli, ["boot", str(vmlinuz), "--kernel", str(vmlinuz), "--arch", "x86_64"]
    )
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert "--arch x86_64, but" in r.output


def test_the_arm64_images_are_arm64(manifest: dict) -> None:
    """inspect/components read the arm64 images: aarch64 ELF facts, their libraries found
    in lib/aarch64-linux-gnu, the page size from the kernel."""
    from footprint.analyze import analyze

    a = analyze(str(_arm64("kdump-tools.img")), kernel=str(_arm64("vmlinuz")))
    assert a.reservation.page_size == 4096
    assert a.reservation.kernel_method == "init_size"
    assert a.reservation.kernel_version == manifest["kver"]


# -- QEMU (TCG) ----------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("name", ["kdump-tools.img", "initramfs-tools.img"])
def test_boot_arm64_initramfs_tools_to_its_marker(vmlinuz: Path, name: str) -> None:
    """Both are initramfs-tools' images (its init, its marker); the MODULES=most one is the
    slow one to build under qemu-user, and `ITOOLS=0 make samples-arm64` (CI) leaves it out."""
    need_tool("qemu-system-aarch64", "qemu-system-arm")
    image = ARM64 / name
    if name == "initramfs-tools.img" and not image.exists():
        pytest.skip(f"{image} is not built (ITOOLS=0 make samples-arm64)")
    image = _arm64(name)
    options = QemuOptions(str(vmlinuz), until=ITOOLS_MARKER, timeout=300, arch=AARCH64)
    r = boot(str(image), 512 * MIB, options)
    assert r.outcome == "success", r.console[-3000:]
    assert r.qemu is not None and r.qemu.accel in ("kvm", "tcg") and r.qemu.samples
    assert "Booting Linux on physical CPU" in r.console and "ttyAMA0" in r.console
    total = r.qemu.samples[0].meminfo["MemTotal"]
    assert 0.6 * 512 * MIB < total <= 512 * MIB


@pytest.mark.integration
@pytest.mark.slow
def test_calibrate_arm64_kdump_tools(vmlinuz: Path) -> None:
    need_tool("qemu-system-aarch64", "qemu-system-arm")
    image = _arm64("kdump-tools.img")
    res = CliRunner().invoke(cli, ["calibrate", str(image), "--kernel", str(vmlinuz), "--json"])
    assert res.exit_code == 0, res.output[-3000:]
    doc = json.loads(res.stdout)
    assert_schema(doc)
    assert doc["arch"] == "aarch64" and doc["minimum_mib"]
    assert doc["kernel_cma_mib"] == 0  # at the minimum there is no room for its 64 MiB
    below = [t for t in doc["trials"] if t["memory_mib"] < doc["minimum_mib"]]
    assert below and not any(t["success"] for t in below)
    assert doc["at_minimum"]["memory_mib"] == doc["minimum_mib"]


@pytest.mark.integration
@pytest.mark.slow
def test_kdump_of_arm64_one_trial_each_side(vmlinuz: Path) -> None:
    """A real arm64 crash: the stage-1 runs the arm64 chroot's kexec -p (root/ beside the
    kernel), the capture boots kdump-tools' initrd inside crashkernel=. Debian's arm64 kernel
    sets aside CONFIG_CMA_SIZE_MBYTES=64 of CMA in the capture too (kdump-tools appends no
    cma=0), so 112M leaves 5.6 MiB and the unpack runs out of memory: earlycon shows it (the
    PL011 console binds after the unpack; without it the boot ended in silence). 160M boots."""
    from footprint.measure.kdump import kdump_boot
    from footprint.measure.kernel_log import cma_reserved_mib

    need_tool("qemu-system-aarch64", "qemu-system-arm")
    need((ARM64 / "root" / "sbin" / "kexec").exists(), f"{ARM64}/root is not built")
    image = str(_arm64("kdump-tools.img"))
    options = QemuOptions(str(vmlinuz), arch=AARCH64, timeout=240)
    r = kdump_boot(image, 160 * MIB, options)
    assert r.outcome == "success" and "no /proc/vmcore" not in r.detail, r.console[-3000:]
    assert "footprint-stage1: loaded" in r.console and "Starting crashdump kernel" in r.console
    assert cma_reserved_mib(r.console) == 64  # the first kernel's, at 3G
    r = kdump_boot(image, 112 * MIB, options)
    assert (r.outcome, r.detail) == ("unpack-failed", "out of memory while unpacking the initramfs")
    capture = r.console.split("Starting crashdump kernel", 1)[1]
    assert cma_reserved_mib(capture) == 64 and "earlycon: pl11 at MMIO" in capture


# -- the next architectures: a boot to the marker ------------------------------------------------
OTHER = Path(os.environ.get("FOOTPRINT_OTHER_ARCHES", REAL / "other-arches"))
MARKER = "footprint-sample: init reached"


def _other(darch: str) -> tuple[Path, Path]:
    d = OTHER / darch
    need(
        (d / "kver").exists(),
        f"{d} is missing: run sample_initrds/build-other-arches.sh (Debian's {darch} packages)",
    )
    return next(d.glob("vmlinu[xz]")), d / "busybox"


def _busybox_image(busybox: Path, tmp_path: Path) -> str:
    """A minimal initrd around that architecture's static busybox: init prints the marker."""
    import stat

    from footprint.image.cpio import newc_entry, newc_trailer

    d, f, link = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o755, stat.S_IFLNK | 0o777
    entries = [newc_entry(n, d) for n in (".", "bin", "proc", "dev", "sys")]
    entries.append(newc_entry("bin/busybox", f, busybox.read_bytes()))
    for applet in ("sh", "mount", "sleep", "cat", "poweroff", "echo", "mkfifo", "rm", "mkdir"):
        entries.append(newc_entry(f"bin/{applet}", link, b"busybox"))
    init = f"#!/bin/sh\necho {MARKER}\nsleep 3\npoweroff -f\n"
    entries.append(newc_entry("init", f, init.encode()))
    img = tmp_path / "busybox.img"
    img.write_bytes(b"".join(entries) + newc_trailer())
    return str(img)


def test_a_ppc64le_vmlinux_says_its_architecture() -> None:
    from footprint.arch import PPC64LE

    kernel, _ = _other("ppc64el")
    assert kernel_arch(str(kernel)) is PPC64LE and resolve_arch(str(kernel), None) is PPC64LE
    k = read_kernel(str(kernel))
    assert k.format == "vmlinux" and k.version.startswith(
        (OTHER / "ppc64el/kver").read_text().strip()
    )
    assert PPC64LE.page_size == 65536


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize(
    ("darch", "arch", "tool", "package"),
    [
        ("ppc64el", "ppc64le", "qemu-system-ppc64", "qemu-system-ppc"),
        ("s390x", "s390x", "qemu-system-s390x", "qemu-system-misc"),
    ],
)
def test_boot_to_the_marker(darch: str, arch: str, tool: str, package: str, tmp_path: Path) -> None:
    need_tool(tool, package)
    kernel, busybox = _other(darch)
    image = _busybox_image(busybox, tmp_path)
    res = CliRunner().invoke(
        cli,
        ["boot", image, "--kernel", str(kernel), "--arch", arch, "--memory", "512M",
         "--until", MARKER, "--timeout", "240", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output[-3000:]
    doc = json.loads(res.stdout)
    assert doc["outcome"] == "success" and doc["detail"] == MARKER
    assert doc["timeline"], "the probe's samples reached the host"
