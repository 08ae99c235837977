#!/usr/bin/env python3
"""Benchmark `footprint inspect` against the codec's own decompressor and the distro listers.

Usage: bench/inspect.py [--runs N] IMAGE...

For each image, prints the median wall time (over N rounds, after one warm-up; each round runs
every command once, in turn, so that a change in the machine's load weighs on all alike) of:
  footprint   `footprint inspect IMAGE > /dev/null` (the console script beside this Python)
  decompress  the codec's own command on the compressed member(s), piped to `wc -c`
  lsinitramfs initramfs-tools' lister; lsinitrd: dracut's lister
and the ratios the targets are stated in (footprint / decompress; lister / footprint), plus
footprint's peak RSS against its budget: 64 MiB + the largest file in the image.

Targets: footprint <= 1.35 x `zstd -dc` on initramfs-tools-zstd.img, <= 0.7 x `gzip -dc` on
dracut-systemd.img (footprint inflates with zlib, faster than gzip's own inflate).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# This file's name is also the stdlib's `inspect`: keep its folder off the import path, and
# load the shared helpers by file name.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
_spec = importlib.util.spec_from_file_location("footprint_bench", HERE / "_common.py")
assert _spec and _spec.loader
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)
FOOTPRINT, medians, decompress_cmd = common.FOOTPRINT, common.medians, common.decompress_cmd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    if not os.path.exists(FOOTPRINT):
        sys.exit(f"no footprint console script beside {sys.executable}: run `make` first")
    header = (
        f"{'image':32} {'codec':10} {'footprint':>9} {'decomp':>8} {'ratio':>6} "
        f"{'lsinitramfs':>11} {'x':>5} {'lsinitrd':>8} {'x':>5} {'peak RSS':>9} "
        f"{'budget':>9}"
    )
    print(header)
    for image in args.images:
        doc = json.loads(
            subprocess.run(
                [FOOTPRINT, "inspect", "--json", image], check=True, capture_output=True, text=True
            ).stdout
        )
        segments = doc["segments"]
        largest = doc["largest"][0]["bytes"] if doc["largest"] else 0
        q = shlex.quote(image)
        listers = [t for t in ("lsinitramfs", "lsinitrd") if shutil.which(t)]
        cmds = [f"{FOOTPRINT} inspect {q}", decompress_cmd(image, segments)]
        (fp, rss), (dc, _), *listed = medians(cmds + [f"{t} {q}" for t in listers], args.runs)
        lister_times = dict(zip(listers, (t for t, _ in listed), strict=True))
        row = [
            f"{Path(image).name[:32]:32}",
            f"{'+'.join(s['codec'] for s in segments)[:10]:10}",
            f"{fp:9.3f}",
            f"{dc:8.3f}",
            f"{fp / dc:6.2f}",
        ]
        for lister in ("lsinitramfs", "lsinitrd"):
            if lister in lister_times:
                t = lister_times[lister]
                row += [f"{t:{11 if lister == 'lsinitramfs' else 8}.3f}", f"{t / fp:5.1f}"]
            else:
                row += [f"{'-':>{11 if lister == 'lsinitramfs' else 8}}", f"{'-':>5}"]
        budget = (64 << 20) + largest
        row += [f"{rss / 2**20:7.1f}Mi", f"{budget / 2**20:7.1f}Mi"]
        print(" ".join(row), flush=True)
    print(
        f"\nmedians of {args.runs} runs; ratio = footprint / decompress (targets <= 1.35 for "
        "zstd on initramfs-tools-zstd.img, <= 0.7 for gzip on dracut-systemd.img); "
        "x = lister / footprint (targets >= 2 for lsinitramfs, >= 5 for lsinitrd)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
