"""Read-only health checks: what ``cartrescue doctor`` reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Problem", "SelfCheck"]


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
