"""Progress of a long measurement on stderr: a spinner, and one line per trial as it ends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from footprint.measure.bisect import Trial

T = TypeVar("T")


def with_progress(work: Callable[[Any], T], shown: bool = True) -> T:
    """Run work(report) with a rich progress line on stderr (one per shape where trials are
    labelled with their shape) and one line per trial; work(None) when not `shown`."""
    if not shown:
        return work(None)
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from footprint.report.measure import trial_dict, trial_lines

    console = Console(stderr=True)
    count = [0]
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        tasks = {"": progress.add_task("bisecting")}
        counts: dict[str, int] = {}

        def report(t: Trial, lo: int, hi: int, label: str = "") -> None:
            count[0] += 1
            counts[label] = counts.get(label, 0) + 1
            if label not in tasks:
                tasks[label] = progress.add_task(label)
            where = f" [{label}]" if label else ""
            console.print(f"  trial {count[0]}{where}:" + trial_lines([trial_dict(t)])[0][1:])
            what = f"{label}: bisecting" if label else "bisecting"
            progress.update(tasks[label], description=f"{what}, {counts[label]} trials")

        return work(report)
