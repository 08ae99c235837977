"""Which module asks for each firmware file of an image, found as the kernel's loader finds it.

request_firmware(name) tries `name` under each directory of the loader's path in turn and
takes the first file found (drivers/base/firmware_loader/main.c, fw_path[]); a kernel built
with CONFIG_FW_LOADER_COMPRESS also tries name.zst and name.xz. The generators copy what a
module's `firmware=` entries name, and also expand globs and whole directories (dracut,
initramfs-tools), so those are matched too. A firmware file no module asks for is reported as
such: it is often the cheapest thing to drop.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from dataclasses import dataclass

from footprint.elf.modules import ModuleFacts
from footprint.image.cpio import DIR, FILE
from footprint.image.rootfs import Inode, Node, Rootfs
from footprint.paths import MODULES_DIR

SEARCH_PATH = (
    "lib/firmware/updates/{kver}",
    "lib/firmware/updates",
    "lib/firmware/{kver}",
    "lib/firmware",
)
SUFFIXES = ("", ".zst", ".xz")  # CONFIG_FW_LOADER_COMPRESS's order
GLOB = frozenset("*?[")
UNREQUESTED = "firmware-unrequested"


@dataclass(frozen=True)
class FirmwareRequests:
    """Who asks for what: each firmware inode's requesting modules, and per module what its
    requests resolve to in the image and which it holds nothing for."""

    by_inode: dict[int, tuple[str, ...]]  # id(Inode) -> names of the modules requesting it
    found: dict[str, tuple[str, ...]]  # module path -> the firmware files it would load
    missing: dict[str, tuple[str, ...]]  # module path -> its requests the image does not hold

    def component(self, inode: Inode) -> tuple[str, ...]:
        """The components a firmware file belongs to: firmware-<module> per requester."""
        who = self.by_inode.get(id(inode), ())
        return tuple(f"firmware-{m}" for m in who) or (UNREQUESTED,)


def requests(rootfs: Rootfs, modules: dict[str, ModuleFacts]) -> FirmwareRequests:
    by_inode: dict[int, set[str]] = defaultdict(set)
    found: dict[str, tuple[str, ...]] = {}
    missing: dict[str, tuple[str, ...]] = {}
    files = _firmware_files(rootfs)
    for m in sorted(modules.values(), key=lambda m: m.path):
        if not m.firmware:
            continue
        match = MODULES_DIR.match(m.path)
        dirs = [d.format(kver=match.group(1) if match else "") for d in SEARCH_PATH]
        hits: dict[str, None] = {}  # in request order, each once
        lacking = []
        for name in m.firmware:
            nodes = _find(rootfs, files, dirs, name)
            if not nodes:
                lacking.append(name)
            for node in nodes:
                hits.setdefault(node.path)
                if node.inode is not None:
                    by_inode[id(node.inode)].add(m.name)
        found[m.path], missing[m.path] = tuple(hits), tuple(lacking)
    return FirmwareRequests({k: tuple(sorted(v)) for k, v in by_inode.items()}, found, missing)


def _firmware_files(rootfs: Rootfs) -> list[str]:
    """Every regular file's real path under a firmware directory, in path order."""
    return sorted(
        path for path, n in rootfs.nodes.items() if n.kind == FILE and "lib/firmware/" in path
    )


def _find(rootfs: Rootfs, files: list[str], dirs: list[str], name: str) -> list[Node]:
    """The files request_firmware(name) would load (a glob or a directory: all it names)."""
    name = name.strip("/")
    for d in dirs:
        real = rootfs.resolve(d)
        if real is None or (node := rootfs.nodes.get(real)) is None or node.kind != DIR:
            continue
        if GLOB & set(name):
            hits = [p for p in files if p.startswith(real + "/") and _globbed(p, real, name)]
            if hits:
                return [rootfs.nodes[p] for p in hits]
            continue
        for suffix in SUFFIXES:
            node = rootfs.lookup(f"{real}/{name}{suffix}")
            if node is not None and node.kind == FILE:
                return [node]
            if node is not None and node.kind == DIR and not suffix:
                under = [p for p in files if p.startswith(node.path + "/")]
                if under:
                    return [rootfs.nodes[p] for p in under]
    return []


def _globbed(path: str, base: str, pattern: str) -> bool:
    rel = path[len(base) + 1 :]
    return any(fnmatch.fnmatchcase(rel, pattern + s) for s in SUFFIXES)
