"""`footprint diff` as text (bloat-o-meter style), JSON and Markdown."""

from __future__ import annotations

from typing import Any

from footprint.gate.diff import Change, ComponentChange, Diff
from footprint.report.text import prose, shown
from footprint.schemas import SCHEMA_VERSION
from footprint.units import human


def _row(c: Change) -> dict[str, Any]:
    row = {"name": c.key, "old": c.old, "new": c.new, "delta": c.delta, "change": c.kind}
    if isinstance(c, ComponentChange):
        row["parts"] = {
            part: {"old": old, "new": new, "delta": new - old}
            for part, (old, new) in c.parts().items()
        }
    return row


def diff_dict(d: Diff) -> dict[str, Any]:
    up = sum(c.delta for c in d.files if c.delta > 0)
    down = sum(c.delta for c in d.files if c.delta < 0)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "diff",
        "old": d.old_label,
        "new": d.new_label,
        "summary": {**d.counts(), "up_bytes": up, "down_bytes": down, "net_bytes": up + down},
        "totals": [_row(c) for c in d.totals],
        "segments": [_row(c) for c in d.segments],
        "components": [_row(c) for c in d.components],
        "files": [_row(c) for c in d.files],
        "warnings": list(d.warnings),
    }


SECTIONS = ("totals", "segments", "components", "files")
PARTS = ("own", "exclusive", "shared")
PARTS_NOTE = (
    "own, excl., shared Δ: what changed in the component's own files, in the libraries only "
    "it loads, and in its share of the libraries others load too (the last two move when "
    "another component starts or stops loading a library, though nothing in this one changed)."
)
PAGED = ("components", "files")  # --top cuts these; totals and segments are always whole


def side(row: dict[str, Any], which: str, count: bool = False) -> str:
    """One side of a row: a `count` as it is, "new" or "gone" where the thing is absent (not
    "0 B"), else a size."""
    if count:
        return str(row[which])
    absent = {("old", "added"): "new", ("new", "removed"): "gone"}.get((which, row["change"]))
    return absent or human(row[which])


def signed(n: int) -> str:
    """A change in bytes with its sign: +1.5 MiB, -12 KiB, 0 B."""
    return ("+" if n > 0 else "-" if n < 0 else "") + human(abs(n))


def _cells(row: dict[str, Any]) -> list[str]:
    """old, new, delta (and the parts' deltas of a component): a count stays a count."""
    if row["name"] == "files":
        return [str(row["old"]), str(row["new"]), f"{row['delta']:+d}"]
    cells = [side(row, "old"), side(row, "new"), signed(row["delta"])]
    if "parts" in row:
        cells += [signed(row["parts"][part]["delta"]) for part in PARTS]
    return cells


def _heads(section: str) -> list[str]:
    delta_parts = ["own Δ", "excl. Δ", "shared Δ"] if section == "components" else []
    return ["old", "new", "delta", *delta_parts]


def summary_line(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    return (
        f"add/remove: {s['added']}/{s['removed']} grow/shrink: {s['grown']}/{s['shrunk']} "
        f"up/down: {s['up_bytes']}/{s['down_bytes']} ({s['net_bytes']})"
    )


def diff_text(doc: dict[str, Any], top: int = 25) -> str:
    lines = [f"{doc['old']} → {doc['new']}", summary_line(doc)]
    lines += [f"warning: {w}" for w in doc["warnings"]] + [""]
    for section in SECTIONS:
        n, more = shown(doc[section], top if section in PAGED else 0)
        rows = doc[section][:n]
        if not rows:
            continue
        lines.append(f"{section:<60}" + "".join(f" {h:>10}" for h in _heads(section)))
        for r in rows:
            # A long path is never cut (grep must find it): its figures move right instead.
            lines.append(f"  {r['name']:<58}" + "".join(f" {c:>10}" for c in _cells(r)))
        if more:
            lines.append(f"  {more}")
        if section == "components":
            lines += prose(PARTS_NOTE, "  ")
        lines.append("")
    return "\n".join(lines)


def diff_markdown(doc: dict[str, Any], top: int = 25) -> str:
    out = [f"### footprint diff: `{doc['old']}` → `{doc['new']}`", "", f"`{summary_line(doc)}`", ""]
    out += [f"> ⚠️ {w}" for w in doc["warnings"]] + ([""] if doc["warnings"] else [])
    for section in SECTIONS:
        n, more = shown(doc[section], top if section in PAGED else 0)
        rows = doc[section][:n]
        if not rows:
            continue
        heads = _heads(section)
        out += [
            f"**{section}**",
            "",
            "| name | " + " | ".join(heads) + " |",
            "| --- |" + " ---: |" * len(heads),
        ]
        out += [f"| `{r['name']}` | " + " | ".join(_cells(r)) + " |" for r in rows]
        if more:
            out.append(f"\n{more}")
        if section == "components":
            out.append(f"\n<sub>{PARTS_NOTE}</sub>")
        out.append("")
    return "\n".join(out) + "\n"
