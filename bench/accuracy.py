#!/usr/bin/env python3
"""How wrong every crashkernel= estimator is, against the measured minimum of a real capture.

Usage: bench/accuracy.py --kernel VMLINUZ --kernel-profile kernel.json [IMAGE...]

Each image (default: every *.img in sample_initrds/real) is calibrated with
`footprint calibrate --kdump --kernel-profile` (a real kexec -p capture, bisected to 4 MiB from
the prediction), and printed with: the measured minimum crashkernel=, footprint's prediction,
kdumpctl's formula, Debian kdump-config's suggested size, and each one's error in MiB and %.
The kernel profile must be made from footprint's own minimal initrds (calibrate-kernel), never
from these images.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import FOOTPRINT  # noqa: E402

REAL = Path(__file__).resolve().parent.parent / "sample_initrds" / "real"
KDUMP_CONFIG = "/usr/sbin/kdump-config"


def kdump_config_note() -> str:
    """Why kdump-config's suggestion is (or is not) in the table."""
    try:
        text = Path(KDUMP_CONFIG).read_text(errors="replace")
    except OSError:
        return f"{KDUMP_CONFIG} is not installed (apt-get install kdump-tools)"
    version = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "kdump-tools"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not re.search(r"estimate|suggest", text, re.I):
        return (
            f"this machine's kdump-config (kdump-tools {version or '?'}) has no size "
            "estimator: its column is empty"
        )
    return ""


def calibrate(image: str, kernel: str, profile: str) -> dict:
    cmd = [FOOTPRINT, "calibrate", image, "--kernel", kernel, "--kernel-profile", profile]
    out = subprocess.run([*cmd, "--kdump", "--json"], capture_output=True, text=True, check=False)
    if out.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()[-500:]}")
    doc: dict = json.loads(out.stdout)
    return doc


def error(estimate: float | None, truth: float | None) -> str:
    if estimate is None or not truth:
        return f"{'-':>8} {'-':>7}"
    return f"{estimate - truth:>+8.0f} {100 * (estimate - truth) / truth:>+6.1f}%"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="*")
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--kernel-profile", required=True)
    args = ap.parse_args()
    images = args.images or sorted(str(p) for p in REAL.glob("*.img"))
    note = kdump_config_note()
    head = (
        f"{'image':26} {'measured':>9} {'predicted':>9} {'error':>16} {'kdumpctl':>9} "
        f"{'error':>16} {'kdump-config':>12} {'error':>16} {'boots':>5} {'time':>6}"
    )
    print(
        "crashkernel= in MiB: the minimum a real kexec -p capture boots in (QEMU), each "
        "estimator's figure and its error (MiB, %)"
    )
    print(head)
    for image in images:
        start = time.monotonic()
        doc = calibrate(image, args.kernel, args.kernel_profile)
        k = doc.get("kdump") or {}
        truth = k.get("minimum_mib")
        predicted = k.get("predicted_mib")
        formula = doc.get("kdumpctl_formula_mib")
        boots = len(doc["trials"]) + len(k.get("trials", []))
        print(
            f"{Path(image).name[:26]:26} {truth if truth else '-':>9} {predicted or '-':>9} "
            f"{error(predicted, truth)} {formula:>9} {error(formula, truth)} {'-':>12} "
            f"{error(None, truth)} {boots:>5} {time.monotonic() - start:>5.0f}s",
            flush=True,
        )
        direct = doc.get("minimum_mib")
        print(
            f"{'  direct boot -m':26} {direct or '-':>9} {doc.get('predicted_mib') or '-':>9} "
            f"{error(doc.get('predicted_mib'), direct)}",
            flush=True,
        )
    if note:
        print(f"kdump-config: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
