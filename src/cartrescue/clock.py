"""Time comes from an injectable clock so schedules can be tested without sleeping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["Clock", "FrozenClock", "utc_now"]

Clock = Callable[[], datetime]
"""A callable returning the current time as an aware ``datetime``."""


def utc_now() -> datetime:
    """The real clock, in UTC."""
    return datetime.now(UTC)


class FrozenClock:
    """A clock that stands still until moved; for tests and simulations."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware datetime")
        self.now = at

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware datetime")
        self.now = at
