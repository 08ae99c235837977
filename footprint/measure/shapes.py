"""Machine shapes: the first kernel's RAM and CPUs a crashkernel= reservation is calibrated
for, and the ranged line the kernel takes from the shapes' minima.

A shape changes what the capture kernel must hold: the first kernel's memory map that
makedumpfile reads (its bitmap cycles are bounded), the elfcorehdr (one PT_LOAD per memory
range, one note per CPU), and the per-CPU areas of every CPU the capture brings up (kdump's
command lines say nr_cpus=1, so few). Under TCG a large first kernel costs the host only the
pages it touches (qemu_command backs the RAM with reserve=off).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import psutil

from footprint.measure.calibrate import Calibration
from footprint.measure.cma import CmaSplit
from footprint.model.crashkernel import Basis, Crashkernel, DistroLine, ranged
from footprint.units import MIB

# What one TCG trial costs the host: a core per guest CPU, and about this much memory
# (QEMU itself, the guest's touched pages, the overlay's copy of the disk when a dump is read).
TRIAL_HOST_BYTES = 1536 * MIB


@dataclass(frozen=True, order=True)
class Shape:
    ram_mib: int  # the first kernel's RAM (QEMU's -m)
    cpus: int  # QEMU's -smp: the first kernel's CPUs, and what the capture may bring up

    @property
    def label(self) -> str:
        ram = f"{self.ram_mib >> 10}G" if self.ram_mib % 1024 == 0 else f"{self.ram_mib}M"
        return f"{ram} × {self.cpus} CPU" + ("s" if self.cpus > 1 else "")


def shapes(rams_mib: tuple[int, ...], cpus: tuple[int, ...]) -> tuple[Shape, ...]:
    """Every RAM size with every CPU count, smallest first, each once."""
    return tuple(sorted({Shape(r, c) for r, c in itertools.product(rams_mib, cpus)}))


def default_jobs(shapes: tuple[Shape, ...], items: int | None = None) -> int:
    """How many trials this machine holds at once: its cores over the largest shape's CPUs,
    and its available memory over what one trial costs; no more than the `items` (default:
    the shapes) run side by side."""
    widest = max((s.cpus for s in shapes), default=1)
    by_cpu = (os.cpu_count() or 1) // widest
    by_memory = int(psutil.virtual_memory().available) // TRIAL_HOST_BYTES
    return max(1, min(by_cpu, by_memory, items or len(shapes) or 1))


@dataclass(frozen=True)
class ShapeRun:
    """One shape's kdump calibration: the capture's marker (the initrd alone), and with a
    root disk the dump saved on it, bisected up from the marker's minimum."""

    shape: Shape
    marker: Calibration
    dump: Calibration | None = None
    cma: CmaSplit | None = None  # with --cma: the crashkernel=X crashkernel=Y,cma split

    @property
    def calibration(self) -> Calibration:
        """The one that says what kdump needs: the dump's where there is one."""
        return self.dump if self.dump is not None else self.marker

    @property
    def need_bytes(self) -> int | None:
        """The reliable minimum at which this shape succeeded (None: never)."""
        c = self.calibration
        return c.reliable_minimum_bytes

    @property
    def recommended_bytes(self) -> int | None:
        return self.calibration.recommended_bytes


@dataclass(frozen=True)
class Verdict:
    """A distribution's line at one measured shape: what it reserves against the need."""

    shape: Shape
    reserved_bytes: int
    need_bytes: int  # the reliable minimum: less and the dump is lost
    recommended_bytes: int  # the need with the margin: more is waste

    @property
    def short_bytes(self) -> int:
        """By how much the line is too small (0: it is not)."""
        return max(0, self.need_bytes - self.reserved_bytes)

    @property
    def waste_bytes(self) -> int:
        """What the line reserves beyond the recommendation (0: nothing)."""
        return max(0, self.reserved_bytes - self.recommended_bytes)

    @property
    def words(self) -> str:
        if not self.reserved_bytes:
            return "reserves nothing: kdump is off"
        if self.short_bytes:
            return f"too small by {self.short_bytes // MIB} MiB"
        if self.waste_bytes:
            return f"wastes {self.waste_bytes // MIB} MiB"
        return "within the margin"


@dataclass(frozen=True)
class Ranges:
    """The measured ranged line and the distributions' lines beside it."""

    line: Crashkernel
    basis: tuple[Basis, ...]
    distros: tuple[tuple[DistroLine, tuple[Verdict, ...]], ...]


def ranges(runs: tuple[ShapeRun, ...], distros: tuple[DistroLine, ...]) -> Ranges | None:
    """The line from every shape's recommendation (per RAM, the largest over its CPU
    counts), and each distribution's line judged at every shape; None where no shape has a
    recommendation."""
    from footprint.model.crashkernel import parse_crashkernel

    needs: dict[int, int] = {}
    for r in runs:
        if r.recommended_bytes is not None:
            ram = r.shape.ram_mib * MIB
            needs[ram] = max(needs.get(ram, 0), r.recommended_bytes)
    if not needs:
        return None
    line, basis = ranged(needs)
    judged = []
    for d in distros:
        c = parse_crashkernel(d.line)
        judged.append(
            (
                d,
                tuple(
                    Verdict(
                        r.shape,
                        c.reservation_for(r.shape.ram_mib * MIB),
                        r.need_bytes,
                        r.recommended_bytes,
                    )
                    for r in runs
                    if r.need_bytes is not None and r.recommended_bytes is not None
                ),
            )
        )
    return Ranges(line, basis, tuple(judged))
