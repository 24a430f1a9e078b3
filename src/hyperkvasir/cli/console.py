"""Shared terminal output: rich consoles (results on stdout, progress and logs on stderr)."""

from __future__ import annotations

from rich.console import Console

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def fail(message: str, code: int) -> int:
    """Print one error line on stderr and return the exit code."""
    err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    return code
