"""YAML recipes (``--config``) checked against the run config they fill, by one typed schema (pydantic, strict).

Strict means no guessing: ``tta: "false"`` is a string, not a boolean (a non-empty string would switch the option
*on*), ``input_size: 40.5`` is not an integer, and ``epochs: "ten"`` is refused — each with one line naming the file,
the key, the value and the type expected. Unquoted floats are read the YAML 1.2 way, so ``lr: 1e-3`` is the number
0.001 that its author meant (YAML 1.1, PyYAML's default, wants a dot and reads it as the string ``"1e-3"``); a quoted
``lr: "1e-3"`` stays a string and is refused like any other.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from pathlib import Path

import pydantic
import yaml

from hyperkvasir.errors import HyperKvasirError

# What a value of each field type must look like in YAML.
_EXPECTED = {
    bool: "true or false (unquoted)",
    int: "a whole number",
    float: "a number",
    str: "a string",
    dict: "a mapping of key: value lines",
}
# Keys a recipe may not set: the release root is the command's argument.
_NOT_IN_RECIPES = frozenset({"root"})
# YAML 1.2 core schema floats (1e-3, .5, 2., -1.5E+2, .inf, .nan); PyYAML's 1.1 pattern needs a dot in the mantissa.
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$")


class _RecipeLoader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats (``1e-3``) as floats."""


_RecipeLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _schema(kind: type) -> type[pydantic.BaseModel]:
    """A strict pydantic model of the dataclass ``kind``'s fields (types and defaults), unknown keys forbidden."""
    hints = typing.get_type_hints(kind)
    fields = {f.name: (hints[f.name], None) for f in dataclasses.fields(kind) if f.name not in _NOT_IN_RECIPES}
    config = pydantic.ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
    return pydantic.create_model(f"{kind.__name__}Recipe", __config__=config, **fields)


def _expected(annotation) -> str:
    """``int`` → "a whole number", ``str | None`` → "a string or null"."""
    members = typing.get_args(annotation) or (annotation,)
    return " or ".join(
        "null" if member is type(None) else _EXPECTED.get(typing.get_origin(member) or member, str(member))
        for member in members
    )


def _problem(error: dict, schema: type[pydantic.BaseModel]) -> str:
    """One pydantic error as ``key is VALUE; expected …`` (values written as JSON, which YAML reads alike)."""
    key = str(error["loc"][0])
    if error["type"] == "extra_forbidden":
        return f"unknown key {key!r}"
    value = json.dumps(error["input"], default=str)
    if error["type"] == "finite_number":
        return f"{key} is {value}; expected a finite number"
    return f"{key} is {value}; expected {_expected(schema.model_fields[key].annotation)}"


def read_recipe(path: Path, kind: type) -> dict:
    """The keys a YAML recipe sets, type-checked against the run config ``kind``; one line names every bad key."""
    try:
        values = yaml.load(path.read_text(encoding="utf-8"), Loader=_RecipeLoader)  # noqa: S506 (a SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise HyperKvasirError(
            f"{path}: cannot read recipe ({type(error).__name__}); pass a YAML file of key: value lines"
        ) from None
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise HyperKvasirError(f"{path}: a recipe is a YAML mapping of key: value lines, not a {type(values).__name__}")
    schema = _schema(kind)
    try:
        checked = schema.model_validate({str(key): value for key, value in values.items()})
    except pydantic.ValidationError as error:
        problems = [_problem(e, schema) for e in error.errors(include_url=False)]
        known = ", ".join(sorted(schema.model_fields))
        hint = f"; known keys: {known}" if any(p.startswith("unknown key") for p in problems) else ""
        raise HyperKvasirError(f"{path}: {'; '.join(problems)}{hint}") from None
    return checked.model_dump(exclude_unset=True)
