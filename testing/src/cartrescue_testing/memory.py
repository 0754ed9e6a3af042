"""A channel that keeps messages in memory, for tests (yours and ours)."""

from __future__ import annotations

from collections.abc import Callable

from cartrescue.errors import ConfigError
from cartrescue.models import ChannelKind, Message, Receipt

__all__ = ["MemoryChannel"]


class MemoryChannel:
    """Records every message in ``sent``. ``fail`` may raise a send error for a message,
    to test how a caller handles failures."""

    def __init__(
        self,
        kind: ChannelKind = "sms",
        *,
        fail: Callable[[Message], None] | None = None,
    ) -> None:
        if kind not in ("sms", "whatsapp", "email"):
            raise ConfigError(f"unknown channel kind {kind!r}", key="kind")
        self.kind: ChannelKind = kind
        self.sent: list[Message] = []
        self.closed = 0
        self._fail = fail

    def send(self, message: Message) -> Receipt:
        if self._fail is not None:
            self._fail(message)
        self.sent.append(message)
        return Receipt(provider="memory", provider_id=f"mem-{len(self.sent)}")

    def close(self) -> None:
        self.closed += 1
