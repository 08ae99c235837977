"""`footprint report` as one self-contained HTML page: plotly.js (from the installed plotly
package, `footprint[report]`) and the data inline, so it opens offline and fetches nothing.

The charts are plotly figure specifications made here from the report's data; the page is
the jinja2 template templates/report.html, with a few lines of JS for the file table.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from footprint.errors import EnvironmentUnavailable
from footprint.report.diff import PARTS, PARTS_NOTE, side, signed, summary_line
from footprint.report.releases import MapNode, Report
from footprint.units import MIB, human

if TYPE_CHECKING:
    import jinja2

GROW, SHRINK, SAME = "#c0392b", "#1e8449", "#e8e8e8"  # the page's .up, .down, and no change
_MINIMA = ("#111111", "#1f5fa8", "#b9770e")  # measured minimum, kdump's, recommended
TABLE_ROWS = 25  # diff rows shown before "N more"
# Legends above the plot, across: they take height, never the data's room.
_LAYOUT = {
    "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
    "margin": {"t": 10},
}


def _mib(n: int) -> float:
    return round(n / MIB, 3)


def _scaled(growth: int) -> float:
    """Growth on a signed log scale (0 at 0, ±10 at ±1 MiB), so that a 4 KiB change and
    a 40 MiB one both show."""
    return math.copysign(math.log2(1 + abs(growth) / 1024), growth)


def _growth_text(n: MapNode) -> str:
    if n.growth is None:
        return ""
    return f"new ({signed(n.growth)})" if n.new else signed(n.growth)


def map_figure(r: Report) -> dict[str, Any]:
    """The size map: image → component → directory → file, area = page-rounded bytes."""
    nodes = r.size_map
    hover = (
        "<b>%{customdata[4]}</b><br>%{customdata[0]} in pages (%{customdata[5]} of data)"
        "<br>%{customdata[1]} of the image<br>component: %{customdata[2]}"
    )
    if r.previous is not None:
        hover += f"<br>growth since {r.previous}: %{{customdata[3]}}"
    trace: dict[str, Any] = {
        "type": "treemap",
        "ids": [n.id for n in nodes],
        "parents": [n.parent for n in nodes],
        "labels": [n.label for n in nodes],
        "values": [n.page_bytes for n in nodes],
        "branchvalues": "total",
        "customdata": [
            [
                human(n.page_bytes),
                f"{n.share:.1%}",
                n.component or "(all)",
                _growth_text(n),
                n.name,
                human(n.bytes),
            ]
            for n in nodes
        ],
        "texttemplate": "%{label}<br>%{customdata[0]}",
        "hovertemplate": hover + "<extra></extra>",
        "pathbar": {"visible": True},
        "tiling": {"pad": 2},
    }
    if r.previous is not None:
        top = max([abs(_scaled(n.growth or 0)) for n in nodes[1:]] + [_scaled(64 * 1024)])
        ticks = [0, 4096, 64 * 1024, MIB, 16 * MIB, 256 * MIB]
        ticks = [t for t in ticks if _scaled(t) <= top]
        trace["marker"] = {
            "colors": [_scaled(n.growth or 0) for n in nodes],
            "colorscale": [[0, SHRINK], [0.5, SAME], [1, GROW]],
            "cmin": -top,
            "cmax": top,
            "cmid": 0,
            "showscale": True,
            "colorbar": {
                "title": {"text": f"growth since {r.previous}"},
                "tickvals": [_scaled(s * t) for t in ticks for s in (-1, 1) if t or s > 0],
                "ticktext": [signed(s * t) for t in ticks for s in (-1, 1) if t or s > 0],
            },
        }
    return {"data": [trace], "layout": {"margin": {"t": 24, "l": 4, "r": 4, "b": 4}}}


def reservation_figure(r: Report) -> dict[str, Any]:
    """Each release's terms stacked, its measured minima, and the distro's line across."""
    labels = list(r.labels)
    data: list[dict[str, Any]] = []
    for name in r.term_names:
        terms = [row.term(name) for row in r.reservation]
        measured = any(t.measured for t in terms if t)
        data.append(
            {
                "type": "bar",
                "name": name,
                "x": labels,
                "y": [_mib(t.bytes) if t else None for t in terms],
                "marker": {"pattern": {"shape": "/" if measured else ""}},
                "hovertemplate": "%{x}: %{y:.1f} MiB<extra>" + name + "</extra>",
            }
        )
    for i, name in enumerate(r.minimum_names):
        minima = [row.minimum(name) for row in r.reservation]
        ys = [_mib(m.bytes) if m else None for m in minima]
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": name,
                "x": labels,
                "y": ys,
                "marker": {
                    "symbol": "line-ew-open",
                    "size": 48,
                    "line": {"width": 4},
                    "color": _MINIMA[i % len(_MINIMA)],
                },
                "hovertemplate": "%{x}: %{y:.0f} MiB<extra>" + name + "</extra>",
            }
        )
    line = r.default_line
    shapes = []
    if line.reserved:  # across the whole plot, its name in the legend (not over the bars)
        mib = _mib(line.reserved)
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": mib,
                "y1": mib,
                "line": {"color": "#7d3c98", "width": 2, "dash": "dash"},
                "showlegend": True,
                "name": f"crashkernel={line.crashkernel} ({human(line.reserved)} with "
                f"{human(line.ram)})",
            }
        )
    layout = {
        "barmode": "stack",
        "yaxis": {"title": {"text": "MiB"}, "rangemode": "tozero"},
        "shapes": shapes,
        **_LAYOUT,
    }
    return {"data": data, "layout": layout}


def components_figure(r: Report) -> dict[str, Any]:
    data = [
        {
            "type": "bar",
            "name": name,
            "x": list(r.labels),
            "y": [_mib(v) for v in values],
            "hovertemplate": "%{x}: %{y:.2f} MiB<extra>" + name + "</extra>",
        }
        for name, values in r.component_series.items()
    ]
    layout = {"barmode": "stack", "yaxis": {"title": {"text": "MiB (proportional)"}}, **_LAYOUT}
    return {"data": data, "layout": layout}


def timeline_figures(r: Report) -> list[dict[str, Any]]:
    return [
        {
            "data": [
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": s.name,
                    "x": list(s.t),
                    "y": [_mib(b) for b in s.bytes],
                    "hovertemplate": "%{x:.2f} s: %{y:.1f} MiB<extra>" + s.name + "</extra>",
                }
                for s in tl.series
            ],
            "layout": {
                "xaxis": {"title": {"text": "seconds"}},
                "yaxis": {"title": {"text": "MiB"}, "rangemode": "tozero"},
                **_LAYOUT,
            },
        }
        for tl in r.timelines
    ]


def figures(r: Report) -> dict[str, dict[str, Any]]:
    """Every chart of the page by the id of the element it is drawn in."""
    out = {"size-map": map_figure(r), "reservation-chart": reservation_figure(r)}
    if len(r.labels) > 1:
        out["components-chart"] = components_figure(r)
    out.update({f"timeline-{i}": f for i, f in enumerate(timeline_figures(r))})
    return out


def plotly_js() -> str:
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise EnvironmentUnavailable(
            "the HTML report embeds plotly.js from the plotly package: pip install "
            "'footprint[report]' (or use --markdown)"
        ) from None
    text: str = get_plotlyjs()
    return text.replace("</script", "<\\/script")


def templates(**options: Any) -> jinja2.Environment:
    """The jinja2 environment of footprint's HTML templates (report/templates/); jinja2 is
    the report extra's, so a one-line error without it."""
    try:
        import jinja2
    except ImportError:
        raise EnvironmentUnavailable(
            "the HTML report needs jinja2: pip install 'footprint[report]' (or use --markdown)"
        ) from None
    return jinja2.Environment(
        loader=jinja2.PackageLoader("footprint.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        **options,
    )


def render_html(r: Report) -> str:
    env = templates(trim_blocks=True, lstrip_blocks=True)
    env.globals.update(
        summary_line=summary_line,
        human=human,
        signed=signed,
        side=side,
        TABLE_ROWS=TABLE_ROWS,
        PARTS=PARTS,
        PARTS_NOTE=PARTS_NOTE,
    )
    page = env.get_template("report.html")
    return page.render(
        r=r,
        plotly_js=plotly_js(),
        figures_json=json.dumps(figures(r), separators=(",", ":")).replace("<", "\\u003c"),
    )
