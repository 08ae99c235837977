"""The JSON documents footprint prints: their schema version, and one JSON Schema (draft
2020-12) per `kind`, shipped in the package so that users can validate what they consume."""

from __future__ import annotations

import json
from functools import cache
from importlib import import_module, resources
from typing import Any, Final

SCHEMA_VERSION: Final = 1
# Every kind of document; a typed document's schema is made from its types.
KINDS = (
    "inspect",
    "extract",
    "components",
    "groups",
    "elf",
    "profile",
    "diff",
    "check",
    "measurement",
    "boot",
    "calibration",
)
TYPED = {kind: "footprint.profile" for kind in ("profile", "inspect", "components")}


def header(kind: str) -> dict[str, Any]:
    """The first keys of every document: what it is and which version of its schema."""
    return {"schema_version": SCHEMA_VERSION, "kind": kind}


@cache
def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of documents of `kind` (e.g. "profile")."""
    if kind in TYPED:
        made: dict[str, Any] = import_module(TYPED[kind]).json_schema(kind)
        return made
    text = resources.files(__name__).joinpath(f"{kind}.schema.json").read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc
