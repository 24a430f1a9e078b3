"""The ``hyperkvasir`` command: a thin typer app over the library; heavy imports live inside each command."""

from __future__ import annotations

import errno
import importlib
import re
import sys
from concurrent.futures.process import BrokenProcessPool

import typer
from typer.exceptions import TyperException

from hyperkvasir.cli.commands import app
from hyperkvasir.cli.console import fail
from hyperkvasir.errors import HyperKvasirError

INTERRUPTED = 130  # the shell's code for a command ended by Ctrl-C (128 + SIGINT); typer returns it too
_WORKER_COPY = re.compile(r"\ACaught (?P<name>\w+) (?P<where>in .+?)\.\nOriginal Traceback")
_NO_PLACE = "free space there or choose another place"
_NOT_ALLOWED = "fix the permissions or choose another place"
_OS_REMEDIES = {
    errno.ENOSPC: _NO_PLACE,
    errno.EDQUOT: _NO_PLACE,
    errno.EROFS: "choose a writable place",
    errno.EACCES: _NOT_ALLOWED,
    errno.EPERM: _NOT_ALLOWED,
}
_OUT_OF_MEMORY = "lower --batch-size, --input-size or --workers, or free memory"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a toolkit error becomes one line on stderr and its exit code, never a traceback.

    Commands return their exit code: 0 success, 1 the data has problems that make results wrong, 2 usage, 130
    interrupted. An unexpected error is one line too, with the hint to rerun with ``--debug`` (anywhere on the
    command line), which shows the traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        result = app(args=argv, prog_name="hyperkvasir", standalone_mode=False)
    except KeyboardInterrupt:
        return fail("interrupted", INTERRUPTED)
    except TyperException as error:  # usage errors: bad option, missing argument
        context = getattr(error, "ctx", None)
        return fail(f"{error.format_message()} (see `{context.command_path if context else 'hyperkvasir'} --help`)", 2)
    except typer.Abort:
        return fail("aborted", 1)
    except Exception as error:  # noqa: BLE001  (the one place every failure is turned into a line)
        line, code, on_purpose = _line(error)
        if debug and not on_purpose:
            raise
        return fail(line, code)
    if result == INTERRUPTED:  # typer turns a Ctrl-C inside a command into this code, silently
        return fail("interrupted", INTERRUPTED)
    _leave_together()
    return result if isinstance(result, int) else 0


def _leave_together() -> None:
    """Every process of a distributed run waits for the others before leaving (rank 0, which writes the
    results, last): a process exiting while another still holds the gloo group can abort it."""
    if "torch" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _line(error: Exception) -> tuple[str, int, bool]:
    """(line, exit code, whether the toolkit raised it on purpose) of an error.

    An error raised in a DataLoader worker arrives as torch's copy ("Caught DataError in DataLoader worker process
    0.", then the worker's traceback): torch keeps only the type's name and the formatted traceback, so the
    original line is the traceback's last entry; a toolkit error keeps its exit code."""
    text = str(error)
    copy = _WORKER_COPY.match(text)
    if copy is None:
        if isinstance(error, HyperKvasirError):
            return text, error.exit_code, True
        return _resource_line(error) or _unexpected(type(error).__name__, text), 1, False
    *_, last = re.finditer(rf"^(?:(?P<module>[\w.]+)\.)?{copy['name']}(?:: |$)", text, re.M)
    message = text[last.end() :].strip()
    kind = _toolkit_class(last["module"], copy["name"])
    if kind is not None:
        return message, kind.exit_code, True
    return _unexpected(f"{copy['name']} {copy['where']}", message), 1, False


def _resource_line(error: Exception) -> str | None:
    """A line for what the machine ran out of or refused (disk, memory, permission, a killed worker): the cause and
    what to do, not a library's words."""
    if isinstance(error, OSError) and error.errno in _OS_REMEDIES:
        where = error.filename2 or error.filename  # a rename's target is the place that lacked room
        return f"{f'{where}: ' if where else ''}{error.strerror}; {_OS_REMEDIES[error.errno]}"
    if isinstance(error, MemoryError):
        return f"out of memory; {_OUT_OF_MEMORY}"
    if isinstance(error, BrokenProcessPool) or str(error).startswith("DataLoader worker (pid"):
        return f"a worker process died (killed, often for lack of memory); {_OUT_OF_MEMORY}"
    return None


def _toolkit_class(module: str | None, name: str) -> type[HyperKvasirError] | None:
    if not module or not module.startswith("hyperkvasir."):
        return None
    kind = getattr(importlib.import_module(module), name, None)
    return kind if isinstance(kind, type) and issubclass(kind, HyperKvasirError) else None


def _unexpected(what: str, message: str) -> str:
    return f"unexpected {what}: {message.splitlines()[0] if message else ''} — rerun with --debug for the traceback"
