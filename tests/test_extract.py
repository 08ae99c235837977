"""Extraction: confined to its directory, faithful to the kernel's tree, never destructive."""

from __future__ import annotations

import os
import stat

import pytest
from conftest import SAMPLES

from footprint.errors import BadImage, UnsafeExtraction
from footprint.image.cpio import newc_entry, newc_trailer
from footprint.image.extract import extract

D, F, L = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644, stat.S_IFLNK | 0o777


def _img(tmp_path, *entries: bytes) -> str:
    p = tmp_path / "hostile.img"
    p.write_bytes(b"".join(entries) + newc_trailer())
    return str(p)


def _outside_untouched(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


def test_dotdot_and_absolute_names_stay_inside(tmp_path) -> None:
    img = _img(
        tmp_path,
        newc_entry("../escape", F, b"x"),
        newc_entry("a/../../escape2", F, b"x"),
        newc_entry("/abs", F, b"kept inside"),
        newc_entry("./ok", F, b"ok"),
    )
    out = tmp_path / "out"
    result = extract(img, str(out))
    assert _outside_untouched(tmp_path) == ["hostile.img", "out"]
    assert {n for n, _ in result.refused} == {"../escape", "a/../../escape2"}
    assert (out / "abs").read_bytes() == b"kept inside"
    assert (out / "ok").read_bytes() == b"ok"


def test_symlink_pointing_outside_cannot_be_written_through(tmp_path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    img = _img(
        tmp_path,
        newc_entry("up", L, b"../../victim"),  # relative, climbs out: refused
        newc_entry("up/pwned", F, b"x"),
        newc_entry("data", D),
        newc_entry("abs", L, b"/data"),  # absolute: resolved inside out/, as in rootfs
        newc_entry("abs/inside", F, b"y"),
    )
    out = tmp_path / "out"
    result = extract(img, str(out))
    assert list(victim.iterdir()) == []
    assert "up/pwned" in {n for n, _ in result.refused} | {n for n, _ in result.skipped}
    # The absolute symlink is kept as it is; what was written "through" it went where the
    # kernel would put it: /data under the root, i.e. inside out/.
    assert os.readlink(out / "abs") == "/data"
    assert (out / "data" / "inside").read_bytes() == b"y"


def test_force_with_planted_symlink_does_not_escape(tmp_path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(str(victim), out / "etc")  # left there before: --force must not follow it
    img = _img(tmp_path, newc_entry("etc", D), newc_entry("etc/passwd", F, b"root::0:0::/:"))
    extract(img, str(out), force=True)
    assert list(victim.iterdir()) == []
    assert (out / "etc").is_dir() and not (out / "etc").is_symlink()


def test_non_empty_directory_is_refused_and_untouched(tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious").write_text("mine")
    with pytest.raises(UnsafeExtraction):
        extract(str(SAMPLES / "small-none.img"), str(out))
    assert [p.name for p in out.iterdir()] == ["precious"]


def test_failed_extraction_removes_only_what_it_created(tmp_path) -> None:
    out = tmp_path / "new"
    with pytest.raises(BadImage):
        extract(str(SAMPLES / "bad" / "truncated.img"), str(out))
    assert not out.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(BadImage):
        extract(str(SAMPLES / "bad" / "truncated.img"), str(kept))
    assert kept.is_dir()


def test_modes_times_links_preserved(tmp_path) -> None:
    out = tmp_path / "out"
    result = extract(str(SAMPLES / "small-hardlinks.img"), str(out))
    assert result.hardlinks > 0 and not result.refused
    by_inode: dict[int, list[str]] = {}
    for top, _, files in os.walk(out):
        for f in files:
            st = os.lstat(os.path.join(top, f))
            by_inode.setdefault(st.st_ino, []).append(f)
    assert max(len(v) for v in by_inode.values()) >= 3
    img = _img(
        tmp_path,
        newc_entry("ro", D & ~0o777 | 0o555, mtime=1_000_000),
        newc_entry("ro/tool", stat.S_IFREG | 0o4755, b"#!", mtime=2_000_000),
        newc_entry("link", L, b"ro/tool", mtime=3_000_000),
    )
    out2 = tmp_path / "out2"
    extract(img, str(out2))
    assert stat.S_IMODE(os.stat(out2 / "ro").st_mode) == 0o555
    assert os.stat(out2 / "ro").st_mtime == 1_000_000
    assert stat.S_IMODE(os.stat(out2 / "ro" / "tool").st_mode) == 0o4755
    assert os.stat(out2 / "ro" / "tool").st_mtime == 2_000_000
    assert os.readlink(out2 / "link") == "ro/tool"
    assert os.lstat(out2 / "link").st_mtime == 3_000_000
    os.chmod(out2 / "ro", 0o755)  # let tmp_path clean up


def test_devices_need_the_flag(tmp_path) -> None:
    plain = extract(str(SAMPLES / "devices.img"), str(tmp_path / "a"))
    assert any("device" in why for _, why in plain.skipped)
    assert not (tmp_path / "a" / "dev" / "console").exists()
    if os.geteuid() != 0:
        pytest.skip("creating device nodes needs root")
    full = extract(str(SAMPLES / "devices.img"), str(tmp_path / "b"), devices=True)
    st = os.lstat(tmp_path / "b" / "dev" / "console")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 5 and os.minor(st.st_rdev) == 1
    assert full.devices >= 3
