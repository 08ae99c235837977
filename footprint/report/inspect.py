"""`footprint inspect` as a JSON document (schema_version 1) and as text for a terminal."""

from __future__ import annotations

import io
import stat
from dataclasses import asdict
from typing import Any

from footprint import __version__
from footprint.image.reader import Inventory
from footprint.image.rootfs import Node
from footprint.image.summary import Summary
from footprint.schemas import SCHEMA_VERSION
from footprint.units import human

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
    if inv.uki is not None:
        doc["uki"] = {"linux_bytes": inv.uki.linux_bytes, "sections": inv.uki.sections}
    if files is not None:
        doc["files"] = files
    return doc


def as_text(
    inv: Inventory,
    summary: Summary,
    files: list[dict[str, Any]] | None,
    width: int = 100,
    color: bool = False,
) -> str:
    from rich.console import Console
    from rich.table import Table

    console = Console(
        width=width,
        record=True,
        force_terminal=color,
        no_color=not color,
        file=io.StringIO(),
        highlight=False,
    )
    t = summary.totals
    kind = "unified kernel image" if inv.uki else "initramfs"
    console.print(
        f"[bold]{inv.path}[/]: {human(inv.file_bytes)} {kind}, generator "
        f"{summary.generator}, kernel "
        f"{', '.join(summary.kernel_versions) or 'none (no lib/modules)'}"
    )
    console.print()

    seg = Table(show_edge=False, box=None, pad_edge=False)
    for col in ("segment", "offset", "codec", "compressed", "unpacked", "entries"):
        seg.add_column(col, justify="left" if col == "codec" else "right")
    for s in inv.segments:
        seg.add_row(
            str(s.index),
            str(s.offset),
            s.codec,
            human(s.compressed_bytes),
            human(s.uncompressed_bytes),
            str(s.entries),
        )
    console.print(seg)
    console.print()

    b = summary.boot
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    if inv.uki:
        facts.add_row(
            "uki", f".linux {human(inv.uki.linux_bytes)}, .initrd + .ucode {human(inv.image_bytes)}"
        )
    facts.add_row(
        "tree",
        f"{t.files} files, {t.dirs} dirs, {t.symlinks} symlinks, "
        f"{t.devices} devices, {t.hardlinks} hardlinks",
    )
    facts.add_row(
        "data",
        f"{human(t.unique_bytes)} ({human(t.page_rounded_bytes)} in "
        f"{human(t.page_size)} pages)"
        + (f", {human(t.overwritten_bytes)} overwritten" if t.overwritten_bytes else ""),
    )
    facts.add_row(
        "unpack",
        f"{human(b.compressed_held_bytes)} compressed, held until unpacked"
        f" + {human(b.rootfs_bytes)} rootfs = {human(b.peak_bytes)} peak",
    )
    facts.add_row(
        "RAM >=",
        f"{human(b.ram_floor_tmpfs_bytes)} with a tmpfs rootfs (capped at "
        f"50 % of RAM), {human(b.ram_floor_ramfs_bytes)} with ramfs",
    )
    console.print(facts)
    console.print()

    big = Table(show_edge=False, box=None, pad_edge=False)
    big.add_column("largest", justify="right")
    big.add_column("path", overflow="fold")
    for f in summary.largest:
        big.add_row(human(f.bytes), f.path + (f"  ({f.names} names)" if f.names > 1 else ""))
    console.print(big)

    for skip in inv.rootfs.skipped:
        console.print(
            f"[yellow]warning[/]: entry {skip.name!r} (segment {skip.segment}) is "
            f"not created by the kernel: {skip.reason}"
        )
    text = "\n".join(line.rstrip() for line in console.export_text(styles=color).splitlines())
    text += "\n"
    if files is not None:
        # Plain lines, like ls -l: fast for thousands of entries and easy to grep.
        lines = [
            f"{r['mode']} {r['size']:>10} {r['path']}"
            + (f" -> {r['target']}" if "target" in r else "")
            for r in files
        ]
        text += "\n".join(lines) + "\n"
    return text
