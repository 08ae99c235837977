"""Component rules: ordered (pattern → component) data, first match wins.

The built-in rules are footprint/components/rules.toml; a user's --rules file has the same
form and goes before them, so it can add components or take files from built-in ones.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any

from footprint.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

GENERATOR = "{generator}"  # a rule name replaced by the image's generator (dracut, …)


@dataclass(frozen=True)
class Rule:
    name: str
    patterns: tuple[str, ...]
    source: str  # "built-in" or the user's file


class Rules:
    """Compiled rules: owner(path) is the first rule matching the path (usr/ optional)."""

    def __init__(self, rules: list[Rule], generator: str = "unknown") -> None:
        self.rules = [
            Rule(generator if r.name == GENERATOR else r.name, r.patterns, r.source) for r in rules
        ]
        parts = []
        for i, rule in enumerate(self.rules):
            alts = [
                p[3:] if p.startswith("re:") else fnmatch.translate(p)[4:-3] for p in rule.patterns
            ]
            parts.append(f"(?P<r{i}>{'|'.join(alts)})")
        try:
            self._regex = re.compile("|".join(parts), re.DOTALL)
        except re.error as e:
            raise UsageError(f"a component rule has a bad pattern: {e}") from None

    def index(self, path: str) -> int | None:
        """Index of the first rule matching `path` (or `path` without its usr/ prefix)."""
        best = None
        for candidate in (path, path[4:] if path.startswith("usr/") else None):
            if candidate is None:
                continue
            m = self._regex.fullmatch(candidate)
            if m is not None and m.lastgroup is not None:
                i = int(m.lastgroup[1:])
                best = i if best is None else min(best, i)
        return best


def _parse(text: str, source: str) -> list[Rule]:
    try:
        doc: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{source}: not valid TOML: {e}") from None
    rules = []
    for i, item in enumerate(doc.get("component", [])):
        name, patterns = item.get("name"), item.get("patterns")
        if not isinstance(name, str) or not name:
            raise UsageError(f"{source}: component #{i + 1} needs a name")
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise UsageError(f"{source}: component {name!r} needs a list of patterns")
        rules.append(Rule(name, tuple(p.lstrip("/") for p in patterns), source))
    return rules


def builtin_rules() -> list[Rule]:
    text = resources.files("footprint.components").joinpath("rules.toml").read_text()
    return _parse(text, "built-in")


def load_rules(
    user_file: str | None = None, generator: str = "unknown", extra: list[Rule] | None = None
) -> Rules:
    """User rules, then `extra` (e.g. dracut modules), then the built-in rules."""
    rules = (extra or []) + builtin_rules()
    if user_file:
        try:
            with open(user_file, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise UsageError(f"cannot read rules {user_file}: {e.strerror}") from None
        rules = _parse(text, user_file) + rules
    rules.append(Rule(GENERATOR, ("init",), "built-in"))
    return Rules(rules, generator)
