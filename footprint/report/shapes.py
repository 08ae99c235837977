"""kdump's machine shapes in `footprint calibrate`: each shape's minimum and what grew, the
measured ranged crashkernel= line with its basis, and the distributions' lines beside it."""

from __future__ import annotations

from typing import Any

from footprint.measure.calibrate import Calibration
from footprint.measure.cma import TRADE_OFFS, CmaSplit
from footprint.measure.shapes import Ranges, ShapeRun, ranges
from footprint.model.crashkernel import as_config, distro_lines, size_text
from footprint.report.measure import trial_dict
from footprint.report.text import columns
from footprint.units import MIB


def _mib(n: int | None) -> int | None:
    return n // MIB if n is not None else None


def _hwm(c: Calibration, name: str) -> float | None:
    """The largest VmHWM the probe saw of process `name` in the run at the minimum (MiB)."""
    r = c.bisection.at_minimum
    if r is None or r.qemu is None:
        return None
    seen = [p.hwm_bytes for s in r.qemu.samples for p in s.processes if p.name == name]
    return round(max(seen) / MIB, 1) if seen else None


def shape_dict(s: ShapeRun) -> dict[str, Any]:
    c = s.calibration
    b = c.bisection
    at = b.at_minimum
    return {
        "ram_mib": s.shape.ram_mib,
        "cpus": s.shape.cpus,
        "label": s.shape.label,
        "success_means": "dump-saved" if s.dump is not None else "marker",
        "minimum_mib": _mib(b.minimum_bytes),
        "reliable_minimum_mib": _mib(c.reliable_minimum_bytes),
        "flaky_mib": [f // MIB for f in c.flaky_bytes],
        "recommended_mib": _mib(c.recommended_bytes),
        "marker_minimum_mib": _mib(s.marker.bisection.minimum_bytes),
        "seconds_at_minimum": round(at.duration_s, 1) if at is not None else None,
        "userspace_peak_mib": round(c.terms.userspace_peak / MIB, 1) if c.terms else None,
        "kernel_runtime_mib": round(c.terms.kernel_runtime / MIB, 1) if c.terms else None,
        "makedumpfile_hwm_mib": _hwm(c, "makedumpfile"),
        "trials": [trial_dict(t) for t in b.trials],
        "repeats": [trial_dict(t) for t in c.repeats],
        "marker_trials": (
            [trial_dict(t) for t in s.marker.bisection.trials] if s.dump is not None else []
        ),
        **({"cma": cma_dict(s.cma)} if s.cma is not None else {}),
    }


def cma_dict(c: CmaSplit) -> dict[str, Any]:
    x, y = _mib(c.fixed_bytes), _mib(c.cma_bytes)
    return {
        "fixed_mib": x,
        "cma_mib": y,
        "crashkernel": f"crashkernel={x}M crashkernel={y}M,cma" if x and y else None,
        "all_fixed_mib": c.all_fixed_bytes // MIB,
        "returned_mib": _mib(c.returned_bytes),
        "fixed_minimum_mib": _mib(c.fixed.reliable_minimum_bytes),
        "cma_minimum_mib": _mib(c.cma.reliable_minimum_bytes) if x else None,
        "verified": c.verified_ok,
        "detected": c.detected,
        "fixed_trials": [trial_dict(t) for t in c.fixed.bisection.trials],
        "cma_trials": [trial_dict(t) for t in c.cma.bisection.trials] if x else [],
        "verify_trials": [
            {"fixed_mib": x, "cma_mib": cma, **trial_dict(t)}
            for t, cma in zip(c.verified, (y, 0), strict=False)
        ],
        "trade_offs": list(TRADE_OFFS),
    }


def cma_text(c: dict[str, Any]) -> list[str]:
    lines = ["", "crashkernel=,cma split (" + c["detected"] + "):"]
    if c["crashkernel"] is None:
        lines.append(
            "  no split found: "
            + ("no fixed part worked" if c["fixed_mib"] is None else "no CMA part worked")
        )
        return lines
    lines.append(
        f"  fixed part minimum {c['fixed_minimum_mib']} MiB (with a {c['all_fixed_mib']} MiB "
        f"CMA part), CMA part minimum {c['cma_minimum_mib']} MiB (with {c['fixed_mib']} MiB fixed)"
    )
    for t in c["verify_trials"]:
        lines.append(
            f"  verified: fixed {t['fixed_mib']} MiB + CMA {t['cma_mib']} MiB → {t['outcome']}"
            + (f" ({t['detail']})" if t["detail"] else "")
        )
    lines.append(
        f"recommended        {c['crashkernel']} — the first kernel gets {c['returned_mib']} MiB "
        f"back against crashkernel={c['all_fixed_mib']}M"
        + ("" if c["verified"] else " (NOT verified: see the trials above)")
    )
    lines += [f"  trade-off: {t}" for t in c["trade_offs"]]
    return lines


def ranges_dict(rg: Ranges, fmt: str) -> dict[str, Any]:
    return {
        "crashkernel_ranges": rg.line.text,
        "crashkernel_config": as_config(rg.line.text, fmt),
        "ranges": [
            {
                "start_mib": b.range.start // MIB,
                "end_mib": _mib(b.range.end),
                "size_mib": b.range.size // MIB,
                "measured_at_mib": [ram // MIB for ram in b.measured_at],
                "basis": b.note,
            }
            for b in rg.basis
        ],
        "distro_lines": [
            {
                "name": d.name,
                "line": d.line,
                "source": d.source,
                "shapes": [
                    {
                        "ram_mib": v.shape.ram_mib,
                        "cpus": v.shape.cpus,
                        "reserved_mib": v.reserved_bytes // MIB,
                        "short_mib": v.short_bytes // MIB,
                        "waste_mib": v.waste_bytes // MIB,
                        "verdict": v.words,
                    }
                    for v in verdicts
                ],
            }
            for d, verdicts in rg.distros
        ],
    }


def shapes_fields(runs: tuple[ShapeRun, ...], arch: str, fmt: str) -> dict[str, Any]:
    """The calibration document's `shapes`, and the ranged line where any shape has one."""
    doc: dict[str, Any] = {"shapes": [shape_dict(s) for s in runs]}
    rg = ranges(runs, distro_lines(arch))
    if rg is not None:
        doc.update(ranges_dict(rg, fmt))
    return doc


def shapes_text(doc: dict[str, Any]) -> list[str]:
    """The shapes table, the measured line with its basis, the distributions' lines, and
    the ,cma split of each shape that has one."""
    shapes = doc.get("shapes") or []
    lines = [line for s in shapes if s.get("cma") for line in cma_text(s["cma"])]
    if len(shapes) < 2 and not doc.get("distro_lines"):
        return lines
    lines += ["", "machine shapes (first kernel's RAM × CPUs):"]
    rows = [
        (
            s["label"],
            "-" if s["minimum_mib"] is None else f"{s['minimum_mib']} M",
            "-" if s["reliable_minimum_mib"] is None else f"{s['reliable_minimum_mib']} M",
            "-" if s["marker_minimum_mib"] is None else f"{s['marker_minimum_mib']} M",
            "-" if s["recommended_mib"] is None else f"{s['recommended_mib']} M",
            "-" if s["userspace_peak_mib"] is None else f"{s['userspace_peak_mib']} M",
            "-" if s["kernel_runtime_mib"] is None else f"{s['kernel_runtime_mib']} M",
            "-" if s["seconds_at_minimum"] is None else f"{s['seconds_at_minimum']} s",
        )
        for s in shapes
    ]
    heads = ("shape", "minimum", "reliable", "marker", "recommended", "user", "kernel", "trial")
    lines += columns(heads, "<>>>>>>>", rows)
    if len(shapes) > 1 and shapes[0]["minimum_mib"] and shapes[-1]["minimum_mib"]:
        first, last = shapes[0], shapes[-1]
        grow = last["minimum_mib"] - first["minimum_mib"]
        lines.append(
            f"  from {first['label']} to {last['label']}: minimum {grow:+} MiB" + _grew(first, last)
        )
    if not doc.get("crashkernel_ranges"):
        lines.append("no shape gave a recommendation: no crashkernel= line")
        return lines
    lines += ["", f"measured line      crashkernel={doc['crashkernel_ranges']}"]
    for r in doc["ranges"]:
        end = size_text(r["end_mib"] * MIB) if r["end_mib"] is not None else ""
        lines.append(f"  {size_text(r['start_mib'] * MIB)}-{end}: {r['size_mib']}M — {r['basis']}")
    lines.append("  (each size: the reliable minimum + makedumpfile if not run + margin)")
    lines += ["", "as configured:", *("  " + c for c in doc["crashkernel_config"].splitlines())]
    for d in doc.get("distro_lines") or ():
        verdicts = "; ".join(
            f"{_label(v)}: {v['reserved_mib']}M, {v['verdict']}" for v in d["shapes"]
        )
        lines.append(f"{d['name']:<18} crashkernel={d['line']} ({d['source']}): {verdicts}")
    return lines


def _label(v: dict[str, Any]) -> str:
    ram = v["ram_mib"]
    return f"{ram >> 10}G" if ram % 1024 == 0 else f"{ram}M"


def _grew(first: dict[str, Any], last: dict[str, Any]) -> str:
    """Which measured term grew between two shapes (at each one's minimum)."""
    parts = []
    for key, name in (
        ("userspace_peak_mib", "userspace peak"),
        ("kernel_runtime_mib", "kernel runtime"),
        ("makedumpfile_hwm_mib", "makedumpfile VmHWM"),
    ):
        a, b = first.get(key), last.get(key)
        if a is not None and b is not None:
            parts.append(f"{name} {b - a:+.1f} MiB")
    return f" ({', '.join(parts)})" if parts else ""
