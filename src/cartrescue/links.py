"""Short links for messages: the LinkShortener protocol."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["LinkShortener"]


@runtime_checkable
class LinkShortener(Protocol):
    """Turns a long recovery URL into a short one for one checkout, step and channel.

    Called once per message that is about to be rendered; calling it again for the same
    checkout, step and channel should give the same link.
    """

    def shorten(self, url: str, *, checkout_id: str, step: int, channel: str) -> str: ...
