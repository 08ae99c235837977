"""The reservation predicted before any boot: the image's static terms weighed by a kernel
profile's measured runtime terms, or — without one — the static floor, said to be one.

predicted = base (the minimal initrd's measured minimum)
          + rootfs slope × (image rootfs − minimal rootfs)
          + held slope × (image initrd − minimal initrd)
          + module slope × modules the image loads itself
          + entry slope × (inodes the image's unpack creates − the minimal initrd's): each
            one's inode and dentry in the rootfs (kernel profiles made before it lack it)
          + the decompressor's workspace for its largest member (model/unpack.py) and its
            struct page: the minimal initrds are uncompressed or gzip, whose workspace is
            ~56 KiB; a zstd, xz or lz4 member's window and buffers are MiB
          [+ first-kernel RAM slope × 0: the kernel profile's own first-kernel size]
Nothing here is fitted to any image: the slopes come from footprint's own minimal initrds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from footprint.arch import DEFAULT as DEFAULT_ARCH
from footprint.model import kernel_profile as kp
from footprint.schemas.fields import Bytes
from footprint.units import MIB, round_up

if TYPE_CHECKING:
    from footprint.model.reservation import Reservation

# Memory added also adds its struct page (x86-64: 64 bytes per 4 KiB page).
STRUCT_PAGE_GROWTH = 4096 / (4096 - DEFAULT_ARCH.struct_page_bytes)
MAKEDUMPFILE_BYTES = 5 * MIB  # its bitmap buffer (<= 4 MiB) + about 1 MiB per thread (one)
MARGIN = 0.10
ROUND = 16 * MIB
FLOOR_WARNING = (
    "no kernel profile: predicted_minimum_bytes and predicted_crashkernel_bytes are the static "
    "floor — the kernel's runtime memory (slab, per-CPU areas, page tables, module memory, its "
    "early allocations) and userspace's are left out, so the truth is above them (make one "
    "with `footprint calibrate-kernel VMLINUZ -o kernel.json`, give --kernel-profile)"
)
PREFIXES = ("no kernel profile:", "the kernel profile is for")  # the warnings made here


@dataclass(frozen=True)
class PredictedTerm:
    name: str
    bytes: int  # may be negative: the minimal initrd's own files, taken out of the base
    source: Literal["image", "kernel-profile"]
    how: str


@dataclass(frozen=True)
class Prediction:
    basis: Literal["kernel-profile", "floor"]
    kernel_profile: str  # "<release> <build id>" of the kernel profile; "" for a floor
    minimum_terms: tuple[PredictedTerm, ...]  # direct boot, -m
    crashkernel_terms: tuple[PredictedTerm, ...]  # a kexec -p capture, crashkernel=
    first_kernel_bytes: Bytes  # the crashing kernel's RAM the crashkernel prediction is for
    recommended_bytes: Bytes | None  # None for a floor: a floor is no recommendation
    recommended_crashkernel: str
    margin_bytes: Bytes
    why_margin: str
    not_modelled: tuple[str, ...]  # what the prediction leaves out, in words


def _sum(terms: tuple[PredictedTerm, ...]) -> int:
    return max(0, sum(t.bytes for t in terms))


def predict(res: Reservation, profile: kp.KernelProfile | None) -> tuple[Reservation, list[str]]:
    """`res` with predicted_minimum_bytes, predicted_crashkernel_bytes and their terms, and
    the warnings the basis should carry."""
    if profile is None:
        floor = res.static_estimate_bytes
        terms = (
            PredictedTerm(
                "static estimate",
                floor,
                "image",
                "kernel image + compressed initrd held + page-rounded rootfs + struct page",
            ),
        )
        p = Prediction("floor", "", terms, terms, 0, None, "", 0, "", ("every runtime term",))
        return replace(
            res, predicted_minimum_bytes=floor, predicted_crashkernel_bytes=floor, prediction=p
        ), [FLOOR_WARNING]
    warnings = []
    release = profile.kernel.release
    if res.kernel_version and res.kernel_version != release:
        warnings.append(
            f"the kernel profile is for {release} but the profile's kernel is "
            f"{res.kernel_version}: its runtime terms are another kernel's (calibrate that one)"
        )
    base = profile.minimum(profile.term(kp.DIRECT_BASE).measured_from[0])
    s_root = profile.term(kp.ROOTFS).value
    s_held = profile.term(kp.INITRD_HELD).value
    s_mod = profile.term(kp.MODULES).value
    d_root = res.rootfs_bytes - base.rootfs_bytes
    d_held = res.initrd_compressed_bytes - base.initrd_bytes
    entry_terms: tuple[PredictedTerm, ...] = ()
    if profile.has(kp.ENTRIES) and res.rootfs_inodes:
        s_ent = profile.term(kp.ENTRIES).value
        d_ent = res.rootfs_inodes - base.entries
        entry_terms = (
            PredictedTerm(
                "rootfs entries",
                round(s_ent * d_ent),
                "image",
                f"{s_ent:.0f} bytes × ({res.rootfs_inodes} inodes the unpack creates − "
                f"{base.entries} of the minimal initrd's): each one's inode and dentry",
            ),
        )
    image_terms = (
        PredictedTerm(
            "rootfs",
            round(s_root * d_root),
            "image",
            f"{s_root:.3f} × ({res.rootfs_bytes / MIB:.1f} MiB page-rounded rootfs − "
            f"{base.rootfs_bytes / MIB:.1f} MiB of the minimal initrd's)",
        ),
        PredictedTerm(
            "compressed initrd held",
            round(s_held * d_held),
            "image",
            f"{s_held:.3f} × ({res.initrd_compressed_bytes / MIB:.1f} MiB initrd − "
            f"{base.initrd_bytes / MIB:.1f} MiB of the minimal initrd)",
        ),
        PredictedTerm(
            "modules to load",
            round(s_mod * res.modules_to_load_bytes),
            "image",
            f"{s_mod:.3f} × {res.modules_to_load_bytes / MIB:.1f} MiB of modules the image "
            "loads by name (with their dependencies; udev's by device are not known here)",
        ),
        PredictedTerm(
            "decompressor workspace",
            round(res.unpack_workspace_bytes * STRUCT_PAGE_GROWTH),
            "image",
            f"{res.unpack_workspace_bytes / MIB:.2f} MiB the kernel's decompressor allocates for "
            "the largest compressed member (its window and buffers, from the member's header), "
            "+ its struct page, at the unpack's peak",
        ),
        *entry_terms,
    )
    direct = (
        PredictedTerm(
            "kernel runtime (direct boot)",
            round(profile.term(kp.DIRECT_BASE).value),
            "kernel-profile",
            f"the minimal initrd's measured minimum -m ({release})",
        ),
        *image_terms,
    )
    k_base = profile.term(kp.KDUMP_BASE)
    first = profile.minimum(k_base.measured_from[0]).first_kernel_bytes
    capture = round(k_base.value)
    how = (
        f"the minimal initrd's measured minimum crashkernel= ({release}, a "
        f"{first >> 20} MiB first kernel)"
    )
    if profile.has(kp.KDUMP_RAM_LOSS):
        # Each minimum is known to a resolution only; the RAM a capture kernel does not get of
        # its reservation is measured exactly (MemTotal), so the direct minimum plus it can be
        # the larger — and the capture needs both.
        loss = round(profile.term(kp.KDUMP_RAM_LOSS).value)
        if round(profile.term(kp.DIRECT_BASE).value) + loss > capture:
            capture = round(profile.term(kp.DIRECT_BASE).value) + loss
            how = (
                f"the minimal initrd's measured minimum -m + the {loss / MIB:.2f} MiB of its "
                f"reservation a capture kernel does not get as RAM (MemTotal, {release}); its "
                f"own measured crashkernel= minimum is {k_base.value / MIB:.0f} MiB"
            )
    crash = (
        PredictedTerm("kernel runtime (kexec capture)", capture, "kernel-profile", how),
        *image_terms,
    )
    crashkernel = _sum(crash)
    margin = round_up(int(crashkernel * MARGIN), 4 * MIB)
    recommended = round_up(crashkernel + MAKEDUMPFILE_BYTES + margin, ROUND)
    p = Prediction(
        "kernel-profile",
        f"{release} {profile.kernel.build_id}".strip(),
        direct,
        crash,
        first,
        recommended,
        f"crashkernel={recommended >> 20}M",
        margin,
        f"predicted crashkernel + makedumpfile {MAKEDUMPFILE_BYTES >> 20} MiB + "
        f"{MARGIN:.0%} of the prediction ({margin >> 20} MiB: run-to-run spread, the devices "
        "and drivers of a real machine) rounded up to 16 MiB",
        (
            "userspace beyond a busybox shell (udev, systemd, makedumpfile's own run)",
            "modules udev loads for the machine's devices",
        ),
    )
    return replace(
        res,
        predicted_minimum_bytes=_sum(direct),
        predicted_crashkernel_bytes=crashkernel,
        prediction=p,
    ), warnings
