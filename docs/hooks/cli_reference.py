"""MkDocs hook: the command-line reference, generated from the Typer app at build time so it cannot drift from
the code. It fills the ``<!-- cli-reference -->`` marker of reference/cli.md."""

from __future__ import annotations

import re
from typing import Any

MARKER = "<!-- cli-reference -->"
_CITATIONS = re.compile(r"\[(\w{1,2})\]\[(\w{1,2})\](?:\[(\w{1,2})\])?")  # dataset.md's source marks: [P][R][3]


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Source marks stay text (Markdown would read ``[P][R]`` as a reference link); the marker gets the CLI."""
    markdown = _CITATIONS.sub(lambda m: "".join(rf"\[{key}\]" for key in m.groups() if key), markdown)
    if MARKER not in markdown:
        return markdown
    import typer

    from hyperkvasir.cli.commands import app

    return markdown.replace(MARKER, "\n".join(_sections(typer.main.get_command(app), "hyperkvasir")))


def _sections(command: Any, path: str) -> list[str]:
    """One section per command, depth first, in the order ``--help`` lists them."""
    lines = [] if path == "hyperkvasir" else [f"## `{path}`", "", _escape(command.help or ""), ""]
    options = [param for param in command.params if param.name != "help"]
    if options:
        lines += ["| option | default | help |", "|---|---|---|"]
        lines += [_row(param) for param in options]
        lines.append("")
    for name, sub in getattr(command, "commands", {}).items():
        lines += _sections(sub, f"{path} {name}")
    return lines


def _row(param: Any) -> str:
    names = ", ".join(f"`{name}`" for name in (*param.opts, *param.secondary_opts))
    if param.param_type_name == "argument":
        names = f"`{param.name.upper()}` (argument)"
    default = "" if param.default in (None, False, (), []) or param.required else f"`{param.default}`"
    return f"| {names} | {default} | {_escape(getattr(param, 'help', '') or '')} |"


def _escape(text: str) -> str:
    """Help text as one Markdown table cell or paragraph: pipes escaped, lines joined."""
    return " ".join(text.split()).replace("|", "\\|")
