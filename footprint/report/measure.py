"""`footprint measure` as a JSON document (schema_version 1) and as text."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from footprint import __version__
from footprint.measure.backend import RunResult, Sample
from footprint.measure.bisect import Bisection, Trial
from footprint.report.text import columns
from footprint.schemas import header, plain
from footprint.units import MIB, human

if TYPE_CHECKING:
    from footprint.measure.workflow import MeasureRun, StaticFigures

CONSOLE_TAIL = 40  # lines of the console kept in the document


def measurement_dict(
    m: RunResult, static: dict[str, StaticFigures] | None = None, static_rootfs: int = 0
) -> dict[str, Any]:
    """One cgroup run (a RunResult with its cgroup record)."""
    assert m.cgroup is not None, "a measurement is a cgroup run"
    cg = m.cgroup
    static = static or {}
    comps = []
    for c in sorted(cg.components, key=lambda c: -c.anon_peak_bytes):
        figures = static.get(c.name)
        comps.append(
            {
                "name": c.name,
                "anon_peak_bytes": c.anon_peak_bytes,
                "anon_at_peak_bytes": c.anon_at_peak_bytes,
                "rss_peak_bytes": c.rss_peak_bytes,
                "pss_peak_bytes": c.pss_peak_bytes,
                "hwm_bytes": c.hwm_bytes,
                "processes": list(c.processes),
                "static_proportional_bytes": figures.proportional_bytes if figures else None,
                "static_marginal_bytes": figures.marginal_bytes if figures else None,
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
        for s in cg.timeline
    ]
    return {
        **header("measurement"),
        "tool": f"footprint {__version__}",
        "image": m.image,
        "backend": m.backend,
        "cgroup_version": cg.cgroup_version,
        "limit_bytes": m.memory_bytes,
        "outcome": m.outcome.value,
        "success": m.succeeded,
        "detail": m.detail,
        "exit_status": cg.exit_status,
        "duration_s": round(m.duration_s, 3),
        "peak_bytes": m.peak_bytes,
        "unpack_peak_bytes": cg.unpack_peak_bytes,
        "rootfs_bytes": cg.rootfs_charge_bytes,
        "unpacked_bytes": cg.unpacked_bytes,
        "static_rootfs_bytes": static_rootfs,
        "breakdown": asdict(cg.peak_stats) if cg.peak_stats else None,
        "oom": {
            "kills": cg.oom_kills,
            "killed": [{"pid": k.pid, "name": k.name} for k in m.killed],
        },
        "components": comps,
        "timeline": timeline,
        "console_tail": m.console.splitlines()[-CONSOLE_TAIL:],
    }


def measure_run_dict(run: MeasureRun) -> dict[str, Any]:
    """`footprint measure`: the run; with a bisection, the run at the minimum (none when no
    limit worked) and the bisection."""
    if run.result is not None:
        doc = measurement_dict(run.result, run.static, run.static_rootfs_bytes)
    else:
        doc = {**header("measurement"), "tool": f"footprint {__version__}"}
    if run.calibration is not None:
        b = run.calibration.bisection
        doc["bisect"] = bisection_dict(b)
        doc["minimum_bytes"] = b.minimum_bytes
        doc["trials"] = doc["bisect"]["trials"]
    if run.subject is not None:  # what it is of, for merge
        doc["subject"] = plain(run.subject)
    return doc


def _by_component(sample: Sample) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in sample.processes:
        out[p.component] = out.get(p.component, 0) + p.anon
    return out


def trial_dict(t: Trial) -> dict[str, Any]:
    """One trial of a bisection, the same in every document."""
    return {
        "memory_bytes": t.limit_bytes,
        "memory_mib": t.limit_bytes // MIB,
        "outcome": str(t.outcome),
        "success": t.succeeded,
        "peak_bytes": t.peak_bytes,
        "duration_s": round(t.duration_s, 2),
        "detail": t.detail,
    }


def trial_lines(trials: list[dict[str, Any]], note: str = "") -> list[str]:
    """Trials as text, the same for every backend and document."""
    return [
        f"  {human(t['memory_bytes']):>10} → {t['outcome']:<14} peak "
        f"{human(t['peak_bytes']):>10} {t['duration_s']:>6.1f} s {note}".rstrip()
        for t in trials
    ]


def kernel_trial_line(name: str, t: Trial) -> str:
    """One boot of `calibrate-kernel`, as it happens."""
    return f"  {name:24} {t.limit_bytes >> 20:>6} MiB → {t.outcome} ({t.duration_s:.1f} s)"


def bisection_dict(b: Bisection) -> dict[str, Any]:
    return {
        "minimum_bytes": b.minimum_bytes,
        "resolution_bytes": b.resolution_bytes,
        "low_bytes": b.low_bytes,
        "high_bytes": b.high_bytes,
        "trials": [trial_dict(t) for t in b.trials],
    }


def measurement_text(doc: dict[str, Any]) -> str:
    """The run (absent when a bisection found no limit that works), then the bisection."""
    lines = _run_lines(doc) if "outcome" in doc else []
    bis = doc.get("bisect")
    if bis:
        if lines:
            lines.append("")
        lines.append("bisection (limit → outcome, peak, duration):")
        lines += trial_lines(bis["trials"])
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
        heads = ("component", "anon peak", "at peak", "PSS peak", "static", "processes")
        rows = [
            (
                c["name"],
                human(c["anon_peak_bytes"]),
                human(c["anon_at_peak_bytes"]),
                human(c["pss_peak_bytes"]),
                "-"
                if c["static_proportional_bytes"] is None
                else human(c["static_proportional_bytes"]),
                ", ".join(c["processes"]),
            )
            for c in doc["components"]
        ]
        lines += columns(heads, "<>>>><", rows)
    return lines
