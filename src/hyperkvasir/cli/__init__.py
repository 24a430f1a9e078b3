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

    Commands return their exit code: 0 success, 1 the data has problems that make results wrong, 2 usage.
    """
    try:
        result = app(args=argv, prog_name="hyperkvasir", standalone_mode=False)
    except HyperKvasirError as error:
        return fail(str(error), error.exit_code)
    except TyperException as error:  # usage errors: bad option, missing argument
        error.show(file=sys.stderr)
        return 2
    except typer.Abort:
        return fail("aborted", 1)
    return result if isinstance(result, int) else 0
