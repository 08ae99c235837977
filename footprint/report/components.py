"""`components`, `elf` and `profile` as JSON documents and as text.

The profile document is the canonical artifact (schema_version 1): `inspect`'s keys plus
components, ELF facts, files with their owners and the reservation model. diff, check and
report read it back without the image.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from typing import Any

from footprint.analyze import Analysis, is_module
from footprint.components.attribute import Component
from footprint.elf.resolve import Closure
from footprint.report.inspect import as_dict as inspect_dict
from footprint.schemas import SCHEMA_VERSION
from footprint.units import human


def component_row(c: Component, terms: dict[str, Any] | None) -> dict[str, Any]:
    row = {
        "name": c.name,
        "files": c.files,
        "bytes": c.bytes,
        "page_rounded_bytes": c.page_rounded_bytes,
        "exclusive_bytes": c.exclusive_bytes,
        "shared_bytes": c.shared_bytes,
        "proportional_bytes": round(c.proportional_bytes),
        "marginal_bytes": c.marginal_bytes,
        "exclusive_libraries": ["/" + p for p in sorted(c.exclusive)],
        "shared_libraries": ["/" + p for p in sorted(c.shared)],
    }
    if terms:
        row["compressed_share_bytes"] = round(terms["compressed_share_bytes"])
        row["unpack_bytes"] = round(terms["unpack_bytes"])
        row["tmpfs_floor_bytes"] = round(terms["tmpfs_floor_bytes"])
    return row


def components_dict(a: Analysis) -> dict[str, Any]:
    att = a.attribution
    assert att is not None
    terms = {t.name: asdict(t) for t in a.reservation.components}
    comps = sorted(att.components.values(), key=lambda c: (-c.proportional_bytes, c.name))
    return {
        "schema_version": SCHEMA_VERSION,
        "image": {"path": a.inventory.path, "bytes": a.inventory.file_bytes},
        "generator": a.summary.generator,
        "components": [component_row(c, terms.get(c.name)) for c in comps],
        "shared_libraries": [
            {
                "path": "/" + s.path,
                "page_rounded_bytes": s.page_rounded_bytes,
                "users": list(s.users),
                "share_bytes": round(s.page_rounded_bytes / len(s.users)),
            }
            for s in sorted(att.shared, key=lambda s: -s.page_rounded_bytes)
        ],
        "total": {
            "files": sum(c.files for c in comps) + len(att.shared),
            "bytes": att.total_bytes,
            "page_rounded_bytes": att.total_page_rounded_bytes,
            "proportional_bytes": round(sum(c.proportional_bytes for c in comps)),
            "compressed_bytes": a.inventory.image_bytes,
            "compressed_share_method": a.reservation.compressed_share_method,
        },
        "missing_libraries": missing(a),
        "warnings": warnings(a),
    }


def missing(a: Analysis) -> list[dict[str, str]]:
    """Libraries some executable needs that the image does not have: a broken initrd."""
    out = []
    seen = set()
    for f in a.elves:
        if not f.runs or f.error:
            continue
        for name, by in a.resolver.closure(f.path).missing:
            if (name, by) not in seen:
                seen.add((name, by))
                out.append({"name": name, "needed_by": "/" + by})
    return out


def warnings(a: Analysis) -> list[str]:
    out = [f"/{f.path}: {f.error}" for f in a.elves if f.error]
    out += [
        f"entry {s.name!r} is not created by the kernel: {s.reason}"
        for s in a.inventory.rootfs.skipped
    ]
    return out


def closure_dict(a: Analysis, closure: Closure) -> dict[str, Any]:
    facts = a.facts.get(closure.root)
    return {
        "schema_version": SCHEMA_VERSION,
        "path": "/" + closure.root,
        "facts": facts.as_dict() if facts else None,
        "needed": list(facts.needed) if facts else [],
        "closure": ["/" + o.path for o in closure.objects],
        "tree": [
            {
                "name": o.name,
                "path": "/" + o.path,
                "parent": "/" + o.parent if o.parent else None,
                "depth": o.depth,
                "bytes": a.facts[o.path].size if o.path in a.facts else 0,
            }
            for o in closure.objects
        ],
        "closure_bytes": sum(a.facts[o.path].size for o in closure.objects if o.path in a.facts),
        "missing": [{"name": n, "needed_by": "/" + by} for n, by in closure.missing],
    }


def profile_dict(a: Analysis) -> dict[str, Any]:
    doc = inspect_dict(a.inventory, a.summary, None)
    doc["kind"] = "profile"
    comps = components_dict(a)
    for key in ("components", "shared_libraries", "total", "missing_libraries", "warnings"):
        doc[key] = comps[key]
    res = asdict(a.reservation)
    res.pop("components")
    doc["reservation"] = res
    doc["elf"] = [f.as_dict() for f in a.elves]
    doc["kernel_modules"] = _kind_summary(a, lambda p: is_module(p))
    doc["firmware"] = _kind_summary(
        a, lambda p: "lib/firmware/" in p or p.startswith("kernel/x86/microcode/")
    )
    att = a.attribution
    assert att is not None
    files = []
    for inode, node in a.inventory.rootfs.inodes().values():
        files.append(
            {
                "path": "/" + node.path,
                "bytes": inode.size,
                "component": att.owner.get(node.path, "other"),
            }
        )
    doc["files"] = sorted(files, key=lambda f: f["path"])
    return doc


def profile_json(a: Analysis) -> str:
    """The profile as `profile -o` and `baseline` save it."""
    return json.dumps(profile_dict(a), indent=1) + "\n"


def _kind_summary(a: Analysis, match: Any) -> dict[str, int]:
    """Count and bytes of the files `match` recognises (kernel modules, firmware)."""
    files = [inode.size for inode, node in a.inventory.rootfs.inodes().values() if match(node.path)]
    return {"files": len(files), "bytes": sum(files)}


def components_text(doc: dict[str, Any], width: int = 100) -> str:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=width, file=io.StringIO(), record=True, no_color=True, highlight=False)
    t = doc["total"]
    console.print(
        f"{doc['image']['path']}: {human(t['page_rounded_bytes'])} page-rounded in "
        f"{t['files']} files, {human(t['compressed_bytes'])} compressed; generator "
        f"{doc['generator']}"
    )
    console.print()
    table = Table(show_edge=False, box=None, pad_edge=False)
    for col in (
        "component",
        "files",
        "own+excl",
        "shared",
        "proport.",
        "marginal",
        "+compr.",
        "tmpfs",
    ):
        name = col == "component"
        table.add_column(col, justify="left" if name else "right", no_wrap=name)
    for c in doc["components"]:
        table.add_row(
            c["name"],
            str(c["files"]),
            human(c["page_rounded_bytes"]),
            human(c["shared_bytes"]),
            human(c["proportional_bytes"]),
            human(c["marginal_bytes"]),
            human(c.get("compressed_share_bytes", 0)),
            human(c.get("tmpfs_floor_bytes", 0)),
        )
    console.print(table)
    console.print()
    console.print(
        "own+excl = own files and the libraries only it loads; shared = the shared "
        "libraries it loads, whole; proport. = own+excl plus an equal share of each shared "
        "library (these add up to the total); marginal = what removing it would save; "
        "+compr. = its share of the compressed image held during unpack "
        f"({t['compressed_share_method']}); tmpfs = the RAM floor with a tmpfs rootfs "
        "(2 x proport.)."
    )
    if doc["shared_libraries"]:
        console.print()
        shared = Table(show_edge=False, box=None, pad_edge=False)
        shared.add_column("shared library")
        shared.add_column("size", justify="right")
        shared.add_column("users")
        for s in doc["shared_libraries"][:15]:
            shared.add_row(s["path"], human(s["page_rounded_bytes"]), ", ".join(s["users"]))
        console.print(shared)
    for m in doc["missing_libraries"]:
        console.print(f"warning: {m['needed_by']} needs {m['name']}, which the image lacks")
    for w in doc["warnings"]:
        console.print(f"warning: {w}")
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"


def closure_text(doc: dict[str, Any]) -> str:
    lines = []
    facts = doc["facts"] or {}
    lines.append(
        f"{doc['path']}: {facts.get('kind', 'not an ELF')}, {human(facts.get('size', 0))}"
        + (f", interpreter {facts['interpreter']}" if facts.get("interpreter") else "")
    )
    if facts:
        sections = ", ".join(f"{k} {human(v)}" for k, v in facts["sections"].items())
        lines.append(
            f"  PT_LOAD {human(facts['load_file_bytes'])} in file, "
            f"{human(facts['load_mem_bytes'])} in memory; {sections}"
        )
        extra = []
        if facts.get("soname"):
            extra.append(f"SONAME {facts['soname']}")
        if facts.get("runpath"):
            extra.append(f"RUNPATH {':'.join(facts['runpath'])}")
        if facts.get("rpath"):
            extra.append(f"RPATH {':'.join(facts['rpath'])}")
        if facts.get("package"):
            extra.append(
                f"package {facts['package'].get('name')} {facts['package'].get('version', '')}"
            )
        if facts.get("debug"):
            extra.append("has debug sections")
        if facts.get("dlopen"):
            extra.append(f"dlopen: {', '.join(facts['dlopen'])}")
        if extra:
            lines.append("  " + "; ".join(extra))
    lines.append(f"closure: {len(doc['closure'])} objects, {human(doc['closure_bytes'])}")
    for node in doc["tree"]:
        indent = "  " * node["depth"]
        lines.append(f"{human(node['bytes']):>10}  {indent}{node['name']} => {node['path']}")
    for m in doc["missing"]:
        lines.append(f"   missing  {m['name']} (needed by {m['needed_by']})")
    return "\n".join(lines) + "\n"


def groups_text(doc: dict[str, Any], top: int = 40) -> str:
    lines = [
        f"{doc['image']['path']}: by {doc['by']}, "
        f"{human(doc['total']['page_rounded_bytes'])} page-rounded in "
        f"{doc['total']['files']} files"
    ]
    for g in doc["groups"][:top]:
        extra = f"  ({g['component']})" if "component" in g else ""
        lines.append(f"{human(g['page_rounded_bytes']):>10} {g['files']:>6}  {g['name']}{extra}")
    if len(doc["groups"]) > top:
        lines.append(f"… {len(doc['groups']) - top} more (--json lists them all)")
    return "\n".join(lines) + "\n"
