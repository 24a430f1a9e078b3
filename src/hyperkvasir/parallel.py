"""One way to fan work out over processes: a process pool, or plain ``map`` when one process is enough."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor


class _Inline:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def map(self, fn, jobs, chunksize: int = 1):
        return map(fn, jobs)


def process_pool(workers: int, jobs: int, minimum: int = 2):
    """A context manager with ``.map``: processes when ``workers > 1`` and there are ``minimum`` jobs or more."""
    return ProcessPoolExecutor(workers) if workers > 1 and jobs >= minimum else _Inline()
