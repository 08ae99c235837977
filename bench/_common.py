"""Timing helpers shared by the benchmarks: medians of whole commands, peak RSS, and the
codec's own decompress-only command for an image's members."""

from __future__ import annotations

import os
import shlex
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


def calibrated(args: list[str]) -> tuple[dict, float]:
    """`footprint ARGS` (a calibration with --json) under TCG: its document and wall seconds;
    the benchmark exits with calibrate's own error where it printed no document."""
    import json

    env = {**os.environ, "FOOTPRINT_QEMU_ACCEL": "tcg"}
    t = time.monotonic()
    done = subprocess.run([FOOTPRINT, *args], capture_output=True, text=True, env=env, check=False)
    took = time.monotonic() - t
    if not done.stdout.strip():
        sys.exit(f"calibrate failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout), took


def median(cmd: str, runs: int) -> tuple[float, int]:
    timed(cmd)  # warm the page cache and the interpreter's bytecode cache
    samples = [timed(cmd) for _ in range(runs)]
    return statistics.median(s[0] for s in samples), max(s[1] for s in samples)


def medians(cmds: list[str], runs: int) -> list[tuple[float, int]]:
    """median() of each command, run in turn in each of `runs` rounds: on a machine whose load
    changes during the benchmark, the load then weighs on every command alike."""
    for cmd in cmds:
        timed(cmd)
    rounds = [[timed(cmd) for cmd in cmds] for _ in range(runs)]
    return [
        (statistics.median(r[i][0] for r in rounds), max(r[i][1] for r in rounds))
        for i in range(len(cmds))
    ]


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
