"""A channel that writes messages to a stream instead of sending them."""

from __future__ import annotations

import sys
from typing import ClassVar, TextIO

from ..errors import ConfigError
from ..logmask import mask_contact
from ..models import CHANNEL_KINDS, ChannelKind, Message, Receipt, clean_text
from ..settings.base import PluginSettings
from ..settings.providers import ConsoleSettings

__all__ = ["ConsoleChannel"]


class ConsoleChannel:
    """Writes each message to ``stream`` (standard output by default).

    Used by ``cartrescue demo``; useful while writing templates. ``mask`` hides the
    recipient's number or address.
    """

    settings_model: ClassVar[type[PluginSettings]] = ConsoleSettings

    def __init__(
        self, kind: ChannelKind = "sms", *, stream: TextIO | None = None, mask: bool = True
    ) -> None:
        if kind not in CHANNEL_KINDS:
            raise ConfigError(f"unknown channel kind {kind!r}", key="kind")
        self.kind: ChannelKind = kind
        self._stream = stream
        self._mask = mask
        self.sent = 0

    def send(self, message: Message) -> Receipt:
        to = mask_contact(message.to) if self._mask else message.to
        content = message.content
        lines = [f"--- {message.channel} to {to} · step {message.step} · {message.key}"]
        if content.subject:
            lines.append(f"Subject: {content.subject}")
        if content.template:
            lines.append(f"[template {content.template} ({content.language})]")
        lines.append(content.text.rstrip("\n"))
        # One write of text any stream can encode: a lone surrogate would fail half-way.
        out = self._stream or sys.stdout
        out.write(clean_text("\n".join(lines), multiline=True) + "\n")
        out.flush()
        self.sent += 1
        return Receipt(provider="console", provider_id=f"console-{self.kind}-{self.sent}")

    def close(self) -> None:
        """Nothing to release."""
