"""`footprint merge`: result documents from many machines (CI matrix jobs) as one `matrix`.

Each cell is one calibration, boot, measurement or profile document as it was written, with
its axes read from it (arch, kernel release, image, mode, machine shape or cgroup limit).
Merging checks that the documents can stand side by side: one schema version, no two cells on
the same axes, and one image (and one kernel) per name and architecture. A matrix merges like
its documents (merge of merges).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from footprint import __version__
from footprint.errors import BadDocument, MergeConflict, UsageError
from footprint.schemas import SCHEMA_VERSION, header, read_json
from footprint.subject import of_document
from footprint.units import MIB

KIND = "matrix"
RESULTS = ("calibration", "boot", "profile", "measurement")  # what a cell holds
AXES = ("arch", "kernel", "image", "mode", "ram_mib", "cpus", "limit_mib", "shape")


@dataclass(frozen=True)
class Cell:
    """One document of the matrix, with where it came from and what it is of."""

    source: str  # the file it was read from (through any merges)
    axes: dict[str, Any]
    image_sha256: str
    kernel_memory_mib: float
    document: dict[str, Any]

    @property
    def key(self) -> tuple[Any, ...]:
        """What makes two cells the same cell: the kind of result and every axis."""
        return (self.document["kind"], *(self.axes[a] for a in AXES))

    @property
    def label(self) -> str:
        """The cell as a report row and a check's verdict name it."""
        a = self.axes
        parts = [a["arch"] or "?", a["kernel"] or "no kernel", a["image"], a["mode"]]
        if a["shape"]:
            parts.append(a["shape"])
        elif a["ram_mib"] is not None:
            parts.append(f"{a['ram_mib']}M")
        elif a["limit_mib"] is not None:
            parts.append(f"limit {a['limit_mib']}M")
        return " ".join(parts)


def mode_of(doc: dict[str, Any]) -> str:
    """How the result was measured: direct (QEMU -m), kdump (crashkernel=, kexec -p after a
    panic), cgroup (`measure`: the userspace under a memory cgroup) or profile (static)."""
    if doc["kind"] == "profile":
        return "profile"
    if doc["kind"] == "measurement":
        return "cgroup"
    if doc["kind"] == "calibration":
        return "kdump" if doc.get("kdump") else "direct"
    return "kdump" if doc.get("backend") == "kdump" else "direct"


def shape_of(doc: dict[str, Any]) -> tuple[int | None, int | None, str | None]:
    """A calibration's machine shapes (RAM, CPUs, label: with several, RAM and CPUs are None
    and the label lists them all); a boot's -m."""
    shapes = doc.get("shapes") or []
    if len(shapes) == 1:
        return shapes[0]["ram_mib"], shapes[0]["cpus"], shapes[0]["label"]
    if shapes:
        return None, None, ",".join(s["label"] for s in shapes)
    if doc["kind"] == "boot":
        return doc["memory_mib"], None, None
    return None, None, None


def limit_of(doc: dict[str, Any]) -> int | None:
    """A cgroup measurement's limit (MiB); None for a bisection, whose limit is its result."""
    if doc["kind"] != "measurement" or "bisect" in doc or doc.get("limit_bytes") is None:
        return None
    return int(doc["limit_bytes"] // MIB)


def cell_of(doc: Any, source: str) -> Cell:
    """The cell of one result document; BadDocument if it is not one merge can place."""
    if not isinstance(doc, dict) or doc.get("kind") not in RESULTS:
        kind = doc.get("kind") if isinstance(doc, dict) else None
        raise BadDocument(
            f"{source} is not a result footprint merges (a kind {kind!r} document; "
            f"merge takes {', '.join(RESULTS)}, kernels and {KIND} documents)"
        )
    subject = of_document(doc)
    if subject is None:
        raise BadDocument(
            f"{source} does not say which image and kernel it is of (made by an older "
            "footprint?): make it again with this one"
        )
    ram, cpus, shape = shape_of(doc)
    image, kernel = subject["image"], subject["kernel"]
    axes = {
        "arch": subject["arch"],
        "kernel": kernel["release"],
        "image": os.path.basename(image["path"]),
        "mode": mode_of(doc),
        "ram_mib": ram,
        "cpus": cpus,
        "limit_mib": limit_of(doc),
        "shape": shape,
    }
    return Cell(source, axes, image["sha256"], kernel["memory_mib"], doc)


def _version(doc: Any, source: str) -> None:
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if version != SCHEMA_VERSION:
        raise MergeConflict(
            f"{source} has schema_version {version!r}, not {SCHEMA_VERSION} as this footprint "
            "writes: merge documents made by one version (make it again with this footprint)"
        )


def cells_of(doc: Any, source: str) -> list[Cell]:
    """The cells of one input: a result document's one, a matrix's every cell, or the
    calibration of every kernel of `calibrate` with several --kernel (kind `kernels`)."""
    _version(doc, source)
    if doc.get("kind") == "kernels" and isinstance(doc.get("calibrations"), list):
        kernels = []
        for i, c in enumerate(doc["calibrations"]):
            _version(c, f"{source} kernel {i}")
            kernels.append(cell_of(c, f"{source} kernel {i}"))
        return kernels
    if doc.get("kind") != KIND:
        return [cell_of(doc, source)]
    cells = doc.get("cells")
    if not isinstance(cells, list):
        raise BadDocument(f"{source} is a matrix without cells")
    out = []
    for i, c in enumerate(cells):
        where = c.get("source", f"{source} cell {i}") if isinstance(c, dict) else source
        inner = c.get("document") if isinstance(c, dict) else None
        _version(inner, where)
        out.append(cell_of(inner, where))
    return out


def merge(cells: Iterable[Cell]) -> list[Cell]:
    """The cells, each once, in axis order; MergeConflict (exit 5) on the first two that
    cannot stand side by side."""
    seen: dict[tuple[Any, ...], Cell] = {}
    images: dict[tuple[str, str], Cell] = {}
    kernels: dict[tuple[str, str], Cell] = {}
    for c in cells:
        a = c.axes
        arch = a["arch"] or "arch unknown"
        first = images.setdefault((a["arch"], a["image"]), c)
        if first.image_sha256 != c.image_sha256:
            raise MergeConflict(
                f"{c.source} and {first.source} name one image, {a['image']} ({arch}), but "
                f"hold different ones (sha256 {c.image_sha256[:12]}… and "
                f"{first.image_sha256[:12]}…): rename one, or calibrate the same image"
            )
        if a["kernel"]:
            k = kernels.setdefault((a["arch"], a["kernel"]), c)
            if k.kernel_memory_mib != c.kernel_memory_mib:
                raise MergeConflict(
                    f"{c.source} and {k.source} name one kernel, {a['kernel']} ({arch}), but "
                    f"booted different ones ({c.kernel_memory_mib} and "
                    f"{k.kernel_memory_mib} MiB of memory): one release, one kernel"
                )
        if c.key in seen:
            raise MergeConflict(
                f"{c.source} and {seen[c.key].source} are the same cell ({c.label}): "
                "merge each result once"
            )
        seen[c.key] = c
    return sorted(seen.values(), key=_order)


def _order(c: Cell) -> tuple[Any, ...]:
    return tuple((v is None, v if v is not None else 0) for v in c.axes.values())


def result_of(c: Cell) -> dict[str, Any]:
    """The figures a report row shows and a check gates, as the document gives them."""
    d = c.document
    out: dict[str, Any] = {
        "success": True,
        "minimum_mib": None,
        "recommended_mib": None,
        "peak_mib": None,
        "estimate_mib": None,
    }
    if d["kind"] == "calibration":
        k = d.get("kdump") or d
        out["minimum_mib"], out["recommended_mib"] = k["minimum_mib"], k["recommended_mib"]
        out["success"] = d["minimum_mib"] is not None and k["minimum_mib"] is not None
    elif d["kind"] == "boot":
        out["success"] = d["success"]
        out["peak_mib"] = round(d["peak_bytes"] / MIB, 1)
    elif d["kind"] == "measurement":
        if "bisect" in d:
            m = d["minimum_bytes"]
            out["success"] = m is not None
            out["minimum_mib"] = m // MIB if m is not None else None
        else:
            out["success"] = d["success"]
        if d.get("peak_bytes") is not None:
            out["peak_mib"] = round(d["peak_bytes"] / MIB, 1)
    else:
        r = d["reservation"]
        out["estimate_mib"] = round(r["static_estimate_bytes"] / MIB, 1)
        predicted = r.get("predicted_crashkernel_bytes")
        out["recommended_mib"] = round(predicted / MIB, 1) if predicted is not None else None
    return out


def matrix_dict(cells: list[Cell]) -> dict[str, Any]:
    by = {a: sorted({c.axes[a] for c in cells if c.axes[a] is not None}) for a in AXES}
    return {
        **header(KIND),
        "tool": f"footprint {__version__}",
        "axes": {a: v for a, v in by.items() if v},
        "cells": [
            {
                "label": c.label,
                "source": c.source,
                "axes": c.axes,
                "image_sha256": c.image_sha256,
                "result": result_of(c),
                "document": c.document,
            }
            for c in cells
        ],
    }


def merge_files(paths: Iterable[str], output: str | None = None) -> dict[str, Any]:
    """`footprint merge PATH… -o OUTPUT` as a matrix document (writing it is the CLI's)."""
    paths = list(paths)
    if output not in (None, "-"):
        out = os.path.realpath(output)
        for p in paths:
            if os.path.realpath(p) == out:
                raise UsageError(f"-o {output} is one of the inputs: write the matrix elsewhere")
    return matrix_dict(merge(c for p in paths for c in cells_of(read_json(p, "result"), p)))


def matrix_json(doc: dict[str, Any]) -> str:
    """The matrix as compact JSON text: msgspec's encoder (json's with an indent took 0.33 s
    of 0.48 for 1,000 calibrations), json_text's where a name holds bytes that are not UTF-8."""
    import msgspec

    try:
        return msgspec.json.encode(doc).decode() + "\n"
    except UnicodeEncodeError:
        from footprint.paths import json_text

        return json_text(doc, indent=None) + "\n"


def load_matrix(path: str) -> dict[str, Any] | None:
    """The matrix at `path`, its cells checked as merge checks them; None if `path` holds
    something else (an image, a profile)."""
    from footprint.profile import is_document

    if not is_document(path):
        return None
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        return None
    return matrix_dict(merge(cells_of(doc, path)))
