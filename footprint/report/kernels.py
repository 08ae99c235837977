"""Kernels side by side (`calibrate IMAGE… --kernel K1 --kernel K2 …`): each kernel's own
calibration document, and a table of the minimum per kernel with the kernel's own terms —
how much of the growth from one kernel to the next is the kernel's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from footprint.report.boot import calibrate_run_dict, calibration_text
from footprint.report.text import columns
from footprint.schemas import header

if TYPE_CHECKING:
    from footprint.measure.workflow import CalibrateRun


def kernel_row(doc: dict[str, Any]) -> dict[str, Any]:
    """One kernel's line of the table, from its calibration document."""
    terms = doc["terms"] or {}
    kdump = doc.get("kdump") or {}
    return {
        "kernel": doc["kernel"]["path"],
        "release": doc["kernel"]["release"],
        "image": doc["image"]["path"],
        "kernel_memory_mib": doc["kernel"]["memory_mib"],
        "kernel_runtime_mib": terms.get("kernel_runtime"),
        "rootfs_mib": terms.get("rootfs"),
        "userspace_peak_mib": terms.get("userspace_peak"),
        "minimum_mib": doc["minimum_mib"],
        "kdump_minimum_mib": kdump.get("minimum_mib"),
        "recommended_crashkernel": kdump.get("recommended_crashkernel")
        or doc["recommended_crashkernel"],
        "crashkernel_ranges": doc.get("crashkernel_ranges"),
    }


def kernels_dict(runs: Sequence[CalibrateRun], fmt: str = "kernel") -> dict[str, Any]:
    docs = [calibrate_run_dict(r, fmt) for r in runs]
    return {
        **header("kernels"),
        "kernels": [kernel_row(d) for d in docs],
        "calibrations": docs,
    }


def _mib(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


def kernels_text(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    for row, c in zip(doc["kernels"], doc["calibrations"], strict=True):
        lines.append(f"== {row['release'] or row['kernel']} ({row['kernel']}, {row['image']})")
        lines.append(calibration_text(c).rstrip("\n"))
        lines.append("")
    first = doc["kernels"][0]["minimum_mib"]
    rows = [
        (
            r["release"] or r["kernel"],
            _mib(r["kernel_memory_mib"]),
            _mib(r["kernel_runtime_mib"]),
            _mib(r["rootfs_mib"]),
            _mib(r["minimum_mib"]),
            "-" if r["minimum_mib"] is None or first is None else f"{r['minimum_mib'] - first:+}",
            _mib(r["kdump_minimum_mib"]),
            r["recommended_crashkernel"] or "-",
        )
        for r in doc["kernels"]
    ]
    lines.append("kernels side by side (MiB; kernel memory and runtime at the minimum):")
    lines += columns(
        ("kernel", "memory", "runtime", "rootfs", "minimum", "Δ", "kexec", "recommended"),
        "<>>>>>><",
        rows,
    )
    return "\n".join(lines) + "\n"
