"""Fuzz targets: each takes one input's bytes and returns, or raises a FootprintError (a
one-line error with its exit code). Anything else — another exception, a hang, a memory
blow-up, a write outside the extraction target — is a finding.

Each target runs the code a command runs on that input, in process: the reader with the
summary, attribution and both renderings (`inspect`, `components` without lief), extract,
the budget loader with a verdict, and the profile loader with a diff and a check.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import BinaryIO

from footprint.errors import FootprintError

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_initrds" / "busybox-early-zstd.img"


def _file(data: bytes) -> BinaryIO:
    """The input as an open file in memory (the reader wants a real file: fstat, mmap)."""
    fd = os.memfd_create("fuzz.img")
    os.write(fd, data)
    return os.fdopen(fd, "rb")


def reader(data: bytes) -> None:
    from footprint.components.attribute import attribute
    from footprint.components.rules import load_rules
    from footprint.elf.resolve import Resolver
    from footprint.image.reader import scan
    from footprint.image.summary import summarize
    from footprint.paths import json_text, shown
    from footprint.report import inspect as render

    with _file(data) as f:
        try:
            inv = scan("fuzz.img", file=f)
        except FootprintError:
            return
    summary = summarize(inv)
    files = render.file_rows(inv)
    shown(render.as_text(inv, summary, files)).encode()
    doc = render.as_dict(inv, summary, files)
    json_text(doc).encode()
    rules = load_rules(None, summary.generator)
    attribute(inv.rootfs, {}, Resolver(inv.rootfs, {}, {}), rules, summary.totals.page_size)


def extract(data: bytes) -> None:
    from footprint.image.extract import extract as unpack

    parent = tempfile.mkdtemp(prefix="footprint-fuzz-")
    try:
        try:
            with _file(data) as f:
                unpack("fuzz.img", os.path.join(parent, "tree"), file=f)
        except FootprintError:
            pass
        outside = set(os.listdir(parent)) - {"tree"}
        if outside:
            raise AssertionError(f"extract wrote outside its target: {sorted(outside)}")
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def inner(data: bytes) -> None:
    """The bytes as a filesystem image inside a sound cpio (dracut's squashfs-root.img): the
    scan must always succeed — a malformed inner image is its layer's warning — and
    extracting it must stay inside the target."""
    import stat

    from footprint.image.cpio import newc_entry, newc_trailer
    from footprint.image.extract import extract as unpack
    from footprint.image.reader import scan
    from footprint.image.summary import summarize
    from footprint.report import inspect as render

    image = newc_entry("squashfs-root.img", stat.S_IFREG | 0o644, data) + newc_trailer()
    with _file(image) as f:
        inv = scan("fuzz.img", file=f)
        summary = summarize(inv)
        render.as_text(inv, summary, render.file_rows(inv))
        parent = tempfile.mkdtemp(prefix="footprint-fuzz-")
        try:
            unpack("fuzz.img", os.path.join(parent, "tree"), file=f)
            outside = set(os.listdir(parent)) - {"tree"}
            if outside:
                raise AssertionError(f"extract wrote outside its target: {sorted(outside)}")
        finally:
            shutil.rmtree(parent, ignore_errors=True)


@cache
def _profile() -> object:
    from footprint.profile import open_profile

    return open_profile(str(SAMPLE))


def budget(data: bytes) -> None:
    from footprint.gate.budget import evaluate, failed, load_budget
    from footprint.profile import Profile
    from footprint.report import check as render

    profile = _profile()
    assert isinstance(profile, Profile)
    with tempfile.NamedTemporaryFile(suffix=".toml") as f:
        f.write(data)
        f.flush()
        try:
            b = load_budget(f.name)
            e = evaluate(b, profile, profile)
        except FootprintError:
            return
    doc = render.check_dict("fuzz", e, failed(e.verdicts, b), b.mode)
    render.check_text(doc), render.check_markdown(doc), render.check_junit(doc)


def profile(data: bytes) -> None:
    from footprint.gate.diff import diff
    from footprint.profile import Profile, parse
    from footprint.report import components
    from footprint.report import diff as render

    sample = _profile()
    assert isinstance(sample, Profile)
    try:
        p = parse(data, "fuzz.json")
        doc = render.diff_dict(diff(sample, p))
    except FootprintError:
        return
    render.diff_text(doc), render.diff_markdown(doc)
    components.components_text(components.components_dict(p))
    p.to_json()


TARGETS = {
    "reader": reader,
    "extract": extract,
    "budget": budget,
    "profile": profile,
    "inner": inner,
}
