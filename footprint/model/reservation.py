"""The static reservation terms: what the image (and each component) costs before anything
runs, beside kdumpctl's estimate formula for the same inputs (model/peers.py).

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
from footprint.model.peers import kdumpctl_formula
from footprint.model.predict import Prediction
from footprint.model.unpack import HEAD, workspace_bytes
from footprint.paths import is_module
from footprint.schemas.fields import Bytes, Count
from footprint.units import page_round

if TYPE_CHECKING:
    from footprint.components.attribute import Attribution, Component
    from footprint.elf.facts import ElfFacts
    from footprint.elf.modules import ModuleFacts
    from footprint.model.inner import InnerWorkingSet
    from footprint.model.kernel import KernelImage

STRUCT_PAGE = DEFAULT_ARCH.struct_page_bytes  # bytes of struct page per page (x86-64: 64)


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
    modules_bytes: Bytes  # the kernel modules' files in the image (compressed ones as stored)
    initrd_compressed_bytes: Bytes
    rootfs_bytes: Bytes
    unpack_peak_bytes: Bytes
    tmpfs_floor_bytes: Bytes
    memmap_bytes: Bytes
    static_estimate_bytes: Bytes  # kernel + unpack peak + struct page: ramfs rootfs (root= given)
    kdumpctl_formula_bytes: Bytes  # kernel + modules + 3 x compressed initrd + 16 MiB
    static_estimate_tmpfs_bytes: Bytes = 0  # the same with a tmpfs rootfs (no root=): 50 % cap
    compressed_share_method: str = "proportional"
    # what the modules the image loads by name (with their deps) take once loaded: a compressed
    # module is decompressed into memory, so it counts unpacked
    modules_to_load_bytes: Bytes = 0
    # model/unpack.py: the largest decompressor workspace of a member (its window, buffers)
    unpack_workspace_bytes: Bytes = 0
    modules_unpacked_bytes: Bytes | None = None  # every module unpacked (None: not recorded)
    # inodes (each with its dentry) the unpack creates in rootfs; 0 in profiles saved before it
    rootfs_inodes: Count = 0
    # model/predict.py: with a kernel profile, the kernel's measured runtime terms added; else
    # the static floor (prediction.basis says which). None in profiles saved before them.
    predicted_minimum_bytes: Bytes | None = None  # direct boot, -m
    predicted_crashkernel_bytes: Bytes | None = None  # a kexec -p capture, crashkernel=
    prediction: Prediction | None = None
    # model/inner.py, for an image whose root is a squashfs/erofs inside it: the image file is
    # in rootfs_bytes already; the page cache of what the boot reads from it (plus the loop
    # device's cache of its compressed blocks) is added to static_estimate_bytes
    inner_image_bytes: Bytes = 0
    inner_working_set_bytes: Bytes = 0


def reservation(
    inv: Inventory,
    summary: Summary,
    kernel: KernelImage | None,
    kernel_facts: ElfFacts | None,
    page_size: int,
    texts: dict[str, str] | None = None,
    modules: dict[str, ModuleFacts] | None = None,
    inner: list[InnerWorkingSet] | None = None,
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
    module_nodes = [(i, n) for i, n in inv.rootfs.inodes().values() if is_module(n.path)]
    module_bytes = sum(inode.size for inode, _ in module_nodes)
    unpacked = {p: m.unpacked_bytes for p, m in (modules or {}).items()}
    modules_unpacked = sum(unpacked.get(n.path, i.size) for i, n in module_nodes)
    boot = summary.boot
    # A kdump command line carries root=, so the capture kernel's rootfs is ramfs (no cap;
    # init/do_mounts.c init_rootfs: tmpfs only without root= or with rootfstype=tmpfs);
    # without root= it is tmpfs, capped at half the RAM, whose short symlinks take no page.
    working = sum(w.bytes for w in inner or ())
    before_memmap = kernel_bytes + boot.peak_bytes + working
    tmpfs_before = kernel_bytes + boot.ram_floor_tmpfs_bytes + working
    # struct page covers all of the capture kernel's RAM, itself included.
    total = int(before_memmap * page_size / (page_size - STRUCT_PAGE))
    kdumpctl = kdumpctl_formula(kernel_bytes, module_bytes, inv.image_bytes)
    return Reservation(
        page_size,
        kernel_bytes,
        method,
        version,
        module_bytes,
        inv.image_bytes,
        boot.rootfs_bytes,
        boot.peak_bytes,
        boot.ram_floor_tmpfs_bytes,
        total - before_memmap,
        total,
        kdumpctl,
        int(tmpfs_before * page_size / (page_size - STRUCT_PAGE)),
        modules_to_load_bytes=modules_to_load(inv, texts or {}, unpacked),
        unpack_workspace_bytes=unpack_workspace(inv),
        modules_unpacked_bytes=modules_unpacked,
        rootfs_inodes=boot.inodes,
        inner_image_bytes=sum(w.image_bytes for w in inner or ()),
        inner_working_set_bytes=working,
    )


def unpack_workspace(inv: Inventory) -> int:
    """The largest working memory the kernel's decompressor takes for one of the image's
    compressed members (each is freed before the next starts). A UKI's members are not read
    here (their offsets are in the .initrd section): 0."""
    if inv.uki is not None:
        return 0
    largest = 0
    with open(inv.path, "rb") as f:
        for seg in inv.segments:
            if seg.codec != "none":
                f.seek(seg.offset)
                largest = max(largest, workspace_bytes(seg.codec, f.read(HEAD)))
    return largest


LOAD_LISTS = (
    "conf/modules",
    "etc/modules",
    "etc/modules-load.d/",
    "usr/lib/modules-load.d/",
    "lib/modules-load.d/",
)


def modules_to_load(
    inv: Inventory, texts: dict[str, str], unpacked: dict[str, int] | None = None
) -> int:
    """Bytes of the module files the image loads by name — initramfs-tools' conf/modules,
    /etc/modules, modules-load.d — with their dependencies from the image's modules.dep.
    What udev loads for a machine's devices depends on the machine: not counted."""
    names = set()
    for path, text in texts.items():
        if path.startswith(LOAD_LISTS):
            for line in text.splitlines():
                word = line.split("#", 1)[0].split(";", 1)[0].split()
                if word:
                    names.add(word[0].replace("-", "_"))
    if not names:
        return 0
    deps: dict[str, tuple[str, list[str]]] = {}  # name -> (path in the image, dep paths)
    for path, text in texts.items():
        if path.endswith("/modules.dep"):
            root = path.rsplit("/", 1)[0]
            for line in text.splitlines():
                mod, _, rest = line.partition(":")
                name = mod.rsplit("/", 1)[-1].split(".ko", 1)[0].replace("-", "_")
                deps[name] = (f"{root}/{mod}", [f"{root}/{d}" for d in rest.split()])
    wanted = set()
    for name in names:
        if name in deps:
            path, more = deps[name]
            wanted.add(path)
            wanted.update(more)
    total = 0
    for path in wanted:
        node = inv.rootfs.lookup(path)
        if node is not None and node.inode is not None:
            total += (unpacked or {}).get(node.path, node.inode.size)
    return total


def component_terms(inv: Inventory, attribution: Attribution) -> list[ComponentTerms]:
    """Each component's static terms, largest first: its rootfs share, its share of the
    compressed image held during unpack (proportional to its bytes), its tmpfs floor.

    Files inside an inner image (squashfs-root.img) are not in rootfs: the image file is,
    compressed. A component's rootfs share counts its inner bytes at the image's ratio
    (image file bytes / the unpacked bytes inside), so the shares still add up to the rootfs.
    """
    terms: list[ComponentTerms] = []
    comps = sorted(attribution.components.values(), key=lambda c: -c.proportional_bytes)
    inner = sum(c.inner_bytes for c in comps)
    images = sum(page_round(layer.image_bytes, 4096) for layer in inv.rootfs.layers.values())
    ratio = images / inner if inner else 1.0

    def resident(c: Component) -> float:
        return c.proportional_bytes - c.inner_bytes * (1 - ratio)

    total = sum(resident(c) for c in comps)
    if attribution.total_page_rounded_bytes and total > 0:
        for c in comps:
            rootfs = resident(c)
            scale = rootfs / c.proportional_bytes if c.proportional_bytes else 1.0
            marginal = c.marginal_bytes * scale
            share = inv.image_bytes * rootfs / total
            marginal_share = inv.image_bytes * marginal / total
            terms.append(
                ComponentTerms(
                    c.name,
                    rootfs,
                    share,
                    rootfs + share,
                    2 * rootfs,
                    c.marginal_bytes,
                    marginal + marginal_share,
                )
            )
    return terms
