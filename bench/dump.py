#!/usr/bin/env python3
"""The smallest crashkernel= at which a real capture saves the dump on its root disk.

Usage: bench/dump.py [--rootdisk DIR] [--kernel VMLINUZ] [--accel tcg|kvm] [--repeat N]

Runs `footprint calibrate IMAGE --kernel K --kdump --root-disk DISK --json` on the cached
Debian root disk (make rootdisk: DIR/rootdisk.raw, DIR/kdump-initrd.img, DIR/vmlinuz) with a
2 GiB, 1-CPU first kernel, and prints every trial of the three bisections (direct boot -m; the
initrd alone under crashkernel=; the dump saved) with its outcome and seconds, the dump-saved
minimum beside the marker-only one, and the error of each estimate a user could have taken
instead: Debian bookworm's kdump-tools default for amd64 (384M-:128M), its later 512M-:192M,
kdumpctl's formula and footprint's static estimate.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import FOOTPRINT  # noqa: E402

ROOTDISK = Path(__file__).resolve().parent.parent / "sample_initrds" / "real" / "rootdisk"
# crashkernel= a Debian amd64 machine of 2 GiB gets from its distro's default line
DISTRO = {"bookworm kdump-tools 384M-:128M": 128, "kdump-tools 1:1.9 512M-:192M": 192}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rootdisk", type=Path, default=ROOTDISK)
    parser.add_argument("--kernel", help="default: the disk's own (DIR/vmlinuz)")
    parser.add_argument("--accel", default="tcg", choices=["tcg", "kvm"])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    d = args.rootdisk
    disk, image = d / "rootdisk.raw", d / "kdump-initrd.img"
    kernel = args.kernel or str(d / "vmlinuz")
    if not disk.exists():
        sys.exit(f"{disk} is missing: make rootdisk (root)")
    cmd = [FOOTPRINT, "calibrate", str(image), "--kernel", kernel, "--kdump"]
    cmd += ["--root-disk", str(disk), "--accel", args.accel, "--json"]
    cmd += ["--repeat", str(args.repeat)]
    print("$", " ".join(cmd), flush=True)
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    if not done.stdout.strip():
        sys.exit(done.stderr.strip() or f"footprint exited {done.returncode}")
    doc = json.loads(done.stdout)
    k = doc["kdump"]
    for title, c in (
        ("direct boot (-m)", doc),
        ("kdump, the initrd alone (marker)", k["marker"]),
        ("kdump, a dump saved on the root disk", k),
    ):
        seconds = [t["duration_s"] for t in c["trials"] + c["repeats"]]
        print(f"\n{title}: {len(seconds)} trials, {sum(seconds):.0f} s")
        for t in c["trials"] + c["repeats"]:
            print(
                f"  {t['memory_mib']:>5} MiB  {t['outcome']:<14} {t['duration_s']:>6.1f} s  "
                f"{t.get('detail', '')}"
            )
        print(f"  minimum: {c['minimum_mib']} MiB")
    m = k["minimum_mib"]
    print(f"\nwall {wall:.0f} s")
    if m is None:
        print("no crashkernel= in the range saved the dump")
        return 1
    print(f"dump-saved minimum   crashkernel={m}M  ({k['dump']['format']}, {k['dump']['bytes']} B)")
    print(f"marker-only minimum  crashkernel={k['marker_minimum_mib']}M")
    if k["repeats"]:
        flaky = ", ".join(map(str, k["flaky_mib"])) or "none"
        print(f"reliable minimum     crashkernel={k['reliable_minimum_mib']}M (flaky: {flaky})")
    peers = {**DISTRO, "kdumpctl formula": k["kdumpctl_formula_mib"]}
    peers["footprint static model"] = k["model_mib"]
    print(f"\n{'estimate':<34} {'MiB':>7} {'error':>8} {'%':>7}")
    for name, value in peers.items():
        print(f"{name:<34} {value:>7} {value - m:>+8.1f} {100 * (value - m) / m:>+6.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
