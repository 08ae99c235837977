"""Root disks and the dumps saved on them: the layout read by util-linux (sfdisk, blkid) from
disks made here by the real tools (mkfs.ext4 -d, sfdisk, qemu-img), bad disks as one-line
errors, dump headers and the read-back of /var/crash through debugfs; and, in QEMU on the
cached Debian root disk (make rootdisk), one dump trial well above the minimum and one well
below it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REAL, assert_schema, need, need_tool

from footprint.cli import cli
from footprint.errors import EXIT_BAD_IMAGE, EXIT_USAGE, BadImage, UsageError
from footprint.measure import kernel_log
from footprint.measure.backend import DumpFile, DumpFormat, Outcome, QemuRun, RunResult
from footprint.measure.dump import Filesystem, capture_append, check_dump, dump_format
from footprint.measure.qemu import capture_cmdline, classify
from footprint.measure.rootdisk import open_disk, read_disk

MIB = 1 << 20
STAMP = "202501021530"
PANIC = "[    7.13] Kernel panic - not syncing: sysrq triggered crash\n"
FLATTENED = b"makedumpfile\0\0\0\0" + bytes(4096 - 16)  # its header is one 4 KiB block


def _tools() -> None:
    for name, package in (
        ("mkfs.ext4", "e2fsprogs"),
        ("debugfs", "e2fsprogs"),
        ("sfdisk", "fdisk"),
        ("blkid", "util-linux"),
        ("qemu-img", "qemu-utils"),
    ):
        need_tool(name, package)


def _run(*cmd: str | Path, stdin: str | None = None) -> None:
    subprocess.run([str(c) for c in cmd], input=stdin, text=True, check=True, capture_output=True)


def _ext4(path: Path, tree: Path | None, size: int = 16 * MIB, offset: int = 0) -> Path:
    """An ext4 filesystem of `size` bytes at `offset` in `path` (mkfs.ext4 -d `tree`)."""
    if not path.exists():
        path.touch()
        os.truncate(path, offset + size)
    args: list[str | Path] = ["mkfs.ext4", "-q", "-F"]
    if tree is not None:
        args += ["-d", tree]
    if offset:
        args += ["-E", f"offset={offset}"]
    _run(*args, path, f"{size // 1024}k")
    return path


def _partitioned(path: Path, script: str, size: int = 32 * MIB) -> Path:
    path.touch()
    os.truncate(path, size)
    _run("sfdisk", "-q", path, stdin=script)
    return path


# -- layout ------------------------------------------------------------------------------------
def test_whole_disk_filesystem_is_root_vda_in_raw_and_qcow2(tmp_path: Path) -> None:
    _tools()
    raw = _ext4(tmp_path / "disk.raw", None)
    disk = open_disk(str(raw), str(tmp_path))
    assert (disk.format, disk.root, disk.offset, disk.filesystem, disk.partition) == (
        "raw",
        "/dev/vda",
        0,
        "ext4",
        None,
    )
    assert disk.path == str(raw) and disk.virtual_bytes == 16 * MIB
    qcow2 = tmp_path / "disk.qcow2"
    _run("qemu-img", "convert", "-O", "qcow2", raw, qcow2)
    q = open_disk(str(qcow2), str(tmp_path))
    assert (q.format, q.root, q.offset, q.filesystem) == ("qcow2", "/dev/vda", 0, "ext4")
    assert sorted(os.listdir(tmp_path)) == ["disk.qcow2", "disk.raw"]  # its head copy is gone


def test_first_linux_partition_of_mbr_and_gpt(tmp_path: Path) -> None:
    _tools()
    # MBR: a FAT-typed partition first, then Linux (0x83) with ext4 in it
    mbr = _partitioned(tmp_path / "mbr.raw", "label: dos\n,8M,b\n,,83\n")
    _ext4(mbr, None, 16 * MIB, 18432 * 512)
    d = open_disk(str(mbr), str(tmp_path))
    assert (d.root, d.partition, d.offset, d.filesystem) == ("/dev/vda2", 2, 18432 * 512, "ext4")
    # GPT: the "Linux filesystem" type; the backup header at the disk's end is not read
    gpt = _partitioned(tmp_path / "gpt.raw", "label: gpt\n,8M,L\n,,L\n")
    _ext4(gpt, None, 4 * MIB, 2048 * 512)
    g = open_disk(str(gpt), str(tmp_path))
    assert (g.root, g.partition, g.offset, g.filesystem) == ("/dev/vda1", 1, 2048 * 512, "ext4")
    # --root overrides root=; a /dev/vdaN there also says where the dump is
    o = open_disk(str(gpt), str(tmp_path), "/dev/vda2")
    assert (o.root, o.partition, o.offset, o.filesystem) == ("/dev/vda2", 2, 18432 * 512, "")
    u = open_disk(str(mbr), str(tmp_path), "UUID=1234")
    assert (u.root, u.partition) == ("UUID=1234", 2)
    with pytest.raises(UsageError, match=r"--root /dev/vda7: .* has no partition 7$"):
        open_disk(str(mbr), str(tmp_path), "/dev/vda7")


def test_bad_disks_are_one_line_errors(tmp_path: Path) -> None:
    _tools()
    text = tmp_path / "notes.txt"
    text.write_text("not a disk\n" * 1000)
    with pytest.raises(BadImage, match=r"holds neither a partition table nor a filesystem — "):
        read_disk(str(text))
    fat_only = _partitioned(tmp_path / "fat.raw", "label: dos\n,,b\n")
    with pytest.raises(BadImage, match=r"a partition table with no Linux partition \(1 parti"):
        read_disk(str(fat_only))
    vmdk = tmp_path / "disk.vmdk"
    _run("qemu-img", "convert", "-O", "vmdk", _ext4(tmp_path / "d.raw", None), vmdk)
    with pytest.raises(BadImage, match=r"is a vmdk disk — footprint attaches raw or qcow2 ones"):
        read_disk(str(vmdk))
    with pytest.raises(UsageError, match="is not a file"):
        read_disk(str(tmp_path))
    # through the command line: one line, the documented exit code, before any boot
    for disk, code in ((text, EXIT_BAD_IMAGE), (vmdk, EXIT_BAD_IMAGE)):
        r = CliRunner().invoke(
            cli, ["boot", str(text), "--kernel", str(text), "--root-disk", str(disk)]
        )
        assert r.exit_code == code, r.output
        # one line (after any note of what a killed run left, which the reaper may print)
        errors = [line for line in r.output.splitlines() if line.startswith("footprint: error:")]
        assert len(errors) == 1 and "Traceback" not in r.output
    args = ["--kdump", "--root-disk", str(fat_only), "--root", "/dev/vda3"]
    r = CliRunner().invoke(cli, ["calibrate", str(text), "--kernel", str(text), *args])
    assert r.exit_code == EXIT_USAGE and f"{fat_only} has no partition 3" in r.output
    assert not [n for n in os.listdir(tmp_path) if n.startswith("head")]


def test_capture_command_line_names_the_root() -> None:
    line = capture_cmdline(None, "", root="/dev/vda1")
    assert "root=/dev/vda1 " in line and line.count("root=") == 1
    assert capture_cmdline("quiet root=/dev/sda2 ro", "x=1", root="/dev/vda") == (
        "console=ttyS0 rdinit=/footprint-probe root=/dev/vda quiet ro x=1"
    )


# -- dump headers and the read-back ------------------------------------------------------------
def test_dump_formats_by_their_first_bytes(tmp_path: Path) -> None:
    assert dump_format(b"KDUMP   \x06\0\0\0") is DumpFormat.KDUMP_COMPRESSED
    assert dump_format(FLATTENED) is DumpFormat.FLATTENED
    assert dump_format(b"garbage") is None and dump_format(b"") is None
    true = Path("/bin/true").read_bytes()[:64]  # an ELF executable, not a core
    assert true.startswith(b"\x7fELF") and dump_format(true) is None
    core = _core_file(tmp_path)
    assert dump_format(core[:64]) is DumpFormat.ELF


def _core_file(tmp_path: Path) -> bytes:
    """A real ELF core: the kernel's, of a shell killed by SIGSEGV (core_pattern `core`)."""
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    need(pattern in ("core", "core.%p"), f"core_pattern is {pattern!r}, not a file in the cwd")
    subprocess.run(["sh", "-c", "ulimit -c 8192; kill -SEGV $$"], cwd=tmp_path, check=False)
    cores = [p for p in tmp_path.iterdir() if p.name.startswith("core")]
    need(cores, "the kernel wrote no core file here")
    return cores[0].read_bytes()


def _crash_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / "var/crash" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_a_saved_dump_is_read_back_with_debugfs(tmp_path: Path) -> None:
    _tools()
    tree = _crash_tree(
        tmp_path / "tree",
        {
            f"{STAMP}/dump.{STAMP}": FLATTENED + os.urandom(200_000),
            f"{STAMP}/dmesg.{STAMP}": PANIC.encode(),
            "202401010000/dump.202401010000": b"KDUMP   " + bytes(100_000),  # an old dump
        },
    )
    fs = Filesystem(str(_ext4(tmp_path / "disk.raw", tree)))
    check = check_dump(fs, frozenset(), 2048 * MIB)
    assert check.dump == DumpFile(
        f"/var/crash/{STAMP}/dump.{STAMP}",
        4096 + 200_000,
        DumpFormat.FLATTENED,
        f"/var/crash/{STAMP}/dmesg.{STAMP}",
    )
    assert check.problem == ""
    # the disk's own older dump is not the trial's
    old = check_dump(fs, frozenset({STAMP}), 2048 * MIB)
    assert (
        old.dump is None
        and old.problem == "no dmesg.* beside /var/crash/202401010000/dump.202401010000"
    )
    none = check_dump(fs, frozenset({STAMP, "202401010000"}), 2048 * MIB)
    assert none.problem == "nothing was written to /var/crash"


def test_process_names_map_to_the_disks_packages(tmp_path: Path) -> None:
    from footprint.measure.dump import process_packages

    _tools()
    info = tmp_path / "tree/var/lib/dpkg/info"
    info.mkdir(parents=True)
    (info / "udev.list").write_text("/.\n/lib/systemd/systemd-udevd\n/bin/udevadm\n")
    (info / "kdump-tools.list").write_text("/usr/sbin/kdump-config\n/etc/default/kdump-tools\n")
    (info / "libc-bin.list").write_text("/usr/sbin/ldconfig\n/usr/lib/locale/C.utf8/LC_CTYPE\n")
    (info / "libc6:amd64.list").write_text("/usr/lib/x86_64-linux-gnu/libc.so.6\n")
    (info / "long.list").write_text("/usr/libexec/long/a-program-with-a-long-name\n")
    (info / "libc6:amd64.md5sums").write_text("0 /usr/sbin/notalist\n")
    fs = Filesystem(str(_ext4(tmp_path / "disk.raw", tmp_path / "tree")))
    assert process_packages(fs) == {
        "systemd-udevd": "udev",
        "udevadm": "udev",
        "(udev-worker)": "udev",  # systemd's name for udevd's workers
        "kdump-config": "kdump-tools",
        "ldconfig": "libc-bin",
        "a-program-with-": "long",  # as the kernel cuts a process name: 15 bytes
    }
    empty = Filesystem(str(_ext4(tmp_path / "empty.raw", None)))
    assert process_packages(empty) == {}


def test_what_is_not_a_saved_dump(tmp_path: Path) -> None:
    _tools()
    cases = {
        "incomplete": (
            {f"{STAMP}/dump-incomplete": FLATTENED, f"{STAMP}/dmesg.{STAMP}": PANIC.encode()},
            f"the dump was not finished: /var/crash/{STAMP}/dump-incomplete (4096 bytes)",
        ),
        "no header": (
            {f"{STAMP}/dump.{STAMP}": bytes(100_000), f"{STAMP}/dmesg.{STAMP}": PANIC.encode()},
            f"/var/crash/{STAMP}/dump.{STAMP} has no dump header (KDUMP, makedumpfile or ELF core)",
        ),
        "no panic": (
            {f"{STAMP}/dump.{STAMP}": FLATTENED * 20, f"{STAMP}/dmesg.{STAMP}": b"booted\n"},
            f"/var/crash/{STAMP}/dmesg.{STAMP} does not show the panic",
        ),
        "empty": ({f"{STAMP}/.keep": b""}, f"no dump file in /var/crash/{STAMP} (.keep)"),
        "too small": (
            {f"{STAMP}/dump.{STAMP}": FLATTENED, f"{STAMP}/dmesg.{STAMP}": PANIC.encode()},
            f"/var/crash/{STAMP}/dump.{STAMP} is 4096 bytes, not a dump of this machine",
        ),
    }
    for name, (files, problem) in cases.items():
        tree = _crash_tree(tmp_path / name, files)
        fs = Filesystem(str(_ext4(tmp_path / f"{name}.raw", tree)))
        assert check_dump(fs, frozenset(), 2048 * MIB).problem == problem, name
    bare = tmp_path / "bare"
    bare.mkdir()
    fs = Filesystem(str(_ext4(tmp_path / "bare.raw", bare)))
    assert check_dump(fs, frozenset(), 2048 * MIB).problem == "no /var/crash on the root disk"


def test_a_dump_in_a_partition_and_kdump_tools_command_line(tmp_path: Path) -> None:
    _tools()
    tree = _crash_tree(
        tmp_path / "tree",
        {
            f"{STAMP}/dump.{STAMP}": b"KDUMP   " + bytes(70_000),
            f"{STAMP}/dmesg.{STAMP}": PANIC.encode(),
        },
    )
    (tree / "etc/default").mkdir(parents=True)
    (tree / "usr/sbin").mkdir(parents=True)
    config = 'KDUMP_CMDLINE_APPEND=${KDUMP_CMDLINE_APPEND:="reset_devices nr_cpus=1"}\n'
    (tree / "usr/sbin/kdump-config").write_text(f"#!/bin/sh\n{config}")
    (tree / "etc/default/kdump-tools").write_text('USE_KDUMP=1\n#KDUMP_CMDLINE_APPEND="no"\n')
    disk = _partitioned(tmp_path / "disk.raw", "label: dos\n,8M,b\n,,83\n")
    _ext4(disk, tree, 16 * MIB, 18432 * 512)
    d = open_disk(str(disk), str(tmp_path))
    fs = Filesystem(str(disk), d.offset)
    assert check_dump(fs, frozenset(), 2048 * MIB).dump.format is DumpFormat.KDUMP_COMPRESSED
    assert capture_append(fs) == "reset_devices nr_cpus=1"  # kdump-config's default
    (tree / "etc/default/kdump-tools").write_text('KDUMP_CMDLINE_APPEND="nr_cpus=1 quiet" # mine\n')
    fs2 = Filesystem(str(_ext4(tmp_path / "mine.raw", tree)))
    assert capture_append(fs2) == "nr_cpus=1 quiet"  # the defaults file wins
    empty = tmp_path / "empty"
    empty.mkdir()
    assert capture_append(Filesystem(str(_ext4(tmp_path / "e.raw", empty)))) is None


# -- the kernel's and the tooling's words --------------------------------------------------
def test_no_killable_processes_is_oom_at_once_and_the_tooling_is_quoted() -> None:
    after = "[ 2.9] Freeing initrd memory: 7568K\n[ 5.3] Run /init as init process\n"
    line = "[ 40.1] Out of memory and no killable processes...\n"
    assert classify(after + line, None, False, False) == (
        Outcome.OOM,
        "out of memory and no killable processes",
    )
    assert classify(line, None, False, False) == (
        Outcome.UNPACK_FAILED,
        "out of memory while unpacking the initramfs",
    )
    console = (
        "[ 62.1] kdump-tools[1011]: running makedumpfile -F -c -d 31 /proc/vmcore\n"
        "[ 64.3] kdump-tools[1011]: kdump-tools: makedumpfile failed, falling back to 'cp'\n"
        "[ 65.0] kdump-tools[1011]: kdump-tools: failed to save vmcore in /var/crash/1\n"
    )
    assert kernel_log.dump_tooling(console) == (
        "kdump-tools[1011]: kdump-tools: failed to save vmcore in /var/crash/1"
    )
    assert kernel_log.dump_tooling("[ 62.1] kdump-tools[1]: saved vmcore in /var/crash\n") == ""


def test_a_run_with_its_dump_reads_back_and_validates() -> None:
    from footprint.report.boot import boot_dict

    dump = DumpFile("/var/crash/1/dump.1", 36267662, DumpFormat.FLATTENED, "/var/crash/1/dmesg.1")
    r = RunResult(
        "kdump", "x.img", 512 * MIB, Outcome.DUMP_SAVED, "saved", 160.0, 0,
        qemu=QemuRun("k", "tcg", ()), dump=dump,
    )  # fmt: skip
    assert r.succeeded and RunResult.from_dict(r.to_dict()) == r
    doc = boot_dict(r)
    assert_schema(doc)
    assert doc["dump"] == {
        "path": "/var/crash/1/dump.1",
        "bytes": 36267662,
        "format": "flattened",
        "dmesg_path": "/var/crash/1/dmesg.1",
    }
    failed = RunResult("kdump", "x.img", 96 * MIB, Outcome.DUMP_FAILED, "x", 1.0, 0, qemu=r.qemu)
    assert not failed.succeeded and boot_dict(failed)["dump"] is None


# -- in QEMU, on the Debian root disk ---------------------------------------------------------
ROOTDISK = REAL / "rootdisk"


def _rootdisk() -> tuple[str, str, str]:
    files = [ROOTDISK / n for n in ("rootdisk.raw", "kdump-initrd.img", "vmlinuz")]
    need(all(f.exists() for f in files), f"{ROOTDISK} is not built: run `make rootdisk` (root)")
    need_tool("qemu-system-x86_64", "qemu-system-x86")
    _tools()
    return tuple(str(f) for f in files)  # type: ignore[return-value]


@pytest.mark.slow
@pytest.mark.integration
def test_one_dump_trial_above_and_one_below_the_minimum(tmp_path: Path) -> None:
    import tempfile

    from footprint.measure.kdump import kdump_boot
    from footprint.measure.qemu import QemuOptions
    from footprint.report.boot import boot_dict

    disk, image, kernel = _rootdisk()
    before = os.stat(disk)
    o = QemuOptions(kernel, accel=os.environ.get("FOOTPRINT_QEMU_ACCEL", "tcg"), root_disk=disk)
    above = kdump_boot(image, 512 * MIB, o)
    assert above.outcome is Outcome.DUMP_SAVED, (above.detail, above.console[-3000:])
    assert above.dump is not None and above.dump.format is DumpFormat.FLATTENED
    assert above.dump.path.startswith("/var/crash/") and above.dump.bytes > MIB
    assert "systemd.unit=kdump-tools-dump.service" in above.console  # the disk's own line
    assert_schema(boot_dict(above))
    below = kdump_boot(image, 96 * MIB, o)
    assert below.outcome in (Outcome.OOM, Outcome.UNPACK_FAILED, Outcome.PANIC), below.detail
    assert below.dump is None and below.duration_s < above.duration_s
    after = os.stat(disk)  # the user's disk is never written
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)
    ours = [n for n in os.listdir(tempfile.gettempdir()) if f"footprint-kdump-{os.getpid()}-" in n]
    assert ours == []  # the trials' overlays and raw copies are gone


@pytest.mark.integration
def test_the_root_disks_packages_name_the_captures_processes() -> None:
    from footprint.measure.dump import disk_facts

    disk, _, _ = _rootdisk()
    packages = disk_facts(read_disk(disk)).packages
    assert {
        n: packages.get(n)
        for n in ("makedumpfile", "kdump-config", "systemd", "(udev-worker)", "kexec")
    } == {
        "makedumpfile": "makedumpfile",
        "kdump-config": "kdump-tools",
        "systemd": "systemd",
        "(udev-worker)": "udev",
        "kexec": "kexec-tools",
    }


class _Dumps:
    """A kdump backend whose runs save the dump from `needs` bytes on (the search alone)."""

    name = "kdump"

    def __init__(self, needs: int, dumps: bool = True) -> None:
        self.needs, self.dumps, self.runs = needs, dumps, []

    def run(self, image: str, memory: int) -> RunResult:
        from footprint.measure.backend import ProbeSample

        self.runs.append(memory // MIB)
        ok = memory >= self.needs
        sample = ProbeSample(1.0, {"AnonPages": 3 * MIB, "Slab": 2 * MIB}, MIB, ())
        saved = DumpFile(f"/var/crash/{memory}/dump.1", 36 * MIB, DumpFormat.FLATTENED, "d")
        if not self.dumps:
            outcome, dump = (Outcome.SUCCESS if ok else Outcome.UNPACK_FAILED), None
        else:
            outcome, dump = (Outcome.DUMP_SAVED, saved) if ok else (Outcome.OOM, None)
        return RunResult(
            "kdump", image, memory, outcome, "makedumpfile" if not ok else "saved", 60.0,
            min(memory, self.needs), qemu=QemuRun("k", "tcg", (sample,)), dump=dump,
        )  # fmt: skip


def test_the_dump_calibration_beside_the_marker_only_one() -> None:
    from footprint.measure.calibrate import Plan, calibrate
    from footprint.measure.shapes import Shape, ShapeRun
    from footprint.measure.workflow import CalibrateRun, dump_bounds
    from footprint.report.boot import calibrate_run_dict, calibration_text

    plan = Plan(100 * MIB, 150 * MIB, 10 * MIB, 5 * MIB, 20 * MIB)
    direct = calibrate(_Dumps(101 * MIB, dumps=False), "x.img", plan, 4 * MIB)
    marker = calibrate(_Dumps(121 * MIB, dumps=False), "x.img", plan, 4 * MIB)
    backend = _Dumps(203 * MIB)
    bounds = dump_bounds(124 * MIB, 4 * MIB)
    dump = calibrate(backend, "x.img", plan, 4 * MIB, bounds=bounds, floor=124 * MIB)
    assert backend.runs == [124, 252, 188, 220, 204, 196, 200]  # from the marker's minimum up
    assert dump.terms is not None and dump.terms.makedumpfile == 0  # it ran in the minimum
    shape = ShapeRun(Shape(2048, 1), marker, dump)
    doc = calibrate_run_dict(CalibrateRun(direct, (shape,), (), ()))
    assert_schema(doc)
    # bookworm's own line on this 2 GiB machine, against the dump-saved minimum and the
    # recommendation (204 + 24, to 16: 240)
    assert doc["crashkernel_ranges"] == "2G-:240M"
    lines = {d["name"]: d["shapes"][0] for d in doc["distro_lines"]}
    assert lines["debian-bookworm"]["verdict"] == "too small by 76 MiB"
    assert lines["debian"]["verdict"] == "too small by 12 MiB"
    assert lines["kdump-utils"]["verdict"] == "wastes 16 MiB"
    k = doc["kdump"]
    assert (k["minimum_mib"], k["marker_minimum_mib"], k["success_means"]) == (
        204,
        124,
        "dump-saved",
    )
    assert k["dump"] == {
        "path": f"/var/crash/{204 * MIB}/dump.1",
        "bytes": 36 * MIB,
        "format": "flattened",
        "dmesg_path": "d",
    }
    assert [(t["memory_mib"], t["outcome"]) for t in k["trials"]][:3] == [
        (124, "oom"),
        (252, "dump-saved"),
        (188, "oom"),
    ]
    assert (k["trials"][0]["detail"], k["trials"][1]["detail"]) == ("makedumpfile", "saved")
    assert k["marker"]["minimum_mib"] == 124 and doc["kexec_minus_direct_mib"] == 100
    text = calibration_text(doc)
    assert "dump-saved minimum crashkernel=204M (flattened dump, 37748736 bytes, " in text
    assert (
        "marker-only minimum crashkernel=124M (the initrd alone: the dump needs +80 MiB more)"
        in text
    )
    # 204 + margin 24 (10 %, to 4 MiB) = 228, to 16 MiB
    assert "recommended        crashkernel=240M: dump-saved minimum + margin 24.0 MiB" in text
    # where the dump is saved at the initrd's own minimum (as on Debian's root disk): 1 trial
    at_floor = _Dumps(121 * MIB)
    one = calibrate(at_floor, "x.img", plan, 4 * MIB, bounds=bounds, floor=124 * MIB)
    assert at_floor.runs == [124] and one.bisection.minimum_bytes == 124 * MIB
    assert one.bisection.at_minimum is not None and one.bisection.at_minimum.dump is not None


class _Flaky(_Dumps):
    """Saves the dump from 208 MiB on; at 204 MiB in every other trial only."""

    def __init__(self) -> None:
        super().__init__(204 * MIB)
        self.at_204 = 0

    def run(self, image: str, memory: int) -> RunResult:
        if memory == 204 * MIB:
            self.at_204 += 1
            if self.at_204 % 2 == 0:
                self.runs.append(204)
                return RunResult("kdump", image, memory, Outcome.DUMP_FAILED, "no dump", 60.0, 0)
        return super().run(image, memory)


def test_repeats_give_the_reliable_minimum_and_the_flaky_band() -> None:
    from footprint.measure.calibrate import Plan, calibrate
    from footprint.report.boot import calibration_dict, calibration_text

    backend = _Flaky()
    c = calibrate(
        backend,
        "x.img",
        Plan(100 * MIB, 0, 0, 0, 0),
        4 * MIB,
        repeat=3,
        bounds=(120 * MIB, 252 * MIB),
    )
    assert backend.runs == [252, 188, 220, 204, 196, 200, 204, 204, 208, 208, 200, 200]
    assert c.bisection.minimum_bytes == 204 * MIB
    assert (c.reliable_minimum_bytes, c.flaky_bytes) == (208 * MIB, (204 * MIB,))
    assert c.recommended_bytes == 240 * MIB  # 208 + margin 24 (10 %, to 4 MiB), to 16 MiB
    doc = calibration_dict(c)
    assert (doc["reliable_minimum_mib"], doc["flaky_mib"]) == (208, [204])
    assert (
        "reliable minimum   208 MiB (every trial there succeeded); flaky: 204 MiB succeeded "
        "only sometimes" in calibration_text(doc)
    )


def test_the_stage1_loads_with_kexec_file_load_for_a_cma_part(tmp_path: Path) -> None:
    """crashkernel=Y,cma ranges reach the capture only through kexec_file_load (kexec -s -p):
    bookworm's kexec -p builds the capture's memory map from /proc/iomem's Crash kernel."""
    from footprint.errors import EnvironmentUnavailable
    from footprint.measure.kdump import stage1

    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"k")
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(b"i")
    try:
        plain = Path(stage1(str(tmp_path), str(kernel), str(initrd), "x")).read_bytes()
        cma = Path(
            stage1(str(tmp_path), str(kernel), str(initrd), "x", kexec_file=True)
        ).read_bytes()
    except EnvironmentUnavailable as e:
        need(False, str(e))
    assert b"\nif kexec -p /capture/vmlinuz" in plain and b"kexec -s -p" not in plain
    assert b"\nif kexec -s -p /capture/vmlinuz" in cma
