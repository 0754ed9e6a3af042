"""From the store's aggregates (:class:`~cartrescue.store.base.ReportFacts`) to the report's
figures: one JSON-safe dict that the HTML page, the CSV files and ``--json`` all show."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..experiments import HOLDOUT, HOLDOUT_EXPERIMENT, TREATED
from ..stats import engagement_rows
from ..store.base import (
    AttributionWindows,
    BreakdownFacts,
    GroupFacts,
    ReportFacts,
    SignalCounts,
)
from .stats import (
    Interval,
    difference_interval,
    mean_difference_interval,
    probability_to_beat,
    sample_needed,
    wilson,
)

__all__ = ["Costs", "ReportOptions", "build_report"]


@dataclass(frozen=True, slots=True)
class Costs:
    """What a message costs (``[costs]``): per SMS segment (each SMS counts as one segment,
    the renderer's default limit), per WhatsApp conversation (a recipient's messages on one
    day), per email."""

    sms_segment: Decimal = Decimal(0)
    whatsapp_conversation: Decimal = Decimal(0)
    email: Decimal = Decimal(0)
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """How to read the figures. Below ``min_sample`` people per group, or below the sample
    the power calculation asks for to detect ``min_detectable_lift`` (absolute), a
    comparison says "not enough data yet"."""

    shop: str = "Shop"
    locale: str = "en"
    costs: Costs = field(default_factory=Costs)
    windows: AttributionWindows = field(default_factory=AttributionWindows)
    min_sample: int = 100
    min_detectable_lift: float = 0.03
    controls: Mapping[str, str] = field(default_factory=dict)
    """Experiment → its control arm (default: the first arm by name)."""


def _rate(numerator: int | float, denominator: int | float) -> float | None:
    return numerator / denominator if denominator else None


def _interval(value: Interval | None) -> dict[str, float] | None:
    return None if value is None else value.as_dict()


def _arm(group: GroupFacts) -> dict[str, Any]:
    return {
        "experiment": group.experiment,
        "arm": group.arm,
        "eligible": group.eligible,
        "messaged": group.messaged,
        "clicked": group.clicked,
        "converted": group.converted,
        "revenue": round(group.revenue, 2),
        "revenue_per_recipient": None
        if not group.eligible
        else round(group.revenue / group.eligible, 4),
        "conversion_rate": _interval(wilson(group.converted, group.eligible)),
        "opt_out_rate": _rate(group.opted_out, group.eligible),
    }


def _compare(arm: GroupFacts, control: GroupFacts, options: ReportOptions) -> dict[str, Any]:
    lift = difference_interval(arm.converted, arm.eligible, control.converted, control.eligible)
    base_rate = control.converted / control.eligible if control.eligible else 0.0
    needed = (
        sample_needed(base_rate if 0 < base_rate < 1 else 0.05, options.min_detectable_lift)
        or options.min_sample
    )
    needed = max(needed, options.min_sample)
    have = min(arm.eligible, control.eligible)
    guardrail = difference_interval(
        arm.opted_out, arm.eligible, control.opted_out, control.eligible
    )
    if have < needed or lift is None:
        verdict = "not enough data yet"
    elif not lift.excludes_zero:
        verdict = "no clear difference"
    else:
        verdict = "better" if lift.estimate > 0 else "worse"
    return {
        "arm": arm.arm,
        "control": control.arm,
        "lift": _interval(lift),
        "significant": bool(lift is not None and lift.excludes_zero),
        "probability_to_beat": probability_to_beat(
            arm.converted, arm.eligible, control.converted, control.eligible
        ),
        "verdict": verdict,
        "sample_needed": needed,
        "sample_have": have,
        "opt_out_difference": _interval(guardrail),
        "guardrail_breached": bool(guardrail is not None and guardrail.low > 0),
    }


def _incremental(treated: GroupFacts, held: GroupFacts) -> dict[str, Any]:
    conversions = difference_interval(
        treated.converted, treated.eligible, held.converted, held.eligible
    )
    revenue = mean_difference_interval(
        treated.revenue,
        treated.revenue_squares,
        treated.eligible,
        held.revenue,
        held.revenue_squares,
        held.eligible,
    )
    n = treated.eligible
    return {
        "treated": n,
        "held_out": held.eligible,
        "conversions": _interval(None if conversions is None else conversions.scaled(n)),
        "revenue": _interval(None if revenue is None else revenue.scaled(n)),
    }


def _rows(
    facts: Iterable[BreakdownFacts], key: str, options: ReportOptions
) -> list[dict[str, Any]]:
    sums: dict[Any, list[float]] = {}
    for fact in facts:
        if key == "arm":
            name: Any = f"{fact.experiment}: {fact.arm}" if fact.experiment else "(none)"
        else:
            name = getattr(fact, key)
        total = sums.setdefault(name, [0, 0, 0, 0.0, 0, 0])
        for i, value in enumerate(
            (
                fact.sent,
                fact.clicked,
                fact.attributed,
                fact.revenue,
                fact.opted_out,
                fact.recipients_days,
            )
        ):
            total[i] += value
    rows = []
    for name, (sent, clicked, attributed, revenue, opted, days) in sorted(
        sums.items(), key=lambda item: str(item[0])
    ):
        row: dict[str, Any] = {
            key: name,
            "sent": int(sent),
            "clicked": int(clicked),
            "click_rate": _rate(clicked, sent),
            "attributed": int(attributed),
            "conversion_rate": _rate(attributed, sent),
            "revenue": round(revenue, 2),
            "opt_out_rate": _rate(opted, sent),
        }
        if key == "channel":
            cost = _cost(str(name), int(sent), int(days), options.costs)
            row["cost"] = round(cost, 2)
            row["roi"] = None if not cost else round((revenue - cost) / cost, 4)
        rows.append(row)
    return rows


def _cost(channel: str, sent: int, conversations: int, costs: Costs) -> float:
    if channel == "sms":
        return float(costs.sms_segment) * sent
    if channel == "whatsapp":
        return float(costs.whatsapp_conversation) * conversations
    return float(costs.email) * sent


def _days(facts: ReportFacts) -> list[dict[str, Any]]:
    out = []
    attributed = treated = treated_revenue = held = held_revenue = 0.0
    for day in facts.days:
        attributed += day.attributed_revenue
        treated += day.treated
        treated_revenue += day.treated_revenue
        held += day.held_out
        held_revenue += day.held_out_revenue
        incremental = None
        if treated and held:
            incremental = round(treated_revenue - held_revenue / held * treated, 2)
        out.append(
            {
                "day": day.day,
                "attributed_revenue": round(attributed, 2),
                "incremental_revenue": incremental,
            }
        )
    return out


def build_report(
    facts: ReportFacts,
    options: ReportOptions,
    *,
    generated_at: datetime,
    signals: Mapping[str, SignalCounts] | None = None,
) -> dict[str, Any]:
    """Every figure of the report, JSON-safe (numbers, strings, None; rates as fractions,
    money in the shop's currency); ``signals`` are the engagement signals of the messages
    for the same checkouts (``engagement``, as ``stats --json`` shows them)."""
    groups: dict[str, dict[str, GroupFacts]] = {}
    for group in facts.groups:
        groups.setdefault(group.experiment, {})[group.arm] = group
    holdout: dict[str, Any] | None = None
    held = groups.get(HOLDOUT_EXPERIMENT, {})
    if HOLDOUT in held and TREATED in held:
        holdout = {
            "arms": [_arm(held[TREATED]), _arm(held[HOLDOUT])],
            "comparison": _compare(held[TREATED], held[HOLDOUT], options),
            "incremental": _incremental(held[TREATED], held[HOLDOUT]),
        }
    experiments = []
    for name, arms in sorted(groups.items()):
        if name == HOLDOUT_EXPERIMENT:
            continue
        ordered = sorted(arms.values(), key=lambda g: g.arm)
        control = _control_of(name, arms, options)
        experiments.append(
            {
                "name": name,
                "control": control.arm,
                "arms": [_arm(g) for g in ordered],
                "comparisons": [_compare(g, control, options) for g in ordered if g is not control],
            }
        )
    sent = sum(r.sent for r in facts.breakdown)
    clicked = sum(r.clicked for r in facts.breakdown)
    opted = sum(r.opted_out for r in facts.breakdown)
    channels = _rows(facts.breakdown, "channel", options)
    total_cost = round(sum(r["cost"] for r in channels), 2)
    incremental: dict[str, Any] | None = None if holdout is None else holdout["incremental"]
    return {
        "shop": options.shop,
        "locale": options.locale,
        "currency": options.costs.currency or facts.currency,
        "since": facts.since.isoformat(),
        "until": facts.until.isoformat(),
        "generated_at": generated_at.isoformat(),
        "kpis": {
            "abandoned_checkouts": facts.abandoned,
            "abandoned_value": round(facts.abandoned_value, 2),
            "abandoned_items": facts.abandoned_items,
            "converted": facts.converted,
            "recovery_rate": _rate(facts.converted, facts.abandoned),
            "revenue_recovered_attributed": round(facts.attributed_revenue, 2),
            "revenue_recovered_incremental": None
            if incremental is None or incremental["revenue"] is None
            else round(incremental["revenue"]["estimate"], 2),
            "hours_to_recovery": None
            if facts.hours_to_recovery is None
            else round(facts.hours_to_recovery, 2),
            "messages_sent": sent,
            "click_rate": _rate(clicked, sent),
            "opt_out_rate": _rate(opted, sent),
            "cost": total_cost,
            "roi": None
            if not total_cost
            else round((facts.attributed_revenue - total_cost) / total_cost, 4),
        },
        "attribution": {
            "attributed": {
                "conversions": facts.attributed,
                "revenue": round(facts.attributed_revenue, 2),
            },
            "incremental": incremental,
            "windows": {
                "click_hours": options.windows.click.total_seconds() / 3600,
                "send_hours": options.windows.send.total_seconds() / 3600,
                "channels": {
                    kind: {
                        "click_hours": click.total_seconds() / 3600,
                        "send_hours": send.total_seconds() / 3600,
                    }
                    for kind, (click, send) in sorted(options.windows.channels.items())
                },
            },
        },
        "holdout": holdout,
        "experiments": experiments,
        "breakdown": {
            key: _rows(facts.breakdown, key, options)
            for key in ("step", "channel", "locale", "arm")
        },
        "days": _days(facts),
        "engagement": engagement_rows(signals or {}),
    }


def _control_of(name: str, arms: Mapping[str, GroupFacts], options: ReportOptions) -> GroupFacts:
    wanted = options.controls.get(name)
    if wanted and wanted in arms:
        return arms[wanted]
    return arms[sorted(arms)[0]]
