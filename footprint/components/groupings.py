"""Other ways to group an image's files than components: by package, or one row per file.

A file's package comes from the first source that knows it, in this order: the installed-package
databases (dpkg's file lists: this host's, or those of the root the image was built in), which
name the binary package that put the file there; the ELF `.note.package` of a binary, which
names the source package it was built from; the kernel's own modules by their lib/modules/<kver>
path (Debian's linux-image-<kver>); an archive's Contents index, which says what could have
shipped a path, not what was installed. Costs are plain page-rounded bytes per group, no
sharing model. Each grouping is one entry of GROUPINGS.
"""

from __future__ import annotations

import glob
import gzip
import io
import itertools
import lzma
import os
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

from footprint.components.rules import Rules, builtin_rules
from footprint.errors import EnvironmentUnavailable, UsageError
from footprint.paths import is_firmware
from footprint.profile import FileCost, ImageRef, Profile
from footprint.units import human, page_round

DPKG_INFO = "var/lib/dpkg/info"  # under a root: "/" for this host, or a build root
UNKNOWN = "unknown"
NONE = "none"  # --owner-db none: no database, not even the one found automatically

# Where a generator copies a file from when the image's path is not the package's: mkinitramfs
# copies its init and scripts from /usr/share/initramfs-tools, the klibc-utils hook copies
# /usr/lib/klibc/bin/* into /bin; dracut installs its modules' files (modules.d/NNname/x.sh)
# under their name, as hooks (hooks/HOOK/NN-x.sh), as dracut-x.sh, or without their .sh.
# (generator, the image's path (usr-merge folded) as a regex, its source: {0} is the regex's
# group, "*" any one directory)
GENERATOR_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("initramfs-tools", r"init", "usr/share/initramfs-tools/init"),
    ("initramfs-tools", r"scripts/(.+)", "usr/share/initramfs-tools/scripts/{0}"),
    ("initramfs-tools", r"scripts/(.+)", "etc/initramfs-tools/scripts/{0}"),
    ("initramfs-tools", r"conf/initramfs\.conf", "etc/initramfs-tools/initramfs.conf"),
    ("initramfs-tools", r"conf/conf\.d/(.+)", "etc/initramfs-tools/conf.d/{0}"),
    ("initramfs-tools", r"bin/([^/]+)", "usr/lib/klibc/bin/{0}"),
    ("dracut", r"(?:.+/)?([^/]+)", "usr/lib/dracut/modules.d/*/{0}"),
    ("dracut", r"(?:.+/)?([^/]+)", "usr/lib/dracut/modules.d/*/{0}.sh"),
    ("dracut", r"(?:.+/)?(?:\d\d-|dracut-)([^/]+)", "usr/lib/dracut/modules.d/*/{0}"),
    ("dracut", r"(?:.+/)?(?:\d\d-|dracut-)([^/]+)", "usr/lib/dracut/modules.d/*/{0}.sh"),
    ("dracut", r"bin/([^/]+)", "usr/lib/dracut/{0}"),
)
ANY_DIR = "/*/"

# The generators that copy the kernel's modules from the build root's lib/modules/<kver>, and
# the kernel flavours Debian builds (its linux-image-<kver> ships lib/modules/<kver>/kernel and
# these three lists; depmod makes the other modules.* files when the image is built). Ubuntu
# splits its modules into linux-modules-<kver> packages: no convention there, ask a database.
COPIES_MODULES = ("initramfs-tools", "dracut")
DEBIAN_FLAVOUR = re.compile(  # 6.1.0-57-amd64, 6.12.38+deb13-amd64, 6.1.0-57-rt-amd64
    r"\d+\.\d+[\w.+~-]*?-(?:cloud-|rt-)?"
    r"(?:amd64|arm64|686|686-pae|armmp|armmp-lpae|marvell|rpi|powerpc64le|s390x|riscv64|loong64)"
)
KERNEL_FILE = re.compile(
    r"lib/modules/([^/]+)/(?:kernel/.+|modules\.(?:builtin|builtin\.modinfo|order))"
)


@dataclass(frozen=True)
class Group:
    name: str
    files: int
    bytes: int
    page_rounded_bytes: int
    component: str | None = None  # by file: the file's component
    package: str | None = None  # by file: the file's package, when one is known


@dataclass(frozen=True)
class PackageSource:
    """One place packages came from, and how much of the image it attributed."""

    name: str  # "elf-note", "dpkg", "kernel-path", "contents"
    where: str  # what was read ("" for what the image itself carries)
    reason: str  # why it was asked
    files: int = 0
    page_rounded_bytes: int = 0


@dataclass(frozen=True)
class Grouping:
    image: ImageRef
    by: str
    groups: tuple[Group, ...]  # largest first
    sources: tuple[PackageSource, ...] = ()  # where packages came from, in the order asked
    warnings: tuple[str, ...] = ()

    @property
    def files(self) -> int:
        return sum(g.files for g in self.groups)


# -- owner databases ---------------------------------------------------------------------------
Owners = dict[str, str]  # folded path -> package


@dataclass(frozen=True)
class OwnerDbKind:
    """One kind of --owner-db: what its argument looks like and how to read it."""

    name: str
    installed: bool  # what was installed (asked before the kernel convention), or what could be
    accepts: Callable[[str], bool]
    # (argument, this host's root) -> (what is read, the root whose files it describes)
    locate: Callable[[str, str], tuple[str, str | None]]
    read: Callable[[str, Wanted], Owners]  # (where, wanted folded paths) -> owners


@dataclass(frozen=True)
class OwnerDb:
    kind: OwnerDbKind
    where: str
    reason: str
    root: str | None = None  # the tree it describes, where its files can be looked at


def fold(path: str) -> str:
    """A path as the usr-merge makes it: no leading slash, no leading usr/ (lib/x = usr/lib/x)."""
    path = path.lstrip("/")
    return path[4:] if path.startswith("usr/") else path


def dpkg_owners(info_dir: str, wanted: Wanted | None = None) -> Owners:
    """Path (folded) -> package, from dpkg's *.list files; only `wanted` paths if given."""
    lists = glob.glob(os.path.join(glob.escape(info_dir), "*.list"))
    if not lists:
        raise EnvironmentUnavailable(
            f"no dpkg database at {info_dir}: --owner-db dpkg works on Debian-based hosts only"
        )
    owners: Owners = {}
    for path in sorted(lists):
        package = os.path.basename(path)[: -len(".list")].split(":", 1)[0]
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                for line in f:
                    key = fold(line.rstrip("\n"))
                    if wanted is None or key in wanted:
                        owners.setdefault(key, package)
        except OSError as e:
            raise UsageError(f"cannot read {path}: {e.strerror}") from None
    return owners


def _root_info(root: str) -> str:
    info = os.path.join(root, DPKG_INFO)
    if not glob.glob(os.path.join(glob.escape(info), "*.list")):
        raise UsageError(
            f"--owner-db {root}: no dpkg database in it ({info}/*.list): give the root "
            "directory (chroot) the image was built in, or a Contents-<arch> index file"
        )
    return info


# A Contents index's location field: section/package or area/section/package, comma-separated.
HEADER = [b"FILE", b"LOCATION"]  # ends the preamble of an old index (its first ~30 lines)
PREAMBLE_LINES = 100
LOCATION = re.compile(rb"[\w.+-]+(?:/[\w.+-]+){1,2}(?:,[\w.+-]+(?:/[\w.+-]+){1,2})*")


def _lz4(path: str) -> io.BufferedIOBase:
    import lz4.frame

    f: io.BufferedIOBase = lz4.frame.LZ4FrameFile(path)
    return f


def _plain(path: str) -> io.BufferedIOBase:
    return io.BufferedReader(io.FileIO(path))


# An index as the archive serves it (.gz, .xz), as apt-file keeps it (.lz4), or plain.
INDEX_CODECS: tuple[tuple[bytes, Callable[[str], io.BufferedIOBase]], ...] = (
    (b"\x1f\x8b", gzip.GzipFile),
    (b"\xfd7zXZ\x00", lzma.LZMAFile),
    (b"\x04\x22\x4d\x18", _lz4),
)


def _open_index(path: str) -> io.BufferedIOBase:
    with open(path, "rb") as f:
        head = f.read(6)
    opener = next((o for magic, o in INDEX_CODECS if head.startswith(magic)), _plain)
    return opener(path)


def contents_owners(path: str, wanted: Wanted) -> Owners:
    """Path (folded) -> package(s), from a Debian Contents-<arch> index: `path  section/pkg[,…]`
    a line, no leading slash; a path in several packages is "pkg|pkg2" (an index cannot say
    which one was installed). An old index's preamble, up to its `FILE LOCATION`, is skipped.
    Millions of lines: bytes, and only the lines asked about (and the first) are checked."""
    paths = {p.encode("utf-8", "surrogateescape") for p in wanted.paths}
    under = tuple(u.encode("utf-8", "surrogateescape") for u in wanted.under) or (b"\0",)
    owners: Owners = {}
    entries = 0
    try:
        with _open_index(path) as f:
            head = list(itertools.islice(f, PREAMBLE_LINES))
            start = next((i + 1 for i, x in enumerate(head) if x.split() == HEADER), 0)
            for number, raw in enumerate(itertools.chain(head[start:], f), start + 1):
                parts = raw.rsplit(None, 1)
                if not parts:
                    continue
                key = parts[0].lstrip(b"/")
                if key.startswith(b"usr/"):
                    key = key[4:]
                used = key in paths or key.startswith(under)
                if (used or not entries) and not (len(parts) == 2 and LOCATION.fullmatch(parts[1])):
                    raise _not_an_index(path, number)
                entries += 1
                if used:
                    names = {loc.rsplit(b"/", 1)[-1].decode() for loc in parts[1].split(b",")}
                    owners.setdefault(
                        key.decode("utf-8", "surrogateescape"), "|".join(sorted(names))
                    )
    except (OSError, EOFError, zlib.error, lzma.LZMAError, RuntimeError) as e:  # lz4: RuntimeError
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise UsageError(f"--owner-db {path}: cannot read it: {reason}") from None
    if not entries:
        raise _not_an_index(path, 0)
    return owners


def _not_an_index(path: str, line: int) -> UsageError:
    where = f"line {line} is not" if line else "it has no line"
    return UsageError(
        f"--owner-db {path}: {where} `path section/package`: is it a Debian Contents-<arch> index?"
    )


# The registry: the first kind that accepts an --owner-db argument reads it.
OWNER_DBS: tuple[OwnerDbKind, ...] = (
    OwnerDbKind(
        "dpkg",
        True,
        lambda arg: arg == "dpkg",
        lambda arg, host: (os.path.join(host, DPKG_INFO), host),
        dpkg_owners,
    ),
    OwnerDbKind(
        "dpkg",
        True,
        os.path.isdir,
        lambda arg, host: (_root_info(arg), arg),
        dpkg_owners,
    ),
    OwnerDbKind(
        "contents",
        False,
        os.path.isfile,
        lambda arg, host: (arg, None),
        contents_owners,
    ),
)


def owner_dbs(args: Iterable[str], by: str = "package", host: str = "/") -> list[OwnerDb]:
    """The databases --owner-db names, in the order given (`none`: none at all), for the
    grouping `by` (UsageError where it asks no database)."""
    if by not in NEEDS_PACKAGES:
        raise UsageError("--owner-db is for --by package or --by file")
    out = []
    for arg in args:
        if arg == NONE:
            continue
        kind = next((k for k in OWNER_DBS if k.accepts(arg)), None)
        if kind is None:
            raise UsageError(
                f"--owner-db {arg}: no such file or directory: give dpkg (this host), the "
                "root directory the image was built in, or a Debian Contents-<arch> index"
            )
        where, root = kind.locate(arg, host)
        out.append(OwnerDb(kind, where, "given", root))
    return out


def host_owns_kernel(p: Profile, host: str = "/") -> OwnerDb | None:
    """This host's dpkg database, if its kernel package ships the image's lib/modules/<kver>:
    then the image was very likely built here, from these very packages."""
    info = os.path.join(host, DPKG_INFO)
    for kver in p.kernel_versions:
        for prefix in ("linux-image-", "linux-modules-"):
            for path in sorted(
                glob.glob(os.path.join(glob.escape(info), f"{prefix}{glob.escape(kver)}*.list"))
            ):
                if _lists(path, (f"/lib/modules/{kver}/", f"/usr/lib/modules/{kver}/")):
                    package = os.path.basename(path)[: -len(".list")].split(":", 1)[0]
                    reason = (
                        f"found: {package} ships the image's kernel modules, so the image "
                        "was very likely built on this host (--owner-db none to not use it)"
                    )
                    return OwnerDb(OWNER_DBS[0], info, reason, host)
    return None


def _lists(path: str, prefixes: tuple[str, ...]) -> bool:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return any(line.startswith(prefixes) for line in f)
    except OSError:
        return False


# -- attributing files -------------------------------------------------------------------------
@dataclass(frozen=True)
class _File:
    cost: FileCost
    names: tuple[str, ...]  # every name; the one the component rules chose first
    candidates: tuple[str, ...]  # the folded paths a database may know it by


@cache
def _rules() -> Rules:
    return Rules(builtin_rules())


def _names(f: FileCost) -> tuple[str, ...]:
    """The file's names, the one the built-in rules attribute it by first: of busybox's 267
    names (cat, ls… which coreutils ships too) bin/busybox is the one that says what it is."""
    if not f.links:
        return (f.path,)
    rules = _rules()
    rank = {n: rules.index(n.lstrip("/")) for n in (f.path, *f.links)}
    return tuple(sorted(rank, key=lambda n: (rank[n] is None, rank[n] or 0)))


def _candidates(names: tuple[str, ...], generator: str) -> tuple[str, ...]:
    """The folded paths a database may know a file by: its names, then where its generator
    copied it from (with "*" for any one directory)."""
    folded = [fold(n) for n in names]
    out = list(folded)
    for gen, pattern, source in _SOURCES:
        if gen == generator:
            for name in folded:
                if m := pattern.fullmatch(name):
                    out.append(fold(source.format(*m.groups())))
    return tuple(dict.fromkeys(out))


_SOURCES = tuple((g, re.compile(p), s) for g, p, s in GENERATOR_SOURCES)


def _file(f: FileCost, generator: str) -> _File:
    names = _names(f)
    return _File(f, names, _candidates(names, generator))


@dataclass(frozen=True)
class Wanted:
    """The paths a database is asked about, and the directories whose every file is."""

    paths: frozenset[str]
    under: tuple[str, ...]

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and (path in self.paths or path.startswith(self.under))


def _wanted(files: list[_File]) -> Wanted:
    paths = {c for f in files for c in f.candidates}
    under = {c.split(ANY_DIR, 1)[0] + "/" for c in paths if ANY_DIR in c}
    return Wanted(frozenset(c for c in paths if ANY_DIR not in c), tuple(sorted(under)))


Lookup = Callable[[_File], "str | None"]


def _elf_notes(p: Profile) -> Lookup:
    notes = {f.path: f.package["name"] for f in p.elf if f.package.get("name")}
    return lambda f: next((notes[n] for n in f.names if n in notes), None)


def _kernel_path(p: Profile) -> Lookup | None:
    kernels = {k for k in p.kernel_versions if DEBIAN_FLAVOUR.fullmatch(k)}
    if p.generator not in COPIES_MODULES or not kernels:
        return None

    def lookup(f: _File) -> str | None:
        for name in f.names:
            m = KERNEL_FILE.fullmatch(fold(name))
            if m and m.group(1) in kernels:
                return f"linux-image-{m.group(1)}"
        return None

    return lookup


def _from(owners: Owners, root: str | None) -> Lookup:
    below: dict[str, str] = {}  # "dir/*/rest" -> the first such path the database has
    for path in owners:
        head, sep, tail = path.partition("/")
        while sep:
            sub, sep2, rest = tail.partition("/")
            if sep2:
                below.setdefault(f"{head}{ANY_DIR}{rest}", path)
            head, sep, tail = f"{head}/{sub}", sep2, rest

    def lookup(f: _File) -> str | None:
        paths = (below.get(c) if ANY_DIR in c else c for c in f.candidates)
        hits = [(c, owners[c]) for c in paths if c is not None and c in owners]
        if len({package for _, package in hits}) > 1 and root is not None:
            # Its names or sources are in several packages (dracut's emergency.service
            # replaces systemd's): the one whose file in the root has its size is the source.
            for path, package in hits:
                if _size_in(root, path) == f.cost.bytes:
                    return package
        return hits[0][1] if hits else None

    return lookup


def _size_in(root: str, folded: str) -> int | None:
    for path in (folded, "usr/" + folded):
        try:
            return os.stat(os.path.join(root, path)).st_size
        except OSError:
            continue
    return None


@dataclass(frozen=True)
class Packages:
    """Each file's package (None: unknown), and where the packages came from."""

    of: dict[str, str | None]  # file path -> package
    sources: tuple[PackageSource, ...]
    warnings: tuple[str, ...]


def packages(p: Profile, dbs: list[OwnerDb] | None = None, host: str = "/") -> Packages:
    """Every file's package. `dbs` None: this host's dpkg database when it owns the image's
    kernel; [] for none."""
    if dbs is None:
        found = host_owns_kernel(p, host)
        dbs = [found] if found else []
    chosen = dbs
    files = [_file(f, p.generator) for f in p.files]
    wanted = _wanted(files)
    steps: list[tuple[PackageSource, Lookup]] = []

    def from_dbs(installed: bool) -> None:
        for db in chosen:
            if db.kind.installed == installed:
                source = PackageSource(db.kind.name, db.where, db.reason)
                steps.append((source, _from(db.kind.read(db.where, wanted), db.root)))

    from_dbs(True)
    reason = "the ELF .note.package of the image's binaries: the source package they come from"
    steps.append((PackageSource("elf-note", "", reason), _elf_notes(p)))
    kernel = _kernel_path(p)
    if kernel is not None:
        reason = "Debian's kernel package ships lib/modules/<kver>/kernel, where the image's are"
        steps.append((PackageSource("kernel-path", "", reason), kernel))
    from_dbs(False)

    page = p.totals.page_size
    of: dict[str, str | None] = {}
    counts = [[0, 0] for _ in steps]
    unknown: list[FileCost] = []
    for f in files:
        for i, (_, lookup) in enumerate(steps):
            package = lookup(f)
            if package:
                of[f.cost.path] = package
                counts[i][0] += 1
                counts[i][1] += page_round(f.cost.bytes, page)
                break
        else:
            of[f.cost.path] = None
            unknown.append(f.cost)
    sources = tuple(
        PackageSource(s.name, s.where, s.reason, n, b)
        for (s, _), (n, b) in zip(steps, counts, strict=True)
    )
    return Packages(of, sources, tuple(_unknown_warning(unknown, chosen, p.generator, page)))


def _unknown_warning(
    unknown: list[FileCost], dbs: list[OwnerDb], generator: str, page: int
) -> list[str]:
    if not unknown:
        return []
    size = human(sum(page_round(f.bytes, page) for f in unknown))
    what = f"{size} in {len(unknown)} file{'s' if len(unknown) != 1 else ''}"
    if dbs:
        largest = sorted(unknown, key=lambda f: (-f.bytes, f.path))[:3]
        return [
            f"{what} is in no package of {', '.join(db.where for db in dbs)}: made when the "
            "image was built, or from outside the package system (largest: "
            f"{', '.join(f.path for f in largest)})"
        ]
    if generator == "debian-installer":  # made of udebs, from the archive, not from a root
        return [
            f"{what} has no known package: add --owner-db CONTENTS, the archive's "
            "Contents-udeb-<arch> index (dists/<suite>/main/Contents-udeb-amd64.gz)"
        ]
    return [
        f"{what} has no known package: add --owner-db dpkg (built on this host), "
        "--owner-db ROOT (the root it was built in) or --owner-db CONTENTS (the "
        "archive's Contents-<arch> index)"
    ]


# -- groupings ---------------------------------------------------------------------------------
KeyOf = Callable[[FileCost], str | None]  # None: the file is not in this grouping
REQUESTED_BY_NONE = "(requested by no module)"


def _by_package(p: Profile, pk: Packages) -> KeyOf:
    return lambda f: pk.of[f.path] or UNKNOWN


def _by_file(p: Profile, pk: Packages) -> KeyOf:
    return lambda f: f.path


def _by_firmware(p: Profile, pk: Packages) -> KeyOf:
    """Firmware files by the modules whose modinfo requests them (a blob two drivers ask for
    is their group together: removing one of them does not free it); other files left out."""
    wanted: dict[str, set[str]] = {}
    for r in p.firmware_requests:
        for path in r.files:
            wanted.setdefault(path, set()).add(r.module)
    names: dict[str, str] = {}
    for f in p.files:
        for name in (f.path, *f.links):
            if name in wanted:
                names[f.path] = "+".join(sorted(wanted[name]))
    return lambda f: (
        names.get(f.path, REQUESTED_BY_NONE) if is_firmware(f.path) and not _microcode(f) else None
    )


def _microcode(f: FileCost) -> bool:
    """CPU microcode: the kernel loads it early, no module asks for it."""
    return f.component == "microcode"


GROUPINGS: dict[str, Callable[[Profile, Packages], KeyOf]] = {
    "package": _by_package,
    "file": _by_file,
    "firmware": _by_firmware,
}
NEEDS_PACKAGES = ("package", "file")


def group(p: Profile, by: str, dbs: list[OwnerDb] | None = None, host: str = "/") -> Grouping:
    """The profile's files grouped by GROUPINGS[by], largest page-rounded group first.
    `dbs`: the owner databases to ask (None: found as packages() says)."""
    pk = packages(p, dbs, host) if by in NEEDS_PACKAGES else Packages({}, (), ())
    key_of = GROUPINGS[by](p, pk)
    page = p.totals.page_size
    rows: dict[str, list[int]] = {}
    first: dict[str, FileCost] = {}
    for f in p.files:
        key = key_of(f)
        if key is None:
            continue
        row = rows.setdefault(key, [0, 0, 0])
        row[0] += 1
        row[1] += f.bytes
        row[2] += page_round(f.bytes, page)
        first.setdefault(key, f)
    per_file = by == "file"
    groups = [
        Group(
            k,
            n,
            b,
            r,
            first[k].component if per_file else None,
            pk.of[first[k].path] if per_file else None,
        )
        for k, (n, b, r) in rows.items()
    ]
    groups.sort(key=lambda g: (-g.page_rounded_bytes, g.name))
    return Grouping(p.image, by, tuple(groups), pk.sources, pk.warnings)
