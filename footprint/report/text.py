"""Plain text for terminals, pipes and CI logs: tables whose cells are never cut or wrapped
(grep finds every path whole), and prose wrapped to the terminal's width (`COLUMNS` wins)."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def columns(
    heads: Sequence[str],
    align: str,
    rows: Sequence[Sequence[str]],
    bold: Callable[[str], str] = str,
) -> list[str]:
    """Columns two spaces apart, each as wide as its widest cell, aligned left (<) or right
    (>); a last column aligned left is not padded, so a long path ends its line whole."""
    widths = [max(len(cell) for cell in column) for column in zip(heads, *rows, strict=True)]
    if align[-1] == "<":
        widths[-1] = 0

    def line(cells: Sequence[str]) -> str:
        cells = [f"{cell:{a}{w}}" for cell, a, w in zip(cells, align, widths, strict=True)]
        return "  ".join(cells).rstrip()

    return [bold(line(heads))] + [line(row) for row in rows]


def prose(text: str, indent: str = "") -> list[str]:
    """A paragraph wrapped to the terminal (or `COLUMNS`; 80 in a pipe without it)."""
    import shutil  # here, not at the top: inspect prints no prose and starts 2 ms sooner
    import textwrap

    width = max(40, shutil.get_terminal_size((80, 24)).columns - 1)
    return textwrap.wrap(
        text,
        width,
        initial_indent=indent,
        subsequent_indent=indent,
        break_on_hyphens=False,
        break_long_words=False,  # a path is never cut
    )


def shown(rows: Sequence[object], top: int) -> tuple[int, str | None]:
    """How many of `rows` to print (`top` 0: all), and the line saying what was left out."""
    if top <= 0 or len(rows) <= top:
        return len(rows), None
    return top, f"… {len(rows) - top} more (--top 0 or --json lists all)"
