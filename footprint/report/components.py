"""`components` and `elf` as JSON documents and as text.

The components document is a view of the Profile (footprint.profile), so a saved profile
renders exactly as the image it was made from.
"""

from __future__ import annotations

import io
from dataclasses import asdict
from typing import Any

from footprint.analyze import Analysis
from footprint.components.groupings import Grouping
from footprint.elf.resolve import Closure
from footprint.profile import Profile
from footprint.schemas import header
from footprint.units import human


def components_dict(p: Profile) -> dict[str, Any]:
    return {
        **header("components"),
        "image": asdict(p.image),
        "generator": p.generator,
        "components": [asdict(c) for c in p.components],
        "shared_libraries": [asdict(s) for s in p.shared_libraries],
        "total": asdict(p.total),
        "missing_libraries": [asdict(m) for m in p.missing_libraries],
        "warnings": list(p.warnings),
    }


def groups_dict(g: Grouping) -> dict[str, Any]:
    groups = [{k: v for k, v in asdict(x).items() if v is not None} for x in g.groups]
    return {
        **header("groups"),
        "image": asdict(g.image),
        "by": g.by,
        "groups": groups,
        "total": {
            "files": g.files,
            "bytes": sum(x.bytes for x in g.groups),
            "page_rounded_bytes": sum(x.page_rounded_bytes for x in g.groups),
        },
    }


def closure_dict(a: Analysis, closure: Closure) -> dict[str, Any]:
    facts = a.facts.get(closure.root)
    return {
        **header("elf"),
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
