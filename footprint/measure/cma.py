"""The `crashkernel=X crashkernel=Y,cma` split (Linux 6.17+, CONFIG_CMA): X is truly
reserved and holds what `kexec -p` loads (kernel, initrd, purgatory, elfcorehdr, aligned);
Y lives in CMA memory the first kernel keeps using for movable pages until a crash, when the
capture kernel gets it as RAM.

X is bisected with a generous Y (the shape's whole all-fixed recommendation), then Y with X
at its recommendation; a real crash verifies the recommended pair, and that X alone (no CMA
part) fails. What the first kernel gets back is the all-fixed recommendation less X.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace

from footprint.errors import EnvironmentUnavailable
from footprint.measure.backend import Backend
from footprint.measure.bisect import Trial
from footprint.measure.calibrate import MARGIN, ROUND, Calibration, Plan, calibrate
from footprint.measure.kdump import KdumpBackend, Split
from footprint.model.kernel import read_kernel
from footprint.units import round_up

# crash_reserve.c's suffix table since 6.17 ("crashkernel=Y,cma", NUL-terminated: ",cma"
# alone is in older kernels' other strings), what it prints once it has reserved the CMA part
# (only built with CONFIG_CMA), and what a kernel without CONFIG_CMA prints instead.
CMA_SUFFIX = b",cma\0"
CMA_RESERVED = b"crashkernel CMA reserved"
CMA_UNSUPPORTED = b"crashkernel CMA reservation not supported"
TRADE_OFFS = (
    "pages in the CMA area are not in the dump (the first kernel's movable pages there are "
    "dropped as the capture takes the area over)",
    "after a crash the kernel waits about 10 s for DMA in flight to the CMA area to end "
    "before it boots the capture kernel",
    "the CMA area must be free of pinned pages: a driver that pins movable memory for long "
    "makes the area partly unusable to the first kernel",
)


@dataclass(frozen=True)
class CmaKernel:
    """A kernel that takes crashkernel=,cma: how that was found, and the fixed part's floor."""

    detected: str
    room_bytes: int  # what kexec -p needs for the kernel: its file, or init_size if larger


def cma_support(kernel: str) -> CmaKernel:
    """How the kernel at `kernel` was found to take crashkernel=,cma (read once: the
    vmlinux is decompressed for it); EnvironmentUnavailable (exit 4) saying how it was found
    not to."""
    k = read_kernel(kernel)
    release = k.version.split(" ", 1)[0] or os.path.basename(kernel)
    if k.vmlinux is None:
        raise EnvironmentUnavailable(
            f"--cma: cannot tell whether {release} takes crashkernel=,cma: its vmlinux could not "
            "be decompressed from the image to look for the ',cma' suffix"
        )
    if CMA_SUFFIX not in k.vmlinux:
        raise EnvironmentUnavailable(
            f"--cma: {release} does not take crashkernel=,cma (its vmlinux has no ',cma' "
            "suffix: the option came with Linux 6.17) — use a newer kernel or drop --cma"
        )
    if CMA_UNSUPPORTED in k.vmlinux or CMA_RESERVED not in k.vmlinux:
        raise EnvironmentUnavailable(
            f"--cma: {release} was built without CONFIG_CMA (its vmlinux parses ',cma' but has "
            f"no {CMA_RESERVED.decode()!r} message)"
        )
    how = f"{release}: its vmlinux parses ',cma' and reports {CMA_RESERVED.decode()!r}"
    room = max(k.file_bytes, k.init_size)
    for config in (
        os.path.join(os.path.dirname(kernel), f"config-{release}"),
        f"/boot/config-{release}",
    ):
        if os.path.isfile(config):
            with open(config, errors="replace") as f:
                text = f.read()
            if "\nCONFIG_CMA=y" not in text:
                raise EnvironmentUnavailable(
                    f"--cma: {release} was built without CONFIG_CMA (says {config})"
                )
            return CmaKernel(f"{how}; {config} has CONFIG_CMA=y", room)
    return CmaKernel(how, room)


@dataclass(frozen=True)
class CmaSplit:
    """The split, how it was measured and verified (bytes)."""

    detected: str  # how the kernel was found to take it
    all_fixed_bytes: int  # the shape's recommendation without ,cma
    fixed: Calibration  # X, with a generous CMA part
    cma: Calibration  # Y, with X at fixed_bytes
    fixed_bytes: int | None  # recommended X (None: no X worked)
    cma_bytes: int | None  # recommended Y (None: no Y worked)
    verified: tuple[Trial, ...]  # (X, Y) as recommended; then X with no CMA part

    @property
    def returned_bytes(self) -> int | None:
        """What the first kernel gets back against the all-fixed reservation."""
        if self.fixed_bytes is None:
            return None
        return max(0, self.all_fixed_bytes - self.fixed_bytes)

    @property
    def verified_ok(self) -> bool:
        """The pair succeeded and X alone failed, as a split that is needed must."""
        return (
            len(self.verified) == 2
            and self.verified[0].succeeded
            and (not self.verified[1].succeeded)
        )


def calibrate_cma(
    backend: KdumpBackend,
    image: str,
    plan: Plan,
    all_fixed: Calibration,
    kernel: CmaKernel,
    resolution: int,
    repeat: int,
    progress: Callable[[Trial, int, int], None] | None = None,
    guard: Callable[[KdumpBackend], Backend] = lambda b: b,
) -> CmaSplit | None:
    """The split for `backend`'s shape, from its all-fixed calibration; None when that one
    found no minimum (nothing to split). Every backend run goes through `guard` (the
    workflow's Stoppable)."""
    whole = all_fixed.recommended_bytes or all_fixed.reliable_minimum_bytes
    minimum = all_fixed.bisection.minimum_bytes
    if whole is None or minimum is None:
        return None
    generous = guard(replace(backend, split=Split(None, whole)))
    # X holds at least the kernel (the room it decompresses in: init_size) and the initrd
    # kexec loads; at most the all-fixed minimum.
    loads = kernel.room_bytes + os.path.getsize(image)
    fixed = calibrate(
        generous,
        image,
        plan,
        resolution,
        repeat,
        bounds=(round_up(loads, resolution) - resolution, minimum),
        progress=progress,
    )
    x_min = fixed.reliable_minimum_bytes
    if x_min is None:
        return CmaSplit(kernel.detected, whole, fixed, fixed, None, None, ())
    x = round_up(x_min + int(x_min * MARGIN), ROUND)
    on_x = guard(replace(backend, split=Split(x)))
    cma = calibrate(
        on_x, image, plan, resolution, repeat, start=max(resolution, minimum - x), progress=progress
    )
    y_min = cma.reliable_minimum_bytes
    if y_min is None:
        return CmaSplit(kernel.detected, whole, fixed, cma, x, None, ())
    y = round_up(y_min + int(minimum * MARGIN), ROUND)
    verified = []
    for check, memory in ((on_x, y), (guard(replace(backend, split=Split(None, 0))), x)):
        t = Trial.of(memory, check.run(image, memory))
        verified.append(t)
        if progress is not None:
            progress(t, x, y)
    return CmaSplit(kernel.detected, whole, fixed, cma, x, y, tuple(verified))
