"""`footprint boot` and `footprint calibrate` as JSON documents and as text."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from footprint import __version__
from footprint.measure.calibrate import Calibration
from footprint.measure.qemu import BootResult
from footprint.report.measure import CONSOLE_TAIL
from footprint.schemas import SCHEMA_VERSION
from footprint.units import MIB, human


def boot_dict(r: BootResult, owner: Any = None) -> dict[str, Any]:
    peak = max(
        r.samples,
        key=lambda s: s.meminfo.get("MemTotal", 0) - s.meminfo.get("MemFree", 0),
        default=None,
    )
    processes: dict[str, dict[str, Any]] = {}
    for s in r.samples:
        for _pid, name, hwm, anon in s.processes:
            p = processes.setdefault(
                name,
                {
                    "name": name,
                    "hwm_bytes": 0,
                    "anon_peak_bytes": 0,
                    "component": owner(name) if owner else None,
                },
            )
            p["hwm_bytes"] = max(p["hwm_bytes"], hwm)
            p["anon_peak_bytes"] = max(p["anon_peak_bytes"], anon)
    breakdown = None
    if peak is not None:
        m = peak.meminfo
        breakdown = {
            "memtotal_bytes": m.get("MemTotal", 0),
            "used_bytes": m.get("MemTotal", 0) - m.get("MemFree", 0),
            "rootfs_shmem_bytes": m.get("Shmem", 0),
            "userspace_anon_bytes": m.get("AnonPages", 0),
            "kernel_slab_bytes": m.get("Slab", 0),
            "kernel_stack_bytes": m.get("KernelStack", 0),
            "page_tables_bytes": m.get("PageTables", 0),
            "percpu_bytes": m.get("Percpu", 0),
            "modules_bytes": peak.modules_bytes,
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "boot",
        "tool": f"footprint {__version__}",
        "image": r.image,
        "kernel": r.kernel,
        "memory_mib": r.memory_bytes // MIB,
        "accel": r.accel,
        "outcome": r.outcome,
        "detail": r.detail,
        "duration_s": round(r.duration_s, 2),
        "peak_bytes": r.peak_bytes,
        "breakdown": breakdown,
        "processes": sorted(processes.values(), key=lambda p: -p["hwm_bytes"]),
        "killed": [{"pid": p, "name": n} for p, n in r.killed],
        "timeline": [{"t": s.t, **s.meminfo, "modules": s.modules_bytes} for s in r.samples],
        "console_tail": r.console.splitlines()[-CONSOLE_TAIL:],
    }


def boot_text(doc: dict[str, Any]) -> str:
    lines = [
        f"{doc['image']}: {doc['outcome']} with -m {doc['memory_mib']}M "
        f"({doc['accel']}, {doc['duration_s']:.1f} s) — {doc['detail']}"
    ]
    b = doc["breakdown"]
    if b:
        lines.append(
            f"peak      {human(b['used_bytes'])} of {human(b['memtotal_bytes'])} "
            f"MemTotal in use: userspace anon {human(b['userspace_anon_bytes'])}, "
            f"slab {human(b['kernel_slab_bytes'])}, modules "
            f"{human(b['modules_bytes'])}, page tables {human(b['page_tables_bytes'])}"
        )
    for k in doc["killed"]:
        lines.append(f"OOM       killed {k['name']} ({k['pid']})")
    if doc["processes"]:
        lines.append("")
        lines.append(f"{'process':20} {'VmHWM':>10} {'anon peak':>10}  component")
        for p in doc["processes"][:12]:
            lines.append(
                f"{p['name'][:20]:20} {human(p['hwm_bytes']):>10} "
                f"{human(p['anon_peak_bytes']):>10}  {p['component'] or ''}"
            )
    return "\n".join(lines) + "\n"


def calibration_dict(c: Calibration, at_minimum: dict[str, Any] | None) -> dict[str, Any]:
    b = c.bisection
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "calibration",
        "tool": f"footprint {__version__}",
        "minimum_mib": b.minimum_bytes // MIB if b.minimum_bytes else None,
        "resolution_mib": b.resolution_bytes / MIB,
        "trials": [
            {
                "memory_mib": t.limit_bytes // MIB,
                "outcome": t.outcome,
                "success": t.succeeded,
                "peak_mib": round(t.peak_bytes / MIB, 1),
                "duration_s": round(t.duration_s, 2),
            }
            for t in b.trials
        ],
        "repeats": [{"memory_mib": t.limit_bytes // MIB, "outcome": t.outcome} for t in c.repeats],
        "model_mib": round(c.model_bytes / MIB, 1),
        "kdumpctl_formula_mib": round(c.kdumpctl_formula_bytes / MIB, 1),
        "model_gap_mib": (
            round((c.model_bytes - b.minimum_bytes) / MIB, 1) if b.minimum_bytes else None
        ),
        "recommended_mib": c.recommended_bytes // MIB if c.recommended_bytes else None,
        "recommended_crashkernel": (
            f"crashkernel={c.recommended_bytes // MIB}M" if c.recommended_bytes else None
        ),
        "terms": {
            k: (v if isinstance(v, str) else round(v / MIB, 1)) for k, v in asdict(c.terms).items()
        }
        if c.terms
        else None,
        "at_minimum": at_minimum,
    }


def ablation_row(plan: Any, base: Calibration, ablated: Calibration, codec: str) -> dict[str, Any]:
    b, m = base.bisection.minimum_bytes, ablated.bisection.minimum_bytes
    delta = (b - m) if b is not None and m is not None else None
    return {
        "component": plan.component,
        "files_removed": len(plan.paths),
        "static_marginal_mib": round(plan.static_marginal_bytes / MIB, 1),
        "static_marginal_unpack_mib": round(plan.static_marginal_unpack_bytes / MIB, 1),
        "minimum_mib": m // MIB if m is not None else None,
        "measured_delta_mib": delta // MIB if delta is not None else None,
        "difference_mib": (
            round((delta - plan.static_marginal_unpack_bytes) / MIB, 1)
            if delta is not None
            else None
        ),
        "repacked_with": codec,
        "trials": [
            {"memory_mib": t.limit_bytes // MIB, "outcome": t.outcome}
            for t in ablated.bisection.trials
        ],
    }


def calibration_text(doc: dict[str, Any]) -> str:
    lines = ["trials (-m → outcome):"]
    for t in doc["trials"]:
        lines.append(f"  {t['memory_mib']:>6}M → {t['outcome']:<14} {t['duration_s']:>5.1f} s")
    for t in doc["repeats"]:
        lines.append(f"  {t['memory_mib']:>6}M → {t['outcome']:<14} (repeat)")
    if doc["minimum_mib"] is None:
        lines.append("no memory size in the range let the boot succeed")
        return "\n".join(lines) + "\n"
    lines.append("")
    lines.append(
        f"measured minimum   {doc['minimum_mib']} MiB (resolution "
        f"{doc['resolution_mib']:g} MiB, direct boot -m)"
    )
    lines.append(f"static model       {doc['model_mib']} MiB (gap {doc['model_gap_mib']:+} MiB)")
    lines.append(f"kdumpctl formula   {doc['kdumpctl_formula_mib']} MiB")
    t = doc["terms"]
    lines.append(
        f"recommended        {doc['recommended_crashkernel']}: measured minimum + "
        f"makedumpfile {t['makedumpfile']} MiB + margin {t['margin']} MiB, rounded "
        "up to 16 MiB"
    )
    lines.append(
        f"  at the minimum: kernel {t['kernel']} MiB, compressed initrd "
        f"{t['compressed_initrd']} MiB, rootfs {t['rootfs']} MiB, userspace peak "
        f"{t['userspace_peak']} MiB, kernel runtime {t['kernel_runtime']} MiB"
    )
    lines.append(f"  margin: {t['why_margin']}")
    k = doc.get("kdump")
    if k:
        lines.append("")
        lines.append("kdump (crashkernel=, kexec -p after a real panic):")
        for t in k["trials"]:
            lines.append(f"  {t['memory_mib']:>6}M → {t['outcome']:<14} {t['duration_s']:>5.1f} s")
        if k["minimum_mib"]:
            lines.append(
                f"kexec minimum      crashkernel={k['minimum_mib']}M "
                f"({doc.get('kexec_minus_direct_mib', 0):+} MiB against direct boot)"
            )
            lines.append(f"recommended        {k['recommended_crashkernel']}")
        else:
            lines.append("kexec minimum      none found in the range")
    if doc.get("ablations_skipped"):
        lines.append("")
        lines.append(
            "not ablated: "
            + "; ".join(
                f"{r['component']} ({r['static_marginal_mib']} MiB: {r['reason']})"
                for r in doc["ablations_skipped"]
            )
        )
    if doc.get("ablations"):
        lines.append("")
        lines.append(
            f"{'without':24} {'static marginal':>16} {'+compressed':>12} "
            f"{'measured delta':>15} {'difference':>11}"
        )
        for r in doc["ablations"]:
            measured = r["measured_delta_mib"]
            lines.append(
                f"{r['component'][:24]:24} {r['static_marginal_mib']:>14} M "
                f"{r['static_marginal_unpack_mib']:>10} M "
                f"{'-' if measured is None else measured:>13} M "
                f"{'-' if r['difference_mib'] is None else r['difference_mib']:>9} M"
            )
        lines.append(
            "(static marginal = own files + exclusive libraries, page-rounded; "
            "+compressed adds its share of the compressed image held during unpack; "
            f"measured to {doc['resolution_mib']:g} MiB)"
        )
    return "\n".join(lines) + "\n"
