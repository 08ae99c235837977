"""`footprint report --markdown`: the report's tables as Markdown, for a merge request or a
CI summary (the size map and the charts are the HTML page's)."""

from __future__ import annotations

from footprint.report.diff import diff_markdown, side, signed
from footprint.report.releases import Report
from footprint.units import human

TOP = 20  # components listed for the latest release


def _change(n: int | None, count: bool = False) -> str:
    if n is None:
        return ""
    return f"{n:+d}" if count else signed(n)


def render_markdown(r: Report) -> str:
    out = [
        "# footprint report",
        "",
        f"{r.releases_phrase}: {' → '.join(r.labels)}",
        "",
    ]
    out += [f"> ⚠️ {w}" for w in r.warnings] + ([""] if r.warnings else [])
    out += [
        "| release | compressed | change | rootfs | change | static estimate | change | files "
        "| change |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rel in r.releases:
        t, c = rel.totals, rel.change or {}
        out.append(
            f"| {rel.label} "
            + "".join(
                f"| {human(t[k])} | {_change(c.get(k))} "
                for k in ("compressed_bytes", "page_rounded_bytes", "static_estimate_bytes")
            )
            + f"| {t['files']} | {_change(c.get('files'), True)} |"
        )
    out += [
        "",
        f"## Latest: {r.labels[-1]}",
        "",
        "| component | proportional | marginal |",
        "| --- | ---: | ---: |",
    ]
    out += [
        f"| {c.name} | {human(c.proportional_bytes)} | {human(c.marginal_bytes)} |"
        for c in r.latest[:TOP]
    ]
    if len(r.latest) > TOP:
        out.append(f"| … {len(r.latest) - TOP} more | | |")
    out += [
        "",
        "## Reservation",
        "",
        "| term | " + " | ".join(r.labels) + " |",
        "| --- |" + " ---: |" * len(r.labels),
    ]
    for name in r.term_names:
        cells = [row.term(name) for row in r.reservation]
        out.append(
            f"| {name} | "
            + " | ".join((t.absent or human(t.bytes)) if t else "" for t in cells)
            + " |"
        )
    out.append(
        "| **static estimate** | "
        + " | ".join(f"**{human(row.static_estimate)}**" for row in r.reservation)
        + " |"
    )
    for name in r.minimum_names:
        found = [row.minimum(name) for row in r.reservation]
        out.append(f"| {name} | " + " | ".join(human(m.bytes) if m else "" for m in found) + " |")
    line = r.default_line
    out += [
        "",
        f"crashkernel={line.crashkernel} reserves {human(line.reserved)} for a first kernel "
        f"with {human(line.ram)} of RAM.",
    ]
    if r.growers:
        out += [
            "",
            f"## Top growers since {r.labels[0]}",
            "",
            f"| component | {r.labels[0]} | {r.labels[-1]} | change |",
            "| --- | ---: | ---: | ---: |",
        ]
        out += [
            f"| {c['name']} | {side(c, 'old')} | {side(c, 'new')} | {signed(c['delta'])} |"
            for c in r.growers
        ]
    if r.diffs:
        out += ["", "## Between releases (as `footprint diff --markdown`)"]
    for d in r.diffs:
        out += ["", diff_markdown(d).rstrip("\n")]
    return "\n".join(out) + "\n"
