"""Shared fixtures: the committed samples, the real images, and the skip policy.

Set FOOTPRINT_REQUIRE_INTEGRATION=1 (CI does) to turn a missing real image or tool into a
failure instead of a skip, so CI cannot pass by skipping.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_initrds"
REAL = Path(os.environ.get("FOOTPRINT_REAL_IMAGES", SAMPLES / "real"))
EXPECTED = json.loads((SAMPLES / "expected.json").read_text())


def need(condition: object, reason: str) -> None:
    """Skip unless `condition`; a failure instead when integration is required."""
    if condition:
        return
    if os.environ.get("FOOTPRINT_REQUIRE_INTEGRATION"):
        pytest.fail(f"required for integration: {reason}")
    pytest.skip(reason)


def real_image(name: str) -> Path:
    path = REAL / name
    need(path.exists(), f"{path} is missing: run `make samples-real` (root, Debian packages)")
    return path


def need_tool(tool: str, package: str) -> str:
    found = shutil.which(tool)
    need(found, f"{tool} is not installed (Debian package {package})")
    assert found
    return found


@pytest.fixture
def expected() -> dict:
    return EXPECTED


def assert_schema(doc: dict) -> None:
    """`doc` carries its kind and schema_version and validates against the shipped schema."""
    import jsonschema

    from footprint.schemas import SCHEMA_VERSION, schema

    assert doc.get("schema_version") == SCHEMA_VERSION, doc.get("schema_version")
    assert isinstance(doc.get("kind"), str), "document without a kind"
    jsonschema.Draft202012Validator(schema(doc["kind"])).validate(doc)
