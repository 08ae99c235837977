"""Either side of a diff or a check: a saved profile (JSON) or an image, analysed now."""

from __future__ import annotations

import json
from typing import Any

from footprint.errors import UsageError


def load_profile(path: str, rules_file: str | None = None, page_size: int = 4096) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            head = f.read(1).lstrip()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    if head == b"{":
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (ValueError, UnicodeDecodeError) as e:
            raise UsageError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(doc, dict) or doc.get("kind") != "profile":
            raise UsageError(
                f"{path} is JSON but not a footprint profile "
                "(make one with `footprint profile IMAGE -o profile.json`)"
            )
        if doc.get("schema_version") != 1:
            raise UsageError(
                f"{path} has schema_version {doc.get('schema_version')}; this "
                "footprint reads version 1"
            )
        return doc
    from footprint.analyze import analyze
    from footprint.report.components import profile_dict

    return profile_dict(analyze(path, page_size=page_size, rules_file=rules_file))
