"""The shared-library closure of an ELF, resolved inside the image as glibc's ld.so would.

Search order (elf/dl-load.c): DT_RPATH of the loader and its loaders up to the executable
(only when the loader has no DT_RUNPATH), DT_RUNPATH of the loader (its direct dependencies
only), the image's ld.so.cache (emulated from its ld.so.conf when the image ships a cache),
then the default directories. Objects already loaded are matched by SONAME; the closure is
built breadth first, which is ld.so's load order.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections import deque
from dataclasses import dataclass, field

from footprint.arch import DEFAULT as DEFAULT_ARCH
from footprint.elf.facts import ElfFacts
from footprint.image.cpio import FILE
from footprint.image.rootfs import LAYER_SEP, Rootfs, split_layer

TRIPLETS = {
    "X86_64": "x86_64-linux-gnu",
    "AARCH64": "aarch64-linux-gnu",
    "I386": "i386-linux-gnu",
    "ARM": "arm-linux-gnueabihf",
    "PPC64": "powerpc64le-linux-gnu",
    "S390": "s390x-linux-gnu",
    "RISCV": "riscv64-linux-gnu",
}


@dataclass(frozen=True)
class Loaded:
    """One object of a closure: the name it was asked for, where it was found, who asked."""

    name: str
    path: str  # the real path inside the image
    parent: str | None  # path of the object that needed it first (None: the root object)
    depth: int


@dataclass
class Closure:
    root: str
    objects: list[Loaded] = field(default_factory=list)  # load order, the root first
    missing: list[tuple[str, str]] = field(default_factory=list)  # (name, needed by)

    @property
    def paths(self) -> list[str]:
        return [o.path for o in self.objects]


class Resolver:
    """Resolves closures in one image; directory searches and closures are cached (the
    attribution and the missing-library report ask for the same executables)."""

    def __init__(
        self, rootfs: Rootfs, facts: dict[str, ElfFacts], conf_text: dict[str, str] | None = None
    ) -> None:
        """`conf_text`: the image's etc/ld.so.conf and ld.so.conf.d/* contents by path."""
        self.rootfs, self.facts = rootfs, facts
        self.conf_text = conf_text or {}
        # per layer: an executable inside an inner image loads from that image (its root)
        self._cache_dirs: dict[str, list[str] | None] = {}
        self._found: dict[tuple[str, str], str | None] = {}
        self._closures: dict[str, Closure] = {}

    # -- configuration of the image -------------------------------------------------------
    def _ld_so_cache_dirs(self, prefix: str = "") -> list[str] | None:
        """Directories ldconfig put in the image's (or the inner image's at `prefix`)
        ld.so.cache; None when it has no cache."""
        if prefix not in self._cache_dirs:
            if self.rootfs.lookup(prefix + "etc/ld.so.cache") is None:
                self._cache_dirs[prefix] = None
            else:
                dirs: list[str] = []
                self._read_conf("etc/ld.so.conf", dirs, 0, prefix)
                self._cache_dirs[prefix] = dirs
        return self._cache_dirs[prefix]

    def _read_conf(self, path: str, dirs: list[str], depth: int, prefix: str = "") -> None:
        text = self.conf_text.get(prefix + path)
        if text is None or depth > 8:
            return
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("include"):
                pattern = line.split(None, 1)[1].strip().lstrip("/")
                confs = [p[len(prefix) :] for p in self.conf_text if p.startswith(prefix)]
                for conf in sorted(p for p in confs if fnmatch.fnmatch(p, pattern)):
                    self._read_conf(conf, dirs, depth + 1, prefix)
            else:
                d = line.split("=", 1)[0].strip().strip("/")
                if d and d not in dirs:
                    dirs.append(d)

    # -- searching ---------------------------------------------------------------------------
    def _default_dirs(self, machine: str) -> list[str]:
        triplet = TRIPLETS.get(machine, DEFAULT_ARCH.triplet)
        return [f"lib/{triplet}", f"usr/lib/{triplet}", "lib", "usr/lib", "lib64", "usr/lib64"]

    def _expand(self, entry: str, origin: str, machine: str) -> str:
        triplet = TRIPLETS.get(machine, DEFAULT_ARCH.triplet)
        for token, value in (
            ("$ORIGIN", origin),
            ("${ORIGIN}", origin),
            ("$LIB", f"lib/{triplet}"),
            ("${LIB}", f"lib/{triplet}"),
            ("$PLATFORM", machine.lower()),
            ("${PLATFORM}", machine.lower()),
        ):
            entry = entry.replace(token, value)
        return entry

    def _find_in(self, directory: str, name: str, machine: str) -> str | None:
        key = (directory, name)
        if key not in self._found:
            node = self.rootfs.lookup(posixpath.join(directory, name).lstrip("/"))
            found = None
            if node is not None and node.kind == FILE:
                facts = self.facts.get(node.path)
                if facts is not None and not facts.error and facts.machine == machine:
                    found = node.path
            self._found[key] = found
        return self._found[key]

    def _search(
        self, name: str, loader: ElfFacts, chain: list[ElfFacts], main: ElfFacts
    ) -> str | None:
        machine = loader.machine
        prefix = _prefix(loader.path)
        if "/" in name:
            node = self.rootfs.lookup(prefix + name.lstrip("/"))
            return node.path if node is not None and node.kind == FILE else None
        dirs: list[str] = []
        if not loader.runpath:
            for obj in chain:
                origin = "/" + posixpath.dirname(split_layer(obj.path)[1])
                dirs += [self._expand(d, origin, machine) for d in obj.rpath]
            if main is not loader and main not in chain:
                origin = "/" + posixpath.dirname(split_layer(main.path)[1])
                dirs += [self._expand(d, origin, machine) for d in main.rpath]
        else:
            origin = "/" + posixpath.dirname(split_layer(loader.path)[1])
            dirs += [self._expand(d, origin, machine) for d in loader.runpath]
        cache_dirs = self._ld_so_cache_dirs(prefix)
        if cache_dirs is not None:
            dirs += cache_dirs
        dirs += self._default_dirs(machine)
        for d in dirs:
            found = self._find_in(prefix + d.lstrip("/"), name, machine)
            if found is not None:
                return found
        return None

    def closure(self, path: str) -> Closure:
        """The objects `path` loads, in ld.so's (breadth-first) order, and what is missing.

        Shared between callers: do not change what it returns."""
        if path not in self._closures:
            self._closures[path] = self._closure(path)
        return self._closures[path]

    def _closure(self, path: str) -> Closure:
        node = self.rootfs.lookup(path.lstrip("/"))
        real = node.path if node is not None else path.lstrip("/")
        root = self.facts.get(real)
        result = Closure(real)
        if root is None:
            return result
        result.objects.append(Loaded(posixpath.basename(real), real, None, 0))
        by_soname: dict[str, str] = {}
        loaded = {real}
        chains: dict[str, list[ElfFacts]] = {real: [root]}
        if root.interpreter:
            interp = self.rootfs.lookup(_prefix(real) + root.interpreter.lstrip("/"))
            if interp is not None:
                loaded.add(interp.path)
                result.objects.append(Loaded(root.interpreter, interp.path, real, 1))
                facts = self.facts.get(interp.path)
                if facts and facts.soname:
                    by_soname[facts.soname] = interp.path
        queue = deque([(real, 0)])
        while queue:
            current, depth = queue.popleft()
            obj = self.facts.get(current)
            if obj is None:
                continue
            for name in obj.needed:
                if name in by_soname:
                    continue
                found = self._search(name, obj, chains[current], root)
                if found is None:
                    result.missing.append((name, current))
                    by_soname[name] = ""
                    continue
                facts = self.facts[found]
                by_soname[name] = found
                if facts.soname:
                    by_soname.setdefault(facts.soname, found)
                if found in loaded:
                    continue
                loaded.add(found)
                chains[found] = chains[current] + [facts]
                result.objects.append(Loaded(name, found, current, depth + 1))
                queue.append((found, depth + 1))
        return result

    def closure_of_soname(self, soname: str, loader: ElfFacts) -> list[str]:
        """What loading `soname` at run time from `loader` (dlopen) brings in."""
        found = self._search(soname, loader, [loader], loader)
        return self.closure(found).paths if found is not None else []


def _prefix(path: str) -> str:
    """The key prefix of the layer `path` lives in: "<image>//" inside an inner image."""
    outer = split_layer(path)[0]
    return f"{outer}{LAYER_SEP}" if outer else ""
