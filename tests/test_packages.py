"""`components --by package|file`: which package each file of an image comes from — dpkg
databases (this host's, found by itself, or a build root's), ELF notes, the kernel's modules
by path, a Contents index — what stays unknown and what to add, and bad databases as one-line
usage errors."""

from __future__ import annotations

import glob
import gzip
import json
import lzma
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SAMPLES, assert_schema, need, real_image

from footprint.cli import cli
from footprint.components import groupings
from footprint.errors import EnvironmentUnavailable
from footprint.image.cpio import newc_entry, newc_trailer
from footprint.profile import open_profile
from footprint.units import human, page_round

DPKG_INFO = Path("/var/lib/dpkg/info")


def _image(
    tmp_path: Path, files: dict[str, bytes], links: dict[str, list[str]] | None = None
) -> str:
    """A newc image of `files` (path -> data); `links`: path -> its other (hardlinked) names."""
    links = links or {}
    parts = [newc_entry(".", stat.S_IFDIR | 0o755)]
    names = [n for p in files for n in (p, *links.get(p, []))]
    for d in sorted({str(Path(n).parent) for n in names if "/" in n}):
        for i in range(len(Path(d).parts)):
            parts.append(newc_entry("/".join(Path(d).parts[: i + 1]), stat.S_IFDIR | 0o755))
    for ino, (path, data) in enumerate(files.items(), 100):
        group = [*links.get(path, []), path]  # the data comes with the last name
        for name in group:
            last = name == group[-1]
            parts.append(
                newc_entry(
                    name, stat.S_IFREG | 0o755, data if last else b"", ino=ino, nlink=len(group)
                )
            )
    img = tmp_path / "made.img"
    img.write_bytes(b"".join(parts) + newc_trailer())
    return str(img)


def _root(
    tmp_path: Path, lists: dict[str, list[str]], files: dict[str, bytes] | None = None
) -> str:
    """A build root: var/lib/dpkg/info/PKG.list for each package, and `files` in its tree."""
    root = tmp_path / "root"
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True)
    for package, paths in lists.items():
        (info / f"{package}.list").write_text("".join(p + "\n" for p in ["/.", *paths]))
    for path, data in (files or {}).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return str(root)


def _groups(*args: str) -> dict:
    r = CliRunner().invoke(cli, ["components", "--json", *args])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert_schema(doc)
    return doc


def _by_name(doc: dict) -> dict[str, dict]:
    return {g["name"]: g for g in doc["groups"]}


def _error(*args: str) -> str:
    r = CliRunner().invoke(cli, ["components", *args])
    assert r.exit_code == 2, r.output
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("footprint: error: "), r.stderr
    assert "Traceback" not in r.output
    return r.stderr


def test_a_build_root_folds_the_usr_merge_both_ways(tmp_path: Path) -> None:
    img = _image(
        tmp_path,
        {
            "usr/lib/x86_64-linux-gnu/libfoo.so.1": b"f" * 5000,  # the list says /lib/…
            "bin/tool": b"t" * 100,  # the list says /usr/bin/tool
            "etc/made-here": b"m" * 10,  # no package has it
        },
    )
    root = _root(
        tmp_path,
        {"libfoo1:amd64": ["/lib/x86_64-linux-gnu/libfoo.so.1"], "tool": ["/usr/bin/tool"]},
    )
    doc = _groups("--by", "package", "--owner-db", root, img)
    groups = _by_name(doc)
    assert (groups["libfoo1"]["files"], groups["libfoo1"]["page_rounded_bytes"]) == (1, 8192)
    assert (groups["tool"]["files"], groups["tool"]["page_rounded_bytes"]) == (1, 4096)
    assert groups["unknown"]["files"] == 1
    info = os.path.join(root, "var/lib/dpkg/info")
    assert doc["package_sources"][0] == {
        "name": "dpkg",
        "where": info,
        "reason": "given",
        "files": 2,
        "page_rounded_bytes": 12288,
    }
    assert doc["warnings"] == [
        f"4 KiB in 1 file is in no package of {info}: made when the image was built, or from "
        "outside the package system (largest: /etc/made-here)"
    ]
    text = CliRunner().invoke(cli, ["components", "--by", "package", "--owner-db", root, img])
    assert f"packages from dpkg {info}: 2 files, 12 KiB (given)" in text.stdout
    assert text.stdout.endswith(f"warning: {doc['warnings'][0]}\n")


def test_by_file_rows_carry_their_package(tmp_path: Path) -> None:
    img = _image(tmp_path, {"bin/tool": b"t" * 100, "etc/made-here": b"m"})
    root = _root(tmp_path, {"tool": ["/usr/bin/tool"]})
    doc = _groups("--by", "file", "--owner-db", root, img)
    rows = _by_name(doc)
    assert rows["/bin/tool"]["package"] == "tool"
    assert "package" not in rows["/etc/made-here"]  # unknown: no field
    text = CliRunner().invoke(cli, ["components", "--by", "file", "--owner-db", root, img]).stdout
    assert "     4 KiB      1  tool  /bin/tool  (other)" in text.splitlines()
    assert "     4 KiB      1  -     /etc/made-here  (other)" in text.splitlines()


def test_by_file_lists_every_file_unless_top_says(tmp_path: Path) -> None:
    img = _image(tmp_path, {f"etc/f{i:02}": b"x" * (i + 1) for i in range(50)})
    lines = CliRunner().invoke(cli, ["components", "--by", "file", img]).stdout.splitlines()
    assert lines[0] == f"{img}: by file, 200 KiB page-rounded in 50 files (each inode once)"
    assert len([x for x in lines if "/etc/f" in x]) == 50
    lines = CliRunner().invoke(cli, ["components", "--by", "file", "--top", "3", img]).stdout
    assert lines.splitlines()[1:5] == [
        "     4 KiB      1  -  /etc/f00  (other)",
        "     4 KiB      1  -  /etc/f01  (other)",
        "     4 KiB      1  -  /etc/f02  (other)",
        "… 47 more (--top 0 or --json lists all)",
    ]


def test_a_hardlinked_file_is_found_by_the_name_that_says_what_it_is(tmp_path: Path) -> None:
    # busybox's applet names (cat…) are shipped by other packages; the component rules say
    # bin/busybox is the name that counts, whichever name comes first in the image
    busybox = b"\x7fELF" + b"b" * 3000
    img = _image(tmp_path, {"bin/busybox": busybox}, {"bin/busybox": ["bin/arch", "bin/cat"]})
    lists = {"busybox-static": ["/bin/busybox"], "coreutils": ["/bin/cat", "/usr/bin/arch"]}
    doc = _groups("--by", "package", "--owner-db", _root(tmp_path, lists), img)
    assert [(g["name"], g["files"]) for g in doc["groups"]] == [("busybox-static", 1)]
    contents = tmp_path / "Contents-amd64"
    contents.write_text(
        "bin/busybox  utils/busybox,admin/busybox-static\nbin/cat  utils/coreutils\n"
    )
    doc = _groups("--by", "package", "--owner-db", str(contents), img)
    assert [g["name"] for g in doc["groups"]] == ["busybox|busybox-static"]


def test_names_no_rule_tells_apart_go_by_the_size_of_the_file_in_the_root(tmp_path: Path) -> None:
    data = b"c" * 700
    img = _image(tmp_path, {"etc/a.conf": data}, {"etc/a.conf": ["etc/b.conf"]})
    lists = {"pkg-a": ["/etc/a.conf"], "pkg-b": ["/etc/b.conf"]}
    root = _root(tmp_path, lists, {"etc/a.conf": b"other", "etc/b.conf": data})
    assert [g["name"] for g in _groups("--by", "package", "--owner-db", root, img)["groups"]] == [
        "pkg-b"
    ]


def test_a_generator_copies_files_from_elsewhere(tmp_path: Path) -> None:
    # mkinitramfs: /init and scripts/ from /usr/share/initramfs-tools, klibc-utils' hook copies
    # /usr/lib/klibc/bin/fstype to /bin/fstype
    img = _image(
        tmp_path,
        {
            "init": b"#!/bin/sh\n",
            "scripts/functions": b"f\n",
            "conf/initramfs.conf": b"MODULES=most\n",
            "bin/fstype": b"\x7fELF",
        },
    )
    lists = {
        "initramfs-tools-core": [
            "/usr/share/initramfs-tools/init",
            "/usr/share/initramfs-tools/scripts/functions",
            "/etc/initramfs-tools/initramfs.conf",
        ],
        "klibc-utils": ["/usr/lib/klibc/bin/fstype"],
    }
    groups = _by_name(_groups("--by", "package", "--owner-db", _root(tmp_path, lists), img))
    assert {n: g["files"] for n, g in groups.items()} == {
        "initramfs-tools-core": 3,
        "klibc-utils": 1,
    }


def test_contents_index_in_every_form_apt_keeps_it(tmp_path: Path) -> None:
    import lz4.frame

    img = _image(tmp_path, {"usr/bin/tool": b"t" * 10, "etc/x": b"x"})
    text = (
        "bin/other                                 utils/other\n"
        "usr/bin/tool                              non-free/utils/tool,admin/tool-static\n"
    )
    plain = tmp_path / "Contents-amd64"
    plain.write_text(text)
    (tmp_path / "Contents-amd64.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "Contents-amd64.xz").write_bytes(lzma.compress(text.encode()))
    (tmp_path / "Contents-amd64.lz4").write_bytes(lz4.frame.compress(text.encode()))
    # an old index: a preamble, then FILE LOCATION
    old = tmp_path / "Contents-old"
    old.write_text(
        "This file maps each file available in the Debian GNU/Linux system to\n"
        "the package from which it originates.\n\nFILE  LOCATION\n" + text
    )
    for name in (
        "Contents-amd64",
        "Contents-amd64.gz",
        "Contents-amd64.xz",
        "Contents-amd64.lz4",
        "Contents-old",
    ):
        doc = _groups("--by", "file", "--owner-db", str(tmp_path / name), img)
        assert _by_name(doc)["/usr/bin/tool"]["package"] == "tool|tool-static", name
        assert doc["package_sources"][-1]["name"] == "contents"
        assert doc["warnings"] == [
            "4 KiB in 1 file is in no package of "
            f"{tmp_path / name}: made when the image was built, or from outside the package "
            "system (largest: /etc/x)"
        ]


def test_bad_owner_databases_are_one_line_usage_errors(tmp_path: Path) -> None:
    img = _image(tmp_path, {"bin/tool": b"t"})
    empty_root = tmp_path / "chroot"
    empty_root.mkdir()
    assert "no dpkg database in it" in _error("--by", "package", "--owner-db", str(empty_root), img)
    assert "no such file or directory" in _error(
        "--by", "package", "--owner-db", str(tmp_path / "nowhere"), img
    )
    bad = tmp_path / "Contents-bad"
    bad.write_bytes(b"\x7fELF\x02\x01\x01\0garbage line\n")
    assert "line 1 is not `path section/package`" in _error(
        "--by", "file", "--owner-db", str(bad), img
    )
    bad.write_text("bin/tool  utils/tool\nbin/tool\n")  # a used line without a location
    assert "line 2 is not" in _error("--by", "package", "--owner-db", str(bad), img)
    bad.write_bytes(b"")
    assert "it has no line" in _error("--by", "package", "--owner-db", str(bad), img)
    bad.write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 40)  # gzip's magic, then garbage
    assert "cannot read it" in _error("--by", "package", "--owner-db", str(bad), img)
    bad.write_bytes(gzip.compress(b"bin/tool  utils/tool\n" * 1000)[:60])  # truncated
    assert "cannot read it" in _error("--by", "package", "--owner-db", str(bad), img)
    assert "--owner-db is for --by package or --by file" in _error("--owner-db", "dpkg", img)


def test_dpkg_on_a_host_without_one_is_exit_4(tmp_path: Path) -> None:
    p = open_profile(_image(tmp_path, {"bin/tool": b"t"}))
    with pytest.raises(EnvironmentUnavailable, match="no dpkg database at"):
        groupings.group(p, "package", groupings.owner_dbs(["dpkg"], host=str(tmp_path)))


def test_nothing_known_says_what_to_add() -> None:
    doc = _groups("--by", "package", "--owner-db", "none", str(SAMPLES / "busybox-gzip.img"))
    unknown = _by_name(doc)["unknown"]
    assert doc["warnings"] == [
        f"{human(unknown['page_rounded_bytes'])} in {unknown['files']} files has no known "
        "package: add --owner-db dpkg (built on this host), --owner-db ROOT (the root it was "
        "built in) or --owner-db CONTENTS (the archive's Contents-<arch> index)"
    ]


# -- on real images, against this host's dpkg database (the images were built from it) ----------
def _host_lists() -> dict[str, set[str]]:
    """package -> the folded paths its dpkg list names (read here, independently)."""
    need(DPKG_INFO.is_dir(), "no dpkg database on this host")
    out: dict[str, set[str]] = {}
    for path in glob.glob(str(DPKG_INFO / "*.list")):
        package = os.path.basename(path)[:-5].split(":")[0]
        lines = Path(path).read_text(errors="replace").splitlines()
        out[package] = {p.lstrip("/").removeprefix("usr/") for p in lines}
    return out


def _fold(path: str) -> str:
    return path.lstrip("/").removeprefix("usr/")


@pytest.mark.integration
def test_kdump_tools_image_is_attributed_by_this_hosts_dpkg_database_by_itself() -> None:
    image = real_image("kdump-tools.img")
    p = open_profile(str(image))
    (kver,) = p.kernel_versions
    lists = _host_lists()
    kernel = f"linux-image-{kver}"
    need(kernel in lists, f"{kernel} is not installed here: the image was not built on this host")
    doc = _groups("--by", "package", str(image))
    groups = _by_name(doc)
    dpkg = doc["package_sources"][0]
    assert (dpkg["name"], dpkg["where"]) == ("dpkg", str(DPKG_INFO))
    assert dpkg["reason"].startswith(f"found: {kernel} ships the image's kernel modules")
    text = CliRunner().invoke(cli, ["components", "--by", "package", str(image)]).stdout
    assert f"packages from dpkg {DPKG_INFO}: {dpkg['files']} files" in text

    page = p.totals.page_size
    modules = [f for f in p.files if _fold(f.path) in lists[kernel]]
    assert modules and all(f"/lib/modules/{kver}/" in f.path for f in modules)
    assert groups[kernel]["files"] == len(modules)
    assert groups[kernel]["bytes"] == sum(f.bytes for f in modules)
    assert groups[kernel]["page_rounded_bytes"] == sum(page_round(f.bytes, page) for f in modules)

    (busybox,) = [f for f in p.files if f.component == "busybox"]
    assert len(busybox.links) > 100  # its applets, hardlinked; coreutils ships some of the names
    (owner,) = [pkg for pkg in ("busybox-static", "busybox") if "bin/busybox" in lists.get(pkg, ())]
    assert (groups[owner]["files"], groups[owner]["bytes"]) == (1, busybox.bytes)

    # every file one package lists under its (only) name has that package
    owners: dict[str, set[str]] = {}
    for package, paths in lists.items():
        for path in paths:
            owners.setdefault(path, set()).add(package)
    rows = {g["name"]: g.get("package") for g in _groups("--by", "file", str(image))["groups"]}
    for f in p.files:
        if not f.links and len(owners.get(_fold(f.path), ())) == 1:
            assert rows[f.path] == next(iter(owners[_fold(f.path)])), f.path

    # mkinitramfs copies /init and scripts/ from /usr/share/initramfs-tools and its conf from
    # /etc/initramfs-tools, klibc-utils' hook its commands from /usr/lib/klibc/bin; what no
    # list names otherwise is made when the image is built (depmod's modules.*, ld.so.cache,
    # the scripts' ORDER) or not a package's
    def source(path: str) -> str | None:
        if path == "/init" or path.startswith("/scripts/"):
            return "share/initramfs-tools" + path
        if path.startswith("/usr/bin/"):
            return "lib/klibc/bin/" + path.rsplit("/", 1)[1]
        return "etc/initramfs-tools/initramfs.conf" if path == "/conf/initramfs.conf" else None

    unlisted = [f for f in p.files if not any(_fold(n) in owners for n in (f.path, *f.links))]
    copied = [f for f in unlisted if source(f.path) in owners]
    assert {f.path for f in copied} >= {"/init", "/scripts/functions", "/usr/bin/fstype"}
    for f in copied:
        assert rows[f.path] in owners[source(f.path)], f.path  # type: ignore[index]
    unknown = [f for f in unlisted if f not in copied]
    assert {f.path for f in unknown} == {path for path, package in rows.items() if not package}
    assert f"/usr/lib/modules/{kver}/modules.dep" in {f.path for f in unknown}
    rounded = sum(page_round(f.bytes, page) for f in unknown)
    assert (groups["unknown"]["files"], groups["unknown"]["page_rounded_bytes"]) == (
        len(unknown),
        rounded,
    )
    assert doc["warnings"] == [
        f"{human(rounded)} in {len(unknown)} files is in no package of {DPKG_INFO}: made when "
        "the image was built, or from outside the package system (largest: "
        + ", ".join(f.path for f in sorted(unknown, key=lambda f: (-f.bytes, f.path))[:3])
        + ")"
    ]
    assert sum(g["page_rounded_bytes"] for g in doc["groups"]) == doc["total"]["page_rounded_bytes"]


@pytest.mark.integration
def test_without_a_database_the_kernel_modules_go_by_their_path() -> None:
    image = real_image("kdump-tools.img")
    p = open_profile(str(image))
    (kver,) = p.kernel_versions
    doc = _groups("--by", "package", "--owner-db", "none", str(image))
    groups = _by_name(doc)
    ours = [
        f
        for f in p.files
        if f.path.startswith(f"/usr/lib/modules/{kver}/kernel/")
        or f.path.rsplit("/", 1)[1]
        in ("modules.builtin", "modules.builtin.modinfo", "modules.order")
    ]
    kernel = groups[f"linux-image-{kver}"]
    assert (kernel["files"], kernel["bytes"]) == (len(ours), sum(f.bytes for f in ours))
    noted = [f.path for f in p.elf if f.package.get("name") == "systemd"]
    assert groups["systemd"]["files"] == len(noted) > 0  # udevadm & co carry .note.package
    assert [s["name"] for s in doc["package_sources"]] == ["elf-note", "kernel-path"]
    unknown = groups["unknown"]
    assert doc["warnings"] == [
        f"{human(unknown['page_rounded_bytes'])} in {unknown['files']} files has no known "
        "package: add --owner-db dpkg (built on this host), --owner-db ROOT (the root it was "
        "built in) or --owner-db CONTENTS (the archive's Contents-<arch> index)"
    ]
    text = CliRunner().invoke(
        cli, ["components", "--by", "package", "--owner-db", "none", str(image)]
    )
    assert text.stdout.endswith(f"warning: {doc['warnings'][0]}\n")


def _contents_from_host(path: Path) -> None:
    """A Contents index made of this host's dpkg lists: real data, the archive's format."""
    where: dict[str, list[str]] = {}
    for package, paths in sorted(_host_lists().items()):
        for p in paths:
            where.setdefault(p, []).append(f"misc/{package}")
    with gzip.open(path, "wt") as f:
        for p in sorted(where):
            if p and not os.path.isdir("/" + p) and not os.path.isdir("/usr/" + p):
                f.write(f"{p:<60} {','.join(where[p])}\n")


@pytest.mark.integration
def test_a_contents_index_attributes_as_the_database_it_was_made_from(tmp_path: Path) -> None:
    image = str(real_image("kdump-tools.img"))
    contents = tmp_path / "Contents-amd64.gz"
    _contents_from_host(contents)
    dpkg = {g["name"]: g.get("package") for g in _groups("--by", "file", image)["groups"]}
    doc = _groups("--by", "file", "--owner-db", str(contents), image)
    assert doc["package_sources"][-1]["reason"] == "given"
    index = {g["name"]: g.get("package") for g in doc["groups"]}
    assert index.keys() == dpkg.keys()
    differ = {path for path in index if index[path] != dpkg[path]}
    # only where the index names several packages, or dpkg's package for what ELF notes know
    assert all("|" in (index[p] or "") or index[p] == "systemd" for p in differ), differ
    assert {p for p, package in index.items() if not package} == {
        p for p, package in dpkg.items() if not package
    }


@pytest.mark.integration
def test_the_host_root_given_as_root_is_its_dpkg_database() -> None:
    image = str(real_image("kdump-tools.img"))
    need(DPKG_INFO.is_dir(), "no dpkg database on this host")
    found = _groups("--by", "package", image)
    given = _groups("--by", "package", "--owner-db", "/", image)
    assert given["groups"] == found["groups"]
    assert given["package_sources"][0]["reason"] == "given"
    assert given["package_sources"][0]["where"] == str(DPKG_INFO)


@pytest.mark.integration
def test_a_saved_profile_finds_the_same_packages(tmp_path: Path) -> None:
    image = str(real_image("kdump-tools.img"))
    saved = tmp_path / "p.json"
    assert CliRunner().invoke(cli, ["profile", image, "-o", str(saved)]).exit_code == 0
    for by in ("package", "file"):
        runs = [CliRunner().invoke(cli, ["components", "--by", by, x]) for x in (image, str(saved))]
        assert runs[1].stdout == runs[0].stdout  # it names the image it was made from


@pytest.mark.integration
def test_dracut_files_come_from_its_modules_d() -> None:
    image = str(real_image("dracut-systemd.img"))
    lists = _host_lists()
    need("dracut-core" in lists, "dracut-core is not installed here")
    rows = {g["name"]: g for g in _groups("--by", "file", image)["groups"]}
    assert rows["/usr/lib/dracut-lib.sh"]["package"] == "dracut-core"  # 99base/dracut-lib.sh
    assert rows["/usr/lib/dracut/hooks/cmdline/30-parse-crypt.sh"]["package"] == "dracut-core"
    # systemd ships an emergency.service too; dracut's (98dracut-systemd) is the one of its size
    assert "lib/systemd/system/emergency.service" in lists["systemd"]
    assert rows["/usr/lib/systemd/system/emergency.service"]["package"] == "dracut-core"
    assert rows["/usr/bin/dracut-util"]["package"] == "dracut-core"  # /usr/lib/dracut/dracut-util


@pytest.mark.integration
def test_the_installer_is_made_of_udebs() -> None:
    image = str(real_image("debian-installer.img"))
    doc = _groups("--by", "package", image)
    assert "kernel-path" not in [s["name"] for s in doc["package_sources"]]
    assert not [g for g in doc["groups"] if g["name"].startswith("linux-image-")]
    unknown = _by_name(doc)["unknown"]
    assert doc["warnings"] == [
        f"{human(unknown['page_rounded_bytes'])} in {unknown['files']} files has no known "
        "package: add --owner-db CONTENTS, the archive's Contents-udeb-<arch> index "
        "(dists/<suite>/main/Contents-udeb-amd64.gz)"
    ]
