"""The library closure against glibc's own loader: `ld.so --list`, run chrooted in the
extracted image, for every dynamically linked executable of the real images."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from conftest import need, real_image

from footprint.analyze import analyze
from footprint.image.extract import extract

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LINE = re.compile(r"^\s*(?:(\S+) => )?(\S+|not found)(?: \(0x[0-9a-f]+\))?\s*$")


def chroot_realpath(root: str, path: str) -> str:
    """realpath of `path` as seen inside `root` (absolute symlinks resolve inside it)."""
    parts = [p for p in path.split("/") if p]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        here = os.path.join(root, *done, part)
        if os.path.islink(here):
            hops += 1
            assert hops < 40
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        done.append(part)
    return "/".join(done)


def ld_list(root: str, interpreter: str, exe: str) -> tuple[set[str], set[str]]:
    out = subprocess.run(
        ["chroot", root, interpreter, "--list", "/" + exe],
        capture_output=True,
        text=True,
        timeout=30,
    )
    found, missing = set(), set()
    for line in out.stdout.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        name, where = m.groups()
        if where == "not found":
            missing.add(name)
        elif where.startswith("/"):
            found.add(chroot_realpath(root, where))
    return found, missing


@pytest.mark.parametrize(
    "name",
    ["initramfs-tools-zstd.img", "dracut-systemd.img", "dracut-nosystemd.img", "kdump-tools.img"],
)
def test_closure_equals_ld_so_list(name: str, tmp_path) -> None:
    need(os.geteuid() == 0, "chroot needs root")
    image = real_image(name)
    root = str(tmp_path / "root")
    extract(str(image), root)
    a = analyze(str(image), components=False)
    checked = 0
    mismatches = []
    for facts in a.elves:
        if not facts.runs or facts.error or "/ld-linux" not in facts.interpreter:
            continue  # static, or klibc's own loader: not glibc's ld.so
        closure = a.resolver.closure(facts.path)
        ours = set(closure.paths[1:])
        theirs, missing = ld_list(root, facts.interpreter, facts.path)
        checked += 1
        if ours != theirs or {n for n, _ in closure.missing} != missing:
            mismatches.append((facts.path, sorted(ours ^ theirs), missing))
    assert checked >= 5
    assert not mismatches, mismatches[:5]
