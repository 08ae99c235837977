"""What changed between two profiles: per segment, per component, per file.

Paths are normalised before matching (kernel version under lib/modules, shared-library and
firmware version suffixes, the usr-merge), so an upgrade reads as a change, not as a removal
and an addition; `raw` turns that off. Files that normalise to the same key are summed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from footprint.errors import UsageError
from footprint.image.rootfs import LAYER_SEP
from footprint.profile import Profile

_RULES = (
    (re.compile(r"^usr/"), ""),
    (re.compile(r"^(lib/modules/)[^/]+/"), r"\1{kver}/"),
    (re.compile(r"(\.so)(\.\d+)+$"), r"\1.{ver}"),
    (re.compile(r"-\d+(\.\d+)*(\.so)$"), r"-{ver}\2"),
    (re.compile(r"^(lib/firmware/.*?)[-_.]\d+(\.\d+)*\.(ucode|bin|fw|sbin)$"), r"\1-{ver}.\3"),
    (re.compile(r"^(lib/firmware/(intel|amd)-ucode/[^/]*?)\d{8}(\.\w+)?$"), r"\1{rev}\3"),
)


def normalise(path: str, raw: bool = False) -> str:
    path = path.lstrip("/")
    if raw:
        return path
    # inside an inner image (squashfs-root.img//usr/lib/…) the rules apply from its root
    outer, sep, path = path.rpartition(LAYER_SEP)
    for pattern, repl in _RULES:
        path = pattern.sub(repl, path)
    return f"{outer}{sep}{path}"


@dataclass(frozen=True)
class Change:
    key: str
    old: int
    new: int

    @property
    def delta(self) -> int:
        return self.new - self.old

    @property
    def kind(self) -> str:
        if self.old == 0 and self.new:
            return "added"
        if self.new == 0 and self.old:
            return "removed"
        return "grown" if self.delta > 0 else "shrunk" if self.delta < 0 else "same"


@dataclass(frozen=True)
class ComponentChange(Change):
    """A component's proportional bytes in three parts: its own files, the libraries only it
    loads, and its share of the libraries it shares with others. The last two move when
    another component starts or stops loading a library, though nothing in this one changed."""

    own_old: int = 0
    own_new: int = 0
    exclusive_old: int = 0
    exclusive_new: int = 0

    @property
    def shared_old(self) -> int:
        return self.old - self.own_old - self.exclusive_old

    @property
    def shared_new(self) -> int:
        return self.new - self.own_new - self.exclusive_new

    def parts(self) -> dict[str, tuple[int, int]]:
        """own, exclusive and shared: (old, new) each; they add up to (old, new)."""
        return {
            "own": (self.own_old, self.own_new),
            "exclusive": (self.exclusive_old, self.exclusive_new),
            "shared": (self.shared_old, self.shared_new),
        }


@dataclass(frozen=True)
class Comparison:
    """How two profiles' bases differ: the totals left out, and what the reader must know."""

    left_out: frozenset[str]  # totals whose terms differ between the two sides
    warnings: tuple[str, ...]


def compare(old: Profile, new: Profile) -> Comparison:
    """What can be compared between `old` and `new`; UsageError where nothing can."""
    a, b = old.basis, new.basis
    if a.page_size != b.page_size:
        raise UsageError(
            f"the profiles were made with different page sizes ({a.page_size} and "
            f"{b.page_size}): page-rounded figures cannot be compared — profile both with the "
            "same --page-size"
        )
    left_out: set[str] = set()
    warnings = []
    if bool(a.kernel) != bool(b.kernel):
        with_kernel, kernel = ("old", a.kernel) if a.kernel else ("new", b.kernel)
        left_out.add("static_estimate_bytes")
        warnings.append(
            f"static_estimate_bytes left out: the {with_kernel} side has a kernel term "
            f"({kernel}), the other has none — give both the same --kernel"
        )
    elif a.kernel != b.kernel:
        warnings.append(
            f"the kernel changed ({a.kernel} -> {b.kernel}): static_estimate_bytes includes "
            "its growth"
        )
    if a.rules != b.rules:
        warnings.append(
            f"the components were attributed with different rules ({a.rules} -> {b.rules}): "
            "a component may move for that reason alone"
        )
    return Comparison(frozenset(left_out), tuple(warnings))


@dataclass
class Diff:
    old_label: str
    new_label: str
    totals: list[Change]
    segments: list[Change]
    components: list[ComponentChange]
    files: list[Change]
    warnings: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        out = {"added": 0, "removed": 0, "grown": 0, "shrunk": 0}
        for c in self.files:
            if c.kind in out:
                out[c.kind] += 1
        return out


def _changes(old: dict[str, int], new: dict[str, int], min_change: int) -> list[Change]:
    rows = [Change(k, old.get(k, 0), new.get(k, 0)) for k in sorted(set(old) | set(new))]
    rows = [r for r in rows if r.delta and abs(r.delta) >= min_change]
    return sorted(rows, key=lambda r: (-abs(r.delta), r.key))


def _files(p: Profile, raw: bool) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in p.files:
        key = normalise(f.path, raw)
        out[key] = out.get(key, 0) + f.bytes
    return out


# The whole-image figures diff and check compare, by the names budgets use.
TOTALS: tuple[tuple[str, Callable[[Profile], int]], ...] = (
    ("compressed_bytes", lambda p: p.boot.compressed_held_bytes),  # a UKI's .initrd, not .linux
    ("unpacked_bytes", lambda p: p.totals.unique_bytes),
    ("page_rounded_bytes", lambda p: p.totals.page_rounded_bytes),
    ("files", lambda p: p.totals.files),
    ("static_estimate_bytes", lambda p: p.reservation.static_estimate_bytes),
)


def totals_of(p: Profile) -> dict[str, int]:
    return {name: get(p) for name, get in TOTALS}


def component_bytes(p: Profile) -> dict[str, int]:
    """Each component's proportional bytes, by name."""
    return {c.name: c.proportional_bytes for c in p.components}


def _components(old: Profile, new: Profile, min_change: int) -> list[ComponentChange]:
    def parts(p: Profile) -> dict[str, tuple[int, int]]:
        """Own files and exclusive libraries, page-rounded, by component."""
        return {
            c.name: (c.page_rounded_bytes - c.exclusive_bytes, c.exclusive_bytes)
            for c in p.components
        }

    a, b = parts(old), parts(new)
    out = []
    for c in _changes(component_bytes(old), component_bytes(new), min_change):
        (own_old, excl_old), (own_new, excl_new) = a.get(c.key, (0, 0)), b.get(c.key, (0, 0))
        out.append(ComponentChange(c.key, c.old, c.new, own_old, own_new, excl_old, excl_new))
    return out


def _segments(p: Profile) -> dict[str, int]:
    """Segments by codec and rank among that codec's ("zstd", "zstd#2"), not by index: an early
    cpio put in front of the main archive is a new segment, not every segment changed."""
    seen: dict[str, int] = {}
    out = {}
    for s in p.segments:
        seen[s.codec] = seen.get(s.codec, 0) + 1
        key = s.codec if seen[s.codec] == 1 else f"{s.codec}#{seen[s.codec]}"
        out[key] = s.compressed_bytes
    return out


def diff(old: Profile, new: Profile, raw: bool = False, min_change: int = 0) -> Diff:
    comparison = compare(old, new)
    t_old, t_new = totals_of(old), totals_of(new)
    totals = [Change(k, t_old[k], t_new[k]) for k in t_old if k not in comparison.left_out]
    seg_old, seg_new = _segments(old), _segments(new)
    f_old, f_new = _files(old, raw), _files(new, raw)
    return Diff(
        old.image.path,
        new.image.path,
        totals,
        _changes(seg_old, seg_new, 0),
        _components(old, new, min_change),
        _changes(f_old, f_new, min_change),
        comparison.warnings,
    )
