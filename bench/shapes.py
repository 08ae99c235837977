#!/usr/bin/env python3
"""Machine shapes, the ranged crashkernel= line and the ,cma split, calibrated for real.

Usage:
  bench/shapes.py [--image IMG] [--kernel K] [--root-disk DISK] [--ram 2G,8G] [--cpus 1]
                  [--jobs N] [--compare-jobs] [--cma] [--save FILE]

Runs `footprint calibrate IMG --kernel K --kdump --ram … --json` (TCG) and prints each shape's
minimum, reliable minimum, recommendation, trials and seconds, the measured ranged line next to
every distribution's, and with --cma the split and what the first kernel gets back.
--compare-jobs runs the same matrix with --jobs 1 and --jobs 2 and prints the wall-time ratio
(measured in the same run). Defaults: Debian's kdump-tools initrd and the host's 6.1 kernel;
with --root-disk (make rootdisk), success is a dump saved on it; with --cma, the newest kernel
`make samples-kernels` made that takes it, with its own kdump-tools initrd.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import calibrated  # noqa: E402

REAL = Path(__file__).resolve().parent.parent / "sample_initrds" / "real"


def cma_kernel() -> tuple[str, str]:
    kernels = REAL / "kernels"
    ks = [k for k in json.loads((kernels / "manifest.json").read_text())["kernels"]]
    k = [k for k in ks if k["crashkernel_cma"]][-1]
    return str(kernels / k["vmlinuz"]), str(kernels / k["kdump_tools_image"])


def calibrate(args: argparse.Namespace, image: str, kernel: str, jobs: int) -> tuple[dict, float]:
    cmd = ["calibrate", image, "--kernel", kernel, "--kdump", "--json"]
    cmd += ["--ram", args.ram, "--cpus", args.cpus, "--jobs", str(jobs)]
    if args.root_disk:
        cmd += ["--root-disk", args.root_disk]
    if args.cma:
        cmd.append("--cma")
    return calibrated(cmd)


def show(doc: dict, took: float, jobs: int) -> None:
    print(f"== --jobs {jobs}: {took:.0f} s wall")
    for s in doc["shapes"]:
        trials = s["marker_trials"] + s["trials"] + s["repeats"]
        secs = sum(t["duration_s"] for t in trials)
        print(
            f"{s['label']:<12} minimum {s['minimum_mib']} MiB, reliable "
            f"{s['reliable_minimum_mib']} MiB, marker {s['marker_minimum_mib']} MiB, recommended "
            f"{s['recommended_mib']} MiB ({s['success_means']}); {len(trials)} trials, "
            f"{secs:.0f} s of boots, {s['seconds_at_minimum']} s at the minimum"
        )
        for t in trials:
            print(f"    {t['memory_mib']:>5} MiB  {t['outcome']:<14} {t['duration_s']:6.1f} s")
        c = s.get("cma")
        if c:
            print(
                f"  ,cma: {c['crashkernel']} (verified: {c['verified']}); the first kernel "
                f"gets {c['returned_mib']} MiB back against {c['all_fixed_mib']}M all fixed"
            )
            for t in c["fixed_trials"] + c["cma_trials"]:
                print(f"    {t['memory_mib']:>5} MiB  {t['outcome']:<14} {t['duration_s']:6.1f} s")
            for t in c["verify_trials"]:
                print(
                    f"    {t['fixed_mib']}M + {t['cma_mib']}M,cma  {t['outcome']:<14} "
                    f"{t['duration_s']:6.1f} s"
                )
    if doc.get("crashkernel_ranges"):
        print(f"measured  crashkernel={doc['crashkernel_ranges']}")
    for d in doc.get("distro_lines", []):
        verdicts = "; ".join(f"{v['ram_mib']}M: {v['verdict']}" for v in d["shapes"])
        print(f"{d['name']:<16} crashkernel={d['line']}: {verdicts}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image")
    p.add_argument("--kernel")
    p.add_argument("--root-disk")
    p.add_argument("--ram", default="2G,8G")
    p.add_argument("--cpus", default="1")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--compare-jobs", action="store_true")
    p.add_argument("--cma", action="store_true")
    p.add_argument("--save", help="write the (last) calibration document here")
    args = p.parse_args()
    image, kernel = args.image, args.kernel
    if args.cma and not (image and kernel):
        kernel, image = cma_kernel()
    image = image or str(REAL / "kdump-tools.img")
    kernel = kernel or "/boot/vmlinuz-6.1.0-57-amd64"
    runs = []
    for jobs in (1, 2) if args.compare_jobs else (args.jobs,):
        doc, took = calibrate(args, image, kernel, jobs)
        show(doc, took, jobs)
        runs.append(took)
    if len(runs) == 2:
        print(f"--jobs 2 / --jobs 1 wall time: {runs[1] / runs[0]:.2f}")
    if args.save:
        Path(args.save).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
