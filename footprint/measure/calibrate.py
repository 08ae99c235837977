"""The smallest RAM a real boot of the image needs (QEMU, direct kernel boot), and the
crashkernel= reservation footprint recommends from it, beside the static model and kdumpctl.

Bounds come from the static model, so the search needs few boots; every trial is kept;
--repeat re-runs the boundary trials and reports how often each succeeded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from footprint.measure.bisect import Bisection, Trial, bisect
from footprint.measure.qemu import BootResult
from footprint.units import MIB, round_up

MAKEDUMPFILE_BYTES = 5 * MIB  # its bitmap buffer (<= 4 MiB) + about 1 MiB per thread (one)
MARGIN = 0.10  # run-to-run spread and the devices a VM lacks
ROUND = 16 * MIB


@dataclass(frozen=True)
class Terms:
    """What the recommended reservation is made of (bytes)."""

    kernel: int  # the kernel's PT_LOAD memory, static
    compressed_initrd: int  # held until unpacking ends
    rootfs: int  # page-rounded unpacked files
    userspace_peak: int  # AnonPages + KernelStack + PageTables at the measured minimum
    kernel_runtime: int  # Slab + Percpu + module memory at the measured minimum
    makedumpfile: int
    margin: int
    why_margin: str


@dataclass
class Calibration:
    bisection: Bisection
    model_bytes: int
    kdumpctl_formula_bytes: int
    recommended_bytes: int | None
    terms: Terms | None
    repeats: list[Trial] = field(default_factory=list)


def terms_at(result: BootResult, kernel: int, compressed: int, rootfs: int, minimum: int) -> Terms:
    user = runtime = 0
    for s in result.samples:
        m = s.meminfo
        user = max(user, m.get("AnonPages", 0) + m.get("KernelStack", 0) + m.get("PageTables", 0))
        runtime = max(runtime, m.get("Slab", 0) + m.get("Percpu", 0) + s.modules_bytes)
    margin = round_up(int(minimum * MARGIN), 4 * MIB)
    return Terms(
        kernel,
        compressed,
        rootfs,
        user,
        runtime,
        MAKEDUMPFILE_BYTES,
        margin,
        f"{MARGIN:.0%} of the measured minimum, for run-to-run spread and for the "
        "devices and drivers the VM does not have",
    )


def calibrate(
    run: Callable[[int], BootResult],
    model: int,
    kdumpctl: int,
    kernel: int,
    compressed: int,
    rootfs: int,
    resolution: int = 4 * MIB,
    repeat: int = 1,
    progress: Callable[[Trial, int, int], None] | None = None,
) -> Calibration:
    low = max(resolution, round_up(int(model * 0.7), resolution))
    high = round_up(int(model * 1.3), resolution)
    b = bisect(run, low, high, resolution, progress=progress)
    recommended, terms = None, None
    if b.minimum_bytes is not None and isinstance(b.at_minimum, BootResult):
        terms = terms_at(b.at_minimum, kernel, compressed, rootfs, b.minimum_bytes)
        recommended = round_up(b.minimum_bytes + terms.makedumpfile + terms.margin, ROUND)
    repeats: list[Trial] = []
    if b.minimum_bytes is not None and repeat > 1:
        for limit in (b.minimum_bytes, b.minimum_bytes - resolution):
            for _ in range(repeat - 1):
                r = run(limit)
                t = Trial(limit, r.outcome, r.succeeded, r.peak_bytes, r.duration_s)
                repeats.append(t)
                if progress is not None:
                    progress(t, low, high)
    return Calibration(b, model, kdumpctl, recommended, terms, repeats)
