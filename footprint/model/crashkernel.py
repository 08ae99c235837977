"""The kernel's crashkernel= syntax (Documentation/admin-guide/kdump/kdump.rst): which
reservation a line such as a distro's default gives a first kernel with a given RAM.

`SIZE[@OFFSET]`, `SIZE,high|low`, or `RANGE:SIZE[,RANGE:SIZE]…[@OFFSET]` with `START-[END]`
ranges of the first kernel's RAM, START included and END excluded (crash_reserve.c).
"""

from __future__ import annotations

from dataclasses import dataclass

from footprint.units import parse_size


@dataclass(frozen=True)
class Range:
    start: int
    end: int | None  # None: no upper bound
    size: int


@dataclass(frozen=True)
class Crashkernel:
    """A parsed crashkernel= value: one size for any RAM, or sizes by RAM range."""

    text: str
    ranges: tuple[Range, ...]

    def reservation_for(self, ram: int) -> int:
        """The bytes reserved on a machine with `ram` bytes: 0 where no range holds it."""
        for r in self.ranges:
            if r.start <= ram and (r.end is None or ram < r.end):
                return r.size
        return 0


def _size(text: str, line: str) -> int:
    try:
        return parse_size(text)
    except (ValueError, OverflowError):
        raise ValueError(f"{line!r}: {text!r} is not a size (512M, 2G, …)") from None


def parse_crashkernel(line: str) -> Crashkernel:
    """`line` (with or without `crashkernel=`); ValueError saying what is wrong."""
    text = line.strip().removeprefix("crashkernel=")
    spec = text.split("@", 1)[0]
    if ":" not in spec:  # one size for any RAM
        size = spec.split(",", 1)[0] if spec.endswith((",high", ",low")) else spec
        if "," in size:
            raise ValueError(f"{line!r}: only ',high' or ',low' may follow a plain size")
        return Crashkernel(text, (Range(0, None, _size(size, line)),))
    ranges = []
    for part in spec.split(","):
        bounds, sep, size = part.partition(":")
        start, dash, end = bounds.partition("-")
        if not sep or not dash:
            raise ValueError(f"{line!r}: {part!r} is not START-[END]:SIZE")
        r = Range(_size(start, line), _size(end, line) if end else None, _size(size, line))
        if r.end is not None and r.end <= r.start:
            raise ValueError(f"{line!r}: the range {bounds!r} ends before it starts")
        ranges.append(r)
    return Crashkernel(text, tuple(ranges))


def size_text(n: int) -> str:
    """A size as the kernel's syntax writes it: G where whole, else M (rounded up)."""
    if n and n % (1 << 30) == 0:
        return f"{n >> 30}G"
    return f"{-(-n // (1 << 20))}M"


def line_text(ranges: tuple[Range, ...]) -> str:
    """`ranges` in the kernel's syntax (without `crashkernel=`)."""
    if len(ranges) == 1 and ranges[0].start == 0 and ranges[0].end is None:
        return size_text(ranges[0].size)
    return ",".join(
        f"{size_text(r.start)}-{size_text(r.end) if r.end is not None else ''}:{size_text(r.size)}"
        for r in ranges
    )


@dataclass(frozen=True)
class Basis:
    """One range of a measured line and the shapes it was measured at."""

    range: Range
    measured_at: tuple[int, ...]  # first-kernel RAM (bytes) of the shapes whose need it covers
    note: str


def ranged(needs: dict[int, int]) -> tuple[Crashkernel, tuple[Basis, ...]]:
    """The ranged line that gives every machine between two measured RAM sizes what the
    larger one needs (the need grows with RAM: a smaller need measured on a larger machine is
    taken as the one below it), and machines above the largest what it needs.

    `needs`: first-kernel RAM → the reservation recommended at it (bytes, margin included).
    Machines below the smallest measured RAM get no reservation, as in the distros' lines;
    adjacent ranges with the same size are merged.
    """
    points = sorted(needs.items())
    if not points:
        raise ValueError("no measured shape")
    # A larger machine never needs less: a smaller need measured above a larger one is noise.
    most = 0
    points = [(ram, most := max(most, need)) for ram, need in points]
    merged: list[tuple[Range, tuple[int, ...]]] = []
    for i, (ram, need) in enumerate(points):
        end: int | None = None
        size = need
        if i + 1 < len(points):
            end, size = points[i + 1][0], max(need, points[i + 1][1])
        at: tuple[int, ...] = (ram,) if end is None else (ram, end)
        if merged and merged[-1][0].size == size:
            prev, prev_at = merged.pop()
            ram, at = prev.start, prev_at + tuple(a for a in at if a not in prev_at)
        merged.append((Range(ram, end, size), at))
    out = []
    for r, at in merged:
        sizes = " and ".join(size_text(a) for a in at)
        note = f"the most that {sizes} need" if len(at) > 1 else f"what {sizes} needs"
        if r.end is None:
            note += f"; above {size_text(at[-1])} not measured: larger machines may need more"
        out.append(Basis(r, at, note))
    ranges = tuple(b.range for b in out)
    return Crashkernel(line_text(ranges), ranges), tuple(out)


@dataclass(frozen=True)
class DistroLine:
    """A crashkernel= line a distribution ships, and where it comes from."""

    name: str
    arch: str  # as `uname -m` says it
    line: str
    source: str


# What distributions ship (their defaults files as of 2025), compared with a measured line.
DISTRO_LINES = (
    DistroLine("debian-bookworm", "x86_64", "384M-:128M", "kdump-tools 1:1.8 (bookworm)"),
    DistroLine("debian", "x86_64", "512M-:192M", "kdump-tools 1:1.9 and later (trixie)"),
    DistroLine(
        "debian",
        "aarch64",
        "2G-4G:320M,4G-32G:512M,32G-64G:1024M,64G-128G:2048M,128G-:4096M",
        "kdump-tools 1:1.9 and later",
    ),
    DistroLine("kdump-utils", "x86_64", "2G-64G:256M,64G-:512M", "kdump-utils 1.0.50 (Fedora)"),
    DistroLine(
        "kdump-utils", "aarch64", "2G-4G:256M,4G-64G:320M,64G-:576M", "kdump-utils (4K pages)"
    ),
)


def distro_lines(arch: str) -> tuple[DistroLine, ...]:
    return tuple(d for d in DISTRO_LINES if d.arch == arch)


# How each tool's configuration takes the line (`--format`).
CONFIG_FORMATS = {
    "kernel": "crashkernel={line}",
    "kdump-tools": (
        "# /etc/default/grub.d/kdump-tools.cfg, then update-grub\n"
        'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT crashkernel={line}"'
    ),
    "kdump-utils": 'grubby --update-kernel=ALL --args="crashkernel={line}"',
    "grub": (
        "# /etc/default/grub, then update-grub (grub2-mkconfig on Fedora)\n"
        'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX crashkernel={line}"'
    ),
}


def as_config(line: str, fmt: str) -> str:
    """`line` (kernel syntax, without `crashkernel=`) as `fmt`'s configuration expects it."""
    return CONFIG_FORMATS[fmt].format(line=line)
