"""The profile: everything static about one image, as typed data — the project's contract.

`from_analysis()` makes one from an analysed image, `to_dict()`/`to_json()` write it, and
`load()` reads a saved one back into the same object (every field checked, the version
checked and migrated here only). diff, check, report and components take a Profile, never a
raw dict; `open_profile()` gives one for either an image or a saved profile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec

from footprint import __version__
from footprint.elf.facts import ElfFacts
from footprint.errors import UsageError
from footprint.image.rootfs import Skipped
from footprint.image.summary import BootMemory, LargeFile, Totals
from footprint.model.reservation import Reservation
from footprint.paths import is_firmware, is_module
from footprint.schemas import SCHEMA_VERSION, decode_json, document, plain, read_json, typed
from footprint.schemas.fields import Bytes, Count
from footprint.subject import Subject, elf_arch

if TYPE_CHECKING:
    from footprint.analyze import Analysis
    from footprint.model.kernel_profile import KernelProfile

KIND: Final = "profile"


@dataclass(frozen=True)
class ImageRef:
    path: str
    bytes: Bytes  # the file as stored
    format: Literal["initramfs", "uki"]


@dataclass(frozen=True)
class SegmentRow:
    index: Count
    offset: Bytes
    end: Bytes
    codec: str  # "none" for plain cpio
    compressed_bytes: Bytes
    uncompressed_bytes: Bytes
    entries: Count
    archives: Count


@dataclass(frozen=True)
class PathBytes:
    path: str
    bytes: Bytes


@dataclass(frozen=True)
class UkiInfo:
    linux_bytes: Bytes
    sections: dict[str, Bytes]


@dataclass(frozen=True)
class ComponentCost:
    """What one component adds (see components/attribute.py for the memory model)."""

    name: str
    files: Count
    bytes: Bytes
    page_rounded_bytes: Bytes  # own files + exclusive libraries, page-rounded
    exclusive_bytes: Bytes
    shared_bytes: Bytes  # the shared libraries it loads, whole
    proportional_bytes: Bytes  # own + exclusive + an equal share of each shared library
    marginal_bytes: Bytes  # what removing it would save
    exclusive_libraries: tuple[str, ...]
    shared_libraries: tuple[str, ...]
    compressed_share_bytes: Bytes = 0  # its share of the compressed image held during unpack
    unpack_bytes: Bytes = 0  # proportional + compressed share
    tmpfs_floor_bytes: Bytes = 0  # 2 x proportional, the floor under tmpfs's 50 % cap
    # the part of proportional_bytes inside inner images (dracut's squashfs-root.img): in the
    # page cache only if read, its files held compressed in the image file
    inner_bytes: Bytes = 0


@dataclass(frozen=True)
class SharedLibraryShare:
    path: str
    page_rounded_bytes: Bytes
    users: tuple[str, ...]
    share_bytes: Bytes


@dataclass(frozen=True)
class ComponentTotal:
    files: Count
    bytes: Bytes
    page_rounded_bytes: Bytes
    proportional_bytes: Bytes
    compressed_bytes: Bytes
    compressed_share_method: str


@dataclass(frozen=True)
class MissingLibrary:
    name: str
    needed_by: str


@dataclass(frozen=True)
class KindSummary:
    files: Count
    bytes: Bytes  # as stored in the rootfs
    # what they expand to when the kernel loads them (.ko.xz, .ko.zst, firmware .xz/.zst);
    # None in profiles saved before it was recorded
    unpacked_bytes: Bytes | None = None


@dataclass(frozen=True)
class FirmwareRequest:
    """One module's firmware= entries (`modinfo -F firmware`) and what the image holds of
    them, found as the kernel's loader finds them (components/firmware.py)."""

    module: str  # its name
    path: str  # the module file
    requested: tuple[str, ...]
    files: tuple[str, ...]  # the firmware files they resolve to
    missing: tuple[str, ...] = ()  # requests the image holds nothing for


@dataclass(frozen=True)
class FileCost:
    path: str  # the inode's first name
    bytes: Bytes
    component: str
    # the inode's other names (hardlinks), in path order: a package database knows busybox
    # as /usr/bin/busybox, not by the applet name that happens to come first in the image
    links: tuple[str, ...] = ()


@dataclass(frozen=True)
class Basis:
    """What the figures were computed with. Two profiles compare like with like only where
    their bases agree (gate.diff.compare says what differs)."""

    page_size: Bytes
    kernel: str  # the kernel term's version; "" when the profile has no kernel term
    rules: str  # "built-in", plus "+sha256:…" of a user's rules, "+dracut-modules"
    warnings: tuple[str, ...] = ()  # what the basis lacks or gets wrong (no kernel term, …)


@dataclass(frozen=True)
class Profile:
    """One image, statically: its members and tree, components, ELF facts, reservation terms.

    Paths are absolute (a leading "/"). Sizes are bytes.
    """

    schema_version: Literal[1]
    kind: Literal["profile"]
    tool: str
    image: ImageRef
    segments: tuple[SegmentRow, ...]
    padding_bytes: Bytes
    entries: Count
    totals: Totals
    boot: BootMemory
    kernel_versions: tuple[str, ...]
    generator: str
    largest: tuple[LargeFile, ...]
    overwritten: tuple[PathBytes, ...]
    skipped: tuple[Skipped, ...]
    components: tuple[ComponentCost, ...]  # largest proportional cost first
    shared_libraries: tuple[SharedLibraryShare, ...]
    total: ComponentTotal
    missing_libraries: tuple[MissingLibrary, ...]
    warnings: tuple[str, ...]
    reservation: Reservation
    elf: tuple[ElfFacts, ...]
    kernel_modules: KindSummary
    firmware: KindSummary
    files: tuple[FileCost, ...]  # every inode once, by path
    basis: Basis
    uki: UkiInfo | None = None
    firmware_requests: tuple[FirmwareRequest, ...] = ()  # modules that request any, by path
    subject: Subject | None = None  # the image's sha256, the kernel's release, the arch: merge's

    @property
    def label(self) -> str:
        """The image's file name: how reports name this profile by default."""
        return self.image.path.rsplit("/", 1)[-1]

    # -- writing ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The document as plain JSON values (lists, not tuples)."""
        doc: dict[str, Any] = plain(self)
        return doc

    def to_json(self) -> str:
        """The document as `profile -o` and `baseline` save it."""
        return json.dumps(self.to_dict(), indent=1) + "\n"


# -- making one --------------------------------------------------------------------------------
def from_analysis(a: Analysis) -> Profile:
    """The profile of an analysed image (analyze() with components)."""
    att = a.attribution
    if att is None:
        raise AssertionError("a profile needs the components: analyze(components=True)")
    inv, summary, res = a.inventory, a.summary, a.reservation
    terms = {t.name: t for t in a.component_terms}
    comps = sorted(att.components.values(), key=lambda c: (-c.proportional_bytes, c.name))
    rows = []
    for c in comps:
        t = terms.get(c.name)
        rows.append(
            ComponentCost(
                c.name,
                c.files,
                c.bytes,
                c.page_rounded_bytes,
                c.exclusive_bytes,
                c.shared_bytes,
                round(c.proportional_bytes),
                c.marginal_bytes,
                tuple("/" + p for p in sorted(c.exclusive)),
                tuple("/" + p for p in sorted(c.shared)),
                round(t.compressed_share_bytes) if t else 0,
                round(t.unpack_bytes) if t else 0,
                round(t.tmpfs_floor_bytes) if t else 0,
                round(c.inner_bytes),
            )
        )
    inodes = inv.rootfs.inodes().values()
    links: dict[int, list[str]] = {}
    for node in inv.rootfs.nodes.values():
        if node.inode is not None:
            links.setdefault(id(node.inode), []).append("/" + node.path)

    unpacked = {**a.unpacked, **{p: m.unpacked_bytes for p, m in a.modules.items()}}

    def kind_summary(match: Any) -> KindSummary:
        sizes = [(inode.size, node.path) for inode, node in inodes if match(node.path)]
        stored = sum(size for size, _ in sizes)
        return KindSummary(len(sizes), stored, sum(unpacked.get(p, n) for n, p in sizes))

    profile = Profile(
        SCHEMA_VERSION,
        KIND,
        f"footprint {__version__}",
        ImageRef(inv.path, inv.file_bytes, "uki" if inv.uki else "initramfs"),
        tuple(
            SegmentRow(
                s.index,
                s.offset,
                s.end,
                s.codec,
                s.compressed_bytes,
                s.uncompressed_bytes,
                s.entries,
                s.archives,
            )
            for s in inv.segments
        ),
        inv.padding_bytes,
        inv.entries,
        summary.totals,
        summary.boot,
        tuple(summary.kernel_versions),
        summary.generator,
        tuple(summary.largest),
        tuple(PathBytes("/" + p, b) for p, b in inv.rootfs.overwritten),
        tuple(inv.rootfs.skipped),
        tuple(rows),
        tuple(
            SharedLibraryShare(
                "/" + s.path,
                s.page_rounded_bytes,
                tuple(s.users),
                round(s.page_rounded_bytes / len(s.users)),
            )
            for s in sorted(att.shared, key=lambda s: -s.page_rounded_bytes)
        ),
        ComponentTotal(
            sum(c.files for c in comps) + len(att.shared),
            att.total_bytes,
            att.total_page_rounded_bytes,
            round(sum(c.proportional_bytes for c in comps)),
            inv.image_bytes,
            res.compressed_share_method,
        ),
        tuple(_missing(a)),
        tuple(_warnings(a)),
        res,
        tuple(_elf_records(a)),
        kind_summary(is_module),
        kind_summary(is_firmware),
        tuple(
            sorted(
                (
                    FileCost(
                        "/" + node.path,
                        inode.size,
                        att.owner.get(node.path, "other"),
                        tuple(sorted(links[id(inode)][1:])),
                    )
                    for inode, node in inodes
                ),
                key=lambda f: f.path,
            )
        ),
        _basis(a),
        UkiInfo(inv.uki.linux_bytes, inv.uki.sections) if inv.uki else None,
        tuple(_firmware_requests(a)),
    )
    profile = predicted(profile, None)
    try:
        msgspec.json.encode(profile)
    except UnicodeEncodeError:  # names with bytes that are not UTF-8: as a saved profile
        return parse(profile.to_json().encode(), inv.path)  # has them, escaped
    return profile


def predicted(p: Profile, kernel_profile: KernelProfile | None) -> Profile:
    """`p` with its reservation's prediction made from `kernel_profile` (None: the static
    floor, with a warning that says so); a saved profile's earlier prediction is replaced."""
    from footprint.model.predict import PREFIXES, predict

    res, warnings = predict(p.reservation, kernel_profile)
    kept = tuple(w for w in p.basis.warnings if not w.startswith(PREFIXES))
    return replace(p, reservation=res, basis=replace(p.basis, warnings=kept + tuple(warnings)))


def _basis(a: Analysis) -> Basis:
    res = a.reservation
    kernel = res.kernel_version if res.kernel_method else ""
    warnings = []
    if not kernel:
        warnings.append(
            "no kernel term: the static estimate leaves out the capture kernel's own memory "
            "(give --kernel VMLINUZ)"
        )
    elif a.summary.kernel_versions and kernel not in a.summary.kernel_versions:
        warnings.append(
            f"the kernel is {kernel} but the image's modules are for "
            f"{', '.join(a.summary.kernel_versions)}: is it the capture kernel?"
        )
    return Basis(res.page_size, kernel, a.rules, tuple(warnings))


def _firmware_requests(a: Analysis) -> list[FirmwareRequest]:
    fw = a.firmware
    if fw is None:
        return []
    return [
        FirmwareRequest(
            m.name,
            "/" + path,
            m.firmware,
            tuple("/" + f for f in fw.found.get(path, ())),
            fw.missing.get(path, ()),
        )
        for path, m in sorted(a.modules.items())
        if m.firmware
    ]


def _elf_records(a: Analysis) -> list[ElfFacts]:
    """Each ELF inode once, under its first name (as in `files`), in path order."""
    seen: dict[int, ElfFacts] = {}
    for _, node in a.inventory.rootfs.inodes().values():
        facts = a.facts.get(node.path)
        if facts is not None and id(facts) not in seen:
            seen[id(facts)] = replace(facts, path="/" + node.path)
    return sorted(seen.values(), key=lambda f: f.path)


def _missing(a: Analysis) -> list[MissingLibrary]:
    """Libraries some executable needs that the image does not have: a broken initrd."""
    out: dict[tuple[str, str], MissingLibrary] = {}
    for f in a.elves:
        if f.runs and not f.error:
            for name, by in a.resolver.closure(f.path).missing:
                out.setdefault((name, by), MissingLibrary(name, "/" + by))
    return list(out.values())


def _warnings(a: Analysis) -> list[str]:
    out = [f"/{f.path}: {f.error}" for f in a.elves if f.error]
    out += [
        f"entry {s.name!r} is not created by the kernel: {s.reason}"
        for s in a.inventory.rootfs.skipped
    ]
    return out


# -- reading one back --------------------------------------------------------------------------
def load(path: str) -> Profile:
    """A saved profile; BadDocument (one line, naming the key) if it is not a valid one."""
    return _checked(read_json(path), path)


def parse(data: bytes, where: str) -> Profile:
    return _checked(decode_json(data, where), where)


def from_dict(doc: Any, where: str) -> Profile:
    """A profile document already read (a matrix's cell); BadDocument if it is not one."""
    return _checked(doc, where)


def _checked(doc: Any, where: str) -> Profile:
    make = "footprint profile IMAGE -o profile.json"
    doc = document(doc, where, KIND, "profile", make)
    return typed(Profile, _migrated(doc), f"{where} is not a valid profile")


def _migrated(doc: dict[str, Any]) -> dict[str, Any]:
    """A profile saved by an earlier footprint of the same version, with what it lacks."""
    res = doc.get("reservation")
    if "basis" not in doc and isinstance(res, dict):
        kernel = res.get("kernel_version", "") if res.get("kernel_method") else ""
        doc["basis"] = {"page_size": res.get("page_size"), "kernel": kernel, "rules": "unknown"}
    return doc


def is_document(path: str) -> bool:
    """Whether `path` holds a JSON document rather than an image (by its first byte)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64).lstrip()[:1]
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    return head == b"{"


def open_profile(
    path: str,
    *,
    rules_file: str | None = None,
    page_size: int = 4096,
    kernel: str | None = None,
    dracut_modules: bool = False,
    kernel_profile: KernelProfile | None = None,
) -> Profile:
    """The profile of `path`: read back if it is a saved profile, else of the image, now.

    `dracut_modules` attributes a dracut image's files to its modules: it needs the image.
    With `kernel_profile` the reservation's prediction is made (again) from it.
    """
    if is_document(path):
        if dracut_modules:
            raise UsageError(
                f"{path} is a saved profile: attributing files to dracut modules needs the image"
            )
        saved = load(path)
        return predicted(saved, kernel_profile) if kernel_profile is not None else saved
    from footprint.analyze import analyze

    a = analyze(
        path,
        page_size=page_size,
        rules_file=rules_file,
        kernel=kernel,
        dracut_modules=dracut_modules,
    )
    res = a.reservation
    arch = elf_arch([f.machine for f in a.elves])
    if not arch and kernel:  # no programs: the kernel's (footprint reads DEFAULT's kernels)
        from footprint.arch import DEFAULT

        arch = DEFAULT.name
    subject = Subject.of(path, kernel or "", res.kernel_version, res.kernel_bytes, arch)
    p = replace(from_analysis(a), subject=subject)
    return predicted(p, kernel_profile) if kernel_profile is not None else p


@dataclass(frozen=True)
class ProfileOptions:
    """How an image becomes a profile: what every command that reads one is told."""

    kernel: str | None = None  # the capture kernel, for the reservation's kernel term
    kernel_profile: str | None = None  # a `calibrate-kernel` document: the prediction's terms
    page_size: int = 4096
    rules_file: str | None = None

    @cached_property
    def runtime(self) -> KernelProfile | None:
        """The kernel profile, read once (a malformed one is BadDocument)."""
        if self.kernel_profile is None:
            return None
        from footprint.model.kernel_profile import load as load_kernel_profile

        return load_kernel_profile(self.kernel_profile)

    def open(self, path: str, *, dracut_modules: bool = False) -> Profile:
        """The profile of `path`, an image or a saved profile (see open_profile)."""
        return open_profile(
            path,
            rules_file=self.rules_file,
            page_size=self.page_size,
            kernel=self.kernel,
            dracut_modules=dracut_modules,
            kernel_profile=self.runtime,
        )


# Documents that are views of the profile: the keys of it each one carries.
VIEWS: dict[str, tuple[str, ...]] = {
    "inspect": (
        "tool",
        "image",
        "segments",
        "padding_bytes",
        "entries",
        "totals",
        "boot",
        "kernel_versions",
        "generator",
        "largest",
        "overwritten",
        "skipped",
        "uki",
    ),
    "components": (
        "image",
        "generator",
        "components",
        "shared_libraries",
        "total",
        "missing_libraries",
        "warnings",
    ),
}
SUGGESTION = {  # components --suggest: components.suggest.Suggestion
    "type": "object",
    "properties": {
        "components": {"type": "array", "items": {"type": "string"}},
        "marginal_bytes": {"type": "integer", "minimum": 0},
        "reason": {"type": "string"},
    },
    "required": ["components", "marginal_bytes", "reason"],
}
FILE_ROW = {  # inspect --files: one row per path of the tree
    "type": "object",
    "properties": {
        "path": {"type": "string"},
        "kind": {"enum": ["file", "dir", "symlink", "char", "block", "fifo", "socket"]},
        "mode": {"type": "string"},
        "size": {"type": "integer", "minimum": 0},
        "uid": {"type": "integer"},
        "gid": {"type": "integer"},
        "segment": {"type": "integer", "minimum": 0},
        "target": {"type": "string"},
        "links": {"type": "integer", "minimum": 2},
        "rdev": {"type": "string"},
    },
    "required": ["path", "kind", "mode", "size", "uid", "gid", "segment"],
}


def json_schema(kind: str = KIND) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the profile, or of a view of it, from the types."""
    made: dict[str, Any] = msgspec.json.schema(Profile)
    defs = made["$defs"]
    for record in (Totals, BootMemory, LargeFile):  # non_negative() checks these, not types
        for prop in defs[record.__name__]["properties"].values():
            if prop.get("type") == "integer":
                prop["minimum"] = 0
    root: dict[str, Any] = defs.pop("Profile") if kind == KIND else {}
    if kind != KIND:
        whole = msgspec.json.schema(Profile)["$defs"]["Profile"]
        keys = VIEWS[kind]
        props = {k: whole["properties"][k] for k in keys}
        if kind == "inspect":
            props["files"] = {"type": "array", "items": FILE_ROW}
        if kind == "components":
            props["suggestions"] = {"type": "array", "items": SUGGESTION}
        root = {
            "type": "object",
            "properties": {
                "schema_version": {"const": SCHEMA_VERSION},
                "kind": {"const": kind},
                **props,
            },
            "required": ["schema_version", "kind", *(k for k in keys if k in whole["required"])],
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"footprint {kind}",
        **root,
        "$defs": defs,
    }
