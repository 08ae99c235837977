"""A fuzzing campaign: each target of fuzz/targets.py under atheris (coverage-guided
libFuzzer) for a given time, from seeds made of the repository's own images, budgets and
profiles; then a table of inputs tried, coverage and findings per target.

    python fuzz/campaign.py [--time SECONDS] [TARGET ...]      (make fuzz FUZZ_TIME=…)

A finding is an input that raised something other than a FootprintError (crash), took more
than 10 s (hang), or took the process above 512 MiB (blow-up): libFuzzer writes it to
.fuzz/findings/TARGET/; minimise it with `python fuzz/campaign.py --minimise FILE TARGET` and
commit it under fuzz/findings/TARGET/ with the fix: tests/test_fuzz.py replays every one.
Exit 1 when a target has a finding.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".fuzz"  # corpora and findings of local campaigns (git-ignored)
FINDINGS = ROOT / "fuzz" / "findings"  # committed: minimised, fixed, replayed by the tests
TIMEOUT_S = 10  # a hang: more than this on one input
RSS_LIMIT_MB = 512  # a blow-up: the process above this
MAX_LEN = {
    "reader": 1 << 18,
    "extract": 1 << 18,
    "budget": 1 << 12,
    "profile": 1 << 17,
    "inner": 1 << 16,
}


def seeds(target: str, into: Path) -> None:
    """The starting inputs: small real images, the README's budget, real profiles."""
    into.mkdir(parents=True, exist_ok=True)
    samples = ROOT / "sample_initrds"
    if target in ("reader", "extract"):
        images = [*samples.glob("*.img"), *samples.glob("bad/*.img")]
        for image in images:
            if image.stat().st_size <= MAX_LEN[target]:
                (into / image.name).write_bytes(image.read_bytes())
    elif target == "budget":
        readme = (ROOT / "README.md").read_text()
        for i, block in enumerate(re.findall(r"```toml\n(.*?)```", readme, re.S)):
            (into / f"readme-{i}.toml").write_text(block)
    elif target == "profile":
        from footprint.profile import open_profile

        for name in ("busybox-early-zstd.img", "small-hardlinks.img", "devices.img"):
            (into / f"{name}.json").write_text(open_profile(str(samples / name)).to_json())
    elif target == "inner":
        _inner_seeds(into)
    for finding in (FINDINGS / target).glob("*"):
        (into / f"finding-{finding.name}").write_bytes(finding.read_bytes())


def _inner_seeds(into: Path) -> None:
    """Small squashfs (each compressor) and erofs images of a tiny tree, made by the real
    mksquashfs and mkfs.erofs when they are installed (squashfs-tools, erofs-utils)."""
    import shutil
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        (root / "a/b").mkdir(parents=True)
        (root / "a/b/file").write_bytes(b"x" * 5000 + bytes(range(256)) * 12)
        (root / "a/link").symlink_to("b/file")
        (root / "top").write_text("top\n")
        if shutil.which("mksquashfs"):
            for comp in ("gzip", "xz", "lz4", "zstd", "lzo"):
                out = into / f"squashfs-{comp}.img"
                subprocess.run(
                    ["mksquashfs", str(root), str(out), "-comp", comp, "-noappend", "-quiet"],
                    capture_output=True,
                )
        if shutil.which("mkfs.erofs"):
            for name, opts in (
                ("plain", []),
                ("lz4", ["-zlz4"]),
                ("chunked", ["--chunksize=4096"]),
            ):
                out = into / f"erofs-{name}.img"
                subprocess.run(["mkfs.erofs", *opts, str(out), str(root)], capture_output=True)


def child(target: str, args: list[str]) -> None:
    """Runs inside the fuzzing process: instrument footprint, then hand over to libFuzzer."""
    import atheris

    sys.path.insert(0, str(ROOT))
    with atheris.instrument_imports(include=["footprint"]):
        import footprint.cli  # noqa: F401  (every module a command imports)
        import footprint.components.attribute  # noqa: F401
        import footprint.gate.budget  # noqa: F401
        import footprint.gate.diff  # noqa: F401
        import footprint.image.extract  # noqa: F401
        import footprint.image.reader  # noqa: F401
        import footprint.profile  # noqa: F401
        import footprint.report.check  # noqa: F401
        import footprint.report.components  # noqa: F401
        import footprint.report.diff  # noqa: F401
        import footprint.report.inspect  # noqa: F401
    from fuzz.targets import TARGETS

    atheris.Setup([sys.argv[0], *args], TARGETS[target])
    atheris.Fuzz()


def _failure(target: Callable[[bytes], None], data: bytes) -> str | None:
    """How `target` fails on `data` (exception type and where), or None if it does not."""
    try:
        target(data)
    except Exception as e:
        tb = traceback.extract_tb(e.__traceback__)[-1]
        return f"{type(e).__name__} at {tb.filename}:{tb.lineno}"
    return None


def minimise(target: Callable[[bytes], None], data: bytes) -> bytes:
    """The shortest input found that fails the same way (delta debugging: drop ever smaller
    chunks while the failure stays the same)."""
    failure = _failure(target, data)
    if failure is None:
        raise SystemExit("the input does not fail: nothing to minimise")
    chunk = len(data) // 2
    while chunk:
        i = 0
        while i < len(data):
            candidate = data[:i] + data[i + chunk :]
            if _failure(target, candidate) == failure:
                data = candidate
            else:
                i += chunk
        chunk //= 2
    return data


def campaign(target: str, seconds: int) -> dict[str, object]:
    corpus, seed_dir = WORK / "corpus" / target, WORK / "seeds" / target
    found = WORK / "findings" / target
    for d in (corpus, found):
        d.mkdir(parents=True, exist_ok=True)
    seeds(target, seed_dir)
    before = set(found.iterdir())
    flags = [
        str(corpus),
        str(seed_dir),
        f"-max_total_time={seconds}",
        f"-timeout={TIMEOUT_S}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-max_len={MAX_LEN[target]}",
        f"-artifact_prefix={found}/",
        "-print_final_stats=1",
    ]
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, __file__, "--child", target, "--", *flags],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    log = run.stderr
    (WORK / f"{target}.log").write_text(log)
    execs = re.findall(r"stat::number_of_executed_units:\s+(\d+)", log)
    cov = re.findall(r"\bcov: (\d+)", log)
    new = sorted(p.name for p in set(found.iterdir()) - before)
    return {
        "target": target,
        "inputs": int(execs[-1]) if execs else 0,
        "coverage": int(cov[-1]) if cov else 0,
        "seconds": round(time.monotonic() - start),
        "crashes": sum(n.startswith("crash-") for n in new),
        "hangs": sum(n.startswith(("timeout-", "slow-unit-")) for n in new),
        "blow-ups": sum(n.startswith(("oom-", "leak-")) for n in new),
        "findings": [str(found / n) for n in new],
        "exit": run.returncode,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="reader, extract, budget, profile, inner (all)")
    parser.add_argument("--time", type=int, default=60, help="seconds per target")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--minimise", metavar="FILE", help="minimise a finding of TARGET")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    if args.child:  # what follows "--" is libFuzzer's
        child(args.child, argv[split + 1 :])
        return 0
    from fuzz.targets import TARGETS

    if args.minimise:
        (target,) = args.targets
        data = minimise(TARGETS[target], Path(args.minimise).read_bytes())
        out = Path(args.minimise).with_suffix(".min")
        out.write_bytes(data)
        print(f"{out}: {len(data)} bytes")
        return 0
    rows = [campaign(t, args.time) for t in (args.targets or list(TARGETS))]
    print(f"{'target':<8} {'inputs':>9} {'cov':>6} {'s':>5} {'crashes':>8} {'hangs':>6} "
          f"{'blow-ups':>8}")  # fmt: skip
    for r in rows:
        print(f"{r['target']:<8} {r['inputs']:>9} {r['coverage']:>6} {r['seconds']:>5} "
              f"{r['crashes']:>8} {r['hangs']:>6} {r['blow-ups']:>8}")  # fmt: skip
        for f in r["findings"]:  # type: ignore[attr-defined]
            print(f"  finding: {f}")
    return 1 if any(r["findings"] for r in rows) else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
