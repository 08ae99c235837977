"""The JSON documents footprint prints: their schema version, one JSON Schema (draft 2020-12)
per `kind`, shipped in the package so that users can validate what they consume, and the two
ways between typed records (frozen dataclasses) and plain JSON values."""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import Any, Final, TypeVar

from footprint.errors import BadDocument, UsageError

T = TypeVar("T")

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
    "kernels",
    "kernel-profile",
    "matrix",
)
TYPED = {kind: "footprint.profile" for kind in ("profile", "inspect", "components")}
TYPED["kernel-profile"] = "footprint.model.kernel_profile"


def header(kind: str) -> dict[str, Any]:
    """The first keys of every document: what it is and which version of its schema."""
    return {"schema_version": SCHEMA_VERSION, "kind": kind}


@cache
def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of documents of `kind` (e.g. "profile")."""
    if kind in TYPED:
        made: dict[str, Any] = import_module(TYPED[kind]).json_schema(kind)
        return made
    import json
    from importlib import resources  # ~7 ms: not for every command that prints a document

    text = resources.files(__name__).joinpath(f"{kind}.schema.json").read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def plain(record: Any) -> Any:
    """A typed record as plain JSON values (dicts, lists, str, numbers, None)."""
    import msgspec  # here: not on the way of commands that read no document (~7 ms)

    try:
        return msgspec.json.decode(msgspec.json.encode(record))
    except UnicodeEncodeError:  # a name with bytes that are not UTF-8: shown escaped
        return _shown(msgspec.to_builtins(record))


def _shown(value: Any) -> Any:
    from footprint.paths import shown

    if isinstance(value, str):
        return shown(value)
    if isinstance(value, dict):
        return {shown(k): _shown(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shown(v) for v in value]
    return value


def read_json(path: str, what: str = "") -> Any:
    """The JSON at `path`: UsageError if it cannot be read, BadDocument if it is not JSON."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UsageError(f"cannot read {what + ' ' if what else ''}{path}: {e.strerror}") from None
    return decode_json(data, path)


def decode_json(data: bytes, where: str) -> Any:
    import msgspec

    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as e:
        raise BadDocument(f"{where} is not valid JSON: {e}") from None


def document(doc: Any, where: str, kind: str, name: str, make: str) -> dict[str, Any]:
    """`doc` if it is a footprint document of `kind` at this SCHEMA_VERSION; else BadDocument
    saying it is not a `name` (make one with `make`), or which version it has."""
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        raise BadDocument(f"{where} is not a footprint {name} (make one with `{make}`)")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BadDocument(
            f"{where} has schema_version {version!r}; this footprint reads version {SCHEMA_VERSION}"
        )
    return doc


def typed(kind: type[T], doc: Any, where: str) -> T:
    """Plain JSON values as the record type `kind`, every field checked; BadDocument (one
    line, naming the key) if they are not one."""
    import msgspec

    try:
        return msgspec.convert(doc, type=kind)
    except msgspec.ValidationError as e:
        raise BadDocument(f"{where}: {e}") from None
