"""The kernel profile and the prediction: the arithmetic, exactly, on a kernel profile made
by a real `calibrate-kernel` of Debian's 6.1 kernel (tests/data); the CLI's options and
errors; the bisection that starts at a prediction; and, in QEMU, the minimal initrd on both
sides of the profile's base minimum."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SAMPLES, assert_schema, need, need_tool

from footprint.cli import cli
from footprint.measure.backend import Outcome, RunResult
from footprint.measure.bisect import bisect_around
from footprint.model import kernel_profile as kp
from footprint.model.predict import FLOOR_WARNING, predict
from footprint.model.reservation import Reservation
from footprint.units import MIB

DATA = Path(__file__).resolve().parent / "data"
KP = str(DATA / "kernel-profile-6.1.0-57-amd64.json")
SMALL = str(SAMPLES / "busybox-gzip.img")
KERNEL = "/boot/vmlinuz-6.1.0-57-amd64"


def run(*args: str):  # noqa: ANN201
    return CliRunner().invoke(cli, list(args))


def _profile() -> kp.KernelProfile:
    return kp.load(KP)


def test_the_saved_kernel_profile_reads_back_and_validates() -> None:
    p = _profile()
    assert_schema(json.loads(Path(KP).read_text()))
    assert p.to_dict() == json.loads(Path(KP).read_text())
    assert p.kernel.release == "6.1.0-57-amd64" and len(p.kernel.build_id) == 40
    assert {t.name for t in p.terms} == {*kp.REQUIRED_TERMS, kp.KDUMP_RAM_LOSS, kp.ENTRIES}
    assert p.snapshot is not None and p.snapshot.cpus == 2
    names = {m.name for m in p.minima} | {r.name for r in p.ram_seen}
    for t in p.terms:  # every term names the minima it came from, each with its trials
        assert t.measured_from and set(t.measured_from) <= names
    assert all(m.trials and any(not t.success for t in m.trials) for m in p.minima)


def test_prediction_arithmetic_exactly() -> None:
    p = _profile()
    base = p.minimum("direct_base")
    res = Reservation(
        4096, 0, "", "", 0, base.initrd_bytes + 16 * MIB, base.rootfs_bytes + 64 * MIB,
        0, 0, 0, 0, 0, modules_to_load_bytes=8 * MIB, unpack_workspace_bytes=4 * MIB,
    )  # fmt: skip
    out, warnings = predict(res, p)
    assert warnings == []
    # base 88 MiB + 1.0625 x 64 MiB rootfs + 0.9375 x (16 MiB + the cpio headers' difference)
    # + 0.4272 x 8 MiB of modules + a 4 MiB decompressor workspace and its struct page
    assert out.predicted_minimum_bytes == 187151368
    # the capture: its measured base is the direct one (88 MiB both, to 4 MiB), and a capture
    # kernel gets 1.52 MiB less of its reservation as RAM (MemTotal, measured): the larger
    assert out.predicted_crashkernel_bytes == 187151368 + 1589248
    pred = out.prediction
    assert pred is not None and pred.basis == "kernel-profile"
    assert [t.bytes for t in pred.crashkernel_terms] == [
        92274688 + 1589248,
        71303168,
        15728611,
        3584021,
        4260880,
    ]
    assert [t.source for t in pred.crashkernel_terms] == ["kernel-profile"] + ["image"] * 4
    assert pred.margin_bytes == 20 * MIB  # 10 % of the prediction, rounded up to 4 MiB
    assert pred.recommended_crashkernel == "crashkernel=208M"  # + 5 MiB makedumpfile, to 16 MiB
    assert pred.kernel_profile.startswith("6.1.0-57-amd64 ")


def test_the_per_entry_term_exactly() -> None:
    p = _profile()
    term = p.term(kp.ENTRIES)
    base, many = p.minimum("entries_base"), p.minimum("entries")
    # the pair, each to 1 MiB: 86 and 131 MiB, 50,051 inodes apart (50,000 empty files, 51
    # directories), less 0.9375 x the 142,097 bytes of gzip member they add to the initrd
    assert (base.minimum_bytes, many.minimum_bytes) == (86 * MIB, 131 * MIB)
    assert base.resolution_bytes == many.resolution_bytes == MIB
    assert (base.entries, many.entries) == (14, 50065)
    assert many.initrd_bytes - base.initrd_bytes == 142097
    assert term.value == pytest.approx((45 * MIB - 0.9374982677 * 142097) / 50051)
    assert round(term.value, 1) == 940.1 and term.uncertainty == pytest.approx(2 * MIB / 50051)
    assert term.measured_from == ("entries_base", "entries")
    # the image's inodes beyond the minimal initrd's 14, at that slope
    res = Reservation(4096, 0, "", "", 0, 0, 0, 0, 0, 0, 0, 0, rootfs_inodes=1014)
    out, _ = predict(res, p)
    assert out.prediction is not None
    entry = [t for t in out.prediction.crashkernel_terms if t.name == "rootfs entries"]
    assert [t.bytes for t in entry] == [940095]
    # a profile saved before the inode count (0) has no such term, nor a kernel profile
    # without the slope
    old, _ = predict(replace(res, rootfs_inodes=0), p)
    assert old.prediction is not None
    assert "rootfs entries" not in [t.name for t in old.prediction.crashkernel_terms]
    terms = tuple(t for t in p.terms if t.name != kp.ENTRIES)
    older, _ = predict(res, replace(p, terms=terms))
    assert older.prediction is not None and len(older.prediction.crashkernel_terms) == 5


def test_the_capture_base_is_the_direct_base_and_the_ram_a_capture_does_not_get() -> None:
    p = _profile()
    loss = kp.RuntimeTerm(kp.KDUMP_RAM_LOSS, 3.45 * MIB, "bytes", 4096.0, ("a", "b"), "")
    terms = tuple(t for t in p.terms if t.name != kp.KDUMP_RAM_LOSS)
    res = Reservation(4096, 0, "", "", 0, 0, 0, 0, 0, 0, 0, 0)
    without, _ = predict(res, replace(p, terms=terms))
    with_loss, _ = predict(res, replace(p, terms=(*terms, loss)))
    base = p.term(kp.DIRECT_BASE).value
    assert without.prediction is not None and with_loss.prediction is not None
    assert without.prediction.crashkernel_terms[0].bytes == round(p.term(kp.KDUMP_BASE).value)
    assert with_loss.prediction.crashkernel_terms[0].bytes == round(base) + round(3.45 * MIB)
    assert "does not get as RAM" in with_loss.prediction.crashkernel_terms[0].how
    # the direct boot's prediction keeps the direct base
    assert with_loss.predicted_minimum_bytes == without.predicted_minimum_bytes


def test_without_a_kernel_profile_the_prediction_is_the_floor_and_says_so() -> None:
    doc = json.loads(run("profile", SMALL).stdout)
    res = doc["reservation"]
    assert res["predicted_crashkernel_bytes"] == res["static_estimate_bytes"]
    assert res["prediction"]["basis"] == "floor" and res["prediction"]["recommended_bytes"] is None
    assert FLOOR_WARNING in doc["basis"]["warnings"]
    assert_schema(doc)


def test_profile_with_a_kernel_profile(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    r = run("profile", SMALL, "--kernel-profile", KP, "-o", str(out))
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert_schema(doc)
    res = doc["reservation"]
    assert res["prediction"]["basis"] == "kernel-profile"
    assert FLOOR_WARNING not in doc["basis"]["warnings"]
    assert res["predicted_crashkernel_bytes"] == sum(
        t["bytes"] for t in res["prediction"]["crashkernel_terms"]
    )
    assert "predicted crashkernel" in r.stderr
    # a saved profile takes a kernel profile too, and one saved before these fields reads back
    old = json.loads(out.read_text())
    for key in ("modules_to_load_bytes", "predicted_minimum_bytes"):
        del old["reservation"][key]
    del old["reservation"]["predicted_crashkernel_bytes"], old["reservation"]["prediction"]
    saved = tmp_path / "old.json"
    saved.write_text(json.dumps(old))
    again = json.loads(run("profile", str(saved), "--kernel-profile", KP).stdout)
    assert again["reservation"]["prediction"] == res["prediction"]
    for cmd in ("components", "check"):
        extra = ["--budget", str(_budget(tmp_path))] if cmd == "check" else []
        r = run(cmd, str(saved), "--kernel-profile", KP, *extra)
        assert r.exit_code == 0, r.output


def _budget(tmp_path: Path) -> Path:
    b = tmp_path / "b.toml"
    b.write_text('[limits]\ncompressed_bytes = "40M"\n')
    return b


def test_a_kernel_profile_of_another_kernel_is_a_warning(tmp_path: Path) -> None:
    p = _profile()
    res = Reservation(4096, 1, "elf", "6.12.0-1-amd64", 0, 0, 0, 0, 0, 0, 0, 0)
    _, warnings = predict(res, p)
    assert warnings == [
        "the kernel profile is for 6.1.0-57-amd64 but the profile's kernel is 6.12.0-1-amd64: "
        "its runtime terms are another kernel's (calibrate that one)"
    ]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not json", "is not valid JSON"),
        ('{"kind": "profile", "schema_version": 1}', "is not a footprint kernel profile"),
        ('{"kind": "kernel-profile", "schema_version": 9}', "has schema_version 9"),
        ('{"kind": "kernel-profile", "schema_version": 1}', "is not a valid kernel profile"),
    ],
)
def test_a_bad_kernel_profile_is_one_line(tmp_path: Path, text: str, says: str) -> None:
    bad = tmp_path / "k.json"
    bad.write_text(text)
    r = run("profile", SMALL, "--kernel-profile", str(bad))
    assert r.exit_code == 3, r.output
    assert says in r.output and r.output.count("\n") == 1


def test_a_kernel_profile_without_a_term_is_refused(tmp_path: Path) -> None:
    doc = json.loads(Path(KP).read_text())
    doc["terms"] = [t for t in doc["terms"] if t["name"] != "modules"]
    bad = tmp_path / "k.json"
    bad.write_text(json.dumps(doc))
    r = run("profile", SMALL, "--kernel-profile", str(bad))
    assert r.exit_code == 3 and "no modules term" in r.output


def test_calibrate_kernel_refuses_what_is_not_a_kernel(tmp_path: Path) -> None:
    r = run("calibrate-kernel", SMALL, "-o", str(tmp_path / "k.json"))
    assert r.exit_code == 3, r.output
    assert "not an x86_64 bzImage" in r.output and r.output.count("\n") == 1
    r = run("calibrate-kernel", str(tmp_path / "missing"), "-o", str(tmp_path / "k.json"))
    assert r.exit_code == 2 and r.output.count("\n") == 1


def test_the_schema_command_prints_the_kernel_profile_schema() -> None:
    r = run("schema", "kernel-profile")
    assert r.exit_code == 0 and json.loads(r.stdout)["properties"]["kind"] == {
        "enum": ["kernel-profile"]
    }


def _fake(true_mib: int):  # noqa: ANN202
    limits: list[int] = []

    def boot(memory: int) -> RunResult:
        limits.append(memory // MIB)
        ok = memory >= true_mib * MIB
        return RunResult("fake", "i", memory, Outcome.SUCCESS if ok else Outcome.OOM, "", 1, 0)

    return boot, limits


@pytest.mark.parametrize(("truth", "guess"), [(100, 100), (100, 104), (100, 96), (101, 100)])
def test_a_good_prediction_closes_in_three_boots(truth: int, guess: int) -> None:
    boot, limits = _fake(truth)
    b, within = bisect_around(boot, guess * MIB)
    assert within and len(limits) == 3 and limits[0] == guess
    assert b.minimum_bytes == -(-truth // 4) * 4 * MIB and len(b.trials) == 3


def test_a_bad_prediction_says_so_and_still_finds_the_minimum() -> None:
    boot, limits = _fake(100)
    b, within = bisect_around(boot, 140 * MIB)
    assert not within and b.minimum_bytes == 100 * MIB and len(b.trials) == len(limits) > 3


# -- in QEMU -----------------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.slow
def test_the_minimal_initrd_on_both_sides_of_the_base_minimum(tmp_path: Path) -> None:
    """The saved profile's direct base, re-measured with one boot above and one below it."""
    from footprint.measure import kernel_calibrate as kc
    from footprint.measure.qemu import QemuOptions, boot

    need_tool("qemu-system-x86_64", "qemu-system-x86")
    need(Path(KERNEL).exists(), f"{KERNEL} is missing (apt-get install linux-image-6.1.0-57-amd64)")
    p = _profile()
    minimum = p.minimum("direct_base").minimum_bytes
    initrd = kc.minimal_initrd(str(tmp_path), "base", kc.static_busybox())
    o = QemuOptions(KERNEL, until=kc.READY, timeout=120, interval=1.0)
    above = boot(initrd.path, minimum, o)
    assert above.succeeded, above.console[-2000:]
    below = boot(initrd.path, minimum - 2 * p.resolution_bytes, o)
    assert below.outcome in (Outcome.OOM, Outcome.UNPACK_FAILED, Outcome.PANIC), below.detail


@pytest.mark.integration
@pytest.mark.slow
def test_calibrate_starts_at_the_prediction() -> None:
    need_tool("qemu-system-x86_64", "qemu-system-x86")
    need(Path(KERNEL).exists(), f"{KERNEL} is missing")
    marker = "footprint-sample: init reached"
    r = run("calibrate", SMALL, "--kernel", KERNEL, "--until", marker, "--kernel-profile", KP,
            "--json")  # fmt: skip
    assert r.exit_code == 0, r.output[-3000:]
    doc = json.loads(r.stdout)
    assert_schema(doc)
    assert doc["trials"][0]["memory_mib"] == -(-doc["predicted_mib"] // 4) * 4
    assert doc["prediction_error_mib"] == pytest.approx(doc["predicted_mib"] - doc["minimum_mib"])
    if doc["prediction_within_window"]:
        assert len(doc["trials"]) <= 3


# -- the rootfs the unpack makes: a page per symlink (ramfs), its inodes ------------------------
def _linked(tmp_path: Path, targets: list[str]) -> str:
    import stat

    from footprint.image.cpio import newc_entry, newc_trailer

    parts = [newc_entry(".", stat.S_IFDIR | 0o755), newc_entry("a", stat.S_IFREG | 0o644, b"x")]
    parts += [newc_entry(f"l{i}", stat.S_IFLNK | 0o777, t.encode()) for i, t in enumerate(targets)]
    img = tmp_path / "links.img"
    img.write_bytes(b"".join(parts) + newc_trailer())
    return str(img)


def test_every_symlink_is_a_page_in_ramfs_and_only_a_long_one_in_tmpfs(tmp_path: Path) -> None:
    from footprint.image.reader import scan
    from footprint.image.summary import summarize

    # ramfs_symlink -> page_symlink: a page each; shmem_symlink keeps a target shorter than
    # SHORT_SYMLINK_LEN (128, its NUL included) in slab memory, a longer one in a page
    boot = summarize(scan(_linked(tmp_path, ["a", "b" * 127, "c" * 128, "d" * 4000]))).boot
    assert boot.rootfs_bytes == 4096 + 4 * 4096
    assert boot.rootfs_tmpfs_bytes == 4096 + 2 * 4096
    assert boot.ram_floor_tmpfs_bytes == 2 * boot.rootfs_tmpfs_bytes
    assert boot.inodes == 5
    # busybox-gzip: 3 files, 5 directories (and "."), 15 symlinks, 1 device, as cpio -t lists
    b = summarize(scan(SMALL)).boot
    assert (b.rootfs_bytes, b.rootfs_tmpfs_bytes, b.inodes) == (1990656 + 15 * 4096, 1990656, 24)
    # a hardlink's other names are a dentry each, no inode: 7 names of 4 files, 2 directories
    h = summarize(scan(str(SAMPLES / "small-hardlinks.img"))).boot
    assert h.inodes == 6


def test_the_minimal_initrd_counts_its_entries_as_the_image_model_does(tmp_path: Path) -> None:
    from footprint.image.reader import scan
    from footprint.image.summary import summarize
    from footprint.measure import kernel_calibrate as kc

    busybox = kc.static_busybox()
    for entries in (0, 2500):
        made = kc.minimal_initrd(str(tmp_path), f"e{entries}", busybox, entries=entries)
        boot = summarize(scan(made.path)).boot
        # 6 directories, busybox, 6 applets, init; /e, its 3 directories and the files
        assert made.entries == boot.inodes == 14 + (entries and 1 + 3 + entries)
        assert made.rootfs_bytes == boot.rootfs_bytes  # the applets' symlinks a page each
