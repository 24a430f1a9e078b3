"""Errors the toolkit raises on purpose: each renders as one line that names the file and what to do."""

from __future__ import annotations

import tempfile
from pathlib import Path


class HyperKvasirError(Exception):
    """Base class; the CLI prints ``str(error)`` as one line and exits with ``exit_code``."""

    exit_code = 2


class DataError(HyperKvasirError):
    """The data cannot give what was asked (too few images or videos, names a list cannot match): exit 1."""

    exit_code = 1


class UnknownClassError(HyperKvasirError, KeyError):
    """A class name that none of the three release namings knows."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ReleaseFormatError(HyperKvasirError):
    """A release file that does not have the documented format."""

    exit_code = 1

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")

    def __reduce__(self):
        """Rebuilt from its parts when a worker process sends it back (the one-message default cannot, and the
        pool would report a broken worker instead of this line)."""
        return type(self), (self.path, self.message, self.line)


class DatasetNotFoundError(HyperKvasirError):
    """A folder that is not (or not yet) a HyperKvasir release."""


def require_output(path: str | Path | None, *, folder: bool, option: str = "--out") -> None:
    """Refuse an output path before any work: a folder where a file is wanted (or the reverse), or a place that
    cannot be written."""
    if path is None:
        return
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise HyperKvasirError(f"{option} {path} is a file; give a folder (new or existing)")
    if not folder and path.is_dir():
        raise HyperKvasirError(f"{option} {path} is a folder; give a file name, e.g. {path / 'out'}")
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and existing != path and not existing.is_dir():
        raise HyperKvasirError(f"{option} {path}: {existing} is a file, so nothing can be written below it")
    if existing is not None:
        place = existing if existing.is_dir() else existing.parent
        try:  # a real probe: permissions say little to root, and nothing about /proc or read-only mounts
            with tempfile.TemporaryFile(dir=place):
                pass
        except OSError:
            raise HyperKvasirError(f"{option} {path}: {place} is not writable; choose another place") from None


def require_range(option: str, value: float | int | None, low: float | None = None, high: float | None = None) -> None:
    """Refuse an option outside [low, high] with one line naming it, before any work starts (exit 2)."""
    if value is None:
        return
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (
            f"between {low} and {high}"
            if low is not None and high is not None
            else f"at least {low}"
            if low is not None
            else f"at most {high}"
        )
        raise HyperKvasirError(f"{option} must be {bounds}, not {value}")


def require_ranges(*checks: tuple[str, float | int | None, float | None, float | None]) -> None:
    """:func:`require_range` for each ``(option, value, low, high)``."""
    for option, value, low, high in checks:
        require_range(option, value, low, high)


def require_compatible(weights: str | None, pretrained: bool) -> None:
    """``--weights`` is where pretrained weights come from: with ``--no-pretrained`` it would be ignored."""
    if weights and not pretrained:
        raise HyperKvasirError(
            f"--weights {weights} and --no-pretrained contradict each other (the weights would be ignored); drop one"
        )


def require_choice(what: str, value: str, choices) -> None:
    """Refuse a name outside ``choices`` with one line listing them (exit 2)."""
    if value not in choices:
        raise HyperKvasirError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
