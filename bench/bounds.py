#!/usr/bin/env python3
"""What the hostile inputs of issue 19 cost: time and peak RSS of `footprint inspect` (and
`components` for the ELF-magic file), each against a reference measured in the same run.

Usage: bench/bounds.py [--runs N] [--gib N]

Prints, for each case, the median seconds, the peak RSS and the ratio to its reference:
  crc        one 4 GiB file in the crc format (checksum summed) / the same file in newc
  elf-magic  `components` on a 1 GiB file starting with \\x7fELF / `inspect` on it
  padding    4 GiB of zeros after the trailer in a zstd member / a 4 GiB file in zstd
  bombs      each codec's member of zeros (--gib GiB), in GiB/s, and so the time its bound
             (Codec.max_unpacked: past it, an image is refused) takes at most
Targets (issue 19): crc <= 5 s; elf-magic <= 400 MiB peak.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import lzma
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import FOOTPRINT, medians  # noqa: E402

# bench/inspect.py is not the standard library's inspect, which footprint needs.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent / "tests"))
from hostile import CHUNK, CRC, large_file, zero_padding, zstd  # noqa: E402

from footprint.image.codecs import CODECS  # noqa: E402
from footprint.image.cpio import newc_entry, newc_trailer  # noqa: E402


def bomb(path: Path, codec: str, size: int) -> None:
    """One file of `size` zeros in a member of `codec`."""
    opener = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open, "zstd": zstd.open}[codec]
    entry = newc_entry("zeros", 0o100644, b"")
    entry = entry[:54] + b"%08X" % size + entry[62:]
    with opener(path, "wb") as out:
        out.write(newc_entry(".", 0o040755) + entry)
        for _ in range(size // len(CHUNK)):
            out.write(CHUNK)
        out.write(newc_trailer())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--gib", type=int, default=1, help="GiB of zeros per codec bomb")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="footprint-bench-") as tmp:
        t = Path(tmp)
        large_file(t / "crc.img", "big", (4 << 30) - 4, start=b"\xff" * 3, magic=CRC)
        large_file(t / "newc.img", "big", (4 << 30) - 4, start=b"\xff" * 3)
        large_file(t / "elf.img", "bin/huge", 1 << 30, start=b"\x7fELF\x02\x01\x01")
        zero_padding(t / "padding.img", 4 << 30)
        inspect = f"{FOOTPRINT} inspect"
        cases = [
            ("crc", f"{inspect} {t}/crc.img", f"{inspect} {t}/newc.img"),
            ("elf-magic", f"{FOOTPRINT} components {t}/elf.img", f"{inspect} {t}/elf.img"),
            ("padding", f"{inspect} {t}/padding.img", f"{inspect} {t}/newc.img"),
        ]
        print(f"{'case':<10} {'seconds':>8} {'peak MiB':>9} {'reference s':>12} {'ratio':>6}")
        for name, cmd, ref in cases:
            (s, rss), (r, _) = medians([cmd, ref], args.runs)
            print(f"{name:<10} {s:>8.2f} {rss >> 20:>9} {r:>12.2f} {s / r:>6.2f}")
        bounds = {c.name: c.max_unpacked >> 30 for c in CODECS}
        print(f"\nbombs: {args.gib} GiB of zeros per codec")
        print(f"{'codec':<6} {'image KiB':>9} {'GiB/s':>6} {'bound GiB':>10} {'s at it':>8}")
        for codec in ("gzip", "bzip2", "xz", "zstd"):
            path = t / f"bomb.{codec}"
            bomb(path, codec, args.gib << 30)
            ((s, _),) = medians([f"{inspect} {path}"], 1)
            rate = args.gib / s
            b = bounds[codec]
            kib = path.stat().st_size >> 10
            print(f"{codec:<6} {kib:>9} {rate:>6.2f} {b:>10} {b / rate:>8.0f}")


if __name__ == "__main__":
    main()
