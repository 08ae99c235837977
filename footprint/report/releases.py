"""What `footprint report` shows over several releases' profiles (oldest first): the totals,
the latest release's size map and files, the diffs `footprint diff` gives, the reservation
terms against a distro's crashkernel= line, measured minima and timelines.

The renderers (report/html.py, report/markdown.py) only format this.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from footprint.errors import BadDocument, UsageError
from footprint.gate.diff import component_bytes, diff, normalise, totals_of
from footprint.model.crashkernel import Crashkernel, parse_crashkernel
from footprint.profile import ComponentCost, Profile
from footprint.report.diff import diff_dict
from footprint.schemas import read_json, typed
from footprint.units import MIB, page_round

TOP = 8  # components drawn per release; the rest are summed as "other components"
GROWERS = 10


# -- documents the report reads beside the profiles ---------------------------------------------
@dataclass(frozen=True)
class MeasuredTerms:
    """The measured terms of a `calibrate --json` document (MiB, as it writes them)."""

    userspace_peak: float
    kernel_runtime: float
    makedumpfile: float
    margin: float


@dataclass(frozen=True)
class KdumpCalibration:
    minimum_mib: int | None
    recommended_mib: int | None


@dataclass(frozen=True)
class Calibration:
    """What the report reads of a `footprint calibrate --json` document."""

    kind: Literal["calibration"]
    backend: str
    minimum_mib: int | None
    recommended_mib: int | None
    terms: MeasuredTerms | None
    kdump: KdumpCalibration | None = None


@dataclass(frozen=True)
class MeasurePoint:  # `measure --json`: the cgroup's charge
    t: float
    bytes: int
    anon: int = 0
    shmem: int = 0


@dataclass(frozen=True)
class BootPoint:  # `boot --json`: the probe's /proc/meminfo, in bytes
    t: float
    MemTotal: int
    MemFree: int
    AnonPages: int = 0
    Shmem: int = 0
    Slab: int = 0


def load_calibration(path: str) -> Calibration:
    """A `calibrate --json` document: UsageError if unreadable, BadDocument if it is not one."""
    doc = read_json(path, "calibration")
    if not isinstance(doc, dict) or doc.get("kind") != "calibration":
        raise BadDocument(
            f"{path} is not a calibration (make one with `footprint calibrate IMAGE --json`)"
        )
    return typed(Calibration, doc, f"{path} is not a valid calibration")


def labels(loaded: list[Profile], given: tuple[str, ...], paths: tuple[str, ...]) -> list[str]:
    """One label per release: those given, else the images' file names, else (when two
    releases share a file name: releases/1.0/initrd.img, releases/1.1/…) the paths."""
    if given and len(given) != len(loaded):
        raise UsageError(f"{len(given)} --label for {len(loaded)} profiles")
    names = list(given) or [p.label for p in loaded]
    if not given and len(set(names)) < len(names):
        names = list(paths)
    return names


def calibrations_by_label(values: tuple[str, ...], names: list[str]) -> dict[str, Calibration]:
    """`--calibration [LABEL=]FILE` values by release; no known LABEL= means the latest."""
    by_label: dict[str, Calibration] = {}
    for value in values:
        label, sep, path = value.partition("=")
        if not sep or label not in names:
            label, path = names[-1], value
        if label in by_label:
            raise UsageError(f"two --calibration for the release {label!r}")
        by_label[label] = load_calibration(path)
    return by_label


@dataclass(frozen=True)
class Series:
    name: str
    t: tuple[float, ...]
    bytes: tuple[int, ...]


@dataclass(frozen=True)
class Timeline:
    title: str
    series: tuple[Series, ...]


def load_timeline(path: str) -> Timeline:
    """The timeline of a `measure --json` or `boot --json` document: UsageError if unreadable,
    BadDocument (naming the key) if it holds no valid timeline."""
    doc = read_json(path, "timeline")
    points = doc.get("timeline") if isinstance(doc, dict) else None
    if not isinstance(points, list):
        raise BadDocument(f"{path} has no timeline (a `measure --json` or `boot --json` document)")
    title = f"{doc.get('image', path)}: {doc.get('outcome', 'measured')}"
    boot = doc.get("kind") == "boot" or bool(points and "MemTotal" in points[0])
    where = f"{path} has an invalid timeline"
    series: tuple[Series, ...]
    if boot:
        b = typed(list[BootPoint], points, where)
        t = tuple(p.t for p in b)
        series = (
            Series("in use (MemTotal − MemFree)", t, tuple(p.MemTotal - p.MemFree for p in b)),
            Series("anon", t, tuple(p.AnonPages for p in b)),
            Series("shmem (tmpfs)", t, tuple(p.Shmem for p in b)),
            Series("slab", t, tuple(p.Slab for p in b)),
        )
    else:
        m = typed(list[MeasurePoint], points, where)
        t = tuple(p.t for p in m)
        series = (
            Series("cgroup charge", t, tuple(p.bytes for p in m)),
            Series("anon", t, tuple(p.anon for p in m)),
            Series("shmem (tmpfs)", t, tuple(p.shmem for p in m)),
        )
    return Timeline(title, series)


# -- what the report shows ----------------------------------------------------------------------
@dataclass(frozen=True)
class Release:
    label: str
    totals: dict[str, int]  # gate.diff.totals_of: what diff and check compare
    change: dict[str, int] | None  # against the previous release; None for the first


@dataclass(frozen=True)
class FileRow:
    """A file of the latest release."""

    path: str
    component: str
    bytes: int
    page_bytes: int  # what it costs in whole pages
    growth: int | None  # bytes since the previous release; None without one
    new: bool  # absent from the previous release


@dataclass(frozen=True)
class MapNode:
    """A tile of the size map: the image, a component, a directory in it, or a file."""

    id: str
    parent: str  # "" for the image
    label: str
    name: str  # in full: a path, a directory, a component's name
    component: str
    page_bytes: int  # the tile's area
    bytes: int
    growth: int | None
    share: float  # of the image's page-rounded bytes
    new: bool = False  # a file absent from the previous release


@dataclass(frozen=True)
class Term:
    name: str
    bytes: int
    measured: bool  # from a calibration, not from the profile
    absent: str = ""  # why the profile lacks it, if it does


@dataclass(frozen=True)
class Minimum:
    name: str  # what was measured, e.g. "measured minimum (qemu, -m)"
    bytes: int


@dataclass(frozen=True)
class ReservationRow:
    label: str
    terms: tuple[Term, ...]
    static_estimate: int
    minima: tuple[Minimum, ...]  # from the release's calibration, if one was given

    def term(self, name: str) -> Term | None:
        return next((t for t in self.terms if t.name == name), None)

    def minimum(self, name: str) -> Minimum | None:
        return next((m for m in self.minima if m.name == name), None)


@dataclass(frozen=True)
class DefaultLine:
    """The distro's crashkernel= line, for a first kernel with `ram` bytes."""

    crashkernel: str
    ram: int
    reserved: int  # 0: the line reserves nothing at that RAM


@dataclass(frozen=True)
class Report:
    labels: tuple[str, ...]
    releases: tuple[Release, ...]
    warnings: tuple[str, ...]  # each profile's basis warnings, by label
    files: tuple[FileRow, ...]  # every file of the latest release, largest first
    size_map: tuple[MapNode, ...]
    latest: tuple[ComponentCost, ...]
    component_series: dict[str, tuple[int, ...]]  # top components' bytes per release
    growers: tuple[dict[str, Any], ...]  # components grown since the first release
    diffs: tuple[dict[str, Any], ...]  # `footprint diff --json` per consecutive pair
    reservation: tuple[ReservationRow, ...]
    default_line: DefaultLine
    timelines: tuple[Timeline, ...]

    @property
    def releases_phrase(self) -> str:
        n = len(self.labels)
        return f"{n} release" if n == 1 else f"{n} releases"

    @property
    def term_names(self) -> list[str]:
        """Every reservation term of any release, in order."""
        return list(dict.fromkeys(t.name for row in self.reservation for t in row.terms))

    @property
    def minimum_names(self) -> list[str]:
        return list(dict.fromkeys(m.name for row in self.reservation for m in row.minima))

    @property
    def previous(self) -> str | None:
        return self.labels[-2] if len(self.labels) > 1 else None


def _diff(old: Profile, new: Profile, old_label: str, new_label: str) -> dict[str, Any]:
    """`footprint diff --json` with its defaults (min_change 0), named by the labels."""
    return {**diff_dict(diff(old, new)), "old": old_label, "new": new_label}


def _files(latest: Profile, previous: Profile | None) -> list[FileRow]:
    """The latest files with their growth, matched as `footprint diff` matches them (paths
    normalised); a key that several files share splits its old bytes between them."""
    page = latest.basis.page_size
    old: dict[str, int] = defaultdict(int)
    new: dict[str, int] = defaultdict(int)
    for f in previous.files if previous else ():
        old[normalise(f.path)] += f.bytes
    for f in latest.files:
        new[normalise(f.path)] += f.bytes
    rows = []
    for f in latest.files:
        growth, is_new = None, False
        if previous is not None:
            key = normalise(f.path)
            is_new, was = key not in old, old.get(key, 0)
            before = was if new[key] == f.bytes else round(was * f.bytes / new[key])
            growth = f.bytes - before
        rows.append(
            FileRow(f.path, f.component, f.bytes, page_round(f.bytes, page), growth, is_new)
        )
    return sorted(rows, key=lambda r: (-r.page_bytes, -r.bytes, r.path))


def _size_map(label: str, files: list[FileRow], grown: bool) -> list[MapNode]:
    """Image → component → directory → file, every area page-rounded bytes."""
    total = sum(f.page_bytes for f in files) or 1
    by_comp: dict[str, dict[str, list[FileRow]]] = defaultdict(lambda: defaultdict(list))
    for f in files:
        by_comp[f.component][f.path.rsplit("/", 1)[0] or "/"].append(f)

    def node(
        id: str, parent: str, label: str, name: str, comp: str, rows: list[FileRow]
    ) -> MapNode:
        pages = sum(r.page_bytes for r in rows)
        growth = sum(r.growth or 0 for r in rows) if grown else None
        data = sum(r.bytes for r in rows)
        is_new = len(rows) == 1 and rows[0].new and rows[0].path == name
        return MapNode(id, parent, label, name, comp, pages, data, growth, pages / total, is_new)

    nodes = [node("i", "", label, label, "", files)]
    for c, (comp, dirs) in enumerate(sorted(by_comp.items())):
        cid = f"c{c}"
        nodes.append(node(cid, "i", comp, comp, comp, [r for rs in dirs.values() for r in rs]))
        for d, (directory, rows) in enumerate(sorted(dirs.items())):
            did = f"{cid}d{d}"
            nodes.append(node(did, cid, directory, directory, comp, rows))
            nodes += [
                node(f"{did}f{i}", did, r.path.rsplit("/", 1)[-1], r.path, comp, [r])
                for i, r in enumerate(rows)
            ]
    return nodes


def _reservation(p: Profile, label: str, calibration: Calibration | None) -> ReservationRow:
    r = p.reservation
    terms = [
        Term("kernel", r.kernel_bytes, False, "" if r.kernel_method else "none (no --kernel)"),
        Term("compressed initrd", r.initrd_compressed_bytes, False),
        Term("rootfs", r.rootfs_bytes, False),
        Term("struct page", r.memmap_bytes, False),
    ]
    minima: list[Minimum] = []
    if calibration is not None:
        c = calibration
        if c.terms is not None:
            terms += [
                Term(name, round(mib * MIB), True)
                for name, mib in (
                    ("userspace peak", c.terms.userspace_peak),
                    ("kernel runtime", c.terms.kernel_runtime),
                    ("makedumpfile", c.terms.makedumpfile),
                    ("margin", c.terms.margin),
                )
            ]
        how = "cgroup limit, userspace only" if c.backend == "cgroup" else f"{c.backend} -m"
        if c.minimum_mib is not None:
            minima.append(Minimum(f"measured minimum ({how})", c.minimum_mib * MIB))
        if c.kdump is not None and c.kdump.minimum_mib is not None:
            kdump = c.kdump.minimum_mib * MIB
            minima.append(Minimum("measured minimum (kdump, crashkernel=)", kdump))
        recommended = c.kdump.recommended_mib if c.kdump else None
        if recommended or c.recommended_mib:
            minima.append(Minimum("recommended", (recommended or c.recommended_mib or 0) * MIB))
    return ReservationRow(label, tuple(terms), r.static_estimate_bytes, tuple(minima))


def report_data(
    profiles: list[Profile],
    labels: list[str],
    *,
    timelines: list[Timeline] | None = None,
    calibrations: dict[str, Calibration] | None = None,
    crashkernel: Crashkernel,
    ram: int,
) -> Report:
    """What the report shows for `profiles` (oldest first) named by `labels`; `calibrations`
    by label; the distro's `crashkernel` line for a first kernel with `ram` bytes."""
    if len(profiles) != len(labels):
        raise UsageError(f"{len(labels)} --label for {len(profiles)} profiles")
    if len(set(labels)) != len(labels):
        raise UsageError(f"two releases have the same label ({', '.join(labels)}): give --label")
    calibrations = calibrations or {}
    for name in calibrations:
        if name not in labels:
            raise UsageError(f"a calibration names {name!r}, which is none of {', '.join(labels)}")
    latest = profiles[-1]
    previous = profiles[-2] if len(profiles) > 1 else None
    totals = [totals_of(p) for p in profiles]
    releases = [
        Release(
            label,
            t,
            {k: v - totals[i - 1][k] for k, v in t.items()} if i else None,
        )
        for i, (label, t) in enumerate(zip(labels, totals, strict=True))
    ]
    pairs = list(zip(profiles, profiles[1:], strict=False))
    diffs = [_diff(a, b, labels[i], labels[i + 1]) for i, (a, b) in enumerate(pairs)]
    growers: list[dict[str, Any]] = []
    if len(profiles) > 2:
        first = _diff(profiles[0], latest, labels[0], labels[-1])
        growers = [c for c in first["components"] if c["delta"] > 0][:GROWERS]
    shares = [component_bytes(p) for p in profiles]
    names = [c.name for c in latest.components]
    series = {n: tuple(s.get(n, 0) for s in shares) for n in names[:TOP]}
    rest = [sum(v for k, v in s.items() if k not in series) for s in shares]
    if any(rest):
        series["other components"] = tuple(rest)
    files = _files(latest, previous)
    return Report(
        labels=tuple(labels),
        releases=tuple(releases),
        warnings=tuple(
            f"{label}: {w}"
            for label, p in zip(labels, profiles, strict=True)
            for w in p.basis.warnings
        ),
        files=tuple(files),
        size_map=tuple(_size_map(labels[-1], files, previous is not None)),
        latest=latest.components,
        component_series=series,
        growers=tuple(growers),
        diffs=tuple(diffs),
        reservation=tuple(
            _reservation(p, label, calibrations.get(label))
            for p, label in zip(profiles, labels, strict=True)
        ),
        default_line=DefaultLine(crashkernel.text, ram, crashkernel.reservation_for(ram)),
        timelines=tuple(timelines or ()),
    )


def render(
    paths: tuple[str, ...],
    open_profile: Callable[[str], Profile],
    *,
    given_labels: tuple[str, ...] = (),
    timelines: tuple[str, ...] = (),
    calibrations: tuple[str, ...] = (),
    crashkernel: str,
    ram: int,
    fmt: Literal["html", "markdown", "text"] = "html",
) -> str:
    """`footprint report` over the images or saved profiles at `paths` (oldest first): one
    HTML page, or Markdown; or over one `merge` matrix, its table."""
    from footprint.gate.merge import load_matrix

    table = load_matrix(paths[0]) if len(paths) == 1 else None
    if table is not None:
        from footprint.report import matrix

        return matrix.render(table, fmt)
    if fmt == "text":
        raise UsageError("--text is for a matrix (`footprint merge`): a release report is HTML")
    try:
        line = parse_crashkernel(crashkernel)
    except ValueError as e:
        raise UsageError(f"--crashkernel {e}") from None
    loaded = [open_profile(p) for p in paths]
    names = labels(loaded, given_labels, paths)
    data = report_data(
        loaded,
        names,
        timelines=[load_timeline(path) for path in timelines],
        calibrations=calibrations_by_label(calibrations, names),
        crashkernel=line,
        ram=ram,
    )
    if fmt == "markdown":
        from footprint.report.markdown import render_markdown

        return render_markdown(data)
    from footprint.report.html import render_html

    return render_html(data)
