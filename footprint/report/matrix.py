"""A merged matrix (`footprint merge`) as one table, a row per cell: text, Markdown and a
self-contained HTML page (the jinja2 template templates/matrix.html)."""

from __future__ import annotations

from typing import Any

from footprint.report.text import columns

HEADS = ("arch", "kernel", "image", "mode", "shape", "result", "minimum", "recommended", "source")


def _mib(v: float | None, suffix: str = " M") -> str:
    return "-" if v is None else f"{v:g}{suffix}"


def rows(doc: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per cell, in the matrix's order; `minimum` is a profile's static estimate and
    a boot's (or a cgroup run's) peak where those have no measured minimum."""
    out: list[tuple[str, ...]] = []
    for c in doc["cells"]:
        a, r = c["axes"], c["result"]
        shape = a["shape"] or (
            f"-m {a['ram_mib']}M"
            if a["ram_mib"] is not None
            else f"limit {a['limit_mib']}M"
            if a["limit_mib"] is not None
            else "-"
        )
        if r["minimum_mib"] is not None:
            minimum = _mib(r["minimum_mib"])
        elif r["estimate_mib"] is not None:
            minimum = _mib(r["estimate_mib"]) + " (static)"
        else:
            minimum = _mib(r["peak_mib"]) + " (peak)" if r["peak_mib"] is not None else "-"
        out.append(
            (
                a["arch"] or "?",
                a["kernel"] or "-",
                a["image"],
                a["mode"],
                shape,
                "ok" if r["success"] else "FAILED",
                minimum,
                _mib(r["recommended_mib"]),
                c["source"],
            )
        )
    return out


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _summary(doc: dict[str, Any]) -> str:
    cells = doc["cells"]
    bad = sum(not c["result"]["success"] for c in cells)
    axes = doc["axes"]
    arches = axes.get("arch", [])
    return (
        f"{_count(len(cells), 'cell')}: {_count(len(arches), 'architecture')} "
        f"({', '.join(a or '?' for a in arches)}), "
        f"{_count(len(axes.get('kernel', [])), 'kernel')}, "
        f"{_count(len(axes.get('image', [])), 'image')}; {bad} failed"
    )


def matrix_text(doc: dict[str, Any]) -> str:
    return "\n".join([_summary(doc), "", *columns(HEADS, "<<<<<<>><", rows(doc))]) + "\n"


def matrix_markdown(doc: dict[str, Any]) -> str:
    out = [
        "## footprint matrix",
        "",
        _summary(doc),
        "",
        "| " + " | ".join(HEADS) + " |",
        "| "
        + " | ".join("---:" if h in ("minimum", "recommended") else "---" for h in HEADS)
        + " |",
    ]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows(doc)]
    return "\n".join(out) + "\n"


def matrix_html(doc: dict[str, Any]) -> str:
    from footprint.report.html import templates

    env = templates()
    page = env.get_template("matrix.html")
    return page.render(summary=_summary(doc), heads=HEADS, rows=rows(doc), tool=doc["tool"])


def render(doc: dict[str, Any], fmt: str = "html") -> str:
    """The matrix as a page (html), a Markdown table (markdown) or columns (text)."""
    return {"text": matrix_text, "markdown": matrix_markdown, "html": matrix_html}[fmt](doc)
