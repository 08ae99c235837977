#!/usr/bin/env python3
"""How wrong every crashkernel= estimator is, against the measured minimum of a real capture.

Usage: bench/accuracy.py --kernel VMLINUZ --kernel-profile kernel.json [--save DIR] [IMAGE...]

Each image (default: every *.img in $FOOTPRINT_REAL_IMAGES or sample_initrds/real; uki.efi is
no kexec initrd) is
calibrated with `footprint calibrate --kdump --kernel-profile` (a real kexec -p capture,
bisected to 4 MiB from the prediction) — or read back from DIR/<image>.calibrate.json when
--save DIR already holds it — and profiled with `footprint profile --kernel-profile`. Printed
per image: the measured minimum crashkernel=, footprint's prediction, kdumpctl's formula, Debian
kdump-config's suggested size and openSUSE's kdumptool calibrate (model/peers.py), each with its
error in MiB and %, and each estimator's mean absolute error. The kernel profile must be made
from footprint's own minimal initrds (calibrate-kernel), never from these images.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# bench/inspect.py would shadow the standard library's inspect, which dataclasses import.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

from footprint import profile as fp  # noqa: E402
from footprint.measure.kdump import FIRST_KERNEL_MIB  # noqa: E402
from footprint.model import kernel_profile as kp  # noqa: E402
from footprint.model import peers  # noqa: E402
from footprint.units import MIB  # noqa: E402

FOOTPRINT = str(Path(sys.executable).with_name("footprint"))

REAL = Path(os.environ.get("FOOTPRINT_REAL_IMAGES") or HERE.parent / "sample_initrds" / "real")
ESTIMATORS = ("footprint", "kdumpctl", "kdump-config", "openSUSE")


def calibrate(image: str, kernel: str, profile: str, save: Path | None) -> tuple[dict, bool]:
    """The calibration document, and whether it was read back rather than measured now."""
    saved = save / f"{Path(image).stem}.calibrate.json" if save else None
    if saved is not None and saved.exists():
        return json.loads(saved.read_text()), True
    cmd = [FOOTPRINT, "calibrate", image, "--kernel", kernel, "--kernel-profile", profile]
    out = subprocess.run([*cmd, "--kdump", "--json"], capture_output=True, text=True, check=False)
    if out.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()[-500:]}")
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(out.stdout)
    doc: dict = json.loads(out.stdout)
    return doc, False


def static_profile(image: str, kernel: str, kprofile: str) -> fp.Profile:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "p.json"
        cmd = [FOOTPRINT, "profile", image, "--kernel", kernel, "--kernel-profile", kprofile]
        subprocess.run([*cmd, "-o", str(out)], capture_output=True, check=True)
        return fp.load(str(out))


def first_kernel(doc: dict) -> peers.FirstKernel:
    """kdump-config's early-boot snapshot, from what this bench has: the image's own direct
    boot at its minimum, the probe's sample with the most memory used, carried over to the
    capture's first kernel (FIRST_KERNEL_MIB, one CPU). Buffers are not sampled (0: no block
    device); SReclaimable is Slab − SUnreclaim."""
    timeline = doc["at_minimum"]["timeline"]
    peak = max(timeline, key=lambda s: s["MemTotal"] - s["MemFree"])
    reclaim = peak["Slab"] - peak["SUnreclaim"]
    used = peak["MemTotal"] - peak["MemFree"] - peak["Cached"] - reclaim
    total = FIRST_KERNEL_MIB * MIB
    meminfo = {"MemTotal": total, "MemFree": total - used, "Cached": 0, "SReclaimable": 0}
    where = "the image's direct boot at its minimum, at the probe's peak"
    return peers.FirstKernel(1, total, meminfo, where)


def cell(estimate: float | None, truth: float | None) -> str:
    if estimate is None:
        return f"{'-':>7} {'-':>5} {'-':>6}"
    if not truth:
        return f"{estimate:>7.1f} {'-':>5} {'-':>6}"
    return f"{estimate:>7.1f} {estimate - truth:>+5.0f} {100 * (estimate - truth) / truth:>+5.1f}%"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="*")
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--kernel-profile", required=True)
    ap.add_argument("--save", type=Path, help="keep (and reuse) each calibration here")
    args = ap.parse_args()
    images = args.images or sorted(str(p) for p in REAL.glob("*.img"))
    kernel_bytes = Path(args.kernel).stat().st_size
    kprofile = kp.load(args.kernel_profile)
    print(
        "crashkernel= in MiB: the minimum a real kexec -p capture boots in (QEMU, "
        f"{kprofile.accel}), each estimator's figure and its error (MiB, %)"
    )
    names = "".join(f" {n:>20}" for n in ESTIMATORS)
    print(f"{'image':26} {'measured':>8}{names} {'boots':>5} {'time':>6}")
    errors: dict[str, list[float]] = {n: [] for n in ESTIMATORS}
    reused = 0
    for image in images:
        start = time.monotonic()
        doc, was_saved = calibrate(image, args.kernel, args.kernel_profile, args.save)
        reused += was_saved
        prof = static_profile(image, args.kernel, args.kernel_profile)
        k = doc.get("kdump") or {}
        truth = k.get("minimum_mib")
        first = first_kernel(doc)
        res = prof.reservation
        figures = {
            "footprint": res.predicted_crashkernel_bytes,
            "kdumpctl": peers.kdumpctl(prof).bytes,
            "kdump-config": peers.kdump_config(prof, kernel_bytes, first).bytes,
            "openSUSE": peers.kdumptool_calibrate(prof, kprofile, first).bytes,
        }
        mib = {n: (b / MIB if b is not None else None) for n, b in figures.items()}
        for n, v in mib.items():
            if v is not None and truth:
                errors[n].append(100 * abs(v - truth) / truth)
        boots = len(doc["trials"]) + len(k.get("trials", []))
        took = f"{time.monotonic() - start:>5.0f}s" if not was_saved else "saved"
        row = "".join(f" {cell(v, truth)}" for v in mib.values())
        print(f"{Path(image).name[:26]:26} {truth or '-':>8}{row} {boots:>5} {took:>6}", flush=True)
        direct = doc.get("minimum_mib")
        predicted = res.predicted_minimum_bytes
        p_mib = predicted / MIB if predicted is not None else None
        print(f"{'  direct boot -m':26} {direct or '-':>8} {cell(p_mib, direct)}", flush=True)
    mae = "".join(f" {(sum(e) / len(e) if e else float('nan')):>19.1f}%" for e in errors.values())
    print(f"{'mean absolute error':26} {'':>8}{mae}")
    if reused:
        print(
            f"{reused} calibration(s) read back from {args.save}: measured minima as saved, "
            "every estimate computed now"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
