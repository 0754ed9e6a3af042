"""What ``cartrescue stats`` shows: a table for people and a JSON document for scripts.

Both come from the same :class:`~cartrescue.store.base.Stats` and the same staleness verdict,
so ``stats`` and ``stats --json`` always agree, exit status included. The JSON document's
fields are listed in the README ("`stats --json`"); ``schema`` changes only when a field is
removed or changes meaning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from babel.dates import format_timedelta
from babel.numbers import format_currency

from .reasons import REASONS
from .store.base import SignalCounts, Stats

__all__ = [
    "STATS_SCHEMA",
    "add_signals",
    "engagement_lines",
    "engagement_rows",
    "humanize_age",
    "humanize_duration",
    "stats_document",
    "stats_table",
]

STATS_SCHEMA = 1
"""The version of the ``stats --json`` document."""

_OUTCOMES = ("sent", "unknown", "retry", "failed")
"""Outbox outcomes in the order the table shows them; others follow alphabetically."""
_CONVERSIONS = {
    "converted": "paid the abandoned checkout",
    "converted_elsewhere": "bought through another checkout",
}


def humanize_duration(delta: timedelta) -> str:
    """``timedelta(minutes=15)`` → ``"15 minutes"``."""
    return str(format_timedelta(delta, threshold=1.1, locale="en"))


def humanize_age(moment: datetime | None, now: datetime) -> str:
    """How long ago ``moment`` was: ``"6 minutes ago"``, or ``"never"``."""
    if moment is None:
        return "never"
    return f"{humanize_duration(now - moment)} ago"


def _money(amount: Decimal, currency: str, locale: str) -> str:
    try:
        return str(format_currency(amount, currency, locale=locale.replace("-", "_")))
    except (ValueError, KeyError, TypeError):
        return f"{amount} {currency}"


def add_signals(all_counts: Iterable[Mapping[str, SignalCounts]]) -> dict[str, SignalCounts]:
    """Several stores' :meth:`~cartrescue.store.base.SignalStore.signal_counts` added up."""
    total: dict[str, SignalCounts] = {}
    for counts in all_counts:
        for channel, c in counts.items():
            seen = total.get(channel, SignalCounts(channel, 0, 0, 0, 0))
            total[channel] = SignalCounts(
                channel,
                seen.sent + c.sent,
                seen.delivered + c.delivered,
                seen.read + c.read,
                seen.failed + c.failed,
            )
    return total


def engagement_rows(signals: Mapping[str, SignalCounts]) -> list[dict[str, Any]]:
    """Per channel, what the providers' status callbacks said: messages the provider
    accepted (``sent``), ``delivered`` with ``delivery_rate``, ``read`` with ``read_rate``
    (None, and ``reads_reported`` false, for a channel whose provider reports no reads),
    ``failed``. ``stats --json`` and the report both show these rows."""
    return [
        {
            "channel": channel,
            "sent": c.sent,
            "delivered": c.delivered,
            "delivery_rate": c.delivery_rate,
            "read": c.read if c.reads_reported else None,
            "read_rate": c.read_rate,
            "reads_reported": c.reads_reported,
            "failed": c.failed,
        }
        for channel, c in sorted(signals.items())
    ]


def engagement_lines(signals: Mapping[str, SignalCounts]) -> list[str]:
    """The rows of :func:`engagement_rows` as the ``stats`` table prints them."""
    if not signals:
        return ["  no status callbacks yet (see the README: status callbacks)"]
    lines = [f"  {'channel':<10}{'sent':>8}{'delivered':>20}{'read':>20}{'failed':>8}"]
    for row in engagement_rows(signals):
        delivered = f"{row['delivered']} ({_percent(row['delivery_rate'])})"
        read = "-" if row["read"] is None else f"{row['read']} ({_percent(row['read_rate'])})"
        lines.append(
            f"  {row['channel']:<10}{row['sent']:>8}{delivered:>20}{read:>20}{row['failed']:>8}"
        )
    return lines


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def stats_document(
    stats: Stats,
    *,
    now: datetime,
    stale: str | None,
    reasons: Mapping[str, int] | None = None,
    signals: Mapping[str, SignalCounts] | None = None,
) -> dict[str, Any]:
    """The ``stats --json`` document (see the README for every field); ``reasons`` counts
    the checkouts per stated abandonment reason (:data:`~cartrescue.conversations.REASONS`),
    ``signals`` are the engagement signals per channel (:func:`engagement_rows`)."""
    age = None if stats.last_pass_completed is None else now - stats.last_pass_completed
    return {
        "schema": STATS_SCHEMA,
        "generated_at": now.isoformat(),
        "checkouts_seen": stats.checkouts_seen,
        "checkouts_by_status": dict(sorted(stats.checkouts_by_status.items())),
        "messages": [
            {"step": step, "channel": channel, "status": status, "count": n}
            for (step, channel, status), n in sorted(stats.messages.items())
        ],
        "messaged_checkouts": stats.messaged_checkouts,
        "conversions": {kind: stats.conversions.get(kind, 0) for kind in _CONVERSIONS}
        | dict(stats.conversions),
        "recovered": stats.recovered,
        "recovery_rate": stats.recovery_rate,
        "revenue_recovered": {k: str(v) for k, v in sorted(stats.revenue_recovered.items())},
        "clicks": stats.clicks,
        "opt_outs": stats.opt_outs,
        "bad_payloads": stats.bad_payloads,
        "skip_reasons": dict(sorted(stats.skip_reasons.items())),
        "abandonment_reasons": dict(sorted((reasons or {}).items())),
        "engagement": engagement_rows(signals or {}),
        "not_rendered": stats.not_rendered,
        "passes_completed": stats.passes_completed,
        "last_pass_started": _time(stats.last_pass_started),
        "last_pass_completed": _time(stats.last_pass_completed),
        "last_pass_age_seconds": None if age is None else int(age.total_seconds()),
        "last_pass_error": stats.last_pass_error,
        "stale": stale is not None,
        "stale_reason": stale,
    }


def _matrix(stats: Stats) -> list[str]:
    if not stats.messages:
        return ["  none yet"]
    seen = {status for _, _, status in stats.messages}
    columns = [s for s in _OUTCOMES if s in seen] + sorted(seen - set(_OUTCOMES))
    rows = sorted({(step, channel) for step, channel, _ in stats.messages})
    width = max(len(c) for c in columns) + 2
    lines = [f"  {'step':<6}{'channel':<10}" + "".join(f"{c:>{width}}" for c in columns)]
    for step, channel in rows:
        counts = "".join(f"{stats.messages.get((step, channel, c), 0):>{width}}" for c in columns)
        lines.append(f"  {step:<6}{channel:<10}{counts}")
    return lines


def stats_table(
    stats: Stats,
    *,
    now: datetime,
    locale: str,
    stale: str | None,
    reasons: Mapping[str, int] | None = None,
    signals: Mapping[str, SignalCounts] | None = None,
) -> str:
    """The ``stats`` table; revenue is formatted for ``locale`` (the shop's); ``reasons`` and
    ``signals`` as for :func:`stats_document`."""
    lines = [f"Checkouts seen:       {stats.checkouts_seen}"]
    lines += [f"  {status:<20}{n}" for status, n in sorted(stats.checkouts_by_status.items())]
    lines += ["", "Messages per step, channel and outcome:", *_matrix(stats), ""]
    lines += ["Delivery, as the providers report it:", *engagement_lines(signals or {}), ""]
    lines.append("Conversions:")
    for kind, label in _CONVERSIONS.items():
        lines.append(f"  {label:<34}{stats.conversions.get(kind, 0)}")
    for kind, n in sorted(stats.conversions.items()):
        if kind not in _CONVERSIONS:
            lines.append(f"  {kind:<34}{n}")
    rate = stats.recovery_rate
    lines.append(
        f"Recovered:            {stats.recovered} of {stats.messaged_checkouts} messaged "
        f"checkout(s) ({'-' if rate is None else f'{rate:.1%}'})"
    )
    revenue = [
        _money(amount, currency, locale)
        for currency, amount in sorted(stats.revenue_recovered.items())
    ]
    lines.append(f"Revenue recovered:    {', '.join(revenue) or 'none yet'}")
    lines.append(f"Link clicks:          {stats.clicks}")
    lines.append(f"Opt-outs:             {stats.opt_outs}")
    lines.append(f"Bad payloads:         {stats.bad_payloads}")
    if stats.not_rendered:
        lines.append(
            f"Not rendered:         {stats.not_rendered} (fix the template: the steps are sent"
            " on the next pass while still due)"
        )
    if stats.skip_reasons:
        lines.append("Not messaged, by reason:")
        pad = max(34, *(len(r) + 2 for r in stats.skip_reasons))
        lines += [f"  {reason:<{pad}}{n}" for reason, n in sorted(stats.skip_reasons.items())]
    if reasons:
        lines.append("Why they left (as buyers answered):")
        lines += [
            f"  {REASONS.get(reason, reason):<34}{n}"
            for reason, n in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
        ]
    lines.append("")
    lines.append(f"Passes completed:     {stats.passes_completed}")
    last = stats.last_pass_completed
    when = "never" if last is None else f"{last:%Y-%m-%d %H:%M} UTC ({humanize_age(last, now)})"
    lines.append(f"Last pass completed:  {when}")
    if stats.last_pass_error:
        lines.append(f"Last pass FAILED:     {stats.last_pass_error}")
    if stale:
        lines.append(f"WARNING: {stale}")
    return "\n".join(lines) + "\n"
