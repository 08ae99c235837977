"""The reader against the committed sample images, whose facts build.sh recorded from the
staging trees and the cpio/compressor tools (sample_initrds/expected.json)."""

from __future__ import annotations

import os
import stat

import pytest
from conftest import EXPECTED, SAMPLES, need

from footprint.image.extract import extract
from footprint.image.reader import scan
from footprint.image.summary import summarize

GOOD = sorted(EXPECTED["images"])


def _need_codec_for(name: str) -> None:
    """lzop samples need python-lzo: a skip here, a failure where integration is required."""
    if "lzo" in name:
        try:
            import lzo  # noqa: F401
        except ImportError:
            need(
                False,
                "python-lzo is not installed (apt-get install liblzo2-dev; pip install "
                "'footprint[lzo]')",
            )


@pytest.mark.parametrize("name", GOOD)
def test_sample_matches_expected(name: str) -> None:
    _need_codec_for(name)
    want = EXPECTED["images"][name]
    inv = scan(str(SAMPLES / name))
    totals = summarize(inv).totals
    assert [(s.codec, s.entries) for s in inv.segments] == [
        (s["codec"], s["entries"]) for s in want["segments"]
    ]
    for seg, w in zip(inv.segments, want["segments"], strict=True):
        assert seg.offset == w["offset"]
        if seg.codec == "none":  # GNU cpio's zero padding to 512 bytes counts as padding here
            assert w["size"] - 511 <= seg.compressed_bytes <= w["size"]
            assert seg.compressed_bytes % 4 == 0
        else:
            assert seg.compressed_bytes == w["size"]
    assert inv.entries == want["entries"]
    assert totals.unique_bytes == want["unique_bytes"]
    assert totals.overwritten_bytes == want["overwritten_bytes"]
    assert totals.hardlinks == want["hardlinks"]
    assert totals.symlinks == want["symlinks"]
    assert totals.devices == want["devices"]


@pytest.mark.parametrize("name", GOOD)
def test_tree_matches_extraction(name: str, tmp_path) -> None:
    """The tree counts equal what extraction leaves on disk, counted by the filesystem."""
    _need_codec_for(name)
    inv = scan(str(SAMPLES / name))
    totals = summarize(inv).totals
    out = tmp_path / "x"
    result = extract(str(SAMPLES / name), str(out), devices=os.geteuid() == 0)
    assert not result.refused
    files = dirs = links = special = 0
    inodes: dict[int, int] = {}
    for top, dnames, fnames in os.walk(out):
        for d in dnames:
            if os.path.islink(os.path.join(top, d)):
                links += 1
            else:
                dirs += 1
        for f in fnames:
            st = os.lstat(os.path.join(top, f))
            if stat.S_ISREG(st.st_mode):
                files += 1
                inodes[st.st_ino] = st.st_size
            elif stat.S_ISLNK(st.st_mode):
                links += 1
            else:
                special += 1
    assert (files, dirs, links) == (totals.files, totals.dirs, totals.symlinks)
    assert sum(inodes.values()) == totals.unique_bytes
    if os.geteuid() == 0:
        assert special == totals.devices


def test_early_cpio_then_zstd_main() -> None:
    inv = scan(str(SAMPLES / "busybox-early-zstd.img"))
    early, main = inv.segments
    assert (early.codec, main.codec) == ("none", "zstd")
    assert early.offset == 0 and main.offset % 4 == 0
    assert "kernel/x86/microcode/GenuineIntel.bin" in inv.rootfs.nodes
    assert inv.rootfs.nodes["bin/busybox"].size > 1_000_000


def test_overwrite_keeps_the_last_version() -> None:
    inv = scan(str(SAMPLES / "overwrite.img"))
    want = EXPECTED["images"]["overwrite.img"]
    assert inv.rootfs.overwritten_bytes == want["overwritten_bytes"] > 0
    assert inv.rootfs.overwritten, "the overwritten path is named"


def test_hardlinks_counted_once() -> None:
    inv = scan(str(SAMPLES / "small-hardlinks.img"))
    t = summarize(inv).totals
    shared = [n for n in inv.rootfs.nodes.values() if n.inode and n.inode.names > 1]
    assert (
        len(shared) >= 5 and t.hardlinks == EXPECTED["images"]["small-hardlinks.img"]["hardlinks"]
    )
    assert t.unique_bytes < sum(n.size for n in inv.rootfs.nodes.values() if n.inode)


def test_page_rounding_follows_page_size() -> None:
    inv = scan(str(SAMPLES / "small-none.img"))
    small, big = summarize(inv, 4096).totals, summarize(inv, 65536).totals
    assert small.unique_bytes == big.unique_bytes
    assert big.page_rounded_bytes % 65536 == 0 and small.page_rounded_bytes % 4096 == 0
    files = sum(1 for inode, _ in inv.rootfs.inodes().values() if inode.size)
    assert big.page_rounded_bytes >= files * 65536 > small.page_rounded_bytes
