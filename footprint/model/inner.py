"""What the boot reads from an inner root image (dracut's squashfs-root.img, erofs-root.img):
its working set, the page cache it fills beside the image held compressed in rootfs.

dracut's squash init loop-mounts the image read-only under an overlay whose upper layer is
ramfs, and switch_roots into it; from then on a file's pages enter the page cache only when
read. The static estimate reads what the boot will run from the image: its /init (systemd)
and the programs of the units pulled in by the image's *.wants directories (their
ExecStart*= lines; a socket unit brings its service), each with its library closure, and
the modules it loads by name. Pages of a squashfs or erofs are clean, so under pressure the
kernel may drop and re-read them: the working set is what the boot needs not to thrash,
not memory that is pinned. The compressed blocks are read from the image file, whose pages
are rootfs (ramfs/tmpfs) already; squashfs's own caches (3 fragments and a read block of
128 KiB by default) and the metadata are not counted.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from footprint.elf.facts import ElfFacts
from footprint.elf.resolve import Resolver
from footprint.image.cpio import FILE
from footprint.image.reader import Inventory
from footprint.image.rootfs import Inode, Layer, Node, Rootfs
from footprint.schemas.fields import Bytes, Count
from footprint.units import page_round

UNIT_DIRS = ("etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system")
UNIT_TEXT = tuple(f"{d}/*.{kind}" for d in UNIT_DIRS for kind in ("service", "socket"))
EXEC = re.compile(r"^\s*Exec(?:Start|StartPre|StartPost)\s*=\s*(\S+)", re.M)
MAX_UNITS = 4096


@dataclass(frozen=True)
class InnerWorkingSet:
    """The files of one inner image the boot reads, each inode once."""

    layer: str  # the image's path in rootfs, "/…"
    programs: tuple[str, ...]  # what it runs from the image: init, then the units' programs
    files: Count
    page_cache_bytes: Bytes  # page-rounded: what reading them adds to the page cache
    image_bytes: Bytes  # the image file, resident in rootfs (counted there already)

    @property
    def bytes(self) -> int:
        return self.page_cache_bytes


def working_sets(
    inv: Inventory,
    resolver: Resolver,
    facts: dict[str, ElfFacts],
    texts: dict[str, str],
    page_size: int,
) -> list[InnerWorkingSet]:
    return [
        _working_set(inv, layer, resolver, facts, texts, page_size)
        for _, layer in sorted(inv.rootfs.layers.items())
    ]


def _working_set(
    inv: Inventory,
    layer: Layer,
    resolver: Resolver,
    facts: dict[str, ElfFacts],
    texts: dict[str, str],
    page_size: int,
) -> InnerWorkingSet:
    rootfs = inv.rootfs
    key = layer.key("")
    programs = ["/init", *_unit_programs(layer, texts, key)]
    read: dict[int, Inode] = {}
    found = []
    for program in programs:
        node = _program(rootfs, key, program)
        if node is None or node.kind != FILE or node.inode is None:
            continue
        found.append(program)
        read[id(node.inode)] = node.inode
        paths = [node.path]
        if node.path in facts:
            paths = resolver.closure(node.path).paths
        elif "bin/sh" not in programs:  # a script: its interpreter is the shell
            sh = rootfs.lookup(key + "bin/sh")
            if sh is not None and sh.path in facts:
                paths += resolver.closure(sh.path).paths
        for path in paths:
            n = rootfs.nodes.get(path)
            if n is not None and n.inode is not None:
                read[id(n.inode)] = n.inode
    for path in texts:  # the unit files themselves, read by systemd
        if path.startswith(key) and (n := rootfs.nodes.get(path)) is not None and n.inode:
            read[id(n.inode)] = n.inode
    cache = sum(page_round(i.size, page_size) for i in read.values())
    return InnerWorkingSet("/" + layer.path, tuple(found), len(read), cache, layer.image_bytes)


SEARCH = ("usr/lib/systemd", "usr/bin", "usr/sbin", "bin", "sbin")  # a unit's bare names


def _program(rootfs: Rootfs, key: str, program: str) -> Node | None:
    """The file a unit's program names inside the image (a bare name: systemd's search)."""
    if program.startswith("/"):
        return rootfs.lookup(key + program.lstrip("/"))
    for d in SEARCH:
        node = rootfs.lookup(f"{key}{d}/{program}")
        if node is not None:
            return node
    return None


def _unit_programs(layer: Layer, texts: dict[str, str], key: str) -> list[str]:
    """The programs (first word of ExecStart*=) of every unit in the image's *.wants dirs."""
    wanted: list[str] = []
    for path in layer.tree.nodes:
        parent, _, name = path.rpartition("/")
        if parent.endswith(".wants") and posixpath.dirname(parent) in UNIT_DIRS:
            wanted.append(name)
            if name.endswith(".socket"):
                wanted.append(name.removesuffix(".socket") + ".service")
        if len(wanted) > MAX_UNITS:
            break
    out: list[str] = []
    for name in dict.fromkeys(wanted):
        for d in UNIT_DIRS:
            text = texts.get(f"{key}{d}/{name}")
            if text is None:
                continue
            for word in EXEC.findall(text):
                program = word.lstrip("-@:+!|")
                if program and program not in out:
                    out.append(program)
            break
    return out
