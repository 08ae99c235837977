"""Other ways to group an image's files than components: by package, or one row per file.

A file's package comes from its ELF `.note.package` when it has one, else (with the dpkg
owner database) from this host's dpkg file lists, which only means something for an image
built on this host. Costs here are plain page-rounded bytes per group, no sharing model.
Each grouping is one entry of GROUPINGS: a function from a profile to each file's key.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass

from footprint.errors import EnvironmentUnavailable
from footprint.profile import FileCost, ImageRef, Profile
from footprint.units import page_round

DPKG_INFO = "/var/lib/dpkg/info"
OWNER_DBS = ("dpkg",)


@dataclass(frozen=True)
class Group:
    name: str
    files: int
    bytes: int
    page_rounded_bytes: int
    component: str | None = None  # by file: the file's component


@dataclass(frozen=True)
class Grouping:
    image: ImageRef
    by: str
    groups: tuple[Group, ...]  # largest first

    @property
    def files(self) -> int:
        return sum(g.files for g in self.groups)


def dpkg_owners(info_dir: str = DPKG_INFO) -> dict[str, str]:
    """Path (no leading slash, usr-merge folded) -> package, from dpkg's *.list files."""
    lists = glob.glob(os.path.join(info_dir, "*.list"))
    if not lists:
        raise EnvironmentUnavailable(
            f"no dpkg database at {info_dir}: --owner-db dpkg works on Debian-based hosts only"
        )
    owners: dict[str, str] = {}
    for path in lists:
        package = os.path.basename(path)[: -len(".list")].split(":", 1)[0]
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                owners.setdefault(_fold(line.strip()), package)
    return owners


def _fold(path: str) -> str:
    path = path.lstrip("/")
    return path[4:] if path.startswith("usr/") else path


KeyOf = Callable[[FileCost], str]


def _by_package(p: Profile, owner_db: str | None) -> KeyOf:
    notes = {f.path: f.package["name"] for f in p.elf if f.package.get("name")}
    owners = dpkg_owners() if owner_db == "dpkg" else {}
    return lambda f: notes.get(f.path) or owners.get(_fold(f.path)) or "unknown"


def _by_file(p: Profile, owner_db: str | None) -> KeyOf:
    return lambda f: f.path


GROUPINGS: dict[str, Callable[[Profile, str | None], KeyOf]] = {
    "package": _by_package,
    "file": _by_file,
}


def group(p: Profile, by: str, owner_db: str | None = None) -> Grouping:
    """The profile's files grouped by GROUPINGS[by], largest page-rounded group first."""
    key_of = GROUPINGS[by](p, owner_db)
    page = p.totals.page_size
    rows: dict[str, list[int]] = {}
    component: dict[str, str] = {}
    for f in p.files:
        key = key_of(f)
        row = rows.setdefault(key, [0, 0, 0])
        row[0] += 1
        row[1] += f.bytes
        row[2] += page_round(f.bytes, page)
        component[key] = f.component
    groups = [
        Group(k, n, b, r, component[k] if by == "file" else None) for k, (n, b, r) in rows.items()
    ]
    groups.sort(key=lambda g: (-g.page_rounded_bytes, g.name))
    return Grouping(p.image, by, tuple(groups))
