"""Sizes: parsed as people write them (512K, 128M, 1.5G, 256MiB, or bytes), rounded to pages,
and shown in binary units."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
MIB = UNITS["M"]


def round_up(n: int, to: int) -> int:
    """n rounded up to a multiple of `to`."""
    return -(-n // to) * to


def non_negative(record: Any) -> None:
    """ValueError if an integer field of the dataclass `record` is negative (sizes, counts):
    a record read back from a document names the field (msgspec adds where it is)."""
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(value, int) and value < 0:
            raise ValueError(f"{f.name} = {value} is negative")


def page_round(size: int, page_size: int) -> int:
    """What `size` bytes of file data cost in whole pages."""
    return round_up(size, page_size)


def parse_size(value: str | int) -> int:
    """Bytes, from a plain number or K, M, G (KiB, MiB, GiB: powers of 1024); ValueError when
    `value` is not a size, is negative, or says KB, MB or GB (1000 or 1024? write which)."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        n = value
    else:
        t = value.strip().upper()
        if t.endswith(("KB", "MB", "GB")) and not t.endswith(("KIB", "MIB", "GIB")):
            raise ValueError(f"{value!r} is ambiguous: write {t[:-1].strip()}iB or bytes")
        t = t.removesuffix("IB")
        n = int(float(t[:-1]) * UNITS[t[-1]]) if t and t[-1] in UNITS else int(t)
    if n < 0:
        raise ValueError(f"{value!r} is negative")
    return n


def human(n: int) -> str:
    """Bytes in binary units, three significant figures."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return (
                f"{n} B"
                if unit == "B"
                else f"{value:.3g} {unit}"
                if value < 100
                else f"{value:.0f} {unit}"
            )
        value /= 1024
    raise AssertionError
