"""Who owns every file, and what each component costs, so that the parts add up.

Every file inode has exactly one owner: the first rule that matches one of its names. A
shared library no rule claims goes to the components whose programs load it (their closures):
to the one component if only one does (exclusive), else it is shared and its cost split
equally between its users — the Shapley value for an additive cost. Firmware the `firmware`
rule claims goes the same way to the modules whose modinfo requests it (firmware-<module>;
firmware-unrequested when none does). Costs are page-rounded bytes, what a file takes in the
capture kernel's tmpfs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from footprint.components.firmware import FirmwareRequests
from footprint.components.rules import Rules
from footprint.elf.facts import SHARED, ElfFacts
from footprint.elf.resolve import Resolver
from footprint.image.rootfs import Inode, Rootfs, inner_path, split_layer
from footprint.units import page_round

OTHER = "other"  # files no rule claims and that are not libraries
UNREFERENCED = "unreferenced-libraries"  # libraries nothing in the image is seen to load
FIRMWARE = "firmware"  # the rule whose files go to the modules requesting them


@dataclass
class Component:
    name: str
    files: int = 0  # own files and exclusive libraries
    bytes: int = 0  # their unpacked bytes
    page_rounded_bytes: int = 0  # their page-rounded bytes: the marginal cost
    exclusive_bytes: int = 0  # page-rounded bytes of libraries only this component loads
    shared_bytes: int = 0  # page-rounded bytes of the shared libraries it loads (whole)
    proportional_bytes: float = 0.0  # own + exclusive + its share of every shared library
    # the part of proportional_bytes inside inner images (squashfs-root.img): page cache
    # when read, not rootfs
    inner_bytes: float = 0.0
    paths: list[str] = field(default_factory=list)
    exclusive: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)

    @property
    def marginal_bytes(self) -> int:
        """What the image would shrink by without this component and what only it needs."""
        return self.page_rounded_bytes


@dataclass(frozen=True)
class SharedLibrary:
    path: str
    page_rounded_bytes: int
    users: tuple[str, ...]


@dataclass
class Attribution:
    components: dict[str, Component]
    shared: list[SharedLibrary]
    owner: dict[str, str]  # every name of each file inode -> its owner ("shared": see shared)
    total_page_rounded_bytes: int
    total_bytes: int


def attribute(
    rootfs: Rootfs,
    facts: dict[str, ElfFacts],
    resolver: Resolver,
    rules: Rules,
    page_size: int,
    firmware: FirmwareRequests | None = None,
) -> Attribution:
    inodes = _inodes_with_names(rootfs)
    comps: dict[str, Component] = {}

    def comp(name: str) -> Component:
        if name not in comps:
            comps[name] = Component(name)
        return comps[name]

    # 1. Rules: the earliest rule matching any name of the inode.
    ruled: dict[str, str] = {}  # first path -> component
    libraries: list[str] = []
    users: dict[str, set[str]] = defaultdict(set)
    for inode, first, names in inodes.values():
        # inside an inner image, rules see paths from its root (where its files run)
        indexes = (rules.index(inner_path(n)) for n in names)
        best = min((i for i in indexes if i is not None), default=None)
        if best is not None and firmware is not None and rules.rules[best].name == FIRMWARE:
            requesters = firmware.component(inode)
            if len(requesters) == 1:
                ruled[first] = requesters[0]
            else:  # a blob several drivers request: shared between them, like a library
                libraries.append(first)
                users[first].update(requesters)
        elif best is not None:
            ruled[first] = rules.rules[best].name
        elif (f := facts.get(first)) is not None and f.kind == SHARED:
            libraries.append(first)
        else:
            ruled[first] = OTHER

    # 2. Who loads each unclaimed library: every ELF a rule gave a component starts a closure.
    unclaimed = set(libraries)
    for path, name in ruled.items():
        f = facts.get(path)
        if f is None or f.error or not (f.needed or f.interpreter or f.dlopen):
            continue
        closure = resolver.closure(path)
        for lib in closure.paths[1:]:
            if lib in unclaimed:
                users[lib].add(name)
        for soname in f.dlopen:  # libraries it loads at run time (.note.dlopen)
            for lib in resolver.closure_of_soname(soname, f):
                if lib in unclaimed:
                    users[lib].add(name)

    sizes = {
        first: (inode.size, page_round(inode.size, page_size))
        for inode, first, _ in inodes.values()
    }
    owner: dict[str, str] = dict(ruled)
    shared: list[SharedLibrary] = []
    for path, name in ruled.items():
        c = comp(name)
        size, rounded = sizes[path]
        c.files += 1
        c.bytes += size
        c.page_rounded_bytes += rounded
        c.proportional_bytes += rounded
        c.inner_bytes += rounded if split_layer(path)[0] else 0
        c.paths.append(path)
    for lib in libraries:
        size, rounded = sizes[lib]
        who = sorted(users.get(lib, ()))
        if len(who) <= 1:
            name = who[0] if who else UNREFERENCED
            c = comp(name)
            owner[lib] = name
            c.files += 1
            c.bytes += size
            c.page_rounded_bytes += rounded
            c.proportional_bytes += rounded
            c.inner_bytes += rounded if split_layer(lib)[0] else 0
            if who:
                c.exclusive_bytes += rounded
                c.exclusive.append(lib)
            else:
                c.paths.append(lib)
        else:
            owner[lib] = "shared"
            shared.append(SharedLibrary(lib, rounded, tuple(who)))
            for name in who:
                c = comp(name)
                c.shared_bytes += rounded
                c.proportional_bytes += rounded / len(who)
                c.inner_bytes += rounded / len(who) if split_layer(lib)[0] else 0
                c.shared.append(lib)
    for _, first, names in inodes.values():  # a hardlink's other names have the same owner
        for name in names[1:]:
            owner[name] = owner[first]
    total_rounded = sum(r for _, r in sizes.values())
    total = sum(s for s, _ in sizes.values())
    return Attribution(comps, shared, owner, total_rounded, total)


def _inodes_with_names(rootfs: Rootfs) -> dict[int, tuple[Inode, str, list[str]]]:
    """Each file inode once: (the inode, its first path, all its names)."""
    out: dict[int, tuple[Inode, str, list[str]]] = {}
    for node in rootfs.nodes.values():
        # an inner image's file is counted as the files inside it (each its own owner)
        if node.inode is None or node.path in rootfs.layers:
            continue
        key = id(node.inode)
        if key in out:
            out[key][2].append(node.path)
        else:
            out[key] = (node.inode, node.path, [node.path])
    return out
