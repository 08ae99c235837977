"""`footprint inspect` as a JSON document (schema_version 1) and as text for a terminal."""

from __future__ import annotations

import stat
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from footprint import __version__
from footprint.image.reader import Inventory
from footprint.image.rootfs import Node
from footprint.image.summary import Summary
from footprint.report.text import columns
from footprint.schemas import SCHEMA_VERSION, header
from footprint.units import human

if TYPE_CHECKING:
    from footprint.image.extract import ExtractResult

SORT_KEYS = ("image", "name", "size")


def file_rows(inv: Inventory, sort: str = "image") -> list[dict[str, Any]]:
    """One row per path in the unpacked tree (the root excluded)."""
    nodes = [n for p, n in inv.rootfs.nodes.items() if p]
    if sort == "name":
        nodes.sort(key=lambda n: n.path)
    elif sort == "size":
        nodes.sort(key=lambda n: (-n.size, n.path))
    return [_row(n) for n in nodes]


def _row(node: Node) -> dict[str, Any]:
    row: dict[str, Any] = {
        "path": "/" + node.path,
        "kind": node.kind,
        "mode": stat.filemode(node.mode),
        "size": node.size,
        "uid": node.uid,
        "gid": node.gid,
        "segment": node.segment,
    }
    if node.layer:
        row["layer"] = "/" + node.layer
    if node.target is not None:
        row["target"] = node.target
    if node.inode is not None and node.inode.names > 1:
        row["links"] = node.inode.names
    if node.kind in ("char", "block"):
        row["rdev"] = f"{node.rdev[0]}:{node.rdev[1]}"
    return row


def as_dict(inv: Inventory, summary: Summary, files: list[dict[str, Any]] | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "inspect",
        "tool": f"footprint {__version__}",
        "image": {
            "path": inv.path,
            "bytes": inv.file_bytes,
            "format": "uki" if inv.uki else "initramfs",
        },
        "segments": [
            {
                "index": s.index,
                "offset": s.offset,
                "end": s.end,
                "codec": s.codec,
                "compressed_bytes": s.compressed_bytes,
                "uncompressed_bytes": s.uncompressed_bytes,
                "entries": s.entries,
                "archives": s.archives,
            }
            for s in inv.segments
        ],
        "padding_bytes": inv.padding_bytes,
        "entries": inv.entries,
        "totals": asdict(summary.totals),
        "boot": asdict(summary.boot),
        "kernel_versions": summary.kernel_versions,
        "generator": summary.generator,
        "largest": [asdict(f) for f in summary.largest],
        "overwritten": [{"path": "/" + p, "bytes": b} for p, b in inv.rootfs.overwritten],
        "skipped": [asdict(s) for s in inv.rootfs.skipped],
    }
    if summary.layers:
        doc["layers"] = [asdict(layer) for layer in summary.layers]
    if inv.uki is not None:
        doc["uki"] = {"linux_bytes": inv.uki.linux_bytes, "sections": inv.uki.sections}
    if files is not None:
        doc["files"] = files
    return doc


BOLD, YELLOW, PLAIN = "\x1b[1m", "\x1b[33m", "\x1b[0m"


def as_text(
    inv: Inventory, summary: Summary, files: list[dict[str, Any]] | None, color: bool = False
) -> str:
    """The summary for a terminal: long lines are left for the terminal to wrap, so that a
    path is never cut (nor is the --files listing, one `ls -l`-like line per path)."""

    def bold(text: str) -> str:
        return f"{BOLD}{text}{PLAIN}" if color else text

    t, b = summary.totals, summary.boot
    kind = "unified kernel image" if inv.uki else "initramfs"
    kernels = ", ".join(summary.kernel_versions) or "none (no lib/modules)"
    lines = [
        f"{bold(inv.path)}: {human(inv.file_bytes)} {kind}, generator {summary.generator}, "
        f"kernel {kernels}",
        "",
    ]
    segments = [
        (
            str(s.index),
            str(s.offset),
            s.codec,
            human(s.compressed_bytes),
            human(s.uncompressed_bytes),
            str(s.entries),
        )
        for s in inv.segments
    ]
    heads = ("segment", "offset", "codec", "compressed", "unpacked", "entries")
    lines += columns(heads, ">><>>>", segments, bold)
    lines.append("")

    facts = []
    if inv.uki:
        sections = f".linux {human(inv.uki.linux_bytes)}, .initrd + .ucode {human(inv.image_bytes)}"
        facts.append(("uki", sections))
    overwritten = f", {human(t.overwritten_bytes)} overwritten" if t.overwritten_bytes else ""
    facts += [
        (
            "tree",
            f"{t.files} files ({t.files - t.hardlinks} inodes), {t.dirs} dirs, "
            f"{t.symlinks} symlinks, "
            f"{t.devices} devices, {t.hardlinks} hardlinks",
        ),
        (
            "data",
            f"{human(t.unique_bytes)} ({human(t.page_rounded_bytes)} in "
            f"{human(t.page_size)} pages){overwritten}",
        ),
        (
            "unpack",
            f"{human(b.compressed_held_bytes)} compressed, held until unpacked"
            f" + {human(b.rootfs_bytes)} rootfs = {human(b.peak_bytes)} peak",
        ),
        (
            "RAM >=",
            f"{human(b.ram_floor_tmpfs_bytes)} with a tmpfs rootfs (capped at "
            f"50 % of RAM), {human(b.ram_floor_ramfs_bytes)} with ramfs",
        ),
    ]
    for layer in summary.layers:
        facts.append(
            (
                "inner",
                f"{layer.path}: {layer.fstype} ({layer.compression}), {human(layer.image_bytes)} "
                f"in rootfs holding {layer.files} files, {layer.dirs} dirs, {layer.symlinks} "
                f"symlinks, {human(layer.unique_bytes)} ({human(layer.page_rounded_bytes)} in "
                "pages, page cache only for what the boot reads); its files are listed as "
                f"{layer.path}//PATH",
            )
        )
    key_width = max(len(key) for key, _ in facts)
    lines += [f"{bold(key.ljust(key_width))}  {value}" for key, value in facts]
    lines.append("")

    largest = [
        (human(f.bytes), f.path + (f"  ({f.names} names)" if f.names > 1 else ""))
        for f in summary.largest
    ]
    if largest:  # --top 0: none, and no header
        lines += columns(("largest", "path"), "><", largest, bold)
    warning = f"{YELLOW}warning{PLAIN}" if color else "warning"
    lines += [
        f"{warning}: entry {skip.name!r} (segment {skip.segment}) is not created by the "
        f"kernel: {skip.reason}"
        for skip in inv.rootfs.skipped
    ]
    lines += [f"{warning}: {layer.warning}" for layer in summary.layers if layer.warning]
    if files is not None:
        # Plain lines, like ls -l: fast for thousands of entries and easy to grep.
        lines += [""] if lines[-1] else []
        lines += [bold(f"{'mode':<10} {'bytes':>10} path ({len(files)} paths, every name)")]
        lines += [
            f"{r['mode']} {r['size']:>10} {r['path']}"
            + (f" -> {r['target']}" if "target" in r else "")
            for r in files
        ]
    return "\n".join(lines) + "\n"


def extract_dict(result: ExtractResult) -> dict[str, Any]:
    return {**header("extract"), **result.as_dict()}


def extract_text(doc: dict[str, Any], directory: str) -> str:
    return (
        f"extracted {doc['files']} files, {doc['dirs']} dirs, {doc['symlinks']} symlinks, "
        f"{doc['hardlinks']} hardlinks, {doc['devices']} devices ({doc['bytes']} bytes) "
        f"into {directory}\n"
    )


def extract_notes(doc: dict[str, Any]) -> list[str]:
    """What was refused (unsafe) or not created, one line each, for standard error."""
    return [f"refused {r['name']!r}: {r['reason']}" for r in doc["refused"]] + [
        f"not created {r['name']!r}: {r['reason']}" for r in doc["skipped"]
    ]
