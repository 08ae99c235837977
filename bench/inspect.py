#!/usr/bin/env python3
"""Benchmark `footprint inspect` against the codec's own decompressor and the distro listers.

Usage: bench/inspect.py [--runs N] IMAGE...

For each image, prints the median wall time (over N runs, after one warm-up) of:
  footprint   `footprint inspect IMAGE > /dev/null` (the console script beside this Python)
  decompress  the codec's own command on the compressed member(s), piped to `wc -c`
  lsinitramfs initramfs-tools' lister; lsinitrd: dracut's lister
and the ratios the targets are stated in (footprint / decompress; lister / footprint), plus
footprint's peak RSS against its budget: 64 MiB + the largest file in the image.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

FOOTPRINT = str(Path(sys.executable).with_name("footprint"))
DECOMPRESS = {
    "gzip": "gzip -dc",
    "zstd": "zstd -dc",
    "xz": "xz -dc",
    "lzma": "xz -dc",
    "bzip2": "bzip2 -dc",
    "lz4": "lz4 -dc",
    "lzo": "lzop -dc",
    "none": "cat",
}


def timed(cmd: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of the shell command's largest process."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        ["/bin/sh", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"failed: {cmd}")
    return elapsed, usage.ru_maxrss * 1024


def median(cmd: str, runs: int) -> tuple[float, int]:
    timed(cmd)  # warm the page cache and the interpreter's bytecode cache
    samples = [timed(cmd) for _ in range(runs)]
    return statistics.median(s[0] for s in samples), max(s[1] for s in samples)


def decompress_cmd(image: str, segments: list[dict]) -> str:
    """The codec's own command(s) over exactly the image's members, into one `wc -c`."""
    q = shlex.quote(image)
    if len(segments) == 1 and segments[0]["offset"] == 0:
        return f"{DECOMPRESS[segments[0]['codec']]} {q} | wc -c"
    parts = [
        f"tail -c +{s['offset'] + 1} {q} | head -c {s['compressed_bytes']} | "
        f"{DECOMPRESS[s['codec']]}"
        for s in segments
    ]
    return "{ " + "; ".join(parts) + "; } | wc -c"


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
        fp, rss = median(f"{FOOTPRINT} inspect {q}", args.runs)
        dc, _ = median(decompress_cmd(image, segments), args.runs)
        row = [
            f"{Path(image).name[:32]:32}",
            f"{'+'.join(s['codec'] for s in segments)[:10]:10}",
            f"{fp:9.3f}",
            f"{dc:8.3f}",
            f"{fp / dc:6.2f}",
        ]
        for lister in ("lsinitramfs", "lsinitrd"):
            if shutil.which(lister):
                t, _ = median(f"{lister} {q}", args.runs)
                row += [f"{t:{11 if lister == 'lsinitramfs' else 8}.3f}", f"{t / fp:5.1f}"]
            else:
                row += [f"{'-':>{11 if lister == 'lsinitramfs' else 8}}", f"{'-':>5}"]
        budget = (64 << 20) + largest
        row += [f"{rss / 2**20:7.1f}Mi", f"{budget / 2**20:7.1f}Mi"]
        print(" ".join(row), flush=True)
    print(
        f"\nmedians of {args.runs} runs; ratio = footprint / decompress (target <= 1.2); "
        "x = lister / footprint (targets >= 2 for lsinitramfs, >= 5 for lsinitrd)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
