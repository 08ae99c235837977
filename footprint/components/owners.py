"""Grouping an image's files by package or listing them one by one.

A file's package comes from its ELF `.note.package` when it has one, else (with
--owner-db dpkg) from this host's dpkg file lists, which only means something for an image
built on this host. Costs here are plain page-rounded bytes per group, no sharing model.
"""

from __future__ import annotations

import glob
import os
from typing import Any

from footprint.analyze import Analysis
from footprint.errors import EnvironmentUnavailable
from footprint.schemas import SCHEMA_VERSION
from footprint.units import page_round

DPKG_INFO = "/var/lib/dpkg/info"


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
                owners.setdefault(_fold(line.strip().lstrip("/")), package)
    return owners


def _fold(path: str) -> str:
    return path[4:] if path.startswith("usr/") else path


def group_by(a: Analysis, by: str, owner_db: str | None) -> dict[str, Any]:
    page = a.reservation.page_size
    owners = dpkg_owners() if owner_db == "dpkg" else {}
    att = a.attribution
    rows: dict[str, dict[str, Any]] = {}
    for inode, node in a.inventory.rootfs.inodes().values():
        if by == "file":
            key = "/" + node.path
        else:
            facts = a.facts.get(node.path)
            key = (
                (facts.package.get("name") if facts and facts.package else None)
                or owners.get(_fold(node.path))
                or "unknown"
            )
        row = rows.setdefault(key, {"name": key, "files": 0, "bytes": 0, "page_rounded_bytes": 0})
        row["files"] += 1
        row["bytes"] += inode.size
        row["page_rounded_bytes"] += page_round(inode.size, page)
        if by == "file" and att is not None:
            row["component"] = att.owner.get(node.path, "other")
    groups = sorted(rows.values(), key=lambda r: (-r["page_rounded_bytes"], r["name"]))
    return {
        "schema_version": SCHEMA_VERSION,
        "image": {"path": a.inventory.path, "bytes": a.inventory.file_bytes},
        "by": by,
        "groups": groups,
        "total": {
            "files": sum(g["files"] for g in groups),
            "bytes": sum(g["bytes"] for g in groups),
            "page_rounded_bytes": sum(g["page_rounded_bytes"] for g in groups),
        },
    }
