"""Declared settings: the models of ``cartrescue.toml``, the policy, and every built-in
connector and channel, and the base a plugin declares its own settings with.

A plugin declares its table's keys as a :class:`PluginSettings` subclass and points its class
at it with ``settings_model``; the config then checks the table against it (every mistake at
once, typos with the nearest valid key, ``*_env`` secrets from the environment) and
``cartrescue schema`` includes it.
"""

from __future__ import annotations

from ..errors import ConfigProblem
from .base import (
    Duration,
    PluginSettings,
    Seconds,
    Secret,
    SecretFromEnv,
    SettingsModel,
    Timeout,
    invalid,
    parse_duration,
    validate_table,
)
from .providers import HttpSettings
from .schema import config_schema
from .sections import ConfigSettings, PolicySettings

__all__ = [
    "ConfigProblem",
    "ConfigSettings",
    "Duration",
    "HttpSettings",
    "PluginSettings",
    "PolicySettings",
    "Seconds",
    "Secret",
    "SecretFromEnv",
    "SettingsModel",
    "Timeout",
    "config_schema",
    "invalid",
    "parse_duration",
    "validate_table",
]
