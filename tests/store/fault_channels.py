"""A channel for fault tests run in a separate ``cartrescue`` process (loaded by dotted path)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from cartrescue.models import ChannelKind, Message, Receipt


class FillDiskChannel:
    """Accepts every message, appends its key to ``log``, and then, when ``fill`` names a
    folder, fills that folder's disk: the store's next write after the send fails."""

    def __init__(self, log: str, fill: str = "", kind: ChannelKind = "sms") -> None:
        self.kind: ChannelKind = kind
        self.log = Path(log)
        self.fill = Path(fill) if fill else None

    def send(self, message: Message) -> Receipt:
        with self.log.open("a") as out:
            out.write(message.key + "\n")
        if self.fill is not None:
            with contextlib.suppress(OSError), (self.fill / "filler").open("ab") as filler:
                while True:
                    filler.write(b"\0" * 4096)
                    filler.flush()
        return Receipt(provider="fill-disk")

    def close(self) -> None:
        pass
