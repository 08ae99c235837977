"""`footprint measure` as a JSON document (schema_version 1) and as text."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from footprint import __version__
from footprint.measure.bisect import Bisection
from footprint.measure.runner import Measurement
from footprint.schemas import SCHEMA_VERSION
from footprint.units import human

CONSOLE_TAIL = 40  # lines of the console kept in the document


def measurement_dict(
    m: Measurement, static: dict[str, dict[str, int]] | None = None, static_rootfs: int = 0
) -> dict[str, Any]:
    static = static or {}
    comps = []
    names = sorted(m.components, key=lambda n: -m.components[n].anon_peak_bytes)
    for name in names:
        c = m.components[name]
        comps.append(
            {
                "name": name,
                "anon_peak_bytes": c.anon_peak_bytes,
                "anon_at_peak_bytes": c.anon_at_peak_bytes,
                "rss_peak_bytes": c.rss_peak_bytes,
                "pss_peak_bytes": c.pss_peak_bytes,
                "hwm_bytes": c.hwm_bytes,
                "processes": sorted(c.processes),
                "static_proportional_bytes": static.get(name, {}).get("proportional_bytes"),
                "static_marginal_bytes": static.get(name, {}).get("marginal_bytes"),
            }
        )
    timeline = [
        {
            "t": round(s.t, 3),
            "bytes": s.bytes,
            "anon": s.stats.anon_bytes,
            "shmem": s.stats.shmem_bytes,
            "processes": len(s.processes),
            "components": _by_component(s),
        }
        for s in m.timeline
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "measurement",
        "tool": f"footprint {__version__}",
        "image": m.image,
        "backend": "cgroup",
        "cgroup_version": m.cgroup_version,
        "limit_bytes": m.limit_bytes,
        "outcome": m.outcome,
        "success": m.succeeded,
        "detail": m.detail,
        "exit_status": m.exit_status,
        "duration_s": round(m.duration_s, 3),
        "peak_bytes": m.peak_bytes,
        "unpack_peak_bytes": m.unpack_peak_bytes,
        "rootfs_bytes": m.rootfs_charge_bytes,
        "unpacked_bytes": m.unpacked_bytes,
        "static_rootfs_bytes": static_rootfs,
        "breakdown": asdict(m.peak_stats) if m.peak_stats else None,
        "oom": {
            "kills": m.oom_kills,
            "killed": [{"pid": pid, "name": name} for pid, name in m.killed],
        },
        "components": comps,
        "timeline": timeline,
        "console_tail": m.console.splitlines()[-CONSOLE_TAIL:],
    }


def _by_component(sample: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in sample.processes:
        out[p.component] = out.get(p.component, 0) + p.anon
    return out


def bisection_dict(b: Bisection) -> dict[str, Any]:
    return {
        "minimum_bytes": b.minimum_bytes,
        "resolution_bytes": b.resolution_bytes,
        "low_bytes": b.low_bytes,
        "high_bytes": b.high_bytes,
        "trials": [asdict(t) for t in b.trials],
        "at_minimum": None,  # kept in the schema: the run at the minimum is the document
    }


def measurement_text(doc: dict[str, Any]) -> str:
    """The run (absent when a bisection found no limit that works), then the bisection."""
    lines = _run_lines(doc) if "outcome" in doc else []
    bis = doc.get("bisect")
    if bis:
        if lines:
            lines.append("")
        lines.append("bisection (limit → outcome, peak):")
        for t in bis["trials"]:
            lines.append(
                f"  {human(t['limit_bytes']):>10} → {t['outcome']:<14} "
                f"peak {human(t['peak_bytes'])}"
            )
        minimum = bis["minimum_bytes"]
        lines.append(
            f"minimum: {human(minimum) if minimum else 'none found'} "
            f"(resolution {human(bis['resolution_bytes'])})"
        )
    return "\n".join(lines) + "\n"


def _run_lines(doc: dict[str, Any]) -> list[str]:
    lines = [
        f"{doc['image']}: {doc['outcome']} under {human(doc['limit_bytes'])} "
        f"(cgroup v{doc['cgroup_version']}, {doc['duration_s']:.1f} s) — {doc['detail']}"
    ]
    b = doc.get("breakdown") or {}
    lines.append(
        f"peak      {human(doc['peak_bytes'])} while running"
        + (
            f": anon {human(b['anon_bytes'])}, tmpfs/shmem {human(b['shmem_bytes'])}, "
            f"kernel {human(b['kernel_bytes'])}"
            if b
            else ""
        )
    )
    lines.append(
        f"rootfs    {human(doc['rootfs_bytes'])} charged after unpacking "
        f"{human(doc['unpacked_bytes'])} of files (static page-rounded: "
        f"{human(doc['static_rootfs_bytes'])}); unpack peak "
        f"{human(doc['unpack_peak_bytes'])}"
    )
    if doc["oom"]["kills"]:
        who = ", ".join(f"{k['name']} ({k['pid']})" for k in doc["oom"]["killed"]) or "?"
        lines.append(f"OOM       {doc['oom']['kills']} kill(s): {who}")
    if doc["components"]:
        lines.append("")
        lines.append(
            f"{'component':22} {'anon peak':>10} {'at peak':>10} {'PSS peak':>10} "
            f"{'static':>10}  processes"
        )
        for c in doc["components"]:
            static = c["static_proportional_bytes"]
            lines.append(
                f"{c['name'][:22]:22} {human(c['anon_peak_bytes']):>10} "
                f"{human(c['anon_at_peak_bytes']):>10} {human(c['pss_peak_bytes']):>10} "
                f"{human(static) if static is not None else '-':>10}  "
                f"{', '.join(c['processes'][:6])}"
            )
    return lines
