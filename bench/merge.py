#!/usr/bin/env python3
"""Benchmark `footprint merge` of 1,000 result documents against `json.load` of the same files.

Usage: bench/merge.py [--documents N] [--runs R] [DOCUMENT]

DOCUMENT is a real result (a `calibrate --json`, `boot --json` or `profile` document; default:
the profile of sample_initrds/busybox-gzip.img, made now). It is written N times, each copy
naming another image (path and sha256), so that the N are N cells. Prints the medians (R
rounds, each timing both in turn) of merging them in-process (read, check, build and write
the matrix), of `json.load` of every file, their ratio, and the whole command's wall time.
No timed asserts: the figure is for the README.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import FOOTPRINT, timed  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def copies(doc: dict, n: int, into: Path) -> list[str]:
    """`doc` n times, the i-th naming image-i.img (and a sha256 of its own)."""
    paths = []
    for i in range(n):
        sha = hashlib.sha256(str(i).encode()).hexdigest()
        if doc["kind"] == "calibration":
            doc["image"] = {**doc["image"], "path": f"image-{i}.img", "sha256": sha}
        else:
            doc["subject"] = {**doc["subject"], "image": f"image-{i}.img", "image_sha256": sha}
        path = into / f"result-{i}.json"
        path.write_text(json.dumps(doc, indent=2))
        paths.append(str(path))
    return paths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("document", nargs="?")
    ap.add_argument("--documents", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    from footprint.gate.merge import matrix_json, merge_files

    with tempfile.TemporaryDirectory(prefix="bench-merge-") as tmp:
        source = args.document
        if source is None:
            source = f"{tmp}/profile.json"
            image = ROOT / "sample_initrds" / "busybox-gzip.img"
            subprocess.run([FOOTPRINT, "profile", str(image), "-o", source], check=True)
        doc = json.loads(Path(source).read_text())
        paths = copies(doc, args.documents, Path(tmp))
        out = Path(tmp) / "matrix.json"

        def merge() -> None:
            out.write_text(matrix_json(merge_files(paths, str(out))))

        def load() -> None:
            for p in paths:
                with open(p) as f:
                    json.load(f)

        rounds = []
        for _ in range(args.runs + 1):  # the first warms the page cache
            times = []
            for f in (merge, load):
                start = time.perf_counter()
                f()
                times.append(time.perf_counter() - start)
            rounds.append(times)
        m = statistics.median(r[0] for r in rounds[1:])
        j = statistics.median(r[1] for r in rounds[1:])
        cells = len(json.loads(out.read_text())["cells"])
        assert cells == args.documents, cells
        listing = " ".join(paths)
        cmd, _ = timed(f"{FOOTPRINT} merge {listing} -o {tmp}/cmd.json")
        size = sum(Path(p).stat().st_size for p in paths)
        print(
            f"{args.documents} {doc['kind']} documents ({size / 2**20:.1f} MiB): merge "
            f"{m:.3f} s, json.load {j:.3f} s, ratio {m / j:.2f}; the whole command "
            f"{cmd:.3f} s (medians of {args.runs})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
