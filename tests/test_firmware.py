"""Firmware by the module that requests it: modinfo read in-process (plain and compressed
modules) and checked against kmod's `modinfo -F firmware`; the loader's search; attribution."""

from __future__ import annotations

import glob
import json
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import need, need_tool, real_image

from footprint.analyze import analyze
from footprint.cli import cli
from footprint.components.firmware import requests
from footprint.components.groupings import REQUESTED_BY_NONE, group
from footprint.components.suggest import Suggestion, suggestions
from footprint.elf.modules import ModuleFacts, module_name
from footprint.image.cpio import newc_entry, newc_trailer
from footprint.image.extract import extract
from footprint.image.reader import scan
from footprint.paths import is_firmware, is_module
from footprint.profile import from_analysis


def _kernel_dir() -> Path:
    found = sorted(glob.glob("/lib/modules/*-amd64/kernel"))
    need(found, "no Debian kernel modules in /lib/modules (apt-get install linux-image-amd64)")
    return Path(found[-1]).parent


def _module(name: str) -> Path:
    hits = list(_kernel_dir().joinpath("kernel").rglob(f"{name}.ko"))
    need(hits, f"{name}.ko is not in {_kernel_dir()}")
    return hits[0]


def _image(tmp_path: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> str:
    parts = [newc_entry(".", stat.S_IFDIR | 0o755)]
    names = [*files, *(links or {})]
    dirs = sorted({str(Path(p).parent) for p in names if "/" in p})
    made: set[str] = set()
    for d in dirs:
        for i in range(len(Path(d).parts)):
            sub = "/".join(Path(d).parts[: i + 1])
            if sub not in made:
                made.add(sub)
                parts.append(newc_entry(sub, stat.S_IFDIR | 0o755))
    for path, data in files.items():
        parts.append(newc_entry(path, stat.S_IFREG | 0o644, data))
    for path, target in (links or {}).items():
        parts.append(newc_entry(path, stat.S_IFLNK | 0o777, target.encode()))
    img = tmp_path / "fw.img"
    img.write_bytes(b"".join(parts) + newc_trailer())
    return str(img)


def _in_image(ko: Path) -> str:
    return str(ko.relative_to("/"))


def _modinfo_firmware(ko: Path) -> list[str]:
    modinfo = need_tool("modinfo", "kmod")
    out = subprocess.run([modinfo, "-F", "firmware", str(ko)], capture_output=True, text=True)
    return out.stdout.split()


MODULES = ("cfg80211", "r8169", "netxen_nic", "qlcnic", "e1000e")


def test_modinfo_matches_kmod_for_plain_and_compressed_modules(tmp_path) -> None:
    """Every module's firmware= entries are exactly what kmod's modinfo prints; a .ko.xz and
    a .ko.zst made by the real compressors read the same, and report what they unpack to."""
    xz, zstd = need_tool("xz", "xz-utils"), need_tool("zstd", "zstd")
    files: dict[str, bytes] = {}
    expected: dict[str, list[str]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for name in MODULES:
        ko = _module(name)
        data = ko.read_bytes()
        path = _in_image(ko)
        if name == "cfg80211":  # as trixie ships them: xz with a CRC32 check, as kmod wants
            packed = subprocess.run([xz, "--check=crc32", "-c", str(ko)], capture_output=True)
            path, data = path + ".xz", packed.stdout
        elif name == "r8169":
            packed = subprocess.run([zstd, "-q", "-c", str(ko)], capture_output=True)
            path, data = path + ".zst", packed.stdout
        files[path] = data
        expected[name] = _modinfo_firmware(ko)
        sizes[path] = (len(data), ko.stat().st_size)
    p = from_analysis(analyze(_image(tmp_path, files)))
    got = {r.module: list(r.requested) for r in p.firmware_requests}
    assert got == {n: fw for n, fw in expected.items() if fw}
    assert expected["e1000e"] == [] and "e1000e" not in got  # requests none: not listed
    assert expected["cfg80211"] == ["regulatory.db", "regulatory.db.p7s"]
    assert p.kernel_modules.files == len(MODULES)
    assert p.kernel_modules.bytes == sum(stored for stored, _ in sizes.values())
    assert p.kernel_modules.unpacked_bytes == sum(plain for _, plain in sizes.values())
    assert p.kernel_modules.unpacked_bytes > p.kernel_modules.bytes


def test_firmware_goes_to_the_module_that_requests_it(tmp_path) -> None:
    """One requester: firmware-<module>; two (netxen_nic and qlcnic both ask for phanfw.bin):
    shared between them; none: firmware-unrequested. Symlinked firmware and the usr-merged
    layout resolve as the kernel's loader resolves them."""
    mods = {
        _in_image(_module(n)).replace("lib/", "usr/lib/", 1): _module(n).read_bytes()
        for n in ("r8169", "netxen_nic", "qlcnic", "cfg80211")
    }
    fw = "usr/lib/firmware"
    files = {
        **mods,
        f"{fw}/rtl_nic/rtl8168h-2.fw": b"\x01" * 5000,
        f"{fw}/rtl_nic/rtl8168g-3.fw": b"\x02" * 3000,
        f"{fw}/phanfw.bin": b"\x03" * 9000,
        f"{fw}/regulatory.db.zst": b"\x04" * 100,  # the loader tries name.zst after name
        f"{fw}/not-asked.bin": b"\x05" * 7000,
    }
    links = {"lib": "usr/lib", f"{fw}/rtl_nic/rtl8168g-2.fw": "rtl8168g-3.fw"}
    img = _image(tmp_path, files, links)
    p = from_analysis(analyze(img))
    owner = {f.path: f.component for f in p.files}
    assert owner[f"/{fw}/rtl_nic/rtl8168h-2.fw"] == "firmware-r8169"
    assert owner[f"/{fw}/rtl_nic/rtl8168g-3.fw"] == "firmware-r8169"
    assert owner[f"/{fw}/regulatory.db.zst"] == "firmware-cfg80211"
    assert owner[f"/{fw}/not-asked.bin"] == "firmware-unrequested"
    assert owner[f"/{fw}/phanfw.bin"] == "shared"
    (shared,) = [s for s in p.shared_libraries if s.path == f"/{fw}/phanfw.bin"]
    assert shared.users == ("firmware-netxen_nic", "firmware-qlcnic")
    comps = {c.name: c for c in p.components}
    assert comps["firmware-r8169"].page_rounded_bytes == 8192 + 4096
    assert comps["firmware-netxen_nic"].proportional_bytes == 12288 // 2
    (r8169,) = [r for r in p.firmware_requests if r.module == "r8169"]
    # rtl8168g-2.fw is a symlink to rtl8168g-3.fw: the same file, found once
    assert r8169.files == (f"/{fw}/rtl_nic/rtl8168h-2.fw", f"/{fw}/rtl_nic/rtl8168g-3.fw")
    assert len(r8169.missing) == len(r8169.requested) - 3
    assert "rtl_nic/rtl8168h-2.fw" not in r8169.missing
    assert p.firmware.files == 5
    assert p.firmware.bytes == 5000 + 3000 + 9000 + 100 + 7000

    g = group(p, "firmware")
    rows = {x.name: (x.files, x.bytes) for x in g.groups}
    assert rows == {
        "r8169": (2, 8000),
        "netxen_nic+qlcnic": (1, 9000),
        "cfg80211": (1, 100),
        REQUESTED_BY_NONE: (1, 7000),
    }
    assert sum(b for _, b in rows.values()) == p.firmware.bytes

    # for a dump to a local disk: the network drivers with the firmware only they request
    modules_net = sum(-(-len(d) // 4096) * 4096 for d in mods.values())
    assert comps["modules-net"].page_rounded_bytes == modules_net
    assert suggestions(p) == [
        Suggestion(
            (
                "modules-net",
                "firmware-cfg80211",
                "firmware-netxen_nic",
                "firmware-qlcnic",
                "firmware-r8169",
            ),
            modules_net + 4096 + 12288 + 12288,  # phanfw.bin: only these two drivers ask
            "unless the dump goes over the network (ssh, nfs)",
        ),
        Suggestion(("firmware-unrequested",), 8192, "no module in the image requests these files"),
    ]

    r = CliRunner().invoke(cli, ["components", img, "--by", "firmware"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[1:] == [  # largest first, then by name
        "    12 KiB      1  netxen_nic+qlcnic",
        "    12 KiB      2  r8169",
        "     8 KiB      1  (requested by no module)",
        "     4 KiB      1  cfg80211",
    ]


@pytest.mark.parametrize(
    ("request_", "found"),
    [
        ("amdgpu/*", ["amdgpu/a.bin", "amdgpu/b.bin.xz"]),  # a glob, compressed files too
        ("amdgpu/a*.bin", ["amdgpu/a.bin"]),
        ("amdgpu", ["amdgpu/a.bin", "amdgpu/b.bin.xz"]),  # a directory: all it holds
        ("b.bin", ["updates/b.bin"]),  # updates/ before the rest
        ("amdgpu/b.bin", ["amdgpu/b.bin.xz"]),  # name.xz when name is not there
        ("nothing.bin", []),
    ],
)
def test_the_loader_search(tmp_path, request_: str, found: list[str]) -> None:
    fw = "lib/firmware"
    files = {
        f"{fw}/amdgpu/a.bin": b"a",
        f"{fw}/amdgpu/b.bin.xz": b"b",
        f"{fw}/updates/b.bin": b"c",
        f"{fw}/b.bin": b"d",
    }
    rootfs = scan(_image(tmp_path, files)).rootfs
    m = ModuleFacts("lib/modules/6.1.0-57-amd64/kernel/x.ko", "x", 1, 1, (request_,))
    r = requests(rootfs, {m.path: m})
    assert r.found[m.path] == tuple(f"{fw}/{f}" for f in found)
    assert r.missing[m.path] == (() if found else (request_,))


def test_module_names_as_modprobe_spells_them() -> None:
    assert module_name("lib/modules/6.1/kernel/drivers/net/ethernet/realtek/r8169.ko") == "r8169"
    assert module_name("x/snd-hda-intel.ko.zst") == "snd_hda_intel"
    assert module_name("x/ext4.ko.xz") == "ext4"


SKIPCPIO = "/usr/lib/dracut/skipcpio"
FIRMWARE_IMAGES = ("initramfs-tools-firmware.img", "dracut-firmware.img", "dracut-amdgpu.img")
# plain cpio archives before the compressed one: one per microcode hook for initramfs-tools
# (AMD's, then Intel's), one for dracut
EARLY_ARCHIVES = dict(zip(FIRMWARE_IMAGES, (2, 1, 1), strict=True))


@pytest.mark.integration
@pytest.mark.parametrize("name", FIRMWARE_IMAGES)
def test_real_firmware_is_attributed_as_modinfo_requests_it(name: str, tmp_path) -> None:
    """Built by Debian's generators with Debian's non-free firmware: each module's requests
    are kmod's `modinfo -F firmware` of that very file, and every firmware file belongs to a
    module that requests it, or to firmware-unrequested."""
    image = real_image(name)
    p = from_analysis(analyze(str(image)))
    root = tmp_path / "root"
    extract(str(image), str(root))
    expected = {}
    for f in p.files:
        if is_module(f.path) and (fw := _modinfo_firmware(root / f.path.lstrip("/"))):
            expected[f.path] = fw
    assert {r.path: list(r.requested) for r in p.firmware_requests} == expected
    requesters: dict[str, set[str]] = {}
    for r in p.firmware_requests:
        for path in r.files:
            requesters.setdefault(path, set()).add(f"firmware-{r.module}")
    shared = {s.path: set(s.users) for s in p.shared_libraries}
    firmware = [f for f in p.files if is_firmware(f.path)]
    for f in firmware:
        if f.component == "microcode":
            continue
        who = requesters.get(f.path, set())
        if f.component == "shared":
            assert shared[f.path] == who and len(who) > 1, f.path
        else:
            assert {f.component} == (who or {"firmware-unrequested"}), f.path
    assert p.firmware.files == len(firmware) > 0
    assert p.firmware.bytes == sum(f.bytes for f in firmware)
    attributed = sum(len(r.files) for r in p.firmware_requests)
    assert attributed > 0


@pytest.mark.integration
@pytest.mark.parametrize("name", FIRMWARE_IMAGES)
def test_real_early_microcode_is_its_own_segment(name: str, tmp_path) -> None:
    """The microcode cpio the generators prepend is segment 0, uncompressed, and holds what
    `cpio -t` lists of it."""
    cpio = need_tool("cpio", "cpio")
    need(Path(SKIPCPIO).exists(), f"{SKIPCPIO} is missing (Debian package dracut-core)")
    image = real_image(name)
    inv = scan(str(image))
    first = inv.segments[0]
    assert first.codec == "none" and len(inv.segments) >= 2
    with open(image, "rb") as f:
        f.seek(first.offset)
        data = f.read(first.end - first.offset)
    names: set[str] = set()
    part = tmp_path / "part.cpio"
    while data.startswith(b"0707"):  # each archive: cpio -t lists it, dracut's skipcpio drops it
        listed = subprocess.run([cpio, "-t", "--quiet"], input=data, capture_output=True).stdout
        names |= {n.removeprefix("./") for n in listed.decode().split("\n") if n not in ("", ".")}
        part.write_bytes(data)  # skipcpio seeks: a file, not a pipe
        data = subprocess.run([SKIPCPIO, str(part)], capture_output=True).stdout.lstrip(b"\0")
    ours = {path for path, node in inv.rootfs.nodes.items() if path and node.segment == 0}
    assert ours == names
    assert first.archives == EARLY_ARCHIVES[name]
    ucode = "kernel/x86/microcode/"
    microcode = {n[len(ucode) :] for n in names if n.startswith(ucode) and n.endswith(".bin")}
    assert microcode == {"AuthenticAMD.bin", "GenuineIntel.bin"}
    assert not any("lib/firmware/" in n for n in names)


@pytest.mark.integration
def test_diff_names_the_driver_whose_firmware_grew() -> None:
    """The same dracut configuration without and with the firmware packages and amdgpu:
    the top grower is amdgpu's firmware, in one line, with what it added."""
    old, new = real_image("dracut-nosystemd.img"), real_image("dracut-amdgpu.img")
    r = CliRunner().invoke(cli, ["diff", "--json", str(old), str(new)])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    top = doc["components"][0]
    new_p = from_analysis(analyze(str(new)))
    amdgpu = next(c for c in new_p.components if c.name == "firmware-amdgpu")
    assert (top["name"], top["old"], top["new"]) == (
        "firmware-amdgpu",
        0,
        amdgpu.page_rounded_bytes,
    )
    requested = next(r for r in new_p.firmware_requests if r.module == "amdgpu")
    wanted = set(requested.files)  # paths; hardlinked blobs are one inode under several names
    inodes = [f for f in new_p.files if wanted & {f.path, *f.links}]
    assert amdgpu.files == len(inodes) and all(f.component == "firmware-amdgpu" for f in inodes)
