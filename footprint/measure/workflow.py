"""The measuring commands' work, without the command line: one cgroup run or bisection
(`measure`), one QEMU boot (`boot`), and calibrate → kdump → ablation (`calibrate`).

Each takes a typed request and returns typed results for a renderer; `progress` is told of
every trial as it ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from footprint import lifetime
from footprint.analyze import Analysis, analyze
from footprint.components.processes import owner_by_name, owner_of
from footprint.measure import ablate
from footprint.measure.backend import Backend, RunResult
from footprint.measure.bisect import Trial
from footprint.measure.calibrate import Calibration, Plan, calibrate
from footprint.measure.kdump import ROOT_DISK_FIRST_KERNEL_MIB, KdumpBackend
from footprint.measure.qemu import PROBE_PATH, QemuBackend, QemuOptions
from footprint.measure.rootdisk import read_disk
from footprint.measure.runner import CgroupBackend, CgroupOptions
from footprint.units import MIB

if TYPE_CHECKING:
    from footprint.model.kernel_profile import KernelProfile

Progress = Callable[[Trial, int, int], None]
DUMP_SPAN = 128 * MIB  # the dump's bisection looks this far above the initrd alone, at least


@dataclass(frozen=True)
class StaticFigures:
    """A component's cost by the static model (bytes), beside what a run measured."""

    proportional_bytes: int
    marginal_bytes: int


# -- measure ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeasureRequest:
    image: str
    memory: int  # the cgroup limit of a single run
    options: CgroupOptions  # its owner is the image's own (filled in here)
    bisect: bool = False
    bounds: tuple[int, int] | None = None  # None: calibrate's policy for the cgroup backend
    resolution: int = MIB


@dataclass(frozen=True)
class MeasureRun:
    result: RunResult | None  # the run, or the run at the bisection's minimum (None: none)
    calibration: Calibration | None  # with bisect
    static: dict[str, StaticFigures]  # by component
    static_rootfs_bytes: int

    @property
    def succeeded(self) -> bool:
        if self.calibration is not None:
            return self.calibration.bisection.minimum_bytes is not None
        return self.result is not None and self.result.succeeded


def measure_image(request: MeasureRequest, progress: Progress | None = None) -> MeasureRun:
    a = analyze(request.image)
    att = a.attribution
    assert att is not None  # analyze() attributes by default
    static = {
        n: StaticFigures(round(c.proportional_bytes), c.marginal_bytes)
        for n, c in att.components.items()
    }
    backend = CgroupBackend(replace(request.options, owner=owner_of(a)))
    rootfs = a.summary.boot.rootfs_bytes
    if not request.bisect:
        return MeasureRun(backend.run(request.image, request.memory), None, static, rootfs)
    c = calibrate(
        backend,
        request.image,
        Plan.of(a.reservation),
        request.resolution,
        bounds=request.bounds,
        progress=progress,
    )
    return MeasureRun(c.bisection.at_minimum, c, static, rootfs)


# -- boot -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BootRun:
    result: RunResult
    components: dict[str, str]  # process name -> component, for the processes seen


def boot_image(image: str, memory: int, options: QemuOptions) -> BootRun:
    if options.root_disk:
        read_disk(options.root_disk, options.root)  # a bad disk fails before the boot
    r = QemuBackend(options).run(image, memory)
    return BootRun(r, process_components(analyze(image), r))


def process_components(a: Analysis, r: RunResult) -> dict[str, str]:
    """The component of every process the probe saw, by its name."""
    owner = owner_by_name(a, {PROBE_PATH: PROBE_PATH})
    names = {p.name for s in (r.qemu.samples if r.qemu else ()) for p in s.processes}
    return {n: owner(n) for n in sorted(names)}


# -- calibrate --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CalibrateRequest:
    image: str
    qemu: QemuOptions
    resolution: int = 4 * MIB
    repeat: int = 1
    without: tuple[str, ...] = ()  # ablate these together
    ablate_all: bool = False  # ablate each removable component in turn
    kdump: bool = False  # bisect crashkernel= with a real crash too
    rules_file: str | None = None
    kernel_profile: KernelProfile | None = None  # start at its prediction


@dataclass(frozen=True)
class AblationRun:
    plan: ablate.Ablation
    calibration: Calibration
    codec: str  # what the copy was compressed with


@dataclass(frozen=True)
class Skipped:
    component: str
    static_marginal_bytes: int
    reason: str


@dataclass(frozen=True)
class CalibrateRun:
    direct: Calibration
    kdump: Calibration | None  # with a root disk: the marker-only one (the initrd alone)
    ablations: tuple[AblationRun, ...]
    skipped: tuple[Skipped, ...]
    dump: Calibration | None = None  # kdump with a root disk: success is a dump saved on it


def dump_bounds(marker: int, resolution: int) -> tuple[int, int]:
    """Where a dump's minimum is looked for: from the initrd's own minimum (below it the
    initrd cannot even boot; on Debian's root disk, 1 CPU, 2 GiB, the dump was saved right
    there: 116 MiB both), up to twice it or DUMP_SPAN more."""
    return marker - resolution, max(2 * marker, marker + DUMP_SPAN)


def calibrate_image(request: CalibrateRequest, progress: Progress | None = None) -> CalibrateRun:
    """Calibrate direct boot; then, if asked, crashkernel= with a real crash (from the direct
    minimum) and each ablation (from the minimum less the model's marginal)."""
    from footprint.image.repack import main_codec, repack

    r = request
    if r.qemu.root_disk:
        read_disk(r.qemu.root_disk, r.qemu.root)  # a bad disk fails before any boot
    a = analyze(r.image, kernel=r.qemu.kernel, rules_file=r.rules_file)
    plan = Plan.of(a.reservation)
    direct_start = kdump_start = None
    if r.kernel_profile is not None:
        from footprint.model.predict import predict

        predicted, _ = predict(a.reservation, r.kernel_profile)
        direct_start = predicted.predicted_minimum_bytes
        kdump_start = predicted.predicted_crashkernel_bytes
    init = r.qemu.init
    plans = []  # refused components are refused before any boot
    if r.without:
        plans.append(ablate.plan(a, list(r.without), init))
    skipped: list[Skipped] = []
    if r.ablate_all:
        plans += [ablate.plan(a, [n], init) for n in ablate.removable(a, init, r.resolution)]
        measured = {p.component for p in plans}
        assert a.attribution is not None
        skipped = [
            Skipped(
                n, c.marginal_bytes, ablate.refusal(a, n, init) or "smaller than the resolution"
            )
            for n, c in a.attribution.components.items()
            if n not in measured
        ]

    def run(
        backend: Backend,
        image: str,
        model: int,
        start: int | None = None,
        bounds: tuple[int, int] | None = None,
        floor: int | None = None,
    ) -> Calibration:
        return calibrate(
            backend,
            image,
            replace(plan, model=model),
            r.resolution,
            r.repeat,
            bounds=bounds,
            progress=progress,
            start=start,
            floor=floor,
        )

    direct = run(QemuBackend(r.qemu), r.image, plan.model, direct_start)
    minimum = direct.bisection.minimum_bytes
    kdump = dump = None
    if r.kdump:
        # With a root disk, first what the initrd alone needs (no disk: its marker, as
        # without one), then the dump saved on the disk, from there upwards (first trial:
        # that size itself).
        first = ROOT_DISK_FIRST_KERNEL_MIB if r.qemu.root_disk else None
        marker = KdumpBackend(replace(r.qemu, root_disk=None, root=None), first)
        kdump = run(marker, r.image, minimum or plan.model, kdump_start)
        if r.qemu.root_disk:
            marker_minimum = kdump.bisection.minimum_bytes
            dump = run(
                KdumpBackend(r.qemu),
                r.image,
                plan.model,
                bounds=dump_bounds(marker_minimum or plan.model, r.resolution),
                floor=marker_minimum,
            )
    ablations = []
    if plans and minimum is not None:
        codec = main_codec(a.inventory)  # the copies are written with the image's own codec
        with lifetime.temp_dir("ablate") as tmp:
            for i, p in enumerate(plans):
                copy = repack(r.image, f"{tmp}/ablated-{i}.img", set(p.paths), codec)
                model = minimum - p.static_marginal_unpack_bytes
                ablations.append(
                    AblationRun(p, run(QemuBackend(r.qemu), copy.path, model), copy.codec)
                )
    return CalibrateRun(direct, kdump, tuple(ablations), tuple(skipped), dump)
