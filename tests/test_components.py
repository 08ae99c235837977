"""Component attribution: every file one owner, shares that add up, libraries split fairly,
user rules, hostile ELFs, and the lief worker's isolation."""

from __future__ import annotations

import json
import os
import signal
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SAMPLES, real_image

from footprint.analyze import analyze
from footprint.cli import cli
from footprint.elf.worker import ElfWorker
from footprint.image.cpio import newc_entry, newc_trailer
from footprint.image.reader import scan
from footprint.profile import from_analysis, load
from footprint.report.components import components_dict

BUSYBOX = SAMPLES / "busybox-gzip.img"


def _busybox_bytes() -> bytes:
    out: dict[str, bytes] = {}

    def grab(entry, data, node):  # noqa: ANN001
        if node is not None and node.path == "bin/busybox" and data is not None:
            out["b"] = data.read()

    scan(str(BUSYBOX), visit=grab)
    return out["b"]


def _adds_up(doc: dict) -> None:
    total = doc["total"]
    assert abs(
        sum(c["proportional_bytes"] for c in doc["components"]) - total["page_rounded_bytes"]
    ) <= len(doc["components"])
    assert total["proportional_bytes"] == pytest.approx(total["page_rounded_bytes"], abs=2)


def test_sample_components_add_up() -> None:
    a = analyze(str(SAMPLES / "busybox-early-zstd.img"))
    doc = components_dict(from_analysis(a))
    names = {c["name"] for c in doc["components"]}
    assert {"busybox", "microcode"} <= names
    _adds_up(doc)
    inodes = a.inventory.rootfs.inodes()
    assert doc["total"]["files"] == len(inodes)
    busybox = next(c for c in doc["components"] if c["name"] == "busybox")
    assert busybox["bytes"] == a.inventory.rootfs.nodes["bin/busybox"].size
    # a static busybox: no libraries, so its marginal cost is its own page-rounded file
    assert (busybox["bytes"], busybox["page_rounded_bytes"]) == (1982256, 1982464)
    assert busybox["marginal_bytes"] == busybox["proportional_bytes"] == 1982464


def _image(tmp_path: Path, files: dict[str, bytes], mode: int = 0o755) -> str:
    parts = [newc_entry(".", stat.S_IFDIR | 0o755)]
    dirs = sorted({str(Path(p).parent) for p in files if "/" in p})
    for d in dirs:
        for i in range(len(Path(d).parts)):
            parts.append(newc_entry("/".join(Path(d).parts[: i + 1]), stat.S_IFDIR | 0o755))
    for path, data in files.items():
        parts.append(newc_entry(path, stat.S_IFREG | mode, data))
    img = tmp_path / "made.img"
    img.write_bytes(b"".join(parts) + newc_trailer())
    return str(img)


def test_hostile_elf_is_a_warning_not_a_crash(tmp_path) -> None:
    good = _busybox_bytes()
    truncated = good[:200]
    absurd = bytearray(good)
    absurd[0x20:0x28] = (0x7FFFFFFFFFFF).to_bytes(8, "little")  # e_phoff far away
    absurd[0x38:0x3A] = (0xFFFF).to_bytes(2, "little")  # e_phnum absurd
    img = _image(
        tmp_path,
        {
            "bin/busybox": good,
            "bin/trunc": truncated,
            "bin/absurd": bytes(absurd),
            "lib/firmware/x.bin": b"\0" * 5000,
        },
    )
    a = analyze(img)
    doc = components_dict(from_analysis(a))
    assert doc["warnings"] == [
        "/bin/absurd: malformed: no loadable segment could be read",
        "/bin/trunc: truncated: its segments need 1587793 bytes, the file has 200",
    ]
    assert {"busybox", "firmware-unrequested"} <= {c["name"] for c in doc["components"]}
    _adds_up(doc)


def test_worker_survives_a_killed_child() -> None:
    data = _busybox_bytes()
    with ElfWorker(batch_bytes=1 << 40) as worker:
        for i in range(20):
            worker.submit(f"bin/b{i}", data)
        worker._flush()
        os.kill(worker.pid, signal.SIGKILL)
        facts = worker.results()
    assert len(facts) == 20
    assert all(
        f.kind == "static-executable" or f.kind.endswith("executable") for f in facts.values()
    )


def test_user_rules_come_first(tmp_path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[component]]\nname = "my-tools"\npatterns = ["bin/busybox"]\n')
    r = CliRunner().invoke(
        cli, ["components", "--json", "--rules", str(rules), str(SAMPLES / "busybox-gzip.img")]
    )
    assert r.exit_code == 0, r.output
    names = [c["name"] for c in json.loads(r.output)["components"]]
    assert "my-tools" in names and "busybox" not in names
    rules.write_text("[[component]\nname=")
    bad = CliRunner().invoke(
        cli, ["components", "--rules", str(rules), str(SAMPLES / "busybox-gzip.img")]
    )
    assert bad.exit_code == 2 and "TOML" in bad.output


def test_components_json_contract() -> None:
    r = CliRunner().invoke(cli, ["components", "--json", str(SAMPLES / "busybox-gzip.img")])
    doc = json.loads(r.output)
    assert doc["schema_version"] == 1
    for c in doc["components"]:
        assert set(c) >= {
            "name",
            "files",
            "bytes",
            "page_rounded_bytes",
            "exclusive_bytes",
            "shared_bytes",
            "proportional_bytes",
            "marginal_bytes",
        }
    assert set(doc["total"]) >= {"files", "bytes", "page_rounded_bytes"}


def test_by_file_and_package() -> None:
    img = str(SAMPLES / "busybox-gzip.img")
    files = json.loads(
        CliRunner().invoke(cli, ["components", "--json", "--by", "file", img]).output
    )
    assert files["groups"][0]["name"] == "/bin/busybox"
    assert files["groups"][0]["component"] == "busybox"
    pkgs = json.loads(
        CliRunner().invoke(cli, ["components", "--json", "--by", "package", img]).output
    )
    assert pkgs["total"]["files"] == files["total"]["files"]


@pytest.mark.integration
@pytest.mark.parametrize("name", ["dracut-systemd.img", "initramfs-tools-zstd.img"])
def test_real_image_components(name: str) -> None:
    a = analyze(str(real_image(name)))
    doc = components_dict(from_analysis(a))
    _adds_up(doc)
    by_name = {c["name"]: c for c in doc["components"]}
    assert "udev" in by_name and by_name["udev"]["shared_bytes"] > 0
    if name.startswith("dracut"):
        systemd = by_name["systemd"]
        assert any("libsystemd-shared" in p for p in a.attribution.components["systemd"].paths)
        assert systemd["proportional_bytes"] > systemd["marginal_bytes"] > 1 << 20
        assert a.facts["usr/lib/systemd/systemd"].package.get("name") == "systemd"
    largest = [c["name"] for c in doc["components"][:3]]
    assert all(n.startswith(("modules-", "firmware")) for n in largest)
    assert not doc["missing_libraries"]
    shared = doc["shared_libraries"]
    assert shared and all(len(s["users"]) >= 2 for s in shared)


@pytest.mark.integration
def test_profile_with_kernel(tmp_path) -> None:
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    from conftest import need

    need(kernels, "no kernel in /boot (apt-get install linux-image-amd64)")
    image = real_image("initramfs-tools-zstd.img")
    out = tmp_path / "p.json"
    r = CliRunner().invoke(
        cli, ["profile", str(image), "--kernel", str(kernels[-1]), "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    res = doc["reservation"]
    assert doc["schema_version"] == 1 and doc["kind"] == "profile"
    assert res["kernel_method"] == "elf" and res["kernel_bytes"] > 20 << 20
    assert res["kdumpctl_formula_bytes"] == (
        res["kernel_bytes"] + res["modules_bytes"] + 3 * res["initrd_compressed_bytes"] + (16 << 20)
    )
    assert res["static_estimate_bytes"] > res["kernel_bytes"] + res["unpack_peak_bytes"]
    assert len(doc["files"]) == doc["total"]["files"]
    assert doc["kernel_modules"]["files"] > 500 and doc["kernel_modules"]["bytes"] > 50 << 20
    # the saved document is the profile of the image, and reads back as the same object
    fresh = from_analysis(analyze(str(image), kernel=str(kernels[-1])))
    subject = doc["subject"]  # what `profile` adds for merge: the image, kernel and arch
    assert (subject["image_bytes"], subject["kernel"], subject["arch"]) == (
        image.stat().st_size, str(kernels[-1]), "x86_64",
    )  # fmt: skip
    assert doc == {**fresh.to_dict(), "subject": subject}
    assert load(str(out)) == replace(fresh, subject=load(str(out)).subject)


@pytest.mark.integration
def test_by_dracut_module() -> None:
    from conftest import need

    from footprint.components.dracut import MODULES_D

    need(MODULES_D.is_dir(), "dracut's modules.d is not on this host (apt-get install dracut-core)")
    a = analyze(str(real_image("dracut-systemd.img")), dracut_modules=True)
    doc = components_dict(from_analysis(a))
    names = {c["name"] for c in doc["components"]}
    assert {"base", "systemd", "udev-rules"} <= names  # dracut modules from modules.txt
    _adds_up(doc)
    assert a.attribution is not None
    assert a.attribution.owner["usr/lib/dracut-lib.sh"] == "base"


def test_by_dracut_module_needs_a_dracut_image() -> None:
    r = CliRunner().invoke(
        cli, ["components", "--by", "dracut-module", str(SAMPLES / "busybox-gzip.img")]
    )
    assert r.exit_code == 2 and "modules.txt" in r.output


@pytest.mark.integration
def test_owner_db_dpkg_on_an_image_built_here() -> None:
    from conftest import need

    need(Path("/var/lib/dpkg/info").is_dir(), "no dpkg database on this host")
    image = real_image("initramfs-tools-zstd.img")
    r = CliRunner().invoke(
        cli, ["components", "--json", "--by", "package", "--owner-db", "dpkg", str(image)]
    )
    groups = {g["name"]: g for g in json.loads(r.output)["groups"]}
    kernel_pkg = [n for n in groups if n.startswith("linux-image-")]
    assert kernel_pkg and groups[kernel_pkg[0]]["page_rounded_bytes"] > 50 << 20
    assert "udev" in groups


def test_rules_give_the_storage_and_klibc_tools_a_home(tmp_path) -> None:
    files = {
        "usr/sbin/pdata_tools": b"p" * 10,  # thin-provisioning-tools (thin_check, cache_check…)
        "sbin/dmraid": b"d",
        "sbin/dmraid-activate": b"d",
        "scripts/local-top/dmraid": b"#!/bin/sh\n",
        "usr/bin/fstype": b"f",  # klibc-utils' hook copies these into /bin
        "usr/bin/minips": b"m",
        "usr/sbin/cryptroot-ask": b"c",  # dracut's crypt module
        "usr/bin/loginctl": b"l",
        "usr/bin/rmdir": b"r",
    }
    a = analyze(_image(tmp_path, files))
    assert a.attribution is not None
    assert {p: a.attribution.owner[p] for p in files} == {
        "usr/sbin/pdata_tools": "thin-provisioning-tools",
        "sbin/dmraid": "dmraid",
        "sbin/dmraid-activate": "dmraid",
        "scripts/local-top/dmraid": "dmraid",
        "usr/bin/fstype": "klibc",
        "usr/bin/minips": "klibc",
        "usr/sbin/cryptroot-ask": "cryptsetup",
        "usr/bin/loginctl": "systemd",
        "usr/bin/rmdir": "coreutils",
    }


@pytest.mark.integration
@pytest.mark.parametrize(
    "name",
    ["kdump-tools.img", "initramfs-tools-zstd.img", "dracut-systemd.img", "dracut-nosystemd.img"],
)
def test_nothing_of_a_real_image_is_left_in_other(name: str) -> None:
    # before these rules: klibc-utils' fstype and minips (24 KiB) on the kdump-tools image
    doc = components_dict(from_analysis(analyze(str(real_image(name)))))
    assert "other" not in {c["name"] for c in doc["components"]}
    if name.startswith(("kdump", "initramfs")):
        (klibc,) = [c for c in doc["components"] if c["name"] == "klibc"]
        assert klibc["files"] == 3  # its library, fstype, minips
