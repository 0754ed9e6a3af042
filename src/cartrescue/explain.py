"""``cartrescue explain CHECKOUT_ID``: the decision trail for one stored checkout.

It answers "why didn't Kari get a message?" from what the store remembers and the pure
policy, without fetching, sending or recording anything: the segment the cart falls in (and
why each earlier segment did not match), what was sent before, the steps the policy would
skip, the step, channel and incentive it would pick now, what holds the message back, the
experiment arms recorded for the checkout, and why nothing is sent. When a segment reads
customer history and a connector is given, the buyer's history is read from the shop (the
one request explain makes) and shown with their RFM group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from .errors import CartRescueError
from .experiments import ExperimentPlan, assign
from .history import HistoryCache
from .models import ChannelKind, Checkout
from .policy import (
    Action,
    Decision,
    History,
    Policy,
    StepRecord,
    contact_keys,
    decide,
    offer_withheld,
)
from .reasons import REASONS
from .segments import customer_kind, item_count
from .store.base import ConversationStore, ExperimentStore, OutboxEntry, Store

__all__ = ["Explanation", "explain", "format_explanation"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Explanation:
    """What :func:`explain` found. ``checkout`` is None when the store holds no open
    checkout of that id (``status`` then says whether it is closed or unknown)."""

    checkout_id: str
    status: str | None
    checkout: Checkout | None = None
    segment: str | None = None
    reason: str | None = None
    """The reason id the buyer stated for leaving, if any (segments may match on it)."""
    by_reason: bool = False
    """Whether the segment matched a condition on the stated reason."""
    segment_trail: tuple[tuple[str, str], ...] = ()
    """Each segment tried before the match, with the condition the cart did not meet."""
    outbox: tuple[OutboxEntry, ...] = ()
    skipped: tuple[tuple[int, str], ...] = ()
    """Steps the policy would skip now, with the reason."""
    decision: Decision | None = None
    incentive: str | None = None
    arms: dict[str, str] = field(default_factory=dict)
    """Experiment → arm: recorded, or (for a step about to be sent) the arm the person's
    keyed hash puts them in, which the next pass records."""
    why_nothing_sent: str | None = None
    history: str | None = None
    """The buyer's order history and RFM group, or why it is unknown (None: no segment
    reads history)."""


def _stored_checkout(store: Store, checkout_id: str) -> Checkout | None:
    for checkout in store.active_checkouts(_EPOCH):
        if checkout.id == checkout_id:
            return checkout
    return None


def _history(
    store: Store, checkout: Checkout, start_at: datetime, skipped: set[int], reason: str | None
) -> History:
    contacts = contact_keys(checkout.customer)
    return History(
        start_at=start_at,
        records=tuple(
            StepRecord(e.step, e.channel, e.status) for e in store.outbox_for(checkout.id)
        ),
        skipped_steps=frozenset(store.skipped_steps(checkout.id) | skipped),
        last_contacted=store.last_contacted(contacts),
        last_discount=store.last_discount(contacts),
        opted_out=frozenset(store.optouts_for(contacts)),
        reason=reason,
    )


def _incentive(
    policy: Policy, checkout: Checkout, decision: Decision, history: History, now: datetime
) -> str | None:
    if decision.action != Action.SEND or decision.step is None:
        return None
    _, steps = policy.segment_for(checkout, history.reason)
    step = next((s for s in steps or () if s.number == decision.step), None)
    offered = step.discount if step is not None else None
    offer = decision.discount
    if offer is not None:
        hours = offer.valid_for_seconds / 3600
        if offer.percent is not None:
            what = f"{offer.percent} % off"
        else:
            what = f"{offer.amount} off" if offer.amount is not None else "free shipping"
        return f"{what}, valid {hours:g}h"
    if offered is not None:
        why = offer_withheld(offered, checkout, history.last_discount, policy, now)
        return f"none: {why}"
    return "none: the step offers none"


def explain(
    checkout_id: str,
    store: Store,
    policy: Policy,
    channels: Sequence[ChannelKind],
    now: datetime,
    *,
    shop_timezone: str | None = None,
    experiments: ExperimentPlan | None = None,
    experiment_key: bytes | None = None,
    shop_name: str = "Shop",
    connector: object | None = None,
) -> Explanation:
    """The decision trail for ``checkout_id`` at ``now``; reads the store and changes
    nothing (but the store's experiment key, created on first use when ``experiments`` is
    active and no ``experiment_key`` is given, as the next pass would)."""
    status = store.checkout_status(checkout_id)
    outbox = tuple(store.outbox_for(checkout_id))
    arms = store.assignments(checkout_id) if isinstance(store, ExperimentStore) else {}
    checkout = _stored_checkout(store, checkout_id) if status == "open" else None
    if checkout is None:
        missing = (
            "the store has no checkout with this id (not fetched yet, or forgotten)"
            if status is None
            else f"the checkout is closed ({status})"
        )
        return Explanation(checkout_id, status, outbox=outbox, arms=arms, why_nothing_sent=missing)

    reason = (
        store.reasons([checkout_id]).get(checkout_id)
        if isinstance(store, ConversationStore)
        else None
    )
    checkout, history = _with_history(checkout, policy, connector, now)
    trail = []
    by_reason = False
    for segment in policy.segments:
        failed = segment.conditions.failed(checkout, reason)
        if failed is None:
            by_reason = segment.conditions.reasons is not None
            break
        trail.append((segment.name, failed))
    start_at = store.start_at(now - policy.lookback)
    skipped: set[int] = set()
    steps_skipped: list[tuple[int, str]] = []
    decision = Decision(Action.STOP, "no decision")
    for _ in range(policy.max_steps + 1):
        decision = decide(
            checkout,
            _history(store, checkout, start_at, skipped, reason),
            policy,
            channels,
            now,
            shop_timezone=shop_timezone,
        )
        if decision.action != Action.SKIP:
            break
        assert decision.step is not None
        for number in (*decision.superseded, decision.step):
            skipped.add(number)
            steps_skipped.append(
                (number, decision.reason if number == decision.step else "superseded")
            )
    why: str | None = None
    if (
        decision.action == Action.SEND
        and decision.step is not None
        and experiments is not None
        and experiments.active
        and isinstance(store, ExperimentStore)
    ):
        found = assign(
            experiments,
            experiment_key or store.assignment_key(),
            shop_name,
            contact_keys(checkout.customer),
            decision.step,
            now,
            recorded=arms,
        )
        arms = dict(found.arms)
        if found.held_out:
            decision = replace(decision, action=Action.SKIP, reason="holdout")
            why = "held out: this person is in the holdout, watched but never messaged"
    if decision.action == Action.WAIT:
        until = f" until {decision.until:%Y-%m-%d %H:%M} UTC" if decision.until else ""
        why = f"held: {decision.reason}{until}"
    elif decision.action == Action.STOP:
        why = f"stopped: {decision.reason}"
    return Explanation(
        checkout_id,
        status,
        checkout=checkout,
        segment=decision.segment,
        reason=reason,
        by_reason=by_reason,
        segment_trail=tuple(trail),
        outbox=outbox,
        skipped=tuple(steps_skipped),
        decision=decision,
        incentive=_incentive(
            policy, checkout, decision, _history(store, checkout, start_at, skipped, reason), now
        ),
        arms=arms,
        why_nothing_sent=why,
        history=history,
    )


def _with_history(
    checkout: Checkout, policy: Policy, connector: object | None, now: datetime
) -> tuple[Checkout, str | None]:
    """``checkout`` with its buyer's history read from the shop, and it in words."""
    if not policy.needs_history:
        return checkout, None
    cache = HistoryCache.for_pass(connector, policy) if connector is not None else None
    if cache is None:
        return checkout, "unknown (the connector cannot read it; history conditions do not match)"
    try:
        checkout = cache.attach([checkout], now)[0]
    except CartRescueError as err:
        return checkout, f"unknown ({err})"
    customer = checkout.customer
    if customer is None or customer.orders_count is None or cache.stats.failed:
        return checkout, "unknown (the shop could not say; history conditions do not match)"
    words = [f"{customer.orders_count} order(s)"]
    if customer.amount_spent is not None:
        words.append(f"spent {checkout.currency} {customer.amount_spent}")
    if customer.last_order_at is not None:
        words.append(f"last {customer.last_order_at.astimezone(UTC):%Y-%m-%d}")
    if policy.needs_rfm:
        words.append(f"RFM group {customer.rfm_group or 'unknown'}")
    return checkout, ", ".join(words)


def format_explanation(found: Explanation) -> str:
    """The trail as lines of text, one fact a line."""
    lines = [f"checkout {found.checkout_id}: {found.status or 'not in the store'}"]
    checkout = found.checkout
    if checkout is not None:
        kind = customer_kind(checkout)
        lines.append(
            f"  cart: {checkout.currency} {checkout.total}, {item_count(checkout)} item(s), "
            f"country {checkout.country or 'unknown'}, "
            f"{kind.value + ' customer' if kind else 'customer history unknown'}, "
            f"abandoned {checkout.abandoned_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        )
        for li in checkout.line_items:
            facts = []
            if li.in_stock is False:
                facts.append("sold out")
            if li.product_tags is not None:
                facts.append("tags " + (", ".join(li.product_tags) or "none"))
            if li.collections is not None:
                facts.append("collections " + (", ".join(li.collections) or "none"))
            if facts:
                lines.append(f"  item {li.title} × {li.quantity}: {'; '.join(facts)}")
    if found.reason is not None:
        lines.append(f"  stated reason: {REASONS.get(found.reason, found.reason)}")
    if found.history is not None:
        lines.append(f"  customer history: {found.history}")
    for name, failed in found.segment_trail:
        lines.append(f"  segment {name}: not matched ({failed})")
    if found.segment is not None:
        led = " (matched by the stated reason)" if found.by_reason else ""
        lines.append(f"  segment: {found.segment}{led}")
    for entry in found.outbox:
        lines.append(f"  step {entry.step} on {entry.channel}: {entry.status}")
    for number, reason in found.skipped:
        lines.append(f"  step {number}: would be skipped ({reason})")
    decision = found.decision
    if decision is not None:
        lines.append(
            f"  decision: {decision.action}" + (f" ({decision.reason})" if decision.reason else "")
        )
        if decision.step is not None:
            lines.append(f"  step: {decision.step}")
        if decision.channel is not None:
            lines.append(f"  channel: {decision.channel}")
    if found.incentive is not None:
        lines.append(f"  incentive: {found.incentive}")
    for experiment, arm in sorted(found.arms.items()):
        lines.append(f"  experiment {experiment}: {arm}")
    if decision is not None and decision.action == Action.SEND:
        lines.append("  a message would be sent on the next pass (after the purchase check)")
    if found.why_nothing_sent is not None:
        lines.append(f"  nothing sent: {found.why_nothing_sent}")
    return "\n".join(lines) + "\n"
