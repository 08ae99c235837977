#!/usr/bin/env python3
"""Benchmark a full `footprint profile` against the codec's own decompress-only time.

Usage: bench/profile.py [--runs N] IMAGE...

Prints, per image, the median wall time (N runs after a warm-up) of `footprint profile IMAGE
-o /dev/null` and of the codec's own command piped to `wc -c`, and their ratio (targets: <= 2
on a dracut gzip image, <= 3 on a Debian zstd image), with footprint's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import FOOTPRINT, decompress_cmd, median  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    print(f"{'image':32} {'codec':10} {'profile':>8} {'decomp':>8} {'ratio':>6} {'peak RSS':>9}")
    for image in args.images:
        doc = json.loads(
            subprocess.run(
                [FOOTPRINT, "inspect", "--json", image], check=True, capture_output=True, text=True
            ).stdout
        )
        q = shlex.quote(image)
        fp, rss = median(f"{FOOTPRINT} profile {q} -o /dev/null", args.runs)
        dc, _ = median(decompress_cmd(image, doc["segments"]), args.runs)
        codec = "+".join(s["codec"] for s in doc["segments"])
        print(
            f"{Path(image).name[:32]:32} {codec[:10]:10} {fp:8.3f} {dc:8.3f} {fp / dc:6.2f} "
            f"{rss / 2**20:7.1f}Mi",
            flush=True,
        )
    print(
        f"\nmedians of {args.runs} runs; ratio = profile / decompress-only "
        "(targets: <= 2 gzip dracut, <= 3 zstd Debian)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
