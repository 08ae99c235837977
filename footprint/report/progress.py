"""Progress of a long measurement on stderr: a spinner, and one line per trial as it ends."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from footprint.measure.bisect import Trial

T = TypeVar("T")


def with_progress(work: Callable[[Callable[[Trial, int, int], None]], T]) -> T:
    """Run work(report) with a rich progress line on stderr and one line per trial."""
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
        task = progress.add_task("bisecting")

        def report(t: Trial, lo: int, hi: int) -> None:
            count[0] += 1
            console.print(f"  trial {count[0]}:" + trial_lines([trial_dict(t)])[0][1:])
            progress.update(task, description=f"bisecting, {count[0]} trials")

        return work(report)
