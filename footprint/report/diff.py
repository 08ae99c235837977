"""`footprint diff` as text (bloat-o-meter style), JSON and Markdown."""

from __future__ import annotations

from typing import Any

from footprint.gate.diff import Change, Diff
from footprint.schemas import SCHEMA_VERSION
from footprint.units import human


def _row(c: Change) -> dict[str, Any]:
    return {"name": c.key, "old": c.old, "new": c.new, "delta": c.delta, "change": c.kind}


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


def _size(row: dict[str, Any], side: str) -> str:
    """One side of a row: "new" or "gone" where the thing is absent, not "0 B"."""
    absent = {("old", "added"): "new", ("new", "removed"): "gone"}.get((side, row["change"]))
    return absent or human(row[side])


def _signed(n: int) -> str:
    return ("+" if n > 0 else "-" if n < 0 else "") + human(abs(n))


def summary_line(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    return (
        f"add/remove: {s['added']}/{s['removed']} grow/shrink: {s['grown']}/{s['shrunk']} "
        f"up/down: {s['up_bytes']}/{s['down_bytes']} ({s['net_bytes']})"
    )


def diff_text(doc: dict[str, Any], top: int = 25) -> str:
    lines = [f"{doc['old']} → {doc['new']}", summary_line(doc)]
    lines += [f"warning: {w}" for w in doc["warnings"]] + [""]
    for section in ("totals", "segments", "components", "files"):
        rows = doc[section]
        if not rows:
            continue
        lines.append(f"{section:<60} {'old':>10} {'new':>10} {'delta':>10}")
        for r in rows[:top]:
            if r["name"] == "files":  # a count, not bytes
                old, new, delta = str(r["old"]), str(r["new"]), f"{r['delta']:+d}"
            else:
                old, new, delta = _size(r, "old"), _size(r, "new"), _signed(r["delta"])
            # A long path is never cut (grep must find it): its figures move right instead.
            lines.append(f"  {r['name']:<58} {old:>10} {new:>10} {delta:>10}")
        if len(rows) > top:
            lines.append(f"  … {len(rows) - top} more (--json lists all)")
        lines.append("")
    return "\n".join(lines)


def diff_markdown(doc: dict[str, Any], top: int = 25) -> str:
    out = [f"### footprint diff: `{doc['old']}` → `{doc['new']}`", "", f"`{summary_line(doc)}`", ""]
    out += [f"> ⚠️ {w}" for w in doc["warnings"]] + ([""] if doc["warnings"] else [])
    for section in ("totals", "components", "files"):
        rows = doc[section][:top]
        if not rows:
            continue
        out += [
            f"**{section}**",
            "",
            "| name | old | new | delta |",
            "| --- | ---: | ---: | ---: |",
        ]
        out += [
            f"| `{r['name']}` | {_size(r, 'old')} | {_size(r, 'new')} | {_signed(r['delta'])} |"
            for r in rows
        ]
        out.append("")
    return "\n".join(out) + "\n"
