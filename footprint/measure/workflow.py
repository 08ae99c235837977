"""The measuring commands' work, without the command line: one cgroup run or bisection
(`measure`), one QEMU boot (`boot`), and calibrate → kdump → ablation (`calibrate`).

Each takes a typed request and returns typed results for a renderer; `progress` is told of
every trial as it ends.
"""

from __future__ import annotations

import functools
import os
import platform
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, TypeVar

from footprint import lifetime
from footprint.analyze import Analysis, analyze
from footprint.components.processes import owner_by_name, owner_of
from footprint.errors import UsageError
from footprint.measure import ablate
from footprint.measure.backend import Backend, RunResult
from footprint.measure.bisect import Trial
from footprint.measure.calibrate import Calibration, Plan, calibrate
from footprint.measure.cma import calibrate_cma, cma_support
from footprint.measure.dump import disk_facts
from footprint.measure.kdump import FIRST_KERNEL_MIB, ROOT_DISK_FIRST_KERNEL_MIB, KdumpBackend
from footprint.measure.qemu import PROBE_PATH, QemuBackend, QemuOptions, kill_all
from footprint.measure.rootdisk import RootDisk, read_disk
from footprint.measure.runner import CgroupBackend, CgroupOptions
from footprint.measure.shapes import Shape, ShapeRun, default_jobs, shapes
from footprint.subject import Subject
from footprint.units import MIB

if TYPE_CHECKING:
    from footprint.model.kernel_profile import KernelProfile

T = TypeVar("T")


class Progress(Protocol):
    """Told of every trial as it ends; `label` names the shape it is of, where there are
    several."""

    def __call__(self, trial: Trial, low: int, high: int, label: str = "") -> None: ...


# A dump near its minimum is saved in some trials and not in others (seen on Debian's root
# disk: 4 times in 6 at one size, 4 MiB more never failed): its boundary is tried 3 times.
DUMP_REPEAT = 3
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
    # None: one run at `memory`; "auto": bisect from calibrate's bounds for the cgroup
    # backend; (low, high): bisect between those (--bisect, --bisect LOW:HIGH)
    bisect_range: str | tuple[int, int] | None = None
    resolution: int = MIB

    @property
    def bisect(self) -> bool:
        return self.bisect_range is not None

    @property
    def bounds(self) -> tuple[int, int] | None:
        return self.bisect_range if isinstance(self.bisect_range, tuple) else None


@dataclass(frozen=True)
class MeasureRun:
    result: RunResult | None  # the run, or the run at the bisection's minimum (None: none)
    calibration: Calibration | None  # with bisect
    static: dict[str, StaticFigures]  # by component
    static_rootfs_bytes: int
    subject: Subject | None = None

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
    # no kernel: the image's userspace runs here, on this machine's architecture
    subject = Subject.of(request.image, "", "", 0, platform.machine())
    if not request.bisect:
        run = backend.run(request.image, request.memory)
        return MeasureRun(run, None, static, rootfs, subject)
    c = calibrate(
        backend,
        request.image,
        Plan.of(a.reservation),
        request.resolution,
        bounds=request.bounds,
        progress=progress,
    )
    return MeasureRun(c.bisection.at_minimum, c, static, rootfs, subject)


# -- boot -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Owners:
    """Who ships the programs a boot's processes run, by process name: the image's
    component, and with a root disk the disk's dpkg package (after switch_root, systemd,
    kdump-tools and makedumpfile run from the disk)."""

    component: Callable[[str], str]
    packages: Mapping[str, str] | None = None  # None: no root disk

    @classmethod
    def of(cls, a: Analysis, disk: RootDisk | None) -> Owners:
        """`disk`: the root disk the boot attached (read once, before it), if any."""
        packages = disk_facts(disk).packages if disk is not None else None
        return cls(owner_by_name(a, {PROBE_PATH: PROBE_PATH}), packages)

    def components(self, r: RunResult) -> dict[str, str]:
        """The component of every process the probe saw in `r`."""
        names = {p.name for s in (r.qemu.samples if r.qemu else ()) for p in s.processes}
        return {n: self.component(n) for n in sorted(names)}


@dataclass(frozen=True)
class BootRun:
    result: RunResult
    owners: Owners
    subject: Subject | None = None


def boot_image(image: str, memory: int, options: QemuOptions) -> BootRun:
    from footprint.model.kernel import kernel_arch

    # a bad disk fails before the boot
    disk = read_disk(options.root_disk, options.root) if options.root_disk else None
    r = QemuBackend(options).run(image, memory)
    # the kernel's terms where footprint reads its image (an s390 one it cannot: none)
    a = analyze(image, kernel=options.kernel if kernel_arch(options.kernel) else None)
    return BootRun(r, Owners.of(a, disk), subject_of(a, options))


def subject_of(a: Analysis, options: QemuOptions) -> Subject:
    """What a boot of `a`'s image with `options` is of."""
    res = a.reservation
    return Subject.of(
        a.inventory.path, options.kernel, res.kernel_version, res.kernel_bytes, options.arch.name
    )


# -- calibrate --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CalibrateRequest:
    image: str
    qemu: QemuOptions
    resolution: int = 4 * MIB
    repeat: int | None = None  # boundary trials repeated (None: 1, DUMP_REPEAT for dumps)
    without: tuple[str, ...] = ()  # ablate these together
    ablate_all: bool = False  # ablate each removable component in turn
    kdump: bool = False  # bisect crashkernel= with a real crash too
    rules_file: str | None = None
    kernel_profile: KernelProfile | None = None  # start at its prediction
    shapes: tuple[Shape, ...] = ()  # kdump's machine shapes (none: the default one)
    cma: bool = False  # also split each shape's reservation into crashkernel=X,Y,cma
    jobs: int = 1  # shapes calibrated at once
    label: str = ""  # on every trial's progress line (kernels side by side: the kernel)

    @property
    def kdump_shapes(self) -> tuple[Shape, ...]:
        """The shapes kdump is calibrated for: those asked for, or the default first kernel
        (ROOT_DISK_FIRST_KERNEL_MIB with a root disk, else FIRST_KERNEL_MIB) with the boot's
        CPUs."""
        if self.shapes:
            return self.shapes
        ram = ROOT_DISK_FIRST_KERNEL_MIB if self.qemu.root_disk else FIRST_KERNEL_MIB
        return (Shape(ram, self.qemu.cpus),)


@dataclass(frozen=True)
class CalibrateSettings:
    """What `calibrate` is asked, alike for every kernel: its command line's options."""

    resolution: int = 4 * MIB
    repeat: int | None = None
    without: tuple[str, ...] = ()
    ablate_all: bool = False
    kdump: bool = False
    rams: tuple[int, ...] | None = None  # bytes: kdump's machine shapes, each with every CPU count
    cpus: tuple[int, ...] = (1,)
    cma: bool = False
    jobs: int = 0  # shapes (or kernels) calibrated at once; 0: what this machine holds


def calibrations(
    images: Sequence[str],
    qemus: Sequence[QemuOptions],
    settings: CalibrateSettings,
    rules_file: str | None = None,
    kernel_profile: KernelProfile | None = None,
) -> Calibrations:
    """What `calibrate IMAGE... --kernel K...` asks for: each kernel with its own image (in
    the same order) or all with one. UsageError for options that mean nothing together."""
    s = settings
    if (s.rams or s.cpus != (1,)) and not s.kdump:
        raise UsageError("--ram and --cpus are machine shapes for --kdump: add --kdump")
    if s.cma and not s.kdump:
        raise UsageError("--cma splits kdump's reservation: add --kdump")
    if s.cpus != (1,) and not s.rams:
        raise UsageError("--cpus needs --ram: every CPU count is calibrated with every RAM size")
    wanted = shapes(tuple(r >> 20 for r in s.rams), s.cpus) if s.rams else ()
    if any(shape.ram_mib < 256 for shape in wanted):
        raise UsageError("--ram: a first kernel needs 256M at least")
    if len(images) not in (1, len(qemus)):
        raise UsageError(
            f"{len(images)} images for {len(qemus)} kernels: give one IMAGE per --kernel, "
            "in the same order, or one for all"
        )
    paired = list(images) * len(qemus) if len(images) == 1 else images
    shapes_at_once = s.jobs or default_jobs(wanted)
    requests = tuple(
        CalibrateRequest(
            image,
            qemu,
            resolution=s.resolution,
            repeat=s.repeat,
            without=s.without,
            ablate_all=s.ablate_all,
            kdump=s.kdump,
            rules_file=rules_file,
            kernel_profile=kernel_profile,
            shapes=wanted,
            cma=s.cma,
            jobs=shapes_at_once,
            label=os.path.basename(qemu.kernel) if len(qemus) > 1 else "",
        )
        for image, qemu in zip(paired, qemus, strict=True)
    )
    return Calibrations(requests, s.jobs or default_jobs(wanted, len(requests)))


@dataclass(frozen=True)
class Calibrations:
    requests: tuple[CalibrateRequest, ...]  # one per kernel
    jobs: int  # kernels calibrated at once

    def run(self, progress: Progress | None = None) -> tuple[CalibrateRun, ...]:
        if len(self.requests) == 1:
            return (calibrate_image(self.requests[0], progress),)
        return calibrate_kernels(self.requests, self.jobs, progress)


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
    shapes: tuple[ShapeRun, ...]  # kdump's, one per machine shape (none without --kdump)
    ablations: tuple[AblationRun, ...]
    skipped: tuple[Skipped, ...]
    subject: Subject | None = None
    owners: Owners | None = None  # of the processes in the trials at the minimum

    @property
    def arch(self) -> str:
        """Whose distribution lines the shapes are judged against."""
        return self.subject.arch if self.subject is not None else "x86_64"

    @property
    def kdump(self) -> Calibration | None:
        """The first shape's marker-only calibration (with a root disk: the initrd alone)."""
        return self.shapes[0].marker if self.shapes else None

    @property
    def dump(self) -> Calibration | None:
        """The first shape's dump calibration (a root disk: success is a dump saved on it)."""
        return self.shapes[0].dump if self.shapes else None


def dump_bounds(marker: int, resolution: int) -> tuple[int, int]:
    """Where a dump's minimum is looked for: from the initrd's own minimum (below it the
    initrd cannot even boot; on Debian's root disk, 1 CPU, 2 GiB, the dump was saved right
    there: 116 MiB both), up to twice it or DUMP_SPAN more."""
    return marker - resolution, max(2 * marker, marker + DUMP_SPAN)


def calibrate_image(
    request: CalibrateRequest,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> CalibrateRun:
    """Calibrate direct boot; then, if asked, crashkernel= with a real crash (from the direct
    minimum) and each ablation (from the minimum less the model's marginal). Once `stop` is
    set (by calibrations side by side with this one), no new trial starts."""
    from footprint.image.repack import main_codec, repack

    r = request
    stop = stop or threading.Event()
    # a bad disk fails before any boot
    disk = read_disk(r.qemu.root_disk, r.qemu.root) if r.qemu.root_disk else None
    cma = cma_support(r.qemu.kernel) if r.cma else None  # refused before any boot
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

    def told(label: str) -> Progress | None:
        """`progress`, with the request's label and `label` (a shape's) on every trial."""
        label = " ".join(x for x in (r.label, label) if x)
        return None if progress is None else functools.partial(progress, label=label)

    def run(
        backend: Backend,
        image: str,
        model: int,
        start: int | None = None,
        bounds: tuple[int, int] | None = None,
        floor: int | None = None,
        repeat: int | None = None,  # unless --repeat says: DUMP_REPEAT for dumps, else 1
        label: str = "",
    ) -> Calibration:
        return calibrate(
            Stoppable(backend, stop),
            image,
            replace(plan, model=model),
            r.resolution,
            r.repeat or repeat or 1,
            bounds=bounds,
            progress=told(label),
            start=start,
            floor=floor,
        )

    direct = run(QemuBackend(r.qemu), r.image, plan.model, direct_start)
    minimum = direct.bisection.minimum_bytes

    def shape_run(shape: Shape, start: int | None) -> ShapeRun:
        """With a root disk, first what the initrd alone needs (no disk: its marker, as
        without one), then the dump saved on the disk, from there upwards (first trial: that
        size itself)."""
        label = shape.label if len(r.kdump_shapes) > 1 else ""
        o = replace(r.qemu, cpus=shape.cpus)
        marker = KdumpBackend(replace(o, root_disk=None, root=None), shape.ram_mib)
        saving = KdumpBackend(o, shape.ram_mib)  # with a root disk: the dump saved on it
        kdump = run(marker, r.image, minimum or plan.model, start, label=label)
        dump = None
        if o.root_disk:
            floor = kdump.bisection.minimum_bytes
            dump = run(
                saving,
                r.image,
                plan.model,
                bounds=dump_bounds(floor or plan.model, r.resolution),
                floor=floor,
                repeat=DUMP_REPEAT,
                label=label,
            )
        split = None
        if cma is not None:  # of what kdump needs here: the dump saved where there is a disk
            split = calibrate_cma(
                saving if dump else marker,
                r.image,
                plan,
                dump or kdump,
                cma,
                r.resolution,
                r.repeat or (DUMP_REPEAT if dump else 1),
                progress=told(label),
                guard=lambda b: Stoppable(b, stop),
            )
        return ShapeRun(shape, kdump, dump, split)

    shape_runs = (
        calibrate_shapes(r.kdump_shapes, shape_run, kdump_start, r.jobs, stop) if r.kdump else ()
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
    subject, owners = subject_of(a, r.qemu), Owners.of(a, disk)
    return CalibrateRun(direct, shape_runs, tuple(ablations), tuple(skipped), subject, owners)


@dataclass(frozen=True)
class Stoppable:
    """A backend whose next run raises KeyboardInterrupt once `stop` is set: trials side by
    side end with the one that was interrupted."""

    backend: Backend
    stop: threading.Event

    @property
    def name(self) -> str:
        return self.backend.name

    def run(self, image: str, memory: int) -> RunResult:
        if self.stop.is_set():
            raise KeyboardInterrupt
        return self.backend.run(image, memory)


def calibrate_shapes(
    shapes: tuple[Shape, ...],
    one: Callable[[Shape, int | None], ShapeRun],
    start: int | None,
    jobs: int,
    stop: threading.Event,
) -> tuple[ShapeRun, ...]:
    """Every shape's calibration: one after another, each from the previous one's minimum
    (the need changes little from shape to shape); or `jobs` at once, each from `start`."""
    if jobs <= 1 or len(shapes) == 1:
        done: list[ShapeRun] = []
        for shape in shapes:
            done.append(one(shape, start))
            start = done[-1].marker.bisection.minimum_bytes or start
        return tuple(done)
    return side_by_side([functools.partial(one, s, start) for s in shapes], jobs, stop)


def calibrate_kernels(
    requests: Sequence[CalibrateRequest], jobs: int, progress: Progress | None = None
) -> tuple[CalibrateRun, ...]:
    """Kernels side by side: each request (one kernel with the image made for it) calibrated
    in full, `jobs` at once (each one's shapes then one after another)."""
    stop = threading.Event()
    if jobs > 1:
        requests = [replace(r, jobs=1) for r in requests]
    calls = [functools.partial(calibrate_image, r, progress, stop) for r in requests]
    return side_by_side(calls, jobs, stop)


def side_by_side(
    calls: Sequence[Callable[[], T]], jobs: int, stop: threading.Event
) -> tuple[T, ...]:
    """Each call's result, `jobs` at once in threads (each trial is a QEMU process). An
    interruption (Ctrl-C, SIGTERM, an error in one) ends them all: `stop` is set so that no
    new trial starts, and the QEMUs running are killed."""
    if jobs <= 1:
        return tuple(call() for call in calls)
    from concurrent.futures import ThreadPoolExecutor, wait

    with ThreadPoolExecutor(jobs, thread_name_prefix="calibrate") as pool:
        futures = [pool.submit(call) for call in calls]
        try:
            return tuple(f.result() for f in futures)
        except BaseException:
            stop.set()
            for f in futures:
                f.cancel()
            while not all(f.done() for f in futures):  # also a QEMU started meanwhile
                kill_all()
                wait(futures, timeout=0.5)
            raise
