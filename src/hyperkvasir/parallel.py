"""One way to fan work out over processes: a process pool, or plain ``map`` when one process is enough."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Literal

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _start_worker() -> None:
    """Workers leave Ctrl-C to the command (a terminal sends SIGINT to every process of the job, and each worker
    would print its own traceback; :meth:`_Pool.__exit__` stops them), and end with the command: if it dies
    without cleaning up (killed, a bus error), the kernel stops them instead of leaving them asleep, holding
    memory and files."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _Pool(ProcessPoolExecutor):
    """A process pool that drops its queued jobs when the block exits on an error, and on an interrupt also stops
    the running ones, so no worker outlives the command."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers, initializer=_start_worker)

    def __exit__(self, exc_type, exc, traceback) -> Literal[False]:  # never swallows the exception
        if exc_type is None or issubclass(exc_type, Exception):
            self.shutdown(wait=True, cancel_futures=exc_type is not None)
            return False
        workers = list((self._processes or {}).values())  # shutdown forgets them; Python 3.14's terminate_workers
        self.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join()
        return False


class _Inline:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def map(self, fn, jobs, chunksize: int = 1):
        return map(fn, jobs)


def process_pool(workers: int, jobs: int, minimum: int = 2):
    """A context manager with ``.map``: processes when ``workers > 1`` and there are ``minimum`` jobs or more.

    At most one process per job and four per core: more only adds start-up time and memory (a ``--workers
    99999`` would otherwise try to start that many processes)."""
    workers = min(workers, jobs, 4 * (os.cpu_count() or 1))
    return _Pool(workers) if workers > 1 and jobs >= minimum else _Inline()
