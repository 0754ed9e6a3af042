"""SQL shared by the built-in stores' :class:`~cartrescue.store.base.SignalStore` methods
(the placeholders differ, the statements do not)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .base import Signal, SignalCounts

__all__ = ["COUNTS", "RANK", "counts_from"]

RANK = "CASE signal " + " ".join(f"WHEN '{s.value}' THEN {s.rank}" for s in Signal) + " ELSE 0 END"
"""The rank (:attr:`Signal.rank`) of the signal an outbox row holds: 0 for none."""

COUNTS = (
    "SELECT o.channel, count(*),"
    " count(CASE WHEN o.signal IN ('delivered', 'read') THEN 1 END),"
    " count(CASE WHEN o.signal = 'read' THEN 1 END),"
    " count(CASE WHEN o.signal = 'failed' THEN 1 END)"
    " FROM outbox o{join} WHERE (o.status = 'sent' OR o.signal IS NOT NULL){where}"
    " GROUP BY o.channel"
)
"""Per channel: messages accepted (sent, or with any signal: a failed delivery may have
marked the entry failed since), delivered or read, read, failed. ``{join}`` and ``{where}``
restrict it to some checkouts."""


def counts_from(rows: Iterable[Any]) -> dict[str, SignalCounts]:
    return {
        str(channel): SignalCounts(str(channel), int(sent), int(delivered), int(read), int(failed))
        for channel, sent, delivered, read, failed in rows
    }
