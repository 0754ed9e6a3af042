"""The settings base: declared models, their value types, and their mistakes as problems.

A settings model lists the keys a table of ``cartrescue.toml`` may hold, with their types,
defaults and examples. From that one declaration come the validation, the error messages
(every mistake at once, each with its dotted key, what was expected, what was found and a
fix), the typo suggestions and the JSON Schema.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from ..errors import ConfigError, ConfigProblem
from .problems import dotted, example_of, nearest_key, problem, toml_value, unknown_key_problem

__all__ = [
    "Duration",
    "PluginSettings",
    "Seconds",
    "Secret",
    "SecretFromEnv",
    "SettingsModel",
    "Timeout",
    "invalid",
    "parse_duration",
    "validate_table",
]

M = TypeVar("M", bound="SettingsModel")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
DURATION_PATTERN = r"^\s*(\d+(\.\d+)?\s*[dhms]\s*)+$"


def invalid(message: str, fix: str = "", *, key: str | None = None) -> PydanticCustomError:
    """The error a validator raises for a mistake: ``message`` says what was expected,
    ``fix`` what to write instead (shown as is). A model validator that checks several keys
    names the one to blame with ``key``."""
    context = {"message": message, "fix": fix}
    if key is not None:
        context["key"] = key
    return PydanticCustomError("config", "{message}", context)


def _duration_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _to_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PydanticCustomError("duration_type", "expected a duration such as '24h'")
    if isinstance(value, int | float):
        raise PydanticCustomError(
            "duration_unit",
            "a duration needs a unit (d, h, m or s)",
            {"number": _duration_number(value)},
        )
    text = value.replace(" ", "").lower()
    parts = _DURATION.findall(text)
    if not text or not parts or "".join(n + u for n, u in parts) != text:
        raise PydanticCustomError(
            "duration_text", "expected a duration such as '90m', '1h30m' or '2d'"
        )
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def _format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{_duration_number(seconds)}s"


Duration = Annotated[
    timedelta,
    PlainValidator(_to_duration),
    PlainSerializer(_format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "a duration with its unit: d, h, m or s ('90m', '1h30m', '2d')",
            "examples": ["60m", "1h", "2d"],
        }
    ),
]
"""A span of time written with its unit (``"90m"``, ``"1h30m"``, ``"2d"``). A bare number is
refused: ``60`` could mean seconds or minutes."""


def parse_duration(value: object, *, key: str) -> timedelta:
    """``"90m"``, ``"1h30m"``, ``"2d"`` → a timedelta; anything else (a bare number too) is a
    :class:`~cartrescue.errors.ConfigError` naming ``key`` with its fix."""
    try:
        return _to_duration(value)
    except PydanticCustomError as err:
        name = key.rpartition(".")[2]
        raise ConfigError(
            problems=[problem(key, name, err.type, err.message(), err.context or {}, value)]
        ) from None


def _to_seconds(value: object) -> float:
    if isinstance(value, str):
        seconds = _to_duration(value).total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise invalid(
            "expected seconds (30) or a duration ('30s')", "write a number of seconds, such as 30"
        )
    if seconds <= 0:
        raise invalid("expected more than 0 seconds", "write a positive number of seconds")
    return seconds


Seconds = Annotated[
    float,
    PlainValidator(_to_seconds),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
            "description": "seconds (a number, as HTTP libraries take timeouts) or a duration",
        }
    ),
]
"""A timeout: a number is seconds (``30``), as every HTTP library counts timeouts; a duration
with its unit (``"30s"``) is accepted too."""


def _to_timeout(value: object) -> float | tuple[float, float]:
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise invalid("expected seconds, or [connect, read] seconds", "write timeout = [5, 30]")
        return (_to_seconds(value[0]), _to_seconds(value[1]))
    return _to_seconds(value)


Timeout = Annotated[
    float | tuple[float, float],
    PlainValidator(_to_timeout),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": DURATION_PATTERN},
                {
                    "type": "array",
                    "items": {"type": "number", "exclusiveMinimum": 0},
                    "minItems": 2,
                    "maxItems": 2,
                },
            ],
            "description": "seconds to wait for an answer (a number), or [connect, read]",
        }
    ),
]
"""An HTTP timeout: seconds, or ``[connect, read]`` seconds."""


class _SecretMarker:
    def __init__(self, env_only: bool) -> None:
        self.env_only = env_only

    def __repr__(self) -> str:
        return f"secret(env_only={self.env_only})"


Secret = Annotated[str, _SecretMarker(env_only=False)]
"""A secret value. In the file, ``name_env = "VARIABLE"`` names the environment variable
that holds it (the usual way); ``name = "..."`` is accepted too. Never shown in errors."""

SecretFromEnv = Annotated[str, _SecretMarker(env_only=True)]
"""A secret that may only come from the environment (``name_env``)."""


def _secret_marker(info: FieldInfo) -> _SecretMarker | None:
    for item in info.metadata:
        if isinstance(item, _SecretMarker):
            return item
    annotation = info.annotation
    for arg in get_args(annotation):  # Optional[Secret]
        for meta in getattr(arg, "__metadata__", ()):
            if isinstance(meta, _SecretMarker):
                return meta
    return None


class SettingsModel(BaseModel):
    """Base of every settings table: unknown keys are mistakes, values keep their TOML type
    (no ``"1"`` for ``1``), and a validated model is read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @classmethod
    def secret_fields(cls) -> dict[str, bool]:
        """The secret keys, each with whether it may only come from the environment."""
        found: dict[str, bool] = {}
        for name, info in cls.model_fields.items():
            marker = _secret_marker(info)
            if marker is not None:
                found[name] = marker.env_only
        return found

    @classmethod
    def valid_keys(cls) -> list[str]:
        """The keys a table may hold, as they are written in the file (``token_env``)."""
        keys: list[str] = []
        secrets = cls.secret_fields()
        for name in cls.model_fields:
            if name in secrets:
                keys.append(f"{name}_env")
                if not secrets[name]:
                    keys.append(name)
            else:
                keys.append(name)
        return keys


class PluginSettings(SettingsModel):
    """Base for a connector's or channel's settings: subclass it, declare the keys of its
    ``[connector]`` or ``[channels.KIND]`` table as fields (``Secret`` for credentials,
    ``Duration`` for spans of time), and set ``settings_model`` on the plugin class::

        class TextbeltSettings(HttpSettings):
            key: Secret

        class TextbeltSMS(HttpChannel):
            settings_model = TextbeltSettings

    The config then checks the table against the model (every mistake at once, typos with
    the nearest valid key, ``key_env`` resolved from the environment) and calls the plugin
    class with the keys the file gives as keyword arguments; ``cartrescue schema`` includes
    the model. ``type`` is the plugin's name and is not a field."""

    def given(self) -> dict[str, Any]:
        """The settings the file gave, as keyword arguments for the plugin's constructor
        (its own defaults apply to the rest)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


def _unwrap_model(annotation: object) -> type[SettingsModel] | None:
    """The settings model a field holds, directly or in a list, an Optional or a dict."""
    if isinstance(annotation, type) and issubclass(annotation, SettingsModel):
        return annotation
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap_model(get_args(annotation)[0])
    if origin in (list, tuple, dict, Union, UnionType):
        for arg in get_args(annotation):
            found = _unwrap_model(arg)
            if found is not None:
                return found
    return None


def _model_at(model: type[SettingsModel], loc: Sequence[str | int]) -> type[SettingsModel]:
    """The model that holds the last key of ``loc`` (list indexes and dict keys skipped)."""
    current = model
    for part in loc:
        if isinstance(part, int):
            continue
        info = current.model_fields.get(part)
        if info is None:
            continue
        inner = _unwrap_model(info.annotation)
        if inner is not None:
            current = inner
    return current


def problems_from(
    err: ValidationError, model: type[SettingsModel], prefix: str
) -> list[ConfigProblem]:
    """Every mistake pydantic found, as problems keyed by their dotted path."""
    found: list[ConfigProblem] = []
    errors = err.errors(include_url=False)
    # A misspelt required key is one mistake: reported as the typo, not also as missing.
    meant: set[str] = set()
    for item in errors:
        if item["type"] == "extra_forbidden":
            loc = [p for p in item["loc"] if p != "[key]"]
            holder = _model_at(model, loc[:-1])
            near = nearest_key(str(loc[-1]), holder.valid_keys())
            if near:
                parent = dotted(prefix, loc[:-1])
                meant.add(f"{parent}.{near.removesuffix('_env')}" if parent else near)
    for item in errors:
        loc = [p for p in item["loc"] if p != "[key]"]
        blamed = (item.get("ctx") or {}).get("key")
        if blamed and item["type"] == "config":
            key = dotted(prefix, [*loc, blamed])
            found.append(ConfigProblem(key, item["msg"], item["ctx"]["fix"]))
            continue
        key = dotted(prefix, loc)
        name = str(loc[-1]) if loc and not isinstance(loc[-1], int) else key
        holder = _model_at(model, loc[:-1])
        kind = item["type"]
        if kind == "extra_forbidden":
            found.append(unknown_key_problem(key, name, holder.valid_keys()))
            continue
        if kind == "missing" and key in meant:
            continue
        info = holder.model_fields.get(name)
        secret = name in holder.secret_fields()
        if kind == "missing":
            example = example_of(info)
            if secret:
                fix = f'add {name}_env = "VARIABLE", naming the environment variable that holds it'
            elif example:
                fix = f"add {name} = {example}"
            else:
                fix = f"add {name}"
            found.append(ConfigProblem(key, "missing; this key is required", fix))
            continue
        found.append(
            problem(
                key,
                name,
                kind,
                item["msg"],
                item.get("ctx") or {},
                item["input"],
                info=info,
                secret=secret,
            )
        )
    return found


def resolve_env(
    model: type[SettingsModel],
    table: Mapping[str, Any],
    env: Mapping[str, str],
    prefix: str,
    problems: list[ConfigProblem],
) -> dict[str, Any]:
    """``name_env = "VARIABLE"`` → ``name = <the variable's value>`` for the model's secrets
    (in nested tables too). A variable that is not set is a problem naming it, never its
    value."""
    secrets = model.secret_fields()
    resolved: dict[str, Any] = {}
    for name, value in table.items():
        stem = name.removesuffix("_env")
        key = f"{prefix}.{name}" if prefix else name
        if name.endswith("_env") and stem in secrets:
            if stem in table:
                problems.append(
                    ConfigProblem(key, f"both {stem} and {name} are given", f"keep only {name}")
                )
                continue
            if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
                problems.append(
                    ConfigProblem(
                        key,
                        f"expected the name of an environment variable, found {toml_value(value)}",
                        f'write {name} = "{stem.upper()}"',
                    )
                )
                continue
            if not env.get(value):
                problems.append(
                    ConfigProblem(
                        key,
                        f"environment variable {value} is not set (or is empty)",
                        f"set {value} in the environment cartrescue runs with "
                        "(e.g. the env file cron or systemd reads)",
                    )
                )
                continue
            resolved[stem] = env[value]
            continue
        if secrets.get(name):
            problems.append(unknown_key_problem(key, name, model.valid_keys()))
            continue
        info = model.model_fields.get(name)
        inner = None if info is None else _unwrap_model(info.annotation)
        if inner is not None and isinstance(value, dict):
            resolved[name] = resolve_env(inner, value, env, key, problems)
        else:
            resolved[name] = value
    return resolved


def validate_table(
    model: type[M],
    table: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    prefix: str,
    problems: list[ConfigProblem],
) -> M | None:
    """Check ``table`` against ``model``: the model, or None with every mistake appended to
    ``problems`` (missing environment variables included)."""
    before = len(problems)
    resolved = resolve_env(model, table, env, prefix, problems)
    # A secret whose variable is missing is reported once, by its *_env key.
    reported = {p.key.removesuffix("_env") for p in problems[before:] if p.key}
    try:
        result = model.model_validate(resolved)
    except ValidationError as err:
        problems.extend(p for p in problems_from(err, model, prefix) if p.key not in reported)
        return None
    return result if len(problems) == before else None
