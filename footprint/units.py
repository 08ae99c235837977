"""Sizes as people write them: 512K, 128M, 1.5G, 256MiB, or a plain number of bytes."""

from __future__ import annotations

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
MIB = UNITS["M"]


def round_up(n: int, to: int) -> int:
    """n rounded up to a multiple of `to`."""
    return -(-n // to) * to


def parse_size(value: str | int) -> int:
    """Bytes; ValueError when `value` is not a size."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    t = value.strip().upper().removesuffix("IB").removesuffix("B")
    if t and t[-1] in UNITS:
        return int(float(t[:-1]) * UNITS[t[-1]])
    return int(t)
