"""One pass over an image that yields everything static: inventory, ELF facts, closures,
components and the reservation model (footprint.profile makes the Profile of it).

The lief worker is started first, so its import (~0.3 s) and its parsing overlap the
decompression; ELF files stream to it as the reader passes them, and are never stored.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

from footprint.components import firmware
from footprint.components.attribute import Attribution, attribute
from footprint.components.dracut import dracut_module_rules
from footprint.components.firmware import FirmwareRequests
from footprint.components.rules import load_rules
from footprint.elf.facts import ELF_MAGIC, OTHER, ElfFacts
from footprint.elf.modules import (
    FIRMWARE_KEY,
    MAX_MODULE_BYTES,
    ModuleFacts,
    module_name,
    unpacked,
)
from footprint.elf.resolve import Closure, Resolver
from footprint.elf.worker import MODULE, ElfWorker
from footprint.errors import UsageError
from footprint.image.cpio import FILE, CpioEntry, EntryData
from footprint.image.reader import Inventory, scan
from footprint.image.rootfs import Node, inner_path
from footprint.image.summary import DEFAULT_PAGE_SIZE, Summary, summarize
from footprint.model.inner import UNIT_TEXT, InnerWorkingSet, working_sets
from footprint.model.kernel import read_kernel
from footprint.model.reservation import ComponentTerms, Reservation, component_terms, reservation
from footprint.paths import is_firmware, is_module

# Small text files kept for later stages: the loader's configuration, dracut's module list.
KEEP_TEXT = (
    "etc/ld.so.conf",
    "etc/ld.so.conf.d/*",
    "usr/lib/dracut/modules.txt",
    "lib/dracut/modules.txt",
    # the modules an image loads by name (model.reservation.modules_to_load), and their deps
    "conf/modules",
    "etc/modules",
    "etc/modules-load.d/*.conf",
    "usr/lib/modules-load.d/*.conf",
    "lib/modules-load.d/*.conf",
    "lib/modules/*/modules.dep",
    "usr/lib/modules/*/modules.dep",
    *UNIT_TEXT,  # an inner root's units: what its boot runs (model/inner.py)
)
KERNEL_KEY = "\0kernel"  # the worker key of the --kernel vmlinux


@dataclass
class Analysis:
    inventory: Inventory
    summary: Summary
    facts: dict[str, ElfFacts]  # every name of every ELF inode -> its facts
    resolver: Resolver
    attribution: Attribution | None
    reservation: Reservation
    component_terms: list[ComponentTerms]  # empty without attribution
    rules: str  # which rules attributed the files: "built-in", "+sha256:…" of the user's
    modules: dict[str, ModuleFacts] = field(default_factory=dict)  # every module, by path
    firmware: FirmwareRequests | None = None  # what the modules ask for (with components)
    unpacked: dict[str, int] = field(default_factory=dict)  # compressed firmware, expanded
    working_sets: list[InnerWorkingSet] = field(default_factory=list)  # inner images' reads

    def closure_of(self, path: str) -> Closure:
        """The library closure of the ELF at `path` in the image; UsageError if it is none."""
        node = self.inventory.rootfs.lookup(path.lstrip("/"))
        if node is None:
            raise UsageError(f"{path} is not in {self.inventory.path}")
        if node.path not in self.facts:
            raise UsageError(
                f"{path} is not an ELF file that footprint parsed (kernel modules are counted, "
                "not parsed)"
            )
        return self.resolver.closure(node.path)

    @property
    def elves(self) -> list[ElfFacts]:
        """Each ELF inode once, in path order."""
        seen: dict[int, ElfFacts] = {}
        for facts in self.facts.values():
            seen.setdefault(id(facts), facts)
        return sorted(seen.values(), key=lambda f: f.path)


# The largest ELF file parsed: the largest programs and libraries of real initramfs images are
# under 10 MiB (libcrypto 4.5 MiB); a file above this is counted by its size, with a warning.
MAX_ELF_BYTES = 64 << 20


class _Collector:
    """The scan visitor: sends ELF bytes to the worker, keeps a few small text files."""

    def __init__(self, worker: ElfWorker) -> None:
        self.worker = worker
        self.texts: dict[str, str] = {}
        self.inode_of: dict[str, int] = {}  # submitted path -> id of its inode
        self.unparsed: dict[str, ElfFacts] = {}  # ELF files too large to parse
        self.modules: dict[str, ModuleFacts] = {}  # every module, its modinfo to come
        self.unpacked: dict[str, int] = {}  # compressed firmware -> what the kernel expands

    def __call__(self, entry: CpioEntry, data: EntryData | None, node: Node | None) -> None:
        if node is None or node.kind != FILE or data is None or not data.size:
            return
        path = node.path
        inner = inner_path(path)  # inside an inner image, its files see its root
        if any(fnmatch.fnmatch(inner, p) for p in KEEP_TEXT) and data.size < 1 << 20:
            self.texts[path] = data.read().decode("utf-8", "replace")
            return
        if is_module(path):
            self._module(path, data)
            return
        if is_firmware(path):
            if path.endswith(COMPRESSED_FIRMWARE) and data.size <= MAX_MODULE_BYTES:
                self.unpacked[path] = _unpacked_size(data.read())
            return  # firmware is not loaded by ld.so: its size is enough
        if data.size < 64 or data.peek(4) != ELF_MAGIC:
            return
        if node.inode is not None:
            self.inode_of[path] = id(node.inode)
        if data.size > MAX_ELF_BYTES:  # the file streams past, unread: memory stays bounded
            self.unparsed[path] = ElfFacts(
                path,
                data.size,
                OTHER,
                error=f"not parsed: {data.size >> 20} MiB, above the {MAX_ELF_BYTES >> 20} "
                "MiB cap (no program or library of an initramfs is that large): it counts by "
                "its size, and what it loads is not followed",
            )
            return
        self.worker.submit(path, data.read())

    def _module(self, path: str, data: EntryData) -> None:
        """Its unpacked size now; its modinfo from the worker, if it requests firmware."""
        if data.size > MAX_MODULE_BYTES:  # streams past unread: memory stays bounded
            error = f"not read: {data.size >> 20} MiB, above the {MAX_MODULE_BYTES >> 20} MiB cap"
            name = module_name(path)
            self.modules[path] = ModuleFacts(path, name, data.size, data.size, error=error)
            return
        stored = data.read()
        elf, error = unpacked(path, stored)
        size = len(elf) if elf is not None else len(stored)
        self.modules[path] = ModuleFacts(path, module_name(path), len(stored), size, error=error)
        if elf is not None and FIRMWARE_KEY in elf:
            self.worker.submit(path, elf, MODULE)

    def modules_read(self, modinfo: dict[str, dict[str, Any]]) -> dict[str, ModuleFacts]:
        """The modules with the worker's answers: their names and firmware= entries."""
        out = dict(self.modules)
        for path, info in modinfo.items():
            m = out[path]
            out[path] = replace(
                m,
                name=info.get("name") or m.name,
                firmware=tuple(info.get("firmware", ())),
                error=info.get("error", ""),
            )
        return out


COMPRESSED_FIRMWARE = (".xz", ".zst")  # what CONFIG_FW_LOADER_COMPRESS decompresses


def _unpacked_size(data: bytes) -> int:
    """What a compressed firmware file expands to (its stored size if it does not unpack)."""
    from footprint.errors import BadImage
    from footprint.image.codecs import unpack

    try:
        return sum(len(chunk) for chunk in unpack(data, MAX_MODULE_BYTES))
    except BadImage:
        return len(data)


def analyze(
    image: str,
    *,
    page_size: int | None = None,
    rules_file: str | None = None,
    kernel: str | None = None,
    components: bool = True,
    dracut_modules: bool = False,
) -> Analysis:
    with ElfWorker() as worker:
        collector = _Collector(worker)
        inv = scan(image, visit=collector)
        if kernel is None and inv.uki is not None and inv.uki.linux_bytes:
            kernel = image  # a UKI carries its own kernel: its .linux
        kimage = read_kernel(kernel) if kernel else None
        if kimage is not None and kimage.vmlinux is not None:
            worker.submit(KERNEL_KEY, kimage.vmlinux)
        parsed = {**worker.results(), **collector.unparsed}
        modules = collector.modules_read(worker.modinfo())
    kernel_facts = parsed.pop(KERNEL_KEY, None)
    if page_size is None:  # the kernel's own (an arm64 Image's header says 4K, 16K or 64K)
        own = (kimage.page_size or kimage.arch.page_size) if kimage is not None else 0
        page_size = own or DEFAULT_PAGE_SIZE
    # Every name of an inode shares its facts (hardlinked busybox applets, for one).
    by_inode = {collector.inode_of[p]: f for p, f in parsed.items() if p in collector.inode_of}
    facts: dict[str, ElfFacts] = {}
    for path, node in inv.rootfs.nodes.items():
        if node.inode is not None and id(node.inode) in by_inode:
            facts[path] = by_inode[id(node.inode)]
    summary = summarize(inv, page_size)
    resolver = Resolver(inv.rootfs, facts, collector.texts)
    attribution, terms, fw = None, [], None
    if components:
        extra = dracut_module_rules(collector.texts) if dracut_modules else None
        rules = load_rules(rules_file, summary.generator, extra)
        fw = firmware.requests(inv.rootfs, modules)
        attribution = attribute(inv.rootfs, facts, resolver, rules, page_size, fw)
        terms = component_terms(inv, attribution)
    sets = working_sets(inv, resolver, facts, collector.texts, page_size)
    res = reservation(inv, summary, kimage, kernel_facts, page_size, collector.texts, modules, sets)
    rid = rules_id(rules_file, dracut_modules)
    return Analysis(
        inv, summary, facts, resolver, attribution, res, terms, rid, modules, fw,
        collector.unpacked, sets,
    )  # fmt: skip


def rules_id(rules_file: str | None, dracut_modules: bool) -> str:
    """Names the rules an attribution used, so that two profiles say whether theirs agree."""
    out = "built-in"
    if rules_file:
        with open(rules_file, "rb") as f:
            out += "+sha256:" + hashlib.sha256(f.read()).hexdigest()[:16]
    return out + ("+dracut-modules" if dracut_modules else "")
