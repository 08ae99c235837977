"""The field's estimators (model/peers.py) and the decompressor's workspace (model/unpack.py),
exactly, on a committed sample and the committed kernel profile of Debian's 6.1 kernel."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SAMPLES

from footprint import profile as fp
from footprint.cli import cli
from footprint.model import kernel_profile as kp
from footprint.model import peers
from footprint.model.unpack import HEAD, workspace_bytes, xz_dictionary, zstd_window
from footprint.units import MIB

DATA = Path(__file__).resolve().parent / "data"
KP = str(DATA / "kernel-profile-6.1.0-57-amd64.json")
SMALL = str(SAMPLES / "busybox-gzip.img")
VMLINUZ_BYTES = 8247232  # Debian's 6.1.0-57 bzImage, as the kernel profile records it
KIB = 1024
# A 3 GiB, one-CPU first kernel early in boot (kdump-config's mem-<release>), in KiB.
MEMINFO = {
    "MemTotal": 3_000_000,
    "MemFree": 2_850_000,
    "Buffers": 1_000,
    "Cached": 40_000,
    "SReclaimable": 9_000,
}
FIRST = peers.FirstKernel(1, 3072 * MIB, {k: v * KIB for k, v in MEMINFO.items()}, "a test")
SNAPSHOT = kp.InitSnapshot(
    1 << 30,
    2,
    {"MemTotal": 1_000_000 * KIB, "MemFree": 900_000 * KIB, "Cached": 2000 * KIB,
     "Percpu": 1024 * KIB},
    8000 * KIB,
    1900 * KIB,
    1_400_000,
    64,
    20.0,
)  # fmt: skip


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> fp.Profile:
    out = tmp_path_factory.mktemp("peers") / "p.json"
    r = CliRunner().invoke(cli, ["profile", SMALL, "-o", str(out)])
    assert r.exit_code == 0, r.output
    return fp.load(str(out))


def test_kdumpctl_is_the_reservation_field(profile: fp.Profile) -> None:
    res = profile.reservation
    est = peers.kdumpctl(profile)
    assert est.bytes == res.kdumpctl_formula_bytes == 3 * 1028539 + 16 * MIB  # no kernel given
    assert sum(t.bytes for t in est.terms) == est.bytes


def test_kdump_config_in_whole_mib(profile: fp.Profile) -> None:
    est = peers.kdump_config(profile, VMLINUZ_BYTES, FIRST)
    # 6 x 8 MiB vmlinuz + 1 MiB initrd + 2 MiB unpacked + 97 MiB used early - 17 MiB for a
    # 3 GiB machine (3 x 6000 KiB) and no extra CPU
    assert [t.bytes // MIB for t in est.terms] == [48, 1, 2, 97, -17]
    assert est.bytes == 131 * MIB and est.note == ""
    idle = replace(FIRST, meminfo={**FIRST.meminfo, "MemFree": 2_940_000 * KIB})
    low = peers.kdump_config(profile, VMLINUZ_BYTES, idle)
    assert low.bytes == (48 + 1 + 2 + 32) * MIB and "below its minimum" in low.note


def test_kdump_config_surplus_buckets() -> None:
    assert peers.cpumem_surplus_mib(1, 3_000_000) == 17  # 3 GiB: 3 x 6000 KiB
    assert peers.cpumem_surplus_mib(8, 16 << 20) == (7 * 5000 + 17 * 6000) // 1024
    many = 32 * 5000 + 32 * 3500 + 67 * 2500 + 32 * 6000 + 33 * 600  # 131 CPUs beyond one
    assert peers.cpumem_surplus_mib(132, 64 << 20) == many // 1024  # 64 GiB -> 65 with the +1


def test_kdumptool_calibrate_needs_the_snapshot(profile: fp.Profile) -> None:
    old = kp.load(KP)
    assert old.snapshot is None or isinstance(old.snapshot, kp.InitSnapshot)
    none = peers.kdumptool_calibrate(profile, replace(old, snapshot=None), FIRST)
    assert none.bytes is None and "no init-start snapshot" in none.note
    k = replace(old, snapshot=SNAPSHOT)
    conf = peers.calibrate_conf(profile, k)
    assert conf is not None
    # 1 GiB - 900000 free - 2000 cached - 16384 memmap - 1024 percpu (KiB)
    assert conf.kernel_base == 129168 and conf.percpu == 512
    assert conf.kernel_init == 8000 + 1028539 // KIB and conf.init_cached == 1990656 // KIB
    est = peers.kdumptool_calibrate(profile, k, FIRST)
    assert est.bytes == 294 * MIB
    margin = {t.name: t.bytes for t in est.terms}["margin"]
    assert margin == pytest.approx(0.3 * (est.bytes - 64 * MIB) / 1.3 + 64 * MIB, abs=2 * MIB)


def test_a_saved_kernel_profile_without_a_snapshot_reads_back() -> None:
    doc = json.loads(Path(KP).read_text())
    doc.pop("snapshot", None)
    assert kp.parse(json.dumps(doc).encode(), "k.json").snapshot is None


@pytest.mark.parametrize(
    ("sample", "codec", "workspace"),
    [
        ("small-zstd.img", "zstd", 8 * MIB + 2 * 128 * KIB + 64 + 96 * KIB + 128 * KIB),
        ("small-xz.img", "xz", 1 * MIB + 32 * KIB),
        ("small-lz4.img", "lz4", 8 * MIB),
        ("small-bzip2.img", "bzip2", 9 * 400000 + 40 * KIB),
        ("small-lzo.img", "lzo", 256 * KIB),
        ("busybox-gzip.img", "gzip", 56 * KIB),
    ],
)
def test_the_decompressor_workspace_from_the_member_header(
    sample: str, codec: str, workspace: int
) -> None:
    head = (SAMPLES / sample).read_bytes()[:HEAD]
    assert workspace_bytes(codec, head) == workspace


def test_zstd_and_xz_headers() -> None:
    head = (SAMPLES / "small-zstd.img").read_bytes()[:HEAD]
    assert zstd_window(head) == 8 * MIB  # `zstd -lv`: Window Size 8.00 MiB
    assert xz_dictionary((SAMPLES / "small-xz.img").read_bytes()[:HEAD]) == MIB  # dict=1MiB
    # a single-segment frame: the window is the content size (2-byte field: + 256)
    assert zstd_window(b"\x28\xb5\x2f\xfd" + bytes([0x60]) + (1000).to_bytes(2, "little")) == 1256


def test_the_prediction_adds_the_workspace(profile: fp.Profile) -> None:
    r = CliRunner().invoke(cli, ["profile", str(SAMPLES / "busybox-early-zstd.img"),
                                 "--kernel-profile", KP])  # fmt: skip
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["reservation"]
    assert res["unpack_workspace_bytes"] == 8 * MIB + 2 * 128 * KIB + 64 + 96 * KIB + 128 * KIB
    terms = {t["name"]: t["bytes"] for t in res["prediction"]["crashkernel_terms"]}
    assert terms["decompressor workspace"] == round(res["unpack_workspace_bytes"] * 4096 / 4032)
