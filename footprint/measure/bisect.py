"""The smallest memory under which a run still succeeds, by bisection.

A run succeeds when its outcome is success (marker, clean exit, settled init): no OOM kill,
no failed unpack, no panic. Memory needs are (nearly) monotonic, so the search keeps a
failing lower bound and a succeeding upper bound and halves the gap down to the resolution;
every trial is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from footprint.measure.backend import Outcome, RunResult
from footprint.units import MIB, round_up


@dataclass(frozen=True)
class Trial:
    limit_bytes: int
    outcome: Outcome
    succeeded: bool
    peak_bytes: int
    duration_s: float
    detail: str = ""  # what ended it, in words (the run's detail)

    @classmethod
    def of(cls, limit: int, r: RunResult) -> Trial:
        return cls(limit, r.outcome, r.succeeded, r.peak_bytes, r.duration_s, r.detail)


@dataclass
class Bisection:
    minimum_bytes: int | None  # None: even the upper bound failed
    resolution_bytes: int
    low_bytes: int
    high_bytes: int
    trials: list[Trial] = field(default_factory=list)
    at_minimum: RunResult | None = None


def bisect(
    run: Callable[[int], RunResult],
    low: int,
    high: int,
    resolution: int = MIB,
    max_high: int = 64 << 30,
    progress: Callable[[Trial, int, int], None] | None = None,
) -> Bisection:
    """Smallest limit in (low, high] at which `run(limit)` succeeds, to `resolution`."""
    result = Bisection(None, resolution, low, high)

    def trial(limit: int) -> RunResult:
        m = run(limit)
        t = Trial.of(limit, m)
        result.trials.append(t)
        if progress is not None:
            progress(t, low, high)
        return m

    def align(n: int) -> int:
        return round_up(n, resolution)

    low, high = align(low), max(align(high), align(low) + resolution)
    best = trial(high)
    low_known_to_fail = False
    while not best.succeeded:  # the upper bound must succeed: widen it upwards
        if high >= max_high:
            return result
        low, high, low_known_to_fail = high, min(high * 2, max_high), True
        best = trial(high)
    while True:
        while high - low > resolution:
            mid = align((low + high) // 2)
            if mid >= high:
                mid = high - resolution
            if mid <= low:
                break
            m = trial(mid)
            if m.succeeded:
                high, best = mid, m
            else:
                low, low_known_to_fail = mid, True
        if low_known_to_fail or low <= resolution:
            break
        m = trial(low)  # every trial succeeded: the lower bound must fail, widen downwards
        if not m.succeeded:
            break
        high, best, low = low, m, align(low // 2)
    result.minimum_bytes, result.at_minimum = high, best
    result.low_bytes, result.high_bytes = low, high
    return result


def bisect_around(
    run: Callable[[int], RunResult],
    guess: int,
    resolution: int = 4 * MIB,
    window: int = 8 * MIB,
    max_high: int = 64 << 30,
    progress: Callable[[Trial, int, int], None] | None = None,
) -> tuple[Bisection, bool]:
    """The smallest succeeding limit when a prediction says where it is: the first trial is
    `guess`, the second `window` away on the side the first one points to, and when the
    boundary lies in between, one more trial closes it to `resolution` (3 boots for an 8 MiB
    window at 4 MiB). Otherwise an ordinary bisection goes on from there, the trials kept.
    Returns the bisection and whether the minimum was within `window` of the guess."""
    trials: list[Trial] = []
    runs: dict[int, RunResult] = {}

    def trial(limit: int) -> RunResult:
        if limit not in runs:
            m = run(limit)
            runs[limit] = m
            t = Trial.of(limit, m)
            trials.append(t)
            if progress is not None:
                progress(t, guess - window, guess + window)
        return runs[limit]

    guess = max(resolution, round_up(guess, resolution))
    window = max(resolution, round_up(window, resolution))
    if trial(guess).succeeded:
        high, low = guess, max(resolution, guess - window)
        if low < high and not trial(low).succeeded:
            result = bisect(trial, low, high, resolution, max_high)
            return _merged(result, trials, runs), True
        # the boundary is further down (or the guess is the smallest size there is)
        result = bisect(trial, max(resolution, low - 4 * window), low, resolution, max_high)
        return _merged(result, trials, runs), False
    low, high = guess, guess + window
    if trial(high).succeeded:
        result = bisect(trial, low, high, resolution, max_high)
        return _merged(result, trials, runs), True
    result = bisect(trial, high, high + 4 * window, resolution, max_high)
    return _merged(result, trials, runs), False


def bisect_up(
    run: Callable[[int], RunResult],
    floor: int,
    high: int,
    resolution: int = 4 * MIB,
    max_high: int = 64 << 30,
    progress: Callable[[Trial, int, int], None] | None = None,
) -> Bisection:
    """The smallest succeeding limit when every limit below `floor` is known to fail (a
    stricter success than one already bisected to `floor`: a dump saved, where the initrd
    alone needs `floor`): the first trial is `floor` itself, which settles it in one boot
    when it succeeds; else an ordinary bisection between it and `high`."""
    trials: list[Trial] = []
    runs: dict[int, RunResult] = {}
    floor = max(resolution, round_up(floor, resolution))

    def trial(limit: int) -> RunResult:
        if limit not in runs:
            runs[limit] = run(limit)
            trials.append(Trial.of(limit, runs[limit]))
            if progress is not None:
                progress(trials[-1], floor, high)
        return runs[limit]

    if trial(floor).succeeded:
        b = Bisection(floor, resolution, floor - resolution, floor, list(trials), runs[floor])
        return b
    return _merged(
        bisect(trial, floor, max(high, floor + resolution), resolution, max_high), trials, runs
    )


def _merged(result: Bisection, trials: list[Trial], runs: dict[int, RunResult]) -> Bisection:
    """The bisection with every trial made, in order (its own repeats of known limits are not
    boots: bisect() asked the memo)."""
    result.trials = list(trials)
    if result.minimum_bytes is not None:
        result.at_minimum = runs.get(result.minimum_bytes, result.at_minimum)
    return result
