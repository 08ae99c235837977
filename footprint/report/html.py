"""`footprint report`: one self-contained HTML page (charts inline, no network) or Markdown
over several releases' profiles — the trend, the latest breakdown, the top growers, the diff
between consecutive releases, and any measured timeline.

Charts are drawn with matplotlib (the optional extra `footprint[report]`) and embedded as
inline SVG; the page is a jinja2 template.
"""

from __future__ import annotations

import io
from typing import Any

from footprint.errors import EnvironmentUnavailable
from footprint.gate.diff import diff, totals_of
from footprint.report.diff import diff_dict
from footprint.units import MIB, human

TOP = 8  # components drawn in the trend; the rest are summed as "other components"


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("svg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EnvironmentUnavailable(
            "the HTML report draws its charts with matplotlib: pip "
            "install 'footprint[report]' (or use --markdown)"
        ) from None
    return plt


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    # No RDF metadata block: the page stays small and names nothing outside it.
    fig.savefig(
        buf,
        format="svg",
        bbox_inches="tight",
        metadata={"Creator": None, "Date": None, "Format": None, "Type": None},
    )
    _pyplot().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def label_of(doc: dict[str, Any]) -> str:
    return str(doc.get("label") or doc["image"]["path"].rsplit("/", 1)[-1])


def report_data(
    profiles: list[dict[str, Any]], timelines: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    labels = [label_of(p) for p in profiles]
    totals = [totals_of(p) for p in profiles]
    latest = profiles[-1]
    names = [
        c["name"]
        for c in sorted(latest.get("components", []), key=lambda c: -c["proportional_bytes"])
    ]
    series = {
        n: [
            next((c["proportional_bytes"] for c in p.get("components", []) if c["name"] == n), 0)
            for p in profiles
        ]
        for n in names
    }
    diffs = [
        diff_dict(diff(a, b, min_change=4096)) for a, b in zip(profiles, profiles[1:], strict=False)
    ]
    growers: list[dict[str, Any]] = []
    if diffs:
        first = diff_dict(diff(profiles[0], latest))
        growers = [c for c in first["components"] if c["delta"] > 0][:10]
    return {
        "labels": labels,
        "totals": totals,
        "components": names,
        "series": series,
        "latest": latest,
        "diffs": diffs,
        "growers": growers,
        "timelines": timelines or [],
    }


def charts(data: dict[str, Any]) -> dict[str, str]:
    plt = _pyplot()
    out: dict[str, str] = {}
    labels = data["labels"]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for key, name in (
        ("page_rounded_bytes", "rootfs (page-rounded)"),
        ("compressed_bytes", "compressed image"),
        ("static_estimate_bytes", "static estimate"),
    ):
        ax.plot(labels, [t[key] / MIB for t in data["totals"]], marker="o", label=name)
    ax.set_ylabel("MiB")
    ax.set_title("footprint per release")
    ax.legend()
    ax.grid(alpha=0.3)
    out["trend"] = _svg(fig)

    names = data["components"][:TOP]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    bottom = [0.0] * len(labels)
    for name in names:
        values = [v / MIB for v in data["series"][name]]
        ax.bar(labels, values, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    rest = [
        sum(data["series"][n][i] for n in data["components"][TOP:]) / MIB
        for i in range(len(labels))
    ]
    ax.bar(labels, rest, bottom=bottom, label="other components", color="#bbbbbb")
    ax.set_ylabel("MiB (proportional)")
    ax.set_title("components per release")
    ax.legend(fontsize=7, ncol=2)
    out["components"] = _svg(fig)

    latest = sorted(data["latest"].get("components", []), key=lambda c: c["proportional_bytes"])[
        -15:
    ]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(latest) + 1))
    ax.barh([c["name"] for c in latest], [c["proportional_bytes"] / MIB for c in latest])
    ax.set_xlabel("MiB (proportional, shares add up to the total)")
    ax.set_title(f"breakdown of {data['labels'][-1]}")
    out["breakdown"] = _svg(fig)

    for i, tl in enumerate(data["timelines"]):
        points = tl.get("timeline") or []
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(8, 3))
        xs = [p["t"] for p in points]
        if "bytes" in points[0]:  # measure: the cgroup's charge and its parts
            ax.plot(xs, [p["bytes"] / MIB for p in points], label="cgroup charge")
            ax.plot(xs, [p.get("anon", 0) / MIB for p in points], label="anon")
            ax.plot(xs, [p.get("shmem", 0) / MIB for p in points], label="tmpfs/shmem")
        else:  # boot: the probe's /proc/meminfo
            ax.plot(
                xs,
                [(p.get("MemTotal", 0) - p.get("MemFree", 0)) / MIB for p in points],
                label="in use",
            )
            ax.plot(xs, [p.get("AnonPages", 0) / MIB for p in points], label="anon")
        ax.set_xlabel("seconds")
        ax.set_ylabel("MiB")
        ax.set_title(f"measured timeline: {tl.get('image', '')}")
        ax.legend()
        out[f"timeline{i}"] = _svg(fig)
    return out


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>footprint report: {{ labels|join(' → ') }}</title>
<style>
 body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #222 }
 table { border-collapse: collapse; margin: .5em 0 1.5em } td, th { padding: 2px 10px }
 th { text-align: left; border-bottom: 1px solid #888 } td.n { text-align: right }
 .up { color: #b00 } .down { color: #070 } figure { margin: 1em 0 }
</style></head><body>
<h1>footprint report</h1>
<p>{{ labels|length }} releases: {{ labels|join(' → ') }}</p>
<h2>Trend</h2>
<figure class="chart">{{ charts.trend|safe }}</figure>
<figure class="chart">{{ charts.components|safe }}</figure>
<table><tr><th>release</th><th>compressed</th><th>rootfs</th><th>static estimate</th>
<th>files</th></tr>
{% for t in totals %}<tr><td>{{ labels[loop.index0] }}</td>
<td class="n">{{ human(t.compressed_bytes) }}</td><td class="n">{{ human(t.page_rounded_bytes) }}</td>
<td class="n">{{ human(t.static_estimate_bytes) }}</td><td class="n">{{ t.files }}</td></tr>
{% endfor %}</table>
<h2>Latest: {{ labels[-1] }}</h2>
<figure class="chart">{{ charts.breakdown|safe }}</figure>
{% if growers %}<h2>Top growers since {{ labels[0] }}</h2>
<table><tr><th>component</th><th>old</th><th>new</th><th>delta</th></tr>
{% for c in growers %}<tr><td>{{ c.name }}</td><td class="n">{{ human(c.old) }}</td>
<td class="n">{{ human(c.new) }}</td><td class="n up">+{{ human(c.delta) }}</td></tr>
{% endfor %}</table>{% endif %}
{% for d in diffs %}<h2>{{ d.old.rsplit('/', 1)[-1] }} → {{ d.new.rsplit('/', 1)[-1] }}</h2>
<p><code>add/remove: {{ d.summary.added }}/{{ d.summary.removed }} grow/shrink:
{{ d.summary.grown }}/{{ d.summary.shrunk }} net {{ d.summary.net_bytes }} bytes</code></p>
<table><tr><th>component</th><th>old</th><th>new</th><th>delta</th></tr>
{% for c in d.components[:15] %}<tr><td>{{ c.name }}</td><td class="n">{{ human(c.old) }}</td>
<td class="n">{{ human(c.new) }}</td>
<td class="n {{ 'up' if c.delta > 0 else 'down' }}">{{ human(c.delta) if c.delta < 0 else '+' ~ human(c.delta) }}</td></tr>
{% endfor %}</table>
<table><tr><th>file</th><th>old</th><th>new</th><th>delta</th></tr>
{% for f in d.files[:15] %}<tr><td><code>{{ f.name }}</code></td><td class="n">{{ human(f.old) }}</td>
<td class="n">{{ human(f.new) }}</td><td class="n">{{ human(f.delta) }}</td></tr>
{% endfor %}</table>{% endfor %}
{% for key, svg in charts.items() if key.startswith('timeline') %}
<figure class="chart">{{ svg|safe }}</figure>{% endfor %}
<p><small>Generated by footprint. Proportional shares split each shared library equally between
its users and add up to the image's page-rounded total.</small></p>
</body></html>
"""


def render_html(data: dict[str, Any]) -> str:
    try:
        import jinja2
    except ImportError:
        raise EnvironmentUnavailable(
            "the HTML report needs jinja2: pip install 'footprint[report]' (or use --markdown)"
        ) from None
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(TEMPLATE)
    return str(template.render(**data, charts=charts(data), human=human))


def render_markdown(data: dict[str, Any]) -> str:
    out = [
        "# footprint report",
        "",
        f"Releases: {' → '.join(data['labels'])}",
        "",
        "| release | compressed | rootfs | static estimate | files |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, t in zip(data["labels"], data["totals"], strict=True):
        out.append(
            f"| {label} | {human(t['compressed_bytes'])} | "
            f"{human(t['page_rounded_bytes'])} | {human(t['static_estimate_bytes'])} | "
            f"{t['files']} |"
        )
    out += [
        "",
        f"## Latest: {data['labels'][-1]}",
        "",
        "| component | proportional | marginal |",
        "| --- | ---: | ---: |",
    ]
    for c in sorted(data["latest"].get("components", []), key=lambda c: -c["proportional_bytes"])[
        :20
    ]:
        out.append(
            f"| {c['name']} | {human(c['proportional_bytes'])} | {human(c['marginal_bytes'])} |"
        )
    if data["growers"]:
        out += [
            "",
            f"## Top growers since {data['labels'][0]}",
            "",
            "| component | old | new | delta |",
            "| --- | ---: | ---: | ---: |",
        ]
        out += [
            f"| {c['name']} | {human(c['old'])} | {human(c['new'])} | +{human(c['delta'])} |"
            for c in data["growers"]
        ]
    for d in data["diffs"]:
        s = d["summary"]
        out += [
            "",
            f"## {d['old']} → {d['new']}",
            "",
            f"`add/remove: {s['added']}/{s['removed']} grow/shrink: {s['grown']}/"
            f"{s['shrunk']} net {s['net_bytes']} bytes`",
            "",
        ]
    return "\n".join(out) + "\n"
