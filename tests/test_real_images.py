"""Oracle tests on real images built from Debian's packages (make samples-real): footprint
must agree with initramfs-tools' own lsinitramfs and unmkinitramfs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import need_tool, real_image

from footprint.image.extract import extract
from footprint.image.reader import scan
from footprint.image.summary import summarize

pytestmark = pytest.mark.integration

IMAGES = {
    "initramfs-tools-zstd.img": ("initramfs-tools", "zstd"),
    "initramfs-tools-gzip.img": ("initramfs-tools", "gzip"),
    "initramfs-tools-xz.img": ("initramfs-tools", "xz"),
    "initramfs-tools-lz4.img": ("initramfs-tools", "lz4"),
    "kdump-tools.img": ("initramfs-tools", "zstd"),
    "dracut-systemd.img": ("dracut", "gzip"),
    "dracut-nosystemd.img": ("dracut", "gzip"),
    "debian-installer.img": ("debian-installer", "gzip"),
    "initramfs-tools-firmware.img": ("initramfs-tools", "zstd"),
    "dracut-firmware.img": ("dracut", "gzip"),
    "dracut-amdgpu.img": ("dracut", "gzip"),
}
# Built with Debian's non-free firmware and microcode packages (build-real.sh step 6): the
# number of plain cpio archives before the compressed one, one per microcode hook for
# initramfs-tools (AMD's, then Intel's), one for dracut.
FIRMWARE_IMAGES = {
    "initramfs-tools-firmware.img": 2,
    "dracut-firmware.img": 1,
    "dracut-amdgpu.img": 1,
}
FIRMWARE_DIRS = ("lib/firmware/", "usr/lib/firmware/")


def tree_facts(root: Path) -> tuple[dict[str, tuple[str, int]], int]:
    """path -> (kind, size) below root, and the byte sum of regular files, inodes once."""
    facts: dict[str, tuple[str, int]] = {}
    inodes: dict[int, int] = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            kind = (
                "file"
                if stat.S_ISREG(st.st_mode)
                else "dir"
                if stat.S_ISDIR(st.st_mode)
                else "symlink"
                if stat.S_ISLNK(st.st_mode)
                else "special"
            )
            facts[rel] = (kind, st.st_size if kind == "file" else 0)
            if kind == "file":
                inodes[st.st_ino] = st.st_size
    return facts, sum(inodes.values())


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_entries_equal_lsinitramfs(name: str) -> None:
    image = real_image(name)
    lsinitramfs = need_tool("lsinitramfs", "initramfs-tools-core")
    listed = subprocess.run(
        [lsinitramfs, str(image)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    inv = scan(str(image))
    assert inv.entries == len(listed)
    generator, codec = IMAGES[name]
    summary = summarize(inv)
    assert summary.generator == generator
    assert inv.segments[-1].codec == codec
    assert summary.kernel_versions, "every real image carries kernel modules"


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_unique_bytes_equal_unmkinitramfs(name: str, tmp_path) -> None:
    image = real_image(name)
    unmk = need_tool("unmkinitramfs", "initramfs-tools-core")
    subprocess.run([unmk, str(image), str(tmp_path / "u")], check=True, capture_output=True)
    _, extracted_bytes = tree_facts(tmp_path / "u")
    assert summarize(scan(str(image))).totals.unique_bytes == extracted_bytes


@pytest.mark.parametrize("name", ["initramfs-tools-zstd.img", "dracut-systemd.img"])
def test_extract_equals_unmkinitramfs(name: str, tmp_path) -> None:
    image = real_image(name)
    unmk = need_tool("unmkinitramfs", "initramfs-tools-core")
    subprocess.run([unmk, str(image), str(tmp_path / "u")], check=True, capture_output=True)
    ours = tmp_path / "ours"
    result = extract(str(image), str(ours))
    assert not result.refused
    theirs_root = tmp_path / "u"
    if (theirs_root / "main").is_dir():  # unmkinitramfs splits early and main archives
        theirs: dict[str, tuple[str, int]] = {}
        for part in sorted(theirs_root.iterdir()):
            theirs.update(tree_facts(part)[0])
    else:
        theirs = tree_facts(theirs_root)[0]
    mine = tree_facts(ours)[0]
    special = {p for p, (k, _) in theirs.items() if k == "special"}
    assert {p: v for p, v in mine.items() if p not in special} == {
        p: v for p, v in theirs.items() if p not in special
    }


def test_uki_reads_its_initrd(tmp_path) -> None:
    uki = real_image("uki.efi")
    initrd = real_image("initramfs-tools-zstd.img")
    a, b = scan(str(uki)), scan(str(initrd))
    assert a.uki is not None and a.uki.linux_bytes > 1_000_000
    assert a.entries == b.entries
    assert summarize(a).totals == summarize(b).totals
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    if kernels:
        assert a.uki.linux_bytes in {k.stat().st_size for k in kernels}


def test_the_console_script_reads_a_uki_with_nothing_on_stderr() -> None:
    """lief reads the PE in-process; its binding must have nothing to say at exit."""
    uki = real_image("uki.efi")
    r = subprocess.run(
        [sys.executable, "-m", "footprint", "inspect", str(uki)], capture_output=True, text=True
    )
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.startswith(f"{uki}: ") and "unified kernel image" in r.stdout


@pytest.mark.parametrize("name", sorted(FIRMWARE_IMAGES))
def test_firmware_files_equal_lsinitramfs(name: str) -> None:
    image = real_image(name)
    lsinitramfs = need_tool("lsinitramfs", "initramfs-tools-core")
    listed = subprocess.run(
        [lsinitramfs, "-l", str(image)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    # `ls -l` style lines: mode, links, owner, group, size, date (3 fields), path. A hard link's
    # data comes with one of its names only (newc), so the sizes add up to each inode once.
    theirs = [line.split() for line in listed if line.startswith("-")]
    theirs = [(f[-1], int(f[4])) for f in theirs if f[-1].startswith(FIRMWARE_DIRS)]
    inv = scan(str(image))
    ours = {
        p: node
        for p, node in inv.rootfs.nodes.items()
        if node.kind == "file" and p.startswith(FIRMWARE_DIRS)
    }
    assert len(theirs) > 0
    assert sorted(ours) == sorted(p for p, _ in theirs)
    inodes = {id(node.inode): node.inode.size for node in ours.values() if node.inode}
    assert sum(inodes.values()) == sum(size for _, size in theirs)
