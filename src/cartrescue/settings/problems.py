"""Mistakes as problems: the text of each, with what was expected, what was found and the
fix, and the nearest valid key for a typo. Knows nothing of the models' classes."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic.fields import FieldInfo

from ..errors import ConfigProblem

__all__ = ["dotted", "example_of", "nearest_key", "problem", "toml_value", "unknown_key_problem"]


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def example_of(info: FieldInfo | None) -> str | None:
    if info is not None and info.examples:
        return toml_value(info.examples[0])
    return None


def problem(
    key: str,
    name: str,
    kind: str,
    message: str,
    ctx: Mapping[str, Any],
    value: object,
    *,
    info: FieldInfo | None = None,
    secret: bool = False,
) -> ConfigProblem:
    found = "a value (secret, not shown)" if secret else toml_value(value)
    example = example_of(info)
    fix = str(ctx.get("fix", ""))
    if kind == "duration_unit":
        number = ctx["number"]
        return ConfigProblem(
            key,
            f"expected a duration with its unit, found {number}",
            f'write {name} = "{number}m" or "{number}s"',
        )
    if kind in ("duration_text", "duration_type"):
        return ConfigProblem(
            key,
            f"expected a duration such as '90m', '1h30m' or '2d', found {found}",
            f"write {name} = {example or chr(34) + '24h' + chr(34)}",
        )
    if kind == "literal_error":
        choices = str(ctx.get("expected", ""))
        options = re.findall(r"'([^']*)'", choices)
        near = difflib.get_close_matches(str(value), options, n=1) if options else []
        hint = f'write {name} = "{near[0]}"' if near else f"write one of {choices}"
        return ConfigProblem(key, f"expected one of {choices}, found {found}", hint)
    if not fix and kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        span = _bounds(info)
        fix = f"use a value {span}" + (f" (e.g. {name} = {example})" if example else "")
    if not fix and kind == "string_too_short" and secret:
        fix = f"use a random value of at least {ctx.get('min_length', 1)} characters"
    if not fix:
        fix = f"write {name} = {example}" if example else f"correct {name}"
    if kind == "config":
        return ConfigProblem(key, f"{message}, found {found}", fix)
    expected = _expected(kind, message, ctx)
    if kind == "string_pattern_mismatch" and info is not None and info.description:
        expected = info.description
    return ConfigProblem(key, f"expected {expected}, found {found}", fix)


def _bounds(info: FieldInfo | None) -> str:
    low = high = None
    for item in [] if info is None else info.metadata:
        low = getattr(item, "ge", getattr(item, "gt", low))
        high = getattr(item, "le", getattr(item, "lt", high))
    if low is not None and high is not None:
        return f"from {low} to {high}"
    if low is not None:
        return f"of at least {low}"
    return f"of at most {high}"


_EXPECTED = {
    "string_type": "text in quotes",
    "int_type": "a whole number",
    "bool_type": "true or false",
    "float_type": "a number",
    "list_type": "a list [...]",
    "tuple_type": "a list [...]",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "decimal_type": "a number",
}


def _expected(kind: str, message: str, ctx: Mapping[str, Any]) -> str:
    if kind in _EXPECTED:
        return _EXPECTED[kind]
    if kind == "string_too_short":
        least = ctx.get("min_length", 1)
        return "a non-empty text" if least == 1 else f"at least {least} characters"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return message.replace("Input should be ", "a value ")
    if kind == "string_pattern_mismatch":
        return f"text matching {ctx.get('pattern')}"
    return message[0].lower() + message[1:] if message else kind


def dotted(prefix: str, loc: Sequence[str | int]) -> str:
    """``policy`` + ``("steps", 0, "delay")`` → ``policy.steps[1].delay`` (steps count from
    1, as the file's readers count them)."""
    key = prefix
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            key += f"[{part + 1}]"
        else:
            key = f"{key}.{part}" if key else str(part)
    return key


def nearest_key(name: str, valid: Sequence[str]) -> str | None:
    """The valid key nearest to a misspelt one (difflib), if any is near enough."""
    near = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    stem = name.removesuffix("_env")
    if not near and stem != name:
        near = difflib.get_close_matches(stem, valid, n=1, cutoff=0.6)
    if not near and stem == name:
        near = difflib.get_close_matches(f"{name}_env", valid, n=1, cutoff=0.6)
    return near[0] if near else None


def unknown_key_problem(key: str, name: str, valid: Sequence[str]) -> ConfigProblem:
    """An unknown key: the nearest valid key (difflib), or the list of valid keys."""
    if f"{name}_env" in valid and name not in valid:
        return ConfigProblem(
            key,
            "secrets are not written in this file",
            f'write {name}_env = "VARIABLE", naming the environment variable that holds it',
        )
    near = nearest_key(name, valid)
    what = f"unknown section [{name}]" if "." not in key else f"unknown key {name!r}"
    listing = ", ".join(sorted(valid))
    kinds = "sections" if "." not in key else "keys"
    if near:
        return ConfigProblem(key, what, f"did you mean {near}? (valid {kinds}: {listing})")
    return ConfigProblem(key, what, f"remove it; valid {kinds}: {listing}")
