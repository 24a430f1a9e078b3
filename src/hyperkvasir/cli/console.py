"""Shared terminal output: rich consoles (results on stdout, progress and logs on stderr)."""

from __future__ import annotations

from rich.console import Console

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def fail(message: str, code: int) -> int:
    """Print one error line on stderr and return the exit code."""
    err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    return code


def progress_bar(description: str):
    """A ``progress(iterable, total)`` wrapper that draws a rich bar on stderr."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    def wrap(iterable, total: int):
        with Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task(description, total=total)
            for item in iterable:
                yield item
                bar.advance(task)

    return wrap
