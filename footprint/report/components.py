"""`components` and `elf` as JSON documents and as text.

The components document is a view of the Profile (footprint.profile), so a saved profile
renders exactly as the image it was made from.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from footprint.analyze import Analysis
from footprint.components.groupings import Grouping
from footprint.elf.resolve import Closure
from footprint.profile import Profile
from footprint.report.text import columns, prose, shown
from footprint.schemas import header
from footprint.units import human


def components_dict(p: Profile, suggest: bool = False) -> dict[str, Any]:
    """The components document; with `suggest`, what a capture kernel does without."""
    extra: dict[str, Any] = {}
    if suggest:
        from footprint.components.suggest import suggestions

        extra["suggestions"] = [asdict(s) for s in suggestions(p)]
    return {
        **header("components"),
        "image": asdict(p.image),
        "generator": p.generator,
        "components": [asdict(c) for c in p.components],
        "shared_libraries": [asdict(s) for s in p.shared_libraries],
        "total": asdict(p.total),
        "missing_libraries": [asdict(m) for m in p.missing_libraries],
        "warnings": list(p.warnings),
        **extra,
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
        "package_sources": [asdict(s) for s in g.sources],
        "warnings": list(g.warnings),
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


# components --sort: the key of each choice, largest first (name: alphabetical).
SORTS = {
    "proportional": "proportional_bytes",
    "marginal": "marginal_bytes",
    "own": "page_rounded_bytes",
    "shared": "shared_bytes",
    "compressed": "compressed_share_bytes",
    "files": "files",
    "name": "name",
}
COMPONENT_NOTE = (
    "own+excl = own files and the "
    "libraries only it loads; shared = the shared libraries it loads, whole; proport. = "
    "own+excl plus an equal share of each shared library (these add up to the total); "
    "marginal = what removing it would save; +compr. = its share of the compressed image held "
    "during unpack ({method}); tmpfs = the RAM floor with a tmpfs rootfs (2 x proport.)."
)


INNER_NOTE = (
    "inner = the part of proport. inside the image's squashfs/erofs root (path "
    "IMAGE//PATH), counted unpacked: in the page cache only when the boot reads it; in rootfs "
    "it is held compressed, as the image file, so +compr. and tmpfs count it at the image's "
    "ratio (image file / unpacked bytes inside)."
)


def components_text(doc: dict[str, Any], sort: str = "proportional", top: int = 0) -> str:
    """Every component (or the `top` first by `sort`), a total row, then the shared
    libraries; names and paths are never cut, in a terminal or a pipe."""
    t = doc["total"]
    lines = [
        f"{doc['image']['path']}: {human(t['page_rounded_bytes'])} page-rounded in "
        f"{t['files']} files (each inode once), {human(t['compressed_bytes'])} compressed; "
        "generator "
        f"{doc['generator']}",
        "",
    ]
    key = SORTS[sort]
    comps = sorted(
        doc["components"],
        key=lambda c: c["name"] if key == "name" else (-c.get(key, 0), c["name"]),
    )
    n, more = shown(comps, top)
    inner = any(c.get("inner_bytes") for c in comps)  # an image with a squashfs/erofs root
    rows = [
        [
            c["name"],
            str(c["files"]),
            human(c["page_rounded_bytes"]),
            human(c["shared_bytes"]),
            human(c["proportional_bytes"]),
            human(c["marginal_bytes"]),
            human(c.get("compressed_share_bytes", 0)),
            human(c.get("tmpfs_floor_bytes", 0)),
        ]
        + ([human(c.get("inner_bytes", 0))] if inner else [])
        for c in comps[:n]
    ]
    rows.append(
        [
            f"total ({len(comps)} components)",
            str(t["files"]),
            "",
            "",
            human(t["proportional_bytes"]),
            "",
            human(t["compressed_bytes"]),
            # with an inner image, the floors count its files at the image's ratio
            human(sum(c.get("tmpfs_floor_bytes", 0) for c in comps))
            if inner
            else human(2 * t["proportional_bytes"]),
        ]
        + ([human(sum(c.get("inner_bytes", 0) for c in comps))] if inner else [])
    )
    heads: tuple[str, ...] = (
        "component", "files", "own+excl", "shared", "proport.", "marginal", "+compr.", "tmpfs",
    )  # fmt: skip
    heads = (*heads, "inner") if inner else heads
    table = columns(heads, "<>>>>>>>" + (">" if inner else ""), rows)
    lines += table[:-1] + ([more] if more else []) + table[-1:]  # the total row last
    lines += [""] + prose(COMPONENT_NOTE.format(method=t["compressed_share_method"]))
    if inner:
        lines += prose(INNER_NOTE)
    libraries = doc["shared_libraries"]
    if libraries:
        n, more = shown(libraries, top)
        rows = [
            [human(s["page_rounded_bytes"]), s["path"], ", ".join(s["users"])]
            for s in libraries[:n]
        ]
        lines += [""] + columns(("size", "shared library", "users"), "><<", rows)
        lines += [more] if more else []
    lines += [
        f"warning: {m['needed_by']} needs {m['name']}, which the image lacks"
        for m in doc["missing_libraries"]
    ]
    if "suggestions" in doc:
        lines += ["", "what a capture kernel dumping to a local disk does without:"]
        rows = [
            [human(s["marginal_bytes"]), " + ".join(s["components"]), s["reason"]]
            for s in doc["suggestions"]
        ]
        lines += columns(("saves", "drop", "why"), "><<", rows) if rows else ["  nothing"]
        if rows:
            lines += prose(SUGGEST_NOTE)
    lines += [f"warning: {w}" for w in doc["warnings"]]
    return "\n".join(lines) + "\n"


SUGGEST_NOTE = (
    "Marginal bytes of the model; `footprint calibrate IMAGE --without NAME` (repeatable) "
    "measures what removing them really saves."
)


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


def groups_text(doc: dict[str, Any], top: int = 0) -> str:
    """Every group (or the `top` first), largest first; by file: its package and component."""
    lines = [
        f"{doc['image']['path']}: by {doc['by']}, "
        f"{human(doc['total']['page_rounded_bytes'])} page-rounded in "
        f"{doc['total']['files']} files (each inode once)"
    ]
    for s in doc.get("package_sources", []):
        if not s["files"] and not s["where"]:
            continue  # what the image carries, and nothing of it here
        where = f" {s['where']}" if s["where"] else ""
        lines.append(
            f"packages from {s['name']}{where}: {s['files']} files, "
            f"{human(s['page_rounded_bytes'])} ({s['reason']})"
        )
    n, more = shown(doc["groups"], top)
    rows = doc["groups"][:n]
    width = max((len(g.get("package", "-")) for g in rows if "component" in g), default=0)
    for g in rows:
        if "component" in g:  # by file: its package, then the path and its component
            package = g.get("package", "-")
            extra = f"{package:<{width}}  {g['name']}  ({g['component']})"
        else:
            extra = g["name"]
        lines.append(f"{human(g['page_rounded_bytes']):>10} {g['files']:>6}  {extra}")
    lines += [more] if more else []
    for w in doc.get("warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(lines) + "\n"


def reservation_line(p: Profile) -> str:
    """The reservation's figures in one line, for `profile -o`'s note."""
    r = p.reservation
    line = f"static estimate {r.static_estimate_bytes >> 20} MiB"
    if r.inner_working_set_bytes:
        line += (
            f" (of which {r.inner_working_set_bytes >> 20} MiB is the page cache of what the "
            f"boot reads from the inner root image, an estimate: its init, its units' programs "
            f"and their libraries; the image itself, {r.inner_image_bytes >> 20} MiB, is rootfs)"
        )
    line += f", kdumpctl formula {r.kdumpctl_formula_bytes >> 20} MiB"
    if r.prediction is not None and r.prediction.basis == "kernel-profile":
        line += (
            f", predicted crashkernel {(r.predicted_crashkernel_bytes or 0) >> 20} MiB "
            f"(recommended {r.prediction.recommended_crashkernel})"
        )
    return line
