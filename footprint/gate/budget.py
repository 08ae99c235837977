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

    recommended_bytes = "192M"  # a matrix's calibrations: the recommended crashkernel=

    [limits.components]       # a component's proportional bytes
    udev = "8M"

    [baseline]                # with --baseline PROFILE
    warn_percent = 2
    error_percent = 5
    min_change = "256K"       # changes smaller than this never warn nor fail
    components = true         # compare every component too
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

import msgspec

from footprint import units
from footprint.errors import UsageError
from footprint.gate.diff import compare, component_bytes, totals_of
from footprint.profile import Profile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

PASS, WARN, FAIL = "pass", "warn", "fail"
Metric = Literal[
    "compressed_bytes", "unpacked_bytes", "page_rounded_bytes", "static_estimate_bytes"
]
METRICS: tuple[Metric, ...] = (
    "compressed_bytes",
    "unpacked_bytes",
    "page_rounded_bytes",
    "static_estimate_bytes",
)
Size = Annotated[int, msgspec.Meta(ge=0)] | str  # bytes, or "40M", "1.5G"
Percent = Annotated[float, msgspec.Meta(ge=0)]


class _Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A budget table: its keys are exactly the fields below, each with its type."""


class Mode(_Table, frozen=True, forbid_unknown_fields=True):
    mode: Literal["enforce", "report"] = "enforce"


class Limits(_Table, frozen=True, forbid_unknown_fields=True):
    compressed_bytes: Size | None = None
    unpacked_bytes: Size | None = None
    page_rounded_bytes: Size | None = None
    static_estimate_bytes: Size | None = None
    warn_percent: Percent = 100.0  # warn above this share of a limit (100: never)
    components: dict[str, Size] = {}  # a component's proportional bytes
    recommended_bytes: Size | None = None  # a calibration's recommended crashkernel= (matrices)


class BaselineRules(_Table, frozen=True, forbid_unknown_fields=True):
    warn_percent: Percent = 2.0
    error_percent: Percent = 5.0
    min_change: Size = 0  # changes smaller than this never warn nor fail
    components: bool = True  # compare every component too
    metrics: tuple[Metric, ...] = METRICS


class Budget(_Table, frozen=True, forbid_unknown_fields=True):
    """A budget file, as read: every table and key checked, sizes in bytes once resolved."""

    budget: Mode = Mode()
    limits: Limits = Limits()
    baseline: BaselineRules | None = None

    @property
    def mode(self) -> str:
        return self.budget.mode


@dataclass(frozen=True)
class Verdict:
    name: str  # e.g. "limit compressed_bytes", "baseline component udev"
    status: str
    value: int
    threshold: int | None  # the limit, or the baseline value
    message: str


def size_of(value: int | str, where: str) -> int:
    try:
        return units.parse_size(value)
    except (ValueError, OverflowError) as e:
        why = str(e).removeprefix(f"{value!r} is ")
        if not why.startswith(("ambiguous", "negative")):
            why = "not a size"
        raise UsageError(
            f"budget: {where} = {value!r} is {why} (like 40M, 40MiB or 41943040)"
        ) from None


def load_budget(path: str) -> Budget:
    """The budget at `path`; UsageError (one line, naming the key) if it is not a valid one."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise UsageError(f"cannot read budget {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"budget {path} is not valid TOML: {e}") from None
    except UnicodeDecodeError as e:  # TOML is UTF-8
        raise UsageError(f"budget {path} is not UTF-8 text (at byte {e.start})") from None
    unknown = sorted(set(doc) - set(Budget.__struct_fields__))
    if unknown:
        raise UsageError(
            f"budget {path}: unknown section(s) {unknown}; expected "
            f"{sorted(Budget.__struct_fields__)}"
        )
    try:
        budget = msgspec.convert(doc, type=Budget)
    except msgspec.ValidationError as e:
        raise UsageError(f"budget {path}: {_where(e)}") from None
    for key in (*METRICS, "recommended_bytes", "warn_percent"):  # sizes, percentages: finite
        value = getattr(budget.limits, key)
        if isinstance(value, str):
            size_of(value, f"limits.{key}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"budget {path}: limits.{key} = {value} is not a number")
    for name, value in budget.limits.components.items():
        size_of(value, f"limits.components.{name}")
    if budget.limits.warn_percent > 100:
        raise UsageError(
            f"budget {path}: limits.warn_percent = {budget.limits.warn_percent:g} is above 100"
        )
    base = budget.baseline
    if base is not None:
        size_of(base.min_change, "baseline.min_change")
        for key in ("warn_percent", "error_percent"):
            if not math.isfinite(getattr(base, key)):
                raise UsageError(f"budget {path}: baseline.{key} is not a number")
        if base.warn_percent > base.error_percent:
            raise UsageError(
                f"budget {path}: baseline.warn_percent ({base.warn_percent:g}) is above "
                f"error_percent ({base.error_percent:g})"
            )
    has_limits = any(getattr(budget.limits, k) is not None for k in (*METRICS, "recommended_bytes"))
    if not (has_limits or budget.limits.components or base is not None):
        raise UsageError(
            f'budget {path} has no checks: add [limits] (e.g. compressed_bytes = "40M") or '
            "[baseline]"
        )
    return budget


def _where(e: msgspec.ValidationError) -> str:
    """msgspec's message with the key as a budget writes it: `$.limits.udev` -> limits.udev."""
    text = str(e).replace("Object contains unknown field", "unknown key")
    if " - at `$." in text:
        what, _, where = text.partition(" - at `$.")
        return f"{where.rstrip('`')}: {what}"
    return text


def _pct(new: int, old: int) -> float:
    return 100.0 * (new - old) / old if old else (100.0 if new else 0.0)


@dataclass(frozen=True)
class Evaluation:
    verdicts: list[Verdict]
    warnings: tuple[str, ...]  # what a verdict could not take into account


def evaluate(budget: Budget, profile: Profile, baseline: Profile | None = None) -> Evaluation:
    verdicts: list[Verdict] = []
    warnings: list[str] = []
    totals = totals_of(profile)
    comps = component_bytes(profile)
    limits = budget.limits
    for key in METRICS:
        raw = getattr(limits, key)
        if raw is not None:
            if key == "static_estimate_bytes" and not profile.basis.kernel:
                warnings.append(
                    "limit static_estimate_bytes: the profile has no kernel term, so the "
                    "estimate leaves out the kernel's own memory — give --kernel VMLINUZ"
                )
            limit = size_of(raw, f"limits.{key}")
            verdicts.append(_limit(f"limit {key}", totals[key], limit, limits.warn_percent))
    unknown = sorted(set(limits.components) - set(comps))
    if unknown:
        raise UsageError(
            f"budget: limits.components.{unknown[0]}: no component {unknown[0]!r} in "
            f"{profile.image.path} (its components: {', '.join(sorted(comps))})"
        )
    for name, raw in limits.components.items():
        limit = size_of(raw, f"limits.components.{name}")
        verdicts.append(
            _limit(f"limit component {name}", comps.get(name, 0), limit, limits.warn_percent)
        )
    base = budget.baseline
    if base is not None and baseline is None:
        raise UsageError("the budget has a [baseline] section: pass --baseline PROFILE")
    if base is not None and baseline is not None:
        floor = size_of(base.min_change, "baseline.min_change")
        old_totals = totals_of(baseline)
        comparison = compare(baseline, profile)
        warnings += comparison.warnings
        for key in (m for m in base.metrics if m not in comparison.left_out):
            verdicts.append(
                _relative(
                    f"baseline {key}",
                    totals[key],
                    old_totals[key],
                    base.warn_percent,
                    base.error_percent,
                    floor,
                )
            )
        if base.components:
            old_comps = component_bytes(baseline)
            for name in sorted(set(comps) | set(old_comps)):
                verdicts.append(
                    _relative(
                        f"baseline component {name}",
                        comps.get(name, 0),
                        old_comps.get(name, 0),
                        base.warn_percent,
                        base.error_percent,
                        floor,
                    )
                )
    return Evaluation(verdicts, tuple(warnings))


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
    if old == 0 and new:  # a growth from zero has no percentage: it is new
        text = f"new: {new} bytes, absent from the baseline"
        return Verdict(name, PASS if new < floor else FAIL, new, old, text)
    pct = _pct(new, old)
    text = f"{old} -> {new} ({change:+d} bytes, {pct:+.2f} %)"
    if abs(change) < floor or change <= 0:
        return Verdict(name, PASS, new, old, text)
    if pct > error_pct:
        return Verdict(name, FAIL, new, old, f"{text} > {error_pct:g} %")
    if pct > warn_pct:
        return Verdict(name, WARN, new, old, f"{text} > {warn_pct:g} %")
    return Verdict(name, PASS, new, old, text)


def failed(verdicts: list[Verdict], budget: Budget) -> bool:
    if budget.mode == "report":
        return False
    return any(v.status == FAIL for v in verdicts)


def check(
    budget: Budget, path: str, open_profile: Callable[[str], Profile], baseline: str | None
) -> Evaluation:
    """What `check` gates at `path`: an image or a saved profile (against the profile at
    `baseline` too, if given), or a `merge` matrix cell by cell."""
    from footprint.gate.merge import load_matrix

    matrix = load_matrix(path)
    if matrix is None:
        return evaluate(budget, open_profile(path), open_profile(baseline) if baseline else None)
    if baseline:
        raise UsageError("--baseline compares one profile: a matrix is gated by [limits]")
    return evaluate_matrix(budget, matrix)


def evaluate_matrix(budget: Budget, matrix: dict[str, Any]) -> Evaluation:
    """Every cell of a merged matrix, each verdict named by its cell: a calibration, boot or
    measurement that found no minimum (or failed) fails, a calibration's recommended
    crashkernel= is held to limits.recommended_bytes, and a profile to the other limits."""
    from footprint.profile import from_dict

    if budget.baseline is not None:
        raise UsageError("a matrix is checked against [limits]: [baseline] is for one profile")
    limits = budget.limits
    verdicts: list[Verdict] = []
    warnings: list[str] = []
    for cell in matrix["cells"]:
        label, r, doc = cell["label"], cell["result"], cell["document"]
        if doc["kind"] == "profile":
            e = evaluate(budget, from_dict(doc, cell["source"]))
            verdicts += [replace(v, name=f"{label}: {v.name}") for v in e.verdicts]
            warnings += [f"{label}: {w}" for w in e.warnings]
            continue
        if doc["kind"] == "boot":
            text = f"{doc['outcome']} with -m {doc['memory_mib']}M"
        elif doc["kind"] == "measurement" and "bisect" not in doc:
            text = f"{doc['outcome']} under a {doc['limit_bytes'] // units.MIB} MiB cgroup limit"
        elif r["minimum_mib"] is None:
            text = "no size in the range let it succeed"
        else:
            text = f"minimum {r['minimum_mib']} MiB, recommended {r['recommended_mib']} MiB"
        value = (r["minimum_mib"] or 0) * units.MIB
        verdicts.append(Verdict(f"{label}: run", PASS if r["success"] else FAIL, value, None, text))
        if limits.recommended_bytes is not None and r["recommended_mib"] is not None:
            limit = size_of(limits.recommended_bytes, "limits.recommended_bytes")
            verdicts.append(
                _limit(
                    f"{label}: limit recommended_bytes",
                    int(r["recommended_mib"] * units.MIB),
                    limit,
                    limits.warn_percent,
                )
            )
    return Evaluation(verdicts, tuple(warnings))
