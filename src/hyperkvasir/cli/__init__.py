"""The ``hyperkvasir`` command: a thin typer app over the library; heavy imports live inside each command."""

from __future__ import annotations

import sys

import typer
from typer.exceptions import TyperException

from hyperkvasir.cli.commands import app
from hyperkvasir.cli.console import fail
from hyperkvasir.errors import HyperKvasirError


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a toolkit error becomes one line on stderr and its exit code, never a traceback.

    Commands return their exit code: 0 success, 1 the data has problems that make results wrong, 2 usage. An
    unexpected error is one line too, with the hint to rerun with ``--debug`` (anywhere on the command line),
    which shows the traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        result = app(args=argv, prog_name="hyperkvasir", standalone_mode=False)
    except HyperKvasirError as error:
        return fail(str(error), error.exit_code)
    except TyperException as error:  # usage errors: bad option, missing argument
        error.show(file=sys.stderr)
        return 2
    except typer.Abort:
        return fail("aborted", 1)
    except Exception as error:  # noqa: BLE001  (the one place every unexpected failure is turned into a line)
        if debug:
            raise
        return fail(f"unexpected {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''} — "
                    f"rerun with --debug for the traceback", 1)
    return result if isinstance(result, int) else 0
