"""The JSON documents footprint prints: their schema version, and one JSON Schema (draft
2020-12) per `kind`, shipped in the package so that users can validate what they consume."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

SCHEMA_VERSION = 1


def header(kind: str) -> dict[str, Any]:
    """The first keys of every document: what it is and which version of its schema."""
    return {"schema_version": SCHEMA_VERSION, "kind": kind}


@cache
def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of documents of `kind` (e.g. "profile")."""
    from importlib import resources  # ~7 ms: not for every command that prints a document

    text = resources.files(__name__).joinpath(f"{kind}.schema.json").read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc
