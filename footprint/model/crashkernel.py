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
