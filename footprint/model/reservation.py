"""The static reservation terms: what the image (and each component) costs before anything
runs, beside kdumpctl's estimate formula for the same inputs.

Terms (DESIGN.md, memory model): the kernel's own memory; the compressed initrd, held until
unpacking ends; the page-rounded rootfs (ramfs when the command line has root=, as kdump's
does; with a tmpfs rootfs, RAM >= 2 x rootfs, reported apart);
struct page for all of it (64 bytes per 4 KiB page, 1.5625 %). Runtime terms (userspace
anonymous memory, slab, makedumpfile) come from measurement, not from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from footprint.arch import DEFAULT as DEFAULT_ARCH
from footprint.image.reader import Inventory
from footprint.image.summary import Summary
from footprint.paths import is_module
from footprint.schemas.fields import Bytes
from footprint.units import MIB, page_round

if TYPE_CHECKING:
    from footprint.components.attribute import Attribution
    from footprint.elf.facts import ElfFacts
    from footprint.model.kernel import KernelImage

STRUCT_PAGE = DEFAULT_ARCH.struct_page_bytes  # bytes of struct page per page (x86-64: 64)
KDUMPCTL_OVERHEAD = 16 * MIB


@dataclass(frozen=True)
class ComponentTerms:
    name: str
    rootfs_bytes: float  # proportional page-rounded bytes
    compressed_share_bytes: float  # its share of the compressed image held during unpack
    unpack_bytes: float  # both: what it adds to the unpack peak
    tmpfs_floor_bytes: float  # what it adds to the RAM floor a tmpfs rootfs implies
    marginal_rootfs_bytes: int
    marginal_unpack_bytes: float


@dataclass(frozen=True)
class Reservation:
    page_size: Bytes
    kernel_bytes: Bytes  # 0 when no kernel was given
    kernel_method: str  # "elf" (PT_LOAD memsz, lief), "init_size", "file", "" (none given)
    kernel_version: str
    modules_bytes: Bytes  # unpacked kernel modules in the image
    initrd_compressed_bytes: Bytes
    rootfs_bytes: Bytes
    unpack_peak_bytes: Bytes
    tmpfs_floor_bytes: Bytes
    memmap_bytes: Bytes
    static_estimate_bytes: Bytes  # kernel + unpack peak + struct page: ramfs rootfs (root= given)
    kdumpctl_formula_bytes: Bytes  # kernel + modules + 3 x compressed initrd + 16 MiB
    static_estimate_tmpfs_bytes: Bytes = 0  # the same with a tmpfs rootfs (no root=): 50 % cap
    compressed_share_method: str = "proportional"


def reservation(
    inv: Inventory,
    summary: Summary,
    kernel: KernelImage | None,
    kernel_facts: ElfFacts | None,
    page_size: int,
) -> Reservation:
    kernel_bytes, method, version = 0, "", ""
    if kernel is not None:
        version = kernel.version.split(" ", 1)[0]
        if kernel_facts is not None and not kernel_facts.error and kernel_facts.load_mem_bytes:
            kernel_bytes, method = kernel_facts.load_mem_bytes, "elf"
        elif kernel.init_size:
            kernel_bytes, method = kernel.init_size, "init_size"
        else:
            kernel_bytes, method = kernel.file_bytes, "file"
        kernel_bytes = page_round(kernel_bytes, page_size)
    modules = sum(
        inode.size for inode, node in inv.rootfs.inodes().values() if is_module(node.path)
    )
    boot = summary.boot
    # A kdump command line carries root=, so the capture kernel's rootfs is ramfs (no cap);
    # without root= it is tmpfs, capped at half the RAM.
    before_memmap = kernel_bytes + boot.peak_bytes
    tmpfs_before = kernel_bytes + max(boot.peak_bytes, boot.ram_floor_tmpfs_bytes)
    # struct page covers all of the capture kernel's RAM, itself included.
    total = int(before_memmap * page_size / (page_size - STRUCT_PAGE))
    kdumpctl = kernel_bytes + modules + 3 * inv.image_bytes + KDUMPCTL_OVERHEAD
    return Reservation(
        page_size,
        kernel_bytes,
        method,
        version,
        modules,
        inv.image_bytes,
        boot.rootfs_bytes,
        boot.peak_bytes,
        boot.ram_floor_tmpfs_bytes,
        total - before_memmap,
        total,
        kdumpctl,
        int(tmpfs_before * page_size / (page_size - STRUCT_PAGE)),
    )


def component_terms(inv: Inventory, attribution: Attribution) -> list[ComponentTerms]:
    """Each component's static terms, largest first: its rootfs share, its share of the
    compressed image held during unpack (proportional to its bytes), its tmpfs floor."""
    terms: list[ComponentTerms] = []
    if attribution.total_page_rounded_bytes:
        total_rounded = attribution.total_page_rounded_bytes
        for c in sorted(attribution.components.values(), key=lambda c: -c.proportional_bytes):
            share = inv.image_bytes * c.proportional_bytes / total_rounded
            marginal_share = inv.image_bytes * c.marginal_bytes / total_rounded
            terms.append(
                ComponentTerms(
                    c.name,
                    c.proportional_bytes,
                    share,
                    c.proportional_bytes + share,
                    2 * c.proportional_bytes,
                    c.marginal_bytes,
                    c.marginal_bytes + marginal_share,
                )
            )
    return terms
