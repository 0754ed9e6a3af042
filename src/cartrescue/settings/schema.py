"""The JSON Schema of ``cartrescue.toml``, for editors that validate the file while typing.

Made from the declared models: the sections, and for ``[connector]`` and each
``[channels.KIND]`` one ``if type == X then …`` branch per installed plugin that declares its
settings (plugins that do not are accepted with any keys).
"""

from __future__ import annotations

from typing import Any, get_args

from ..models import ChannelKind
from ..registry import CHANNELS, CONNECTORS, discover, load_plugin
from .base import PluginSettings, SettingsModel, _unwrap_model
from .sections import ConfigSettings

__all__ = ["config_schema", "plugin_settings_model"]

_DIALECT = "http://json-schema.org/draft-07/schema#"
_ENV_NAME = "^[A-Za-z_][A-Za-z0-9_]*$"


def plugin_settings_model(cls: type) -> type[PluginSettings] | None:
    """The settings model a plugin class declares (``settings_model``), if any."""
    model = getattr(cls, "settings_model", None)
    if isinstance(model, type) and issubclass(model, PluginSettings):
        return model
    return None


def _without_null(node: Any) -> Any:
    """TOML has no null: drop ``null`` alternatives and ``None`` defaults pydantic adds for
    optional keys."""
    if isinstance(node, list):
        return [_without_null(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _without_null(v) for k, v in node.items()}
    if isinstance(out.get("description"), str):  # docstrings' reST literals, for editors
        out["description"] = " ".join(out["description"].replace("``", "`").split())
    if "anyOf" in out:
        options = [o for o in out["anyOf"] if o != {"type": "null"}]
        if len(options) == 1:
            del out["anyOf"]
            out = {**options[0], **out}
        else:
            out["anyOf"] = options
    if out.get("default", 0) is None or isinstance(out.get("default"), dict):
        del out["default"]  # None, or a section's defaults spelt out as nulls
    return out


def _secrets(node: dict[str, Any], model: type[SettingsModel], defs: dict[str, Any]) -> None:
    """Secrets are written ``name_env = "VARIABLE"``; patch ``model``'s schema ``node`` (and
    its nested models' in ``defs``) to say so."""
    properties: dict[str, Any] = node.setdefault("properties", {})
    required: list[str] = node.get("required", [])
    alternatives: list[dict[str, Any]] = []
    for name, env_only in model.secret_fields().items():
        prop = properties.pop(name, {})
        properties[f"{name}_env"] = {
            "type": "string",
            "pattern": _ENV_NAME,
            "description": f"the environment variable that holds {name}",
        }
        if not env_only:
            properties[name] = {**prop, "description": f"{name} itself (prefer {name}_env)"}
        if name in required:
            required.remove(name)
            if env_only:
                required.append(f"{name}_env")
            else:
                alternatives.append(
                    {"anyOf": [{"required": [name]}, {"required": [f"{name}_env"]}]}
                )
    if "required" in node and not required:
        del node["required"]
    if alternatives:
        node["allOf"] = [*node.get("allOf", []), *alternatives]
    for info in model.model_fields.values():
        inner = _unwrap_model(info.annotation)
        if inner is not None and inner.__name__ in defs:
            _secrets(defs[inner.__name__], inner, defs)


def _model_schema(model: type[SettingsModel], defs: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = _without_null(model.model_json_schema(mode="validation"))
    own = schema.pop("$defs", {})
    _secrets(schema, model, own)
    defs.update(own)
    return schema


def _plugins(group: str) -> dict[str, type[PluginSettings] | None]:
    found: dict[str, type[PluginSettings] | None] = {}
    for info in discover(group):
        if info.error:
            continue
        try:
            found[info.name] = plugin_settings_model(load_plugin(group, info.name))
        except Exception:  # noqa: S112 - a broken plugin is left out of the schema
            continue
    return found


def _plugin_table(
    plugins: dict[str, type[PluginSettings] | None], what: str, defs: dict[str, Any]
) -> dict[str, Any]:
    branches: list[dict[str, Any]] = []
    for name, model in sorted(plugins.items()):
        if model is None:
            continue
        then = _model_schema(model, defs)
        then.pop("title", None)
        then["properties"] = {"type": {"const": name}, **then.get("properties", {})}
        branches.append(
            {
                "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                "then": then,
            }
        )
    table: dict[str, Any] = {
        "type": "object",
        "description": f"the {what}: 'type' names the plugin, the other keys are its settings",
        "required": ["type"],
        "properties": {
            "type": {
                "type": "string",
                "description": "an installed plugin's name, or 'package.module:Class'",
                "examples": sorted(plugins),
            }
        },
    }
    if branches:
        table["allOf"] = branches
    return table


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 7) of ``cartrescue.toml``, installed plugins included."""
    defs: dict[str, Any] = {}
    schema = _model_schema(ConfigSettings, defs)
    properties = schema["properties"]
    properties["connector"] = _plugin_table(_plugins(CONNECTORS), "shop connector", defs)
    channel = _plugin_table(_plugins(CHANNELS), "channel", defs)
    properties["channels"] = {
        "type": "object",
        "description": "one table per channel kind",
        "properties": dict.fromkeys(get_args(ChannelKind), channel),
        "additionalProperties": False,
    }
    return {
        "$schema": _DIALECT,
        "title": "cartrescue.toml",
        **{k: v for k, v in schema.items() if k != "title"},
        "$defs": defs,
    }
