"""Shared terminal output: rich consoles (results on stdout, progress and logs on stderr).

A printed string is shown as it is: no markup (``HK [old]/x`` keeps its brackets), no emoji codes (``:cat:.jpg``
stays a name), control characters and bytes that are not UTF-8 made visible (a file name cannot restyle the
terminal or stop the output) and no hard wrapping (a long path stays on its line). The toolkit's own colours come
as ``Text`` pieces printed beside the values:
``out.print(Text("unreadable:", style="yellow"), path)``.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from hyperkvasir.data.layout import escaped

_CONTROLS = {code: repr(chr(code))[1:-1] for code in (*range(32), 127) if chr(code) not in "\n\t"}


class _PlainConsole(Console):
    """A console whose strings are values, never markup or terminal control."""

    def __init__(self, **kwargs) -> None:
        super().__init__(markup=False, emoji=False, highlight=False, soft_wrap=True, **kwargs)

    def render_str(self, text: str, **kwargs) -> Text:
        return super().render_str(visible(text), **kwargs)


def visible(text: str) -> str:
    """``text`` with control characters escaped (``\\x1b``) and the undecodable bytes of a file name shown as
    ``\\xff`` (Python carries them as lone surrogates, which no UTF-8 stream accepts)."""
    return escaped(text).translate(_CONTROLS)


out = _PlainConsole()
err = _PlainConsole(stderr=True)


def fail(message: str, code: int) -> int:
    """Print one error line on stderr and return the exit code (a line break inside a value is shown as ``\\n``,
    so the error stays one line)."""
    err.print(Text("error:", style="bold red"), message.replace("\n", "\\n"))
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
        with Progress(
            TextColumn(description, markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task(description, total=total)
            for item in iterable:
                yield item
                bar.advance(task)

    return wrap
