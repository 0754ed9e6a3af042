"""Read-only health checks: what ``cartrescue doctor`` reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .config import Config

__all__ = ["Problem", "SelfCheck", "store_key_problems"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that is wrong, and how to fix it. ``area`` names the part (``connector``,
    ``channels.sms``, ``store``); ``severity`` is ``error`` or ``warning``."""

    area: str
    message: str
    fix: str
    severity: str = "error"


@runtime_checkable
class SelfCheck(Protocol):
    """Optional capability of connectors and channels: check credentials, scopes and
    settings against the real service without changing anything, and return the problems
    found (an empty list when all is well). Must not send messages or write to the shop."""

    def check(self) -> list[Problem]: ...


def store_key_problems(config: Config) -> list[Problem]:
    """A warning when no secret keys the opt-out hashes that ``forget`` leaves behind: a
    copied store would then give the forgotten numbers back by enumeration."""
    from .errors import ConfigError

    try:
        key = config.store_hash_key()
    except ConfigError as err:
        area = err.key or "store"
        message = str(err).removeprefix(f"{area}: ")
        return [Problem(area, message, "set the variable or file [store] names")]
    if key is not None:
        return []
    return [
        Problem(
            "store",
            "no hash key: forgotten opt-outs are kept as hashes salted inside the store file",
            'set [store] hash_key_env = "CARTRESCUE_HASH_KEY" and export a secret of 32+ '
            "characters (python -c 'import secrets; print(secrets.token_hex(32))')",
            "warning",
        )
    ]
