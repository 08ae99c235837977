"""The library closure of a binary on this host, by footprint's own resolver.

The resolver works on a tree and a table of ELF facts; HostTree presents the host's
filesystem as such a tree (lookups follow symlinks with the host's own rules) and parses the
ELF files it is asked about with lief, lazily.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from footprint.elf.facts import ELF_MAGIC, ElfFacts, parser_config, read_facts
from footprint.elf.resolve import Resolver
from footprint.image.cpio import DIR, FILE, SYMLINK


@dataclass
class _HostNode:
    path: str  # real path, without the leading "/"
    kind: str


class HostTree:
    """Just enough of Rootfs for the resolver: lookup() of a path on this host."""

    def __init__(self, root: str = "/") -> None:
        self.root = root

    def lookup(self, path: str) -> _HostNode | None:
        full = os.path.join(self.root, path.lstrip("/"))
        if not os.path.exists(full):
            return None
        real = os.path.relpath(os.path.realpath(full), self.root)
        kind = DIR if os.path.isdir(full) else FILE if os.path.isfile(full) else SYMLINK
        return _HostNode(real, kind)


class HostFacts(Mapping[str, ElfFacts]):
    """ELF facts of host files, parsed with lief on first use."""

    def __init__(self, root: str = "/") -> None:
        import lief

        lief.logging.disable()
        self._lief, self._cfg, self._root = lief, parser_config(lief), root
        self._cache: dict[str, ElfFacts | None] = {}

    def get(self, path: str, default: Any = None) -> Any:
        if path not in self._cache:
            full = os.path.join(self._root, path.lstrip("/"))
            facts = None
            try:
                with open(full, "rb") as f:
                    data = f.read()
                if data[:4] == ELF_MAGIC:
                    facts = ElfFacts.from_dict(read_facts(self._lief, self._cfg, path, data))
            except OSError:
                pass
            self._cache[path] = facts
        found = self._cache[path]
        return default if found is None else found

    def __getitem__(self, path: str) -> ElfFacts:
        found = self.get(path)
        if found is None:
            raise KeyError(path)
        return found  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(p for p, f in self._cache.items() if f is not None)

    def __len__(self) -> int:
        return sum(1 for f in self._cache.values() if f is not None)


def host_closure(binary: str, root: str = "/") -> tuple[list[tuple[str, str]], list[str]]:
    """What `binary` loads: (name asked for, real path) in load order, itself and its
    interpreter included; and the names that cannot be found."""
    conf: dict[str, str] = {}
    for path in ["/etc/ld.so.conf", *glob.glob(os.path.join(root, "etc/ld.so.conf.d/*"))]:
        full = os.path.join(root, path.lstrip("/"))
        if os.path.isfile(full):
            with open(full, encoding="utf-8", errors="replace") as f:
                conf[os.path.relpath(full, root)] = f.read()
    resolver = Resolver(HostTree(root), HostFacts(root), conf)  # type: ignore[arg-type]
    closure = resolver.closure(binary)
    return (
        [(o.name, "/" + o.path) for o in closure.objects],
        [name for name, _ in closure.missing],
    )
