"""Inner filesystem images (dracut's squash modules): squashfs with every compressor and erofs
in its layouts, made here by the real mksquashfs and mkfs.erofs, read back and compared with
unsquashfs's and fsck.erofs's own view; malformed ones are a warning of their layer."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import REAL, need, need_tool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from footprint.image.cpio import newc_entry, newc_trailer
from footprint.image.extract import extract
from footprint.image.reader import scan
from footprint.image.summary import summarize

SQUASHFS_COMPRESSORS = ("gzip", "xz", "lzo", "lz4", "zstd", "lzma")
# (name, mkfs.erofs options): what the host's erofs-utils makes (bookworm's 1.5: lz4, lz4hc)
EROFS_LAYOUTS = {
    "plain": [],
    "chunked": ["--chunksize=8192"],
    "lz4": ["-zlz4"],
    "lz4hc": ["-zlz4hc"],
    "lz4hc-ztailpacking": ["-zlz4hc", "-Eztailpacking"],
    # erofs-utils 1.6+ (trixie's 1.8): FOOTPRINT_MKFS_EROFS and FOOTPRINT_FSCK_EROFS name them
    # (make samples-squash writes runnable ones in sample_initrds/real/squash/erofs-utils/)
    "lzma": ["-zlzma"],
    "deflate": ["-zdeflate"],
    "zstd": ["-zzstd"],
    "lzma-fragments-dedupe": ["-zlzma", "-Eall-fragments,dedupe"],
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small root: nested dirs, random and repetitive data, a hardlink, symlinks, an empty
    and a sparse file, a file of exactly one block and one just past it."""
    root = tmp_path_factory.mktemp("tree") / "root"
    (root / "usr/lib/x86_64-linux-gnu").mkdir(parents=True)
    (root / "usr/bin").mkdir()
    (root / "etc").mkdir()
    (root / "usr/lib/x86_64-linux-gnu/random.bin").write_bytes(os.urandom(300_000))
    (root / "usr/bin/seq").write_text("".join(f"{i}\n" for i in range(100_000)))
    os.link(root / "usr/bin/seq", root / "usr/bin/seq-hardlink")
    (root / "bin").symlink_to("usr/bin")
    (root / "etc/abs-link").symlink_to("/usr/bin/seq")
    (root / "etc/empty").write_bytes(b"")
    (root / "etc/block").write_bytes(b"b" * 131072)
    (root / "etc/block+1").write_bytes(b"c" * 131073)
    with open(root / "etc/sparse", "wb") as f:
        f.truncate(1 << 20)
    os.mkfifo(root / "etc/fifo")
    return root


def source_listing(root: Path) -> dict[str, tuple[str, int, str]]:
    """path -> (kind, size, sha256 of regular files) of the tree on disk."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st_ = p.lstat()
            if stat.S_ISLNK(st_.st_mode):
                out[rel] = ("symlink", len(os.readlink(p)), "")
            elif stat.S_ISDIR(st_.st_mode):
                out[rel] = ("dir", 0, "")
            elif stat.S_ISREG(st_.st_mode):
                out[rel] = ("file", st_.st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                out[rel] = ("fifo", 0, "")
    return out


def wrap(image: Path, name: str, out: Path) -> Path:
    """A dracut-like loader cpio: an init and the filesystem image."""
    out.write_bytes(
        newc_entry("init", stat.S_IFREG | 0o755, b"#!/bin/sh\n")
        + newc_entry(name, stat.S_IFREG | 0o644, image.read_bytes())
        + newc_trailer()
    )
    return out


def read_layer(cpio: Path, name: str) -> dict[str, tuple[str, int, str]]:
    """What footprint's reader finds inside the image `name` of `cpio`, hashing each file."""
    found: dict[str, tuple[str, int, str]] = {}

    def look(entry, data, node):  # noqa: ANN001
        if node is None or node.layer != name:
            return
        inner = node.path.split("//", 1)[1]
        digest = hashlib.sha256(data.read()).hexdigest() if data is not None else ""
        found[inner] = (node.kind, node.size, digest)

    inv = scan(str(cpio), visit=look)
    assert inv.rootfs.layers[name].warning is None
    # a hardlink's other name has no data of its own: it shares its inode's
    for path, (kind, size, digest) in list(found.items()):
        if kind == "file" and not digest and size:
            first = next(p for p, v in found.items() if v[2] and v[1] == size and p != path)
            found[path] = (kind, size, found[first][2])
    return found


def mksquashfs(tree: Path, out: Path, comp: str) -> Path:
    tool = need_tool("mksquashfs", "squashfs-tools")
    r = subprocess.run(
        [tool, str(tree), str(out), "-comp", comp, "-noappend", "-quiet", "-no-progress"],
        capture_output=True,
        text=True,
    )
    need(r.returncode == 0, f"mksquashfs -comp {comp} is not supported here: {r.stderr[-200:]}")
    return out


def unsquashfs_lls(image: Path) -> tuple[int, int]:
    """(regular files, their bytes) as `unsquashfs -lls` lists them."""
    tool = need_tool("unsquashfs", "squashfs-tools")
    out = subprocess.run([tool, "-lls", str(image)], capture_output=True, text=True, check=True)
    files = [line.split() for line in out.stdout.splitlines() if line.startswith("-")]
    return len(files), sum(int(f[2]) for f in files)


@pytest.mark.parametrize("comp", SQUASHFS_COMPRESSORS)
def test_squashfs_every_compressor_reads_as_unsquashfs_lists_it(
    tree: Path, tmp_path: Path, comp: str
) -> None:
    image = mksquashfs(tree, tmp_path / "sq.img", comp)
    found = read_layer(wrap(image, "squashfs-root.img", tmp_path / "c.img"), "squashfs-root.img")
    assert found == source_listing(tree)
    files = [v for v in found.values() if v[0] == "file"]
    assert (len(files), sum(v[1] for v in files)) == unsquashfs_lls(image)
    inv = scan(str(tmp_path / "c.img"))
    (layer,) = summarize(inv).layers
    assert (layer.fstype, layer.compression) == ("squashfs", comp)
    assert (layer.files, layer.file_bytes) == unsquashfs_lls(image)


def mkfs_erofs(tree: Path, out: Path, options: list[str]) -> Path:
    tool = os.environ.get("FOOTPRINT_MKFS_EROFS") or need_tool("mkfs.erofs", "erofs-utils")
    r = subprocess.run([tool, "--quiet", *options, str(out), str(tree)], capture_output=True)
    # bookworm's erofs-utils 1.5 makes lz4 only; CI runs trixie's from make samples-squash
    need(r.returncode == 0, f"this mkfs.erofs cannot make {options} (set FOOTPRINT_MKFS_EROFS)")
    return out


def fsck_erofs_listing(image: Path, into: Path) -> dict[str, tuple[str, int, str]]:
    tool = os.environ.get("FOOTPRINT_FSCK_EROFS") or need_tool("fsck.erofs", "erofs-utils")
    subprocess.run([tool, f"--extract={into}", str(image)], check=True, capture_output=True)
    return source_listing(into)


@pytest.mark.parametrize("layout", sorted(EROFS_LAYOUTS))
def test_erofs_layouts_read_as_fsck_erofs_extracts_them(
    tree: Path, tmp_path: Path, layout: str
) -> None:
    image = mkfs_erofs(tree, tmp_path / "er.img", EROFS_LAYOUTS[layout])
    found = read_layer(wrap(image, "erofs-root.img", tmp_path / "c.img"), "erofs-root.img")
    theirs = fsck_erofs_listing(image, tmp_path / "x")
    assert found == source_listing(tree)
    # erofs-utils 1.8's fsck.erofs --extract leaves a chunk-based file that is all holes empty
    assert {k: v[0] for k, v in found.items()} == {k: v[0] for k, v in theirs.items()}
    assert {k: v for k, v in found.items() if k != "etc/sparse"} == {
        k: v for k, v in theirs.items() if k != "etc/sparse"
    }
    (layer,) = summarize(scan(str(tmp_path / "c.img"))).layers
    want = {"plain": "none", "chunked": "none"}.get(layout, layout.split("-")[0])
    assert layer.compression == want.replace("lz4hc", "lz4")  # lz4hc writes lz4 blocks


def test_the_rootfs_counts_the_image_once_and_the_layer_its_files(
    tree: Path, tmp_path: Path
) -> None:
    image = mksquashfs(tree, tmp_path / "sq.img", "xz")
    inv = scan(str(wrap(image, "squashfs-root.img", tmp_path / "c.img")))
    s = summarize(inv)
    assert s.totals.files == 2  # init and the image: what the kernel unpacks
    assert s.totals.unique_bytes == 10 + image.stat().st_size
    (layer,) = s.layers
    assert layer.files == 7 and layer.unique_bytes == sum(
        v[1]
        for k, v in source_listing(tree).items()
        if v[0] == "file" and k != "usr/bin/seq-hardlink"
    )
    # symlinks inside resolve against the image's root, not the rootfs's
    node = inv.rootfs.lookup("squashfs-root.img//etc/abs-link")
    assert node is not None and node.path == "squashfs-root.img//usr/bin/seq"
    assert inv.rootfs.lookup("squashfs-root.img//bin/seq") is node
    assert inv.rootfs.lookup("usr/bin/seq") is None


def test_extract_writes_the_inner_tree_beside_the_image(tree: Path, tmp_path: Path) -> None:
    image = mksquashfs(tree, tmp_path / "sq.img", "gzip")
    cpio = wrap(image, "squashfs-root.img", tmp_path / "c.img")
    out = tmp_path / "out"
    result = extract(str(cpio), str(out))
    assert not result.refused
    assert sorted(os.listdir(out)) == ["init", "squashfs-root.img", "squashfs-root.img.d"]
    assert source_listing(out / "squashfs-root.img.d") == source_listing(tree)
    assert (out / "squashfs-root.img.d/usr/bin/seq").stat().st_ino == (
        out / "squashfs-root.img.d/usr/bin/seq-hardlink"
    ).stat().st_ino


# -- malformed inner images: the layer's warning, the outer image still reads ------------------
@pytest.fixture(scope="module")
def small_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    base = tmp_path_factory.mktemp("small")
    root = base / "root"
    (root / "a/b").mkdir(parents=True)
    (root / "a/b/file").write_bytes(b"x" * 5000 + os.urandom(3000))
    (root / "a/link").symlink_to("b/file")
    (root / "top").write_text("top\n")
    out = {}
    if os.path.exists("/usr/bin/mksquashfs"):
        out["squashfs"] = mksquashfs(root, base / "sq.img", "gzip").read_bytes()
    if os.path.exists("/usr/bin/mkfs.erofs"):
        out["erofs"] = mkfs_erofs(root, base / "er.img", []).read_bytes()
    need(out, "neither mksquashfs nor mkfs.erofs is installed (squashfs-tools, erofs-utils)")
    return out


def scan_wrapped(data: bytes, tmp: Path) -> object:
    path = tmp / "c.img"
    path.write_bytes(newc_entry("root.img", stat.S_IFREG | 0o644, data) + newc_trailer())
    inv = scan(str(path))  # never raises: the cpio around it is sound
    assert inv.rootfs.nodes["root.img"].size == len(data)
    return inv


@pytest.mark.parametrize(
    "fstype, offset, value, words",
    [
        ("squashfs", 4, b"\xff\xff\xff\xff", "warning"),  # inode count: unused, still reads
        ("squashfs", 12, b"\x00\x00\x00\x40", "block size"),
        ("squashfs", 20, b"\x09\x00", "compressor id 9"),
        ("squashfs", 40, b"\xff" * 8, "uses"),  # bytes_used past the file
        ("squashfs", 32, b"\xff\xff\x00\x00\x00\x00\x00\x00", "inode"),  # root inode ref
        ("erofs", 1024 + 12, b"\x40", "block size"),
        ("erofs", 1024 + 14, b"\xff\xff", "outside"),  # root nid
    ],
)
def test_a_malformed_superblock_is_a_warning(
    small_images: dict[str, bytes], tmp_path: Path, fstype: str, offset: int, value: bytes,
    words: str,
) -> None:  # fmt: skip
    need(fstype in small_images, f"no {fstype} tools")
    data = bytearray(small_images[fstype])
    data[offset : offset + len(value)] = value
    inv = scan_wrapped(bytes(data), tmp_path)
    warning = inv.rootfs.layers["root.img"].warning  # type: ignore[attr-defined]
    if words == "warning":
        assert warning is None
    else:
        assert warning is not None and words in warning, warning


@pytest.mark.parametrize("fstype", ["squashfs", "erofs"])
def test_a_truncated_image_is_a_warning(
    small_images: dict[str, bytes], tmp_path: Path, fstype: str
) -> None:
    need(fstype in small_images, f"no {fstype} tools")
    data = small_images[fstype]
    inv = scan_wrapped(data[: len(data) // 2 if fstype == "squashfs" else 2048], tmp_path)
    warning = inv.rootfs.layers["root.img"].warning  # type: ignore[attr-defined]
    assert warning is not None and f"{fstype} image /root.img read only in part" in warning


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data())
def test_mutated_inner_images_never_crash(
    small_images: dict[str, bytes], tmp_path: Path, data: st.DataObject
) -> None:
    image = bytearray(data.draw(st.sampled_from(sorted(small_images.values()))))
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(image) - 1))
        op = data.draw(st.sampled_from(["flip", "ff", "zero", "cut"]))
        if op == "flip":
            image[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "ff":
            image[pos : pos + 4] = b"\xff\xff\xff\x7f"
        elif op == "zero":
            image[pos : pos + 16] = bytes(16)
        elif op == "cut" and pos > 1100:
            del image[pos:]
    inv = scan_wrapped(bytes(image), tmp_path)
    summarize(inv)  # type: ignore[arg-type]


# -- real images: trixie's dracut with squash-squashfs / squash-erofs (make samples-squash) -----
SQUASH = Path(os.environ.get("FOOTPRINT_SQUASH_IMAGES", REAL / "squash"))
REAL_IMAGES = {"squashfs": "dracut-trixie-squashfs.img", "erofs": "dracut-trixie-erofs.img"}


def real_squash(name: str) -> Path:
    path = SQUASH / name
    need(path.exists(), f"{path} is missing: run `make samples-squash` (root, debootstrap)")
    return path


def container(image: Path, fstype: str, into: Path) -> Path:
    """The inner image file of a dracut image, written out as footprint reads it."""
    out = into / f"{fstype}-root.img"

    def keep(entry, data, node):  # noqa: ANN001
        if node is not None and node.path == out.name and data is not None:
            with open(out, "wb") as f:
                for chunk in data.chunks():
                    f.write(chunk)

    scan(str(image), visit=keep)
    assert out.exists()
    return out


def their_listing(fstype: str, image: Path, tmp: Path) -> tuple[int, int]:
    """(regular file names, their bytes) as squashfs-tools or erofs-utils see the image."""
    if fstype == "squashfs":
        return unsquashfs_lls(image)
    tool = need_tool("fsck.erofs", "erofs-utils")
    subprocess.run([tool, f"--extract={tmp / 'x'}", str(image)], check=True, capture_output=True)
    sizes = [v[1] for v in source_listing(tmp / "x").values() if v[0] == "file"]
    return len(sizes), sum(sizes)


@pytest.mark.integration
@pytest.mark.parametrize("fstype", sorted(REAL_IMAGES))
def test_real_inner_listing_equals_the_filesystem_tools(fstype: str, tmp_path: Path) -> None:
    image = real_squash(REAL_IMAGES[fstype])
    inv = scan(str(image))
    (layer,) = summarize(inv).layers
    assert (layer.path, layer.fstype, layer.warning) == (f"/{fstype}-root.img", fstype, None)
    theirs = their_listing(fstype, container(image, fstype, tmp_path), tmp_path)
    assert (layer.files, layer.file_bytes) == theirs


@pytest.mark.integration
@pytest.mark.parametrize("fstype", sorted(REAL_IMAGES))
def test_real_components_inside_equal_the_unsquashed_image(fstype: str) -> None:
    """What `components` attributes inside the squashed image is what it attributes in the
    same dracut configuration without squash: every component of 1 MiB or more within 5 %."""
    from footprint.profile import open_profile

    plain = open_profile(str(real_squash("dracut-trixie.img")))
    squashed = open_profile(str(real_squash(REAL_IMAGES[fstype])))
    inner = {c.name: c.inner_bytes for c in squashed.components}
    big = [c for c in plain.components if c.proportional_bytes >= 1 << 20]
    assert len(big) >= 10
    for c in big:
        assert abs(inner.get(c.name, 0) - c.proportional_bytes) <= 0.05 * c.proportional_bytes, c
    assert sum(inner.values()) == pytest.approx(
        sum(c.proportional_bytes for c in plain.components), rel=0.01
    )
    # in rootfs the inner files are the image file: the floors add up to the rootfs's
    rootfs = summarize(scan(str(real_squash(REAL_IMAGES[fstype])))).totals.page_rounded_bytes
    assert sum(c.tmpfs_floor_bytes for c in squashed.components) == pytest.approx(
        2 * rootfs, rel=0.01
    )


@pytest.mark.integration
@pytest.mark.parametrize("fstype", sorted(REAL_IMAGES))
def test_real_working_set_of_the_inner_root(fstype: str) -> None:
    """The static model adds the page cache of what the boot reads from the inner image:
    systemd as /init, the programs of the units its *.wants pull in, their libraries."""
    from footprint.analyze import analyze

    a = analyze(str(real_squash(REAL_IMAGES[fstype])))
    (ws,) = a.working_sets
    assert ws.layer == f"/{fstype}-root.img"
    assert ws.programs[0] == "/init"
    assert {"/usr/lib/systemd/systemd-udevd", "/usr/lib/systemd/systemd-journald"} <= set(
        ws.programs
    )
    (layer,) = a.summary.layers
    assert 8 << 20 < ws.page_cache_bytes < layer.page_rounded_bytes / 2
    r = a.reservation
    assert r.inner_working_set_bytes == ws.page_cache_bytes
    assert r.inner_image_bytes == layer.image_bytes
    plain = analyze(str(real_squash("dracut-trixie.img"))).reservation
    assert plain.inner_working_set_bytes == 0
    # the squashed image's estimate: its rootfs (loader + image) and unpack, plus what is read
    peak = r.unpack_peak_bytes + r.inner_working_set_bytes
    assert r.static_estimate_bytes == int(peak * 4096 / (4096 - 64))


def test_diff_of_two_releases_names_the_inner_files_that_grew(tree: Path, tmp_path: Path) -> None:
    import shutil

    from footprint.gate.diff import diff
    from footprint.profile import open_profile

    newer = tmp_path / "newer"
    shutil.copytree(tree, newer, symlinks=True, ignore=lambda d, names: ["fifo"])
    with open(newer / "usr/bin/seq", "a") as f:
        f.write("more\n" * 2000)
    (newer / "etc/new-file").write_bytes(b"n" * 5000)
    images = []
    for name, root in (("old", tree), ("new", newer)):
        sq = mksquashfs(root, tmp_path / f"{name}.sq", "zstd")
        images.append(wrap(sq, "squashfs-root.img", tmp_path / f"{name}.img"))
    d = diff(open_profile(str(images[0])), open_profile(str(images[1])))
    changes = {c.key: (c.kind, c.new - c.old) for c in d.files}
    assert changes["squashfs-root.img//bin/seq"] == ("grown", 10_000)
    assert changes["squashfs-root.img//etc/new-file"] == ("added", 5000)
    assert changes["squashfs-root.img"][0] == "grown"  # the image file in rootfs, compressed


@pytest.mark.slow
@pytest.mark.integration
def test_real_boot_shows_the_inner_page_cache(tmp_path: Path) -> None:
    """`boot` on the squashfs image up to initrd.target: the page cache of the mounted image
    (Cached less Shmem and ramfs) is measured, near the static working set."""
    import json
    import sys

    from footprint.analyze import analyze

    need_tool("qemu-system-x86_64", "qemu-system-x86")
    image = real_squash(REAL_IMAGES["squashfs"])
    kernel = real_squash("trixie-vmlinuz")
    run = subprocess.run(
        [sys.executable, "-m", "footprint", "boot", str(image), "--kernel", str(kernel),
         "--memory", "512M", "--accel", os.environ.get("FOOTPRINT_QEMU_ACCEL", "tcg"),
         "--timeout", "300", "--until", "initrd.target", "--json"],
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    doc = json.loads(run.stdout)
    assert doc["outcome"] == "success", doc["detail"]
    measured = doc["breakdown"]["file_cache_bytes"]
    predicted = analyze(str(image)).reservation.inner_working_set_bytes
    assert measured > 8 << 20  # the image's files, read after switch_root
    assert 0.5 * predicted < measured < 1.5 * predicted, (measured, predicted)


def test_repack_keeps_the_inner_image_whole(tree: Path, tmp_path: Path) -> None:
    """Ablation repacks the cpio: an inner image's files stay in the image file, and removing
    one of them is refused (it would mean rebuilding the filesystem)."""
    from footprint.errors import UsageError
    from footprint.image.repack import repack

    image = mksquashfs(tree, tmp_path / "sq.img", "gzip")
    cpio = wrap(image, "squashfs-root.img", tmp_path / "c.img")
    out = repack(str(cpio), str(tmp_path / "r.img"), {"init"}, "none")
    assert (out.dropped_files, out.kept_files) == (1, 1)
    again = scan(str(tmp_path / "r.img"))
    assert sorted(p for p in again.rootfs.nodes if "//" not in p) == ["", "squashfs-root.img"]
    assert len(again.rootfs.layers["squashfs-root.img"].tree.nodes) > 10
    with pytest.raises(UsageError, match="inside /squashfs-root.img"):
        repack(str(cpio), str(tmp_path / "r2.img"), {"squashfs-root.img//usr/bin/seq"}, "none")
