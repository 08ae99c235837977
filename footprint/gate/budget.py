"""Budgets: absolute limits and limits relative to a baseline, with a verdict per line.

The budget file (TOML):

    [budget]
    mode = "enforce"          # or "report": verdicts are shown, the exit code stays 0

    [limits]                  # absolute; sizes as bytes or "40M", "1.5G"
    compressed_bytes = "40M"
    unpacked_bytes = "140M"
    page_rounded_bytes = "150M"
    static_estimate_bytes = "350M"
    warn_percent = 95         # warn above this share of a limit (default 100: never)

    [limits.components]       # a component's proportional bytes
    udev = "8M"

    [baseline]                # with --baseline PROFILE
    warn_percent = 2
    error_percent = 5
    min_change = "256K"       # changes smaller than this never warn nor fail
    components = true         # compare every component too
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from footprint import units
from footprint.errors import UsageError
from footprint.gate.diff import component_bytes, totals_of
from footprint.profile import Profile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

PASS, WARN, FAIL = "pass", "warn", "fail"
METRICS = ("compressed_bytes", "unpacked_bytes", "page_rounded_bytes", "static_estimate_bytes")


@dataclass(frozen=True)
class Verdict:
    name: str  # e.g. "limit compressed_bytes", "baseline component udev"
    status: str
    value: int
    threshold: int | None  # the limit, or the baseline value
    message: str


def parse_size(value: Any, where: str) -> int:
    try:
        return units.parse_size(value)
    except (ValueError, AttributeError):
        raise UsageError(
            f"budget: {where} = {value!r} is not a size (like 40M or 1048576)"
        ) from None


def load_budget(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            doc: dict[str, Any] = tomllib.load(f)
    except OSError as e:
        raise UsageError(f"cannot read budget {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"budget {path} is not valid TOML: {e}") from None
    known = {"budget", "limits", "baseline"}
    unknown = set(doc) - known
    if unknown:
        raise UsageError(
            f"budget {path}: unknown section(s) {sorted(unknown)}; expected {sorted(known)}"
        )
    mode = doc.get("budget", {}).get("mode", "enforce")
    if mode not in ("enforce", "report"):
        raise UsageError(f"budget {path}: mode must be 'enforce' or 'report', not {mode!r}")
    return doc


def _pct(new: int, old: int) -> float:
    return 100.0 * (new - old) / old if old else (100.0 if new else 0.0)


def evaluate(
    budget: dict[str, Any], profile: Profile, baseline: Profile | None = None
) -> list[Verdict]:
    verdicts: list[Verdict] = []
    totals = totals_of(profile)
    comps = component_bytes(profile)
    limits = budget.get("limits", {})
    warn_at = float(limits.get("warn_percent", 100))
    for key, raw in limits.items():
        if key in ("components", "warn_percent"):
            continue
        if key not in METRICS:
            raise UsageError(f"budget: unknown limit {key!r}; known: {', '.join(METRICS)}")
        verdicts.append(_limit(f"limit {key}", totals[key], parse_size(raw, key), warn_at))
    for name, raw in limits.get("components", {}).items():
        limit = parse_size(raw, f"components.{name}")
        verdicts.append(_limit(f"limit component {name}", comps.get(name, 0), limit, warn_at))
    base = budget.get("baseline")
    if base is not None and baseline is None:
        raise UsageError("the budget has a [baseline] section: pass --baseline PROFILE")
    if base is not None and baseline is not None:
        warn_pct = float(base.get("warn_percent", 2))
        error_pct = float(base.get("error_percent", 5))
        floor = parse_size(base.get("min_change", 0), "baseline.min_change")
        old_totals = totals_of(baseline)
        for key in base.get("metrics", METRICS):
            verdicts.append(
                _relative(
                    f"baseline {key}", totals[key], old_totals[key], warn_pct, error_pct, floor
                )
            )
        if base.get("components", True):
            old_comps = component_bytes(baseline)
            for name in sorted(set(comps) | set(old_comps)):
                verdicts.append(
                    _relative(
                        f"baseline component {name}",
                        comps.get(name, 0),
                        old_comps.get(name, 0),
                        warn_pct,
                        error_pct,
                        floor,
                    )
                )
    return verdicts


def _limit(name: str, value: int, limit: int, warn_at: float) -> Verdict:
    share = 100.0 * value / limit if limit else float("inf")
    if value > limit:
        return Verdict(name, FAIL, value, limit, f"{value} > limit {limit} ({share:.1f} %)")
    if share > warn_at:
        return Verdict(name, WARN, value, limit, f"{value} is {share:.1f} % of limit {limit}")
    return Verdict(name, PASS, value, limit, f"{value} <= limit {limit} ({share:.1f} %)")


def _relative(
    name: str, new: int, old: int, warn_pct: float, error_pct: float, floor: int
) -> Verdict:
    change = new - old
    pct = _pct(new, old)
    text = f"{old} -> {new} ({change:+d} bytes, {pct:+.2f} %)"
    if abs(change) < floor or change <= 0:
        return Verdict(name, PASS, new, old, text)
    if pct > error_pct:
        return Verdict(name, FAIL, new, old, f"{text} > {error_pct:g} %")
    if pct > warn_pct:
        return Verdict(name, WARN, new, old, f"{text} > {warn_pct:g} %")
    return Verdict(name, PASS, new, old, text)


def failed(verdicts: list[Verdict], budget: dict[str, Any]) -> bool:
    if budget.get("budget", {}).get("mode", "enforce") == "report":
        return False
    return any(v.status == FAIL for v in verdicts)
