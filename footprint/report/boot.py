"""`footprint boot` and `footprint calibrate` as JSON documents and as text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from footprint import __version__
from footprint.measure.backend import RunResult
from footprint.measure.calibrate import Calibration
from footprint.report.measure import CONSOLE_TAIL, measurement_dict, trial_dict, trial_lines
from footprint.report.text import columns, shown
from footprint.schemas import header, plain
from footprint.subject import Subject
from footprint.units import MIB, human

if TYPE_CHECKING:
    from footprint.measure.workflow import AblationRun, BootRun, CalibrateRun, Owners


def boot_dict(
    r: RunResult,
    components: Mapping[str, str] | None = None,
    packages: Mapping[str, str] | None = None,
    subject: Subject | None = None,
) -> dict[str, Any]:
    """One QEMU run (direct boot or kdump); `components` maps process names to the image's
    components, `packages` (with a root disk) to the disk's dpkg packages; `subject`
    (`footprint boot`'s own) says what it is of, for merge."""
    assert r.qemu is not None, "a boot is a QEMU run"
    q = r.qemu
    peak = max(q.samples, key=lambda s: s.used_bytes, default=None)
    processes: dict[str, dict[str, Any]] = {}
    for s in q.samples:
        for p in s.processes:
            row = processes.setdefault(
                p.name,
                {
                    "name": p.name,
                    "hwm_bytes": 0,
                    "anon_peak_bytes": 0,
                    "component": components.get(p.name) if components is not None else None,
                    "package": packages.get(p.name) if packages is not None else None,
                },
            )
            row["hwm_bytes"] = max(row["hwm_bytes"], p.hwm_bytes)
            row["anon_peak_bytes"] = max(row["anon_peak_bytes"], p.anon_bytes)
    breakdown = None
    if peak is not None:
        m = peak.meminfo
        breakdown = {
            "memtotal_bytes": m.get("MemTotal", 0),
            "used_bytes": peak.used_bytes,
            "rootfs_shmem_bytes": m.get("Shmem", 0),
            "userspace_anon_bytes": m.get("AnonPages", 0),
            "kernel_slab_bytes": m.get("Slab", 0),
            "kernel_stack_bytes": m.get("KernelStack", 0),
            "page_tables_bytes": m.get("PageTables", 0),
            "percpu_bytes": m.get("Percpu", 0),
            "modules_bytes": peak.modules_bytes,
            "cached_bytes": m.get("Cached", 0),
            # the largest of the run (the boot reads the image after the memory peak, which
            # the unpack sets): Cached holds tmpfs (Shmem) and ramfs (Unevictable) pages too;
            # the rest is the page cache of real filesystems, a squashfs/erofs root's files
            "file_cache_bytes": max(
                max(
                    0,
                    s.meminfo.get("Cached", 0)
                    - s.meminfo.get("Shmem", 0)
                    - s.meminfo.get("Unevictable", 0),
                )
                for s in q.samples
            ),
        }
    return {
        **header("boot"),
        "tool": f"footprint {__version__}",
        "backend": r.backend,
        "image": r.image,
        "kernel": q.kernel,
        "memory_mib": r.memory_bytes // MIB,
        "accel": q.accel,
        "outcome": r.outcome.value,
        "success": r.succeeded,
        "detail": r.detail,
        "duration_s": round(r.duration_s, 2),
        "peak_bytes": r.peak_bytes,
        "breakdown": breakdown,
        "processes": sorted(processes.values(), key=lambda p: -p["hwm_bytes"]),
        "killed": [{"pid": k.pid, "name": k.name} for k in r.killed],
        "dump": dump_dict(r),
        "timeline": [{"t": s.t, **s.meminfo, "modules": s.modules_bytes} for s in q.samples],
        "console_tail": r.console.splitlines()[-CONSOLE_TAIL:],
        **({"subject": plain(subject)} if subject is not None else {}),
    }


def dump_dict(r: RunResult) -> dict[str, Any] | None:
    """The dump a kdump run with a root disk saved (None: no dump, or no root disk)."""
    if r.dump is None:
        return None
    d = r.dump
    return {"path": d.path, "bytes": d.bytes, "format": d.format.value, "dmesg_path": d.dmesg_path}


PROCESSES = 12  # the largest processes boot's text lists; --json has every one


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
        if "file_cache_bytes" in b:
            lines.append(
                f"cache     Shmem {human(b['rootfs_shmem_bytes'])} (tmpfs), Cached "
                f"{human(b['cached_bytes'])} at the peak; page cache of files on real file "
                "systems (a squashfs/erofs root as it is read) up to "
                f"{human(b['file_cache_bytes'])}"
            )
    for k in doc["killed"]:
        lines.append(f"OOM       killed {k['name']} ({k['pid']})")
    if doc["processes"]:
        lines += [""] + process_lines(doc["processes"])
    return "\n".join(lines) + "\n"


def process_lines(processes: list[dict[str, Any]]) -> list[str]:
    """The largest processes of a boot, with what ships them (the image's component; with a
    root disk, the disk's package)."""
    n, more = shown(processes, PROCESSES)
    heads = ["process", "VmHWM", "anon peak", "component"]
    with_disk = any(p["package"] for p in processes)
    if with_disk:
        heads.append("package (root disk)")
    rows = [
        [p["name"], human(p["hwm_bytes"]), human(p["anon_peak_bytes"]), p["component"] or ""]
        + ([p["package"] or ""] if with_disk else [])
        for p in processes[:n]
    ]
    lines = columns(heads, "<>><<"[: len(heads)], rows)
    if more:  # boot has no --top: the rest is in --json
        lines.append(f"… {len(processes) - n} more (--json lists all)")
    return lines


def calibration_dict(c: Calibration, owners: Owners | None = None) -> dict[str, Any]:
    b, plan = c.bisection, c.plan
    return {
        **header("calibration"),
        "tool": f"footprint {__version__}",
        "backend": c.backend,
        "minimum_mib": b.minimum_bytes // MIB if b.minimum_bytes else None,
        "resolution_mib": b.resolution_bytes / MIB,
        "trials": [trial_dict(t) for t in b.trials],
        "repeats": [trial_dict(t) for t in c.repeats],
        "reliable_minimum_mib": (
            c.reliable_minimum_bytes // MIB if c.reliable_minimum_bytes is not None else None
        ),
        "flaky_mib": [f // MIB for f in c.flaky_bytes],
        "model_mib": round(plan.model / MIB, 1),
        "kdumpctl_formula_mib": round(plan.kdumpctl_formula / MIB, 1),
        **prediction_fields(c),
        "model_gap_mib": (
            round((plan.model - b.minimum_bytes) / MIB, 1) if b.minimum_bytes else None
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
        "at_minimum": run_dict(b.at_minimum, owners) if b.at_minimum is not None else None,
        "kernel_cma_mib": c.kernel_cma_mib,
    }


def prediction_fields(c: Calibration) -> dict[str, Any]:
    """The kernel profile's prediction beside the measured minimum (only with one)."""
    p, m = c.predicted_bytes, c.bisection.minimum_bytes
    if p is None:
        return {}
    error = p - m if m else None
    return {
        "predicted_mib": round(p / MIB, 1),
        "prediction_error_mib": round(error / MIB, 1) if error is not None else None,
        "prediction_error_percent": round(100 * error / m, 1) if error is not None and m else None,
        "prediction_within_window": c.predicted_within,
    }


def _reliable_line(doc: dict[str, Any]) -> list[str]:
    """With repeats: the size at which every trial succeeded, and the flaky ones below it."""
    if not doc["repeats"]:
        return []
    r = doc["reliable_minimum_mib"]
    line = (
        f"reliable minimum   {r} MiB (every trial there succeeded)"
        if r
        else ("reliable minimum   none: some trial failed at every size repeated")
    )
    if doc["flaky_mib"]:
        line += f"; flaky: {', '.join(map(str, doc['flaky_mib']))} MiB succeeded only sometimes"
    return [line]


def _prediction_line(doc: dict[str, Any]) -> list[str]:
    if doc.get("predicted_mib") is None:
        return []
    line = f"prediction         {doc['predicted_mib']} MiB (kernel profile)"
    if doc["prediction_error_mib"] is not None:
        line += (
            f": error {doc['prediction_error_mib']:+} MiB "
            f"({doc['prediction_error_percent']:+}%) against the measured minimum"
        )
    if doc["prediction_within_window"] is False:
        line += "; not within 8 MiB of it, so the bisection needed more than 3 boots"
    return [line]


def run_dict(r: RunResult, owners: Owners | None = None) -> dict[str, Any]:
    """A run of any backend as its document: a boot (QEMU), its processes' owners where
    known, or a measurement (cgroup)."""
    if r.qemu is None:
        return measurement_dict(r)
    if owners is None:
        return boot_dict(r)
    return boot_dict(r, owners.components(r), owners.packages)


def boot_run_dict(run: BootRun) -> dict[str, Any]:
    """`footprint boot`: the run, its processes' owners, and what it is of."""
    r, owners = run.result, run.owners
    return boot_dict(r, owners.components(r), owners.packages, run.subject)


def calibrate_run_dict(run: CalibrateRun, fmt: str = "kernel") -> dict[str, Any]:
    """`footprint calibrate`: direct boot, and the kdump bisection (per machine shape, with
    the ranged line as `fmt`'s configuration takes it) and ablations if run."""
    from footprint.report.shapes import shapes_fields

    doc = calibration_dict(run.direct, run.owners)
    doc["arch"] = run.arch
    if run.subject is not None:
        doc.update(run.subject.to_dict())
    direct = run.direct.bisection.minimum_bytes
    if run.dump is not None:  # kdump's own success: the dump saved; the initrd alone beside
        assert run.kdump is not None
        marker = run.kdump.bisection.minimum_bytes
        at = run.dump.bisection.at_minimum
        doc["kdump"] = {
            **calibration_dict(run.dump, run.owners),
            "success_means": "dump-saved",
            "dump": dump_dict(at) if at is not None else None,
            "marker_minimum_mib": marker // MIB if marker else None,
            "marker": calibration_dict(run.kdump, run.owners),
        }
        kexec = run.dump.bisection.minimum_bytes
        if kexec and direct:
            doc["kexec_minus_direct_mib"] = (kexec - direct) // MIB
    elif run.kdump is not None:
        doc["kdump"] = calibration_dict(run.kdump, run.owners)
        kexec = run.kdump.bisection.minimum_bytes
        if kexec and direct:
            doc["kexec_minus_direct_mib"] = (kexec - direct) // MIB
    if run.shapes:
        doc.update(shapes_fields(run.shapes, run.arch, fmt))
        if "cma" in doc["shapes"][0]:  # the first shape's split, where a check looks for it
            doc["cma"] = doc["shapes"][0]["cma"]
    if run.ablations:
        doc["ablations"] = [ablation_row(a, run.direct) for a in run.ablations]
    if run.skipped:
        doc["ablations_skipped"] = [
            {
                "component": s.component,
                "static_marginal_mib": round(s.static_marginal_bytes / MIB, 1),
                "reason": s.reason,
            }
            for s in run.skipped
        ]
    return doc


def ablation_row(a: AblationRun, base: Calibration) -> dict[str, Any]:
    plan = a.plan
    b, m = base.bisection.minimum_bytes, a.calibration.bisection.minimum_bytes
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
        "repacked_with": a.codec,
        "trials": [trial_dict(t) for t in a.calibration.bisection.trials],
    }


def _dump_lines(k: dict[str, Any]) -> list[str]:
    """The dump calibration's result, beside what the initrd alone (its marker) needs."""
    m, marker = k["minimum_mib"], k["marker_minimum_mib"]
    lines = []
    if m:
        d = k["dump"]
        lines.append(
            f"dump-saved minimum crashkernel={m}M ({d['format']} dump, {d['bytes']} bytes, "
            f"{d['path']})"
        )
    else:
        lines.append("dump-saved minimum none found in the range")
    lines += _reliable_line(k)
    if marker:
        gap = f": the dump needs {m - marker:+} MiB more" if m else ""
        lines.append(f"marker-only minimum crashkernel={marker}M (the initrd alone{gap})")
    if k["recommended_crashkernel"]:
        t = k["terms"]
        lines.append(
            f"recommended        {k['recommended_crashkernel']}: dump-saved minimum + margin "
            f"{t['margin']} MiB, rounded up to 16 MiB"
        )
    at = k.get("at_minimum") or {}
    if at.get("processes"):  # the capture's processes, on the root disk too
        lines += ["", "processes of the capture at the dump-saved minimum:"]
        lines += process_lines(at["processes"])
    return lines


def calibration_text(doc: dict[str, Any]) -> str:
    from footprint.report.shapes import shapes_text

    lines = ["trials (-m → outcome, peak, duration):"]
    lines += trial_lines(doc["trials"])
    lines += trial_lines(doc["repeats"], "(repeat)")
    if doc["minimum_mib"] is None:
        lines.append("no memory size in the range let the boot succeed")
        return "\n".join(lines) + "\n"
    lines.append("")
    lines.append(
        f"measured minimum   {doc['minimum_mib']} MiB (resolution "
        f"{doc['resolution_mib']:g} MiB, direct boot -m)"
    )
    lines += _reliable_line(doc)
    lines += _prediction_line(doc)
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
        if k.get("marker"):
            lines.append(" the initrd alone (no root disk, its marker):")
            lines += trial_lines(k["marker"]["trials"])
            lines += trial_lines(k["marker"]["repeats"], "(repeat)")
            lines.append(" a dump saved on the root disk:")
        lines += trial_lines(k["trials"])
        lines += trial_lines(k["repeats"], "(repeat)")
        if k.get("success_means") == "dump-saved":
            lines += _dump_lines(k)
        elif k["minimum_mib"]:
            lines.append(
                f"kexec minimum      crashkernel={k['minimum_mib']}M "
                f"({doc.get('kexec_minus_direct_mib', 0):+} MiB against direct boot)"
            )
            lines += _prediction_line(k)
            lines.append(f"recommended        {k['recommended_crashkernel']}")
            if k.get("kernel_cma_mib"):
                lines.append(
                    f"  warning: this kernel sets aside {k['kernel_cma_mib']} MiB of CMA at "
                    "boot (CONFIG_CMA_SIZE_MBYTES), and so does the capture wherever "
                    "crashkernel= has room for it: a larger crashkernel= can then fail where "
                    "this one boots. cma=0 on the capture's command line (kdump-tools: "
                    "KDUMP_CMDLINE_APPEND) avoids it"
                )
        else:
            lines.append("kexec minimum      none found in the range")
    lines += shapes_text(doc)
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
        heads = ("without", "static marginal", "+compressed", "measured delta", "difference")
        rows = [
            (
                r["component"],
                f"{r['static_marginal_mib']} M",
                f"{r['static_marginal_unpack_mib']} M",
                "-" if r["measured_delta_mib"] is None else f"{r['measured_delta_mib']} M",
                "-" if r["difference_mib"] is None else f"{r['difference_mib']} M",
            )
            for r in doc["ablations"]
        ]
        lines += columns(heads, "<>>>>", rows)
        lines.append(
            "(static marginal = own files + exclusive libraries, page-rounded; "
            "+compressed adds its share of the compressed image held during unpack; "
            f"measured to {doc['resolution_mib']:g} MiB)"
        )
    return "\n".join(lines) + "\n"
