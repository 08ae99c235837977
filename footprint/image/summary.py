"""What `inspect` reports about an image: totals, boot-time memory floors, origin, largest files.

Pure functions of an Inventory; the page size is a parameter, never read from the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from footprint.components.generators import generator
from footprint.image.cpio import DIR, FILE, SYMLINK
from footprint.image.reader import Inventory
from footprint.image.rootfs import DEVICE_KINDS, Node
from footprint.paths import MODULES_DIR
from footprint.units import non_negative, page_round

DEFAULT_PAGE_SIZE = 4096
# tmpfs (mm/shmem.c shmem_symlink) keeps a target of fewer than SHORT_SYMLINK_LEN bytes, its
# NUL included, in slab memory and gives a longer one a page; ramfs (fs/ramfs/inode.c
# ramfs_symlink -> page_symlink) gives every symlink a page-cache page.
SHORT_SYMLINK_LEN = 128


@dataclass(frozen=True)
class Totals:
    files: int
    dirs: int
    symlinks: int
    devices: int
    hardlinks: int  # names beyond the first that share an inode
    unique_bytes: int  # regular-file data, each inode once, overwritten data dropped
    page_rounded_bytes: int
    overwritten_bytes: int
    page_size: int

    def __post_init__(self) -> None:
        non_negative(self)


@dataclass(frozen=True)
class BootMemory:
    """Memory the unpack itself needs, before any kernel or userspace cost."""

    compressed_held_bytes: int  # the initrd buffer, freed only when unpacking ends
    # A ramfs rootfs (root= on the command line, as kdump's): page-rounded files + a page per
    # symlink. Its peak: both at once, at the end of unpacking.
    rootfs_bytes: int
    peak_bytes: int
    ram_floor_tmpfs_bytes: int  # a tmpfs rootfs is capped at 50 % of RAM: RAM >= 2 x rootfs
    ram_floor_ramfs_bytes: int  # ramfs has no cap: the peak is the floor
    # A tmpfs rootfs (no root=): page-rounded files + a page per long symlink only.
    rootfs_tmpfs_bytes: int = 0
    # Inodes the unpack creates (each with its dentry): every entry of the final tree but the
    # root, a hardlink's extra names (a dentry each, init_link) and overwritten entries not
    # counted.
    inodes: int = 0

    def __post_init__(self) -> None:
        non_negative(self)


@dataclass(frozen=True)
class LargeFile:
    path: str
    bytes: int
    page_rounded_bytes: int
    names: int

    def __post_init__(self) -> None:
        non_negative(self)


@dataclass(frozen=True)
class LayerSummary:
    """An inner filesystem image: its file in rootfs, and the tree it holds."""

    path: str  # of the image file, "/…"
    fstype: str
    compression: str
    image_bytes: int  # what it holds in rootfs (its file, compressed)
    files: int  # names of regular files, as unsquashfs -lls lists them
    dirs: int
    symlinks: int
    file_bytes: int  # the sizes of those names, summed (a hardlink's each time)
    unique_bytes: int  # each inode once
    page_rounded_bytes: int  # each inode once, in pages: its page cache if all were read
    warning: str | None = None


@dataclass(frozen=True)
class Summary:
    totals: Totals
    boot: BootMemory
    kernel_versions: list[str]
    generator: str
    largest: list[LargeFile]
    layers: list[LayerSummary] = field(default_factory=list)


def summarize(inv: Inventory, page_size: int = DEFAULT_PAGE_SIZE, top: int = 10) -> Summary:
    nodes = inv.rootfs.outer_nodes()  # an inner image is in rootfs as its file, once
    counts = {FILE: 0, DIR: 0, SYMLINK: 0}
    devices = 0
    long_symlinks = 0
    for node in nodes.values():
        if node.kind in counts:
            counts[node.kind] += 1
        elif node.kind in DEVICE_KINDS:
            devices += 1
        if node.kind == SYMLINK and node.size + 1 > SHORT_SYMLINK_LEN:
            long_symlinks += 1
    inodes = inv.rootfs.inodes(layers=False)
    unique = sum(inode.size for inode, _ in inodes.values())
    rounded = sum(page_round(inode.size, page_size) for inode, _ in inodes.values())
    hardlinks = sum(inode.names - 1 for inode, _ in inodes.values())
    totals = Totals(
        counts[FILE],
        counts[DIR] - 1,
        counts[SYMLINK],
        devices,
        hardlinks,
        unique,
        rounded,
        inv.rootfs.overwritten_bytes,
        page_size,
    )
    rootfs_bytes = rounded + counts[SYMLINK] * page_size
    tmpfs_bytes = rounded + long_symlinks * page_size
    peak = inv.image_bytes + rootfs_bytes
    tmpfs_peak = inv.image_bytes + tmpfs_bytes
    # every node but the root is one inode, except a file's names beyond its inode's first
    created = len(nodes) - 1 - hardlinks
    boot = BootMemory(
        inv.image_bytes,
        rootfs_bytes,
        peak,
        max(2 * tmpfs_bytes, tmpfs_peak),
        peak,
        tmpfs_bytes,
        created,
    )
    largest = sorted(inodes.values(), key=lambda item: (-item[0].size, item[1].path))[:top]
    layers = [_layer(inv, path, page_size) for path in sorted(inv.rootfs.layers)]
    made_by = generator(nodes)
    for path in sorted(inv.rootfs.layers) if made_by == "unknown" else ():
        made_by = generator(inv.rootfs.layers[path].tree.nodes)  # its markers moved inside
        if made_by != "unknown":
            break
    return Summary(
        totals,
        boot,
        kernel_versions(nodes),
        made_by,
        [
            LargeFile("/" + n.path, i.size, page_round(i.size, page_size), i.names)
            for i, n in largest
        ],
        layers,
    )


def _layer(inv: Inventory, path: str, page_size: int) -> LayerSummary:
    layer = inv.rootfs.layers[path]
    counts = {FILE: 0, DIR: 0, SYMLINK: 0}
    named = 0
    inodes: dict[int, int] = {}
    for node in layer.tree.nodes.values():
        if node.kind in counts and node.path:
            counts[node.kind] += 1
        if node.inode is not None:
            named += node.inode.size
            inodes[id(node.inode)] = node.inode.size
    return LayerSummary(
        "/" + path,
        layer.fstype,
        layer.compression,
        layer.image_bytes,
        counts[FILE],
        counts[DIR],
        counts[SYMLINK],
        named,
        sum(inodes.values()),
        sum(page_round(n, page_size) for n in inodes.values()),
        layer.warning,
    )


def kernel_versions(nodes: dict[str, Node]) -> list[str]:
    found = set()
    for path, node in nodes.items():
        if node.kind == DIR and path.count("/") <= 3:
            m = MODULES_DIR.fullmatch(path)
            if m:
                found.add(m.group(1))
    return sorted(found)
