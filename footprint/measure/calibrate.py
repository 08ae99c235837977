"""The smallest memory an image runs in under any backend, and the crashkernel= reservation
footprint recommends from it, beside the static model and kdumpctl's formula.

The bisection's bounds come from the static model (BOUNDS, per backend), so the search
needs few runs; every trial is kept; `repeat` re-runs the boundary trials and keeps how each
ended. The reservation's terms are read from the run at the minimum where it measured the
whole machine (QEMU's probe); a cgroup limit leaves the kernel out, so it recommends none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from footprint.measure.backend import Backend, RunResult
from footprint.measure.bisect import Bisection, Trial, bisect, bisect_around, bisect_up
from footprint.measure.kernel_log import cma_reserved_mib
from footprint.model.reservation import Reservation
from footprint.units import MIB, round_up

MAKEDUMPFILE_BYTES = 5 * MIB  # its bitmap buffer (<= 4 MiB) + about 1 MiB per thread (one)
MARGIN = 0.10  # run-to-run spread and the devices a VM lacks
ROUND = 16 * MIB
MAX_STEPS_UP = 4  # resolutions above the minimum where a reliable one is looked for


@dataclass(frozen=True)
class Plan:
    """What the static model says about the image, for the bounds and the terms (bytes)."""

    model: int  # the memory the static model predicts the run needs
    kdumpctl_formula: int
    kernel: int
    compressed_initrd: int
    rootfs: int

    @classmethod
    def of(cls, res: Reservation) -> Plan:
        return cls(
            res.static_estimate_bytes,
            res.kdumpctl_formula_bytes,
            res.kernel_bytes,
            res.initrd_compressed_bytes,
            res.rootfs_bytes,
        )


def model_bounds(plan: Plan, resolution: int) -> tuple[int, int]:
    """A whole machine (QEMU): 0.7 to 1.3 times the static model."""
    low = max(resolution, round_up(int(plan.model * 0.7), resolution))
    return low, round_up(int(plan.model * 1.3), resolution)


def rootfs_bounds(plan: Plan, resolution: int) -> tuple[int, int]:
    """Userspace under a cgroup limit: the rootfs at least, four times it and 256 MiB at most."""
    return plan.rootfs, 4 * plan.rootfs + 256 * MIB


BOUNDS: dict[str, Callable[[Plan, int], tuple[int, int]]] = {
    "cgroup": rootfs_bounds,
    "qemu": model_bounds,
    "kdump": model_bounds,
}


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
    backend: str
    bisection: Bisection
    plan: Plan
    recommended_bytes: int | None
    terms: Terms | None
    repeats: list[Trial] = field(default_factory=list)
    predicted_bytes: int | None = None  # a kernel profile's prediction: the first trial
    predicted_within: bool | None = None  # whether the minimum was within 2 resolutions of it
    # With repeats: the smallest size at which every trial succeeded (None: none within
    # MAX_STEPS_UP above the minimum), and the sizes below it that succeeded only sometimes.
    reliable_minimum_bytes: int | None = None
    flaky_bytes: tuple[int, ...] = ()

    @property
    def kernel_cma_mib(self) -> int | None:
        """The default CMA area the kernel set aside in the run at the minimum, from its
        console (None: no run at the minimum)."""
        at = self.bisection.at_minimum
        return None if at is None else cma_reserved_mib(at.console)


def terms_at(result: RunResult, plan: Plan, minimum: int) -> Terms | None:
    """The reservation's terms from the run at the minimum; None where the run did not see
    the whole machine's memory (no probe samples)."""
    if result.qemu is None:
        return None
    user = runtime = 0
    for s in result.qemu.samples:
        m = s.meminfo
        user = max(user, m.get("AnonPages", 0) + m.get("KernelStack", 0) + m.get("PageTables", 0))
        runtime = max(runtime, m.get("Slab", 0) + m.get("Percpu", 0) + s.modules_bytes)
    margin = round_up(int(minimum * MARGIN), 4 * MIB)
    # A run that saved the dump ran makedumpfile in the minimum already.
    makedumpfile = 0 if result.dump is not None else MAKEDUMPFILE_BYTES
    return Terms(
        plan.kernel,
        plan.compressed_initrd,
        plan.rootfs,
        user,
        runtime,
        makedumpfile,
        margin,
        f"{MARGIN:.0%} of the measured minimum, for run-to-run spread and for the "
        "devices and drivers the VM does not have",
    )


def calibrate(
    backend: Backend,
    image: str,
    plan: Plan,
    resolution: int = 4 * MIB,
    repeat: int = 1,
    bounds: tuple[int, int] | None = None,
    progress: Callable[[Trial, int, int], None] | None = None,
    start: int | None = None,
    floor: int | None = None,
) -> Calibration:
    """Bisect `backend`'s memory for `image` between `bounds` (default: BOUNDS' policy for
    the backend) — or, given a prediction `start`, from it outwards (bisect_around), or,
    given a `floor` below which every run is known to fail, from it upwards (bisect_up) — then
    repeat the trials at the minimum (and upwards, until every repeat succeeds: the reliable
    minimum, which the recommendation is made from) and one step below."""
    low, high = bounds or BOUNDS[backend.name](plan, resolution)

    def run(memory: int) -> RunResult:
        return backend.run(image, memory)

    within = None
    if floor is not None:
        b = bisect_up(run, floor, high, resolution, progress=progress)
    elif start is not None:
        b, within = bisect_around(run, start, resolution, 2 * resolution, progress=progress)
    else:
        b = bisect(run, low, high, resolution, progress=progress)
    repeats: list[Trial] = []

    def again(limit: int) -> bool:
        """`repeat - 1` more trials at `limit`; whether every one succeeded."""
        ok = True
        for _ in range(repeat - 1):
            t = Trial.of(limit, run(limit))
            repeats.append(t)
            ok = ok and t.succeeded
            if progress is not None:
                progress(t, low, high)
        return ok

    reliable = b.minimum_bytes
    if b.minimum_bytes is not None and repeat > 1:
        # The reliable minimum: the first size from the minimum up at which every repeat
        # succeeded (near the boundary a dump may be saved in some trials, not in others).
        reliable = None
        for step in range(MAX_STEPS_UP + 1):
            limit = b.minimum_bytes + step * resolution
            if again(limit):
                reliable = limit
                break
        again(b.minimum_bytes - resolution)
    tried = b.trials + repeats
    flaky = tuple(
        sorted(
            {
                t.limit_bytes
                for t in tried
                if t.succeeded and (reliable is None or t.limit_bytes < reliable)
            }
        )
    )
    recommended, terms = None, None
    if reliable is not None and b.at_minimum is not None:
        terms = terms_at(b.at_minimum, plan, reliable)
        if terms is not None:
            recommended = round_up(reliable + terms.makedumpfile + terms.margin, ROUND)
    return Calibration(
        backend.name, b, plan, recommended, terms, repeats, start, within, reliable, flaky
    )
