#!/usr/bin/env python3
"""Kernels side by side, calibrated for real: Debian's 6.1, trixie's 6.12 and the newest
trixie-backports kernel (`make samples-kernels`), each with the kdump-tools initrd made for it.

Usage:
  bench/kernels.py [--kdump] [--resolution 4M] [--jobs N] [--compare-jobs] [--save FILE]

Runs `footprint calibrate IMG1 IMG2 IMG3 --kernel K1 --kernel K2 --kernel K3 --json` (TCG) and
prints the minimum per kernel beside the kernel's own terms, the trials and seconds of each;
--compare-jobs runs it with --jobs 1 and --jobs 2 and prints the wall-time ratio (measured in
the same run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import calibrated  # noqa: E402

KERNELS = Path(__file__).resolve().parent.parent / "sample_initrds" / "real" / "kernels"


def calibrate(args: argparse.Namespace, jobs: int) -> tuple[dict, float]:
    manifest = json.loads((KERNELS / "manifest.json").read_text())["kernels"]
    cmd = ["calibrate", *(str(KERNELS / k["kdump_tools_image"]) for k in manifest)]
    for k in manifest:
        cmd += ["--kernel", str(KERNELS / k["vmlinuz"])]
    cmd += ["--resolution", args.resolution, "--jobs", str(jobs), "--json"]
    if args.kdump:
        cmd.append("--kdump")
    return calibrated(cmd)


def show(doc: dict, took: float, jobs: int) -> None:
    print(f"== --jobs {jobs}: {took:.0f} s wall")
    print(
        f"{'kernel':<20} {'memory':>7} {'runtime':>8} {'rootfs':>7} {'minimum':>8} "
        f"{'kexec':>6}  trials  boots"
    )
    for row, c in zip(doc["kernels"], doc["calibrations"], strict=True):
        trials = c["trials"] + c["repeats"]
        if c.get("kdump"):
            trials += c["kdump"]["trials"] + c["kdump"]["repeats"]
        secs = sum(t["duration_s"] for t in trials)
        print(
            f"{row['release']:<20} {row['kernel_memory_mib']:>7} {row['kernel_runtime_mib']:>8} "
            f"{row['rootfs_mib']:>7} {row['minimum_mib']:>8} {row['kdump_minimum_mib'] or '-':>6}"
            f"  {len(trials):>6}  {secs:.0f} s"
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kdump", action="store_true")
    p.add_argument("--resolution", default="4M")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--compare-jobs", action="store_true")
    p.add_argument("--save", help="write the (last) document here")
    args = p.parse_args()
    runs = []
    for jobs in (1, 2) if args.compare_jobs else (args.jobs,):
        doc, took = calibrate(args, jobs)
        show(doc, took, jobs)
        runs.append(took)
    if len(runs) == 2:
        print(f"--jobs 2 / --jobs 1 wall time: {runs[1] / runs[0]:.2f}")
    if args.save:
        Path(args.save).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
