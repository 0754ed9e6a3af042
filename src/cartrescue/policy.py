"""Who gets which reminder, when, on which channel: pure functions over plain data.

:func:`decide` takes a checkout, what the store remembers about it (:class:`History`), the
channels that are configured and the time, and returns one :class:`Decision`. It does no I/O,
so every rule here is tested with plain values and an injected time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone

from .models import CHANNEL_KINDS, ChannelKind, Checkout, Customer, DiscountOffer
from .rfm import Rfm
from .segments import DEFAULT_SEGMENT, CustomerKind, Segment, customer_kind, first_match

__all__ = [
    "DEFAULT_STEPS",
    "Action",
    "Decision",
    "History",
    "Policy",
    "SendWindow",
    "SoldOutItems",
    "Step",
    "buyable",
    "contact_keys",
    "decide",
    "look_again",
    "offer_withheld",
    "recipient_timezones",
]


@dataclass(frozen=True, slots=True)
class Step:
    """One reminder: sent ``delay`` after abandonment, on the first of ``channels`` the
    contact allows, offering ``discount`` if set."""

    number: int
    delay: timedelta
    channels: tuple[ChannelKind, ...]
    discount: DiscountOffer | None = None

    def __post_init__(self) -> None:
        if self.number < 1:
            raise ValueError("step numbers start at 1")
        if self.delay < timedelta(0):
            raise ValueError(f"step {self.number}: delay must not be negative")
        if not self.channels:
            raise ValueError(f"step {self.number}: name at least one channel")
        for channel in self.channels:
            if channel not in CHANNEL_KINDS:
                raise ValueError(f"step {self.number}: unknown channel {channel!r}")


class SoldOutItems(StrEnum):
    """What a reminder does about the items of a cart the platform reports sold out."""

    DROP = "drop"
    """Leave them out of the message; the rest of the cart is still reminded of."""
    SKIP_CART = "skip_cart"
    """Send no reminder for a cart with any sold-out item."""


def buyable(checkout: Checkout) -> Checkout:
    """``checkout`` as a reminder may show it: without the lines the platform reports sold
    out (``in_stock is False``; unknown stock counts as buyable), and with the total
    lowered by their price × quantity (never below zero), so the total and how far the cart
    is from free shipping count only what can be bought. Unchanged when nothing is sold
    out."""
    gone = [li for li in checkout.line_items if li.in_stock is False]
    if not gone:
        return checkout
    kept = tuple(li for li in checkout.line_items if li.in_stock is not False)
    dropped = sum((li.price * li.quantity for li in gone), Decimal(0))
    return replace(checkout, line_items=kept, total=max(Decimal(0), checkout.total - dropped))


@dataclass(frozen=True, slots=True)
class SendWindow:
    """Messages go out only between ``start`` and ``end``, recipient-local time."""

    start: time = time(9, 0)
    end: time = time(20, 0)

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise ValueError("the send window must start before it ends, within one day")

    def contains(self, local: datetime) -> bool:
        return self.start <= local.time() < self.end


DEFAULT_STEPS: tuple[Step, ...] = (
    Step(1, timedelta(hours=1), CHANNEL_KINDS),
    Step(2, timedelta(hours=24), ("email",)),
    Step(3, timedelta(hours=48), ("email",), DiscountOffer(Decimal(10), 48 * 3600)),
)


@dataclass(frozen=True, slots=True)
class Policy:
    """The rules of a campaign. Every field has a safe default."""

    steps: tuple[Step, ...] = DEFAULT_STEPS
    max_overdue: timedelta = timedelta(hours=6)
    """A step that could have gone out longer ago than this is skipped, never sent late."""
    lookback: timedelta = timedelta(hours=24)
    """When first switched on, carts abandoned longer ago than this are never messaged."""
    send_window: SendWindow = field(default_factory=SendWindow)
    frequency_cap: timedelta = timedelta(hours=20)
    """At most one message per contact in this span, across all their checkouts."""
    max_sms_per_checkout: int = 1
    discount_cooldown: timedelta = timedelta(days=30)
    """A contact given a code this recently gets no new one."""
    attribution_window: timedelta = timedelta(days=7)
    """A purchase this soon after a message counts as recovered by it."""
    whatsapp_consent_from_sms: bool = False
    """Treat SMS marketing consent as WhatsApp consent (for shops whose consent text covers
    both)."""
    skip_sold_out: bool = True
    """A cart whose every item the platform reports out of stock gets no reminder."""
    sold_out_items: SoldOutItems = SoldOutItems.DROP
    """What a reminder does about a cart's sold-out items: leave them out of the message
    (see :func:`buyable`), or skip the whole cart."""
    segments: tuple[Segment, ...] = ()
    """Tried in order; the first a cart matches chooses its schedule (see
    :mod:`cartrescue.segments`). A cart none matches gets ``steps``."""
    rfm: Rfm = field(default_factory=Rfm)
    """How customers are scored and grouped for the segments' ``rfm`` conditions."""

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("a policy needs at least one step")
        numbers = [s.number for s in self.steps]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"steps must be numbered 1, 2, 3, … in order, got {numbers}")
        delays = [s.delay for s in self.steps]
        if delays != sorted(delays):
            raise ValueError("step delays must grow from one step to the next")
        for name in ("max_overdue", "lookback", "frequency_cap", "discount_cooldown"):
            if getattr(self, name) < timedelta(0):
                raise ValueError(f"{name} must not be negative")
        if self.max_sms_per_checkout < 0:
            raise ValueError("max_sms_per_checkout must not be negative")
        names = [s.name for s in self.segments]
        if len(set(names)) != len(names) or DEFAULT_SEGMENT in names:
            raise ValueError(f"segment names must be unique and not {DEFAULT_SEGMENT!r}")
        for segment in self.segments:
            unknown = sorted((segment.conditions.rfm or frozenset()) - self.rfm.names)
            if unknown:
                raise ValueError(
                    f"segment {segment.name}: no RFM group named {', '.join(unknown)} "
                    f"(the groups are {', '.join(sorted(self.rfm.names))})"
                )

    @property
    def needs_history(self) -> bool:
        """Whether a segment reads customer history (so the engine fetches it)."""
        return any(s.conditions.needs_history for s in self.segments)

    @property
    def segments_drift(self) -> bool:
        """Whether a cart's segment can change while its checkout does not: a segment reads
        the customer's history, RFM group, stock, product tags or collections, which the
        platform updates without touching the checkout."""
        return any(
            s.conditions.needs_history
            or s.conditions.all_in_stock is not None
            or s.conditions.product_tags is not None
            or s.conditions.collections is not None
            for s in self.segments
        )

    @property
    def needs_rfm(self) -> bool:
        """Whether a segment names RFM groups."""
        return any(s.conditions.rfm is not None for s in self.segments)

    def schedules(self) -> tuple[tuple[Step, ...], ...]:
        """Every schedule a cart can get: the policy's and each segment's own."""
        return (self.steps, *(s.steps for s in self.segments if s.steps is not None))

    @property
    def max_steps(self) -> int:
        """The most steps any schedule has."""
        return max(len(steps) for steps in self.schedules())

    @property
    def horizon(self) -> timedelta:
        """How long after abandonment a checkout can still get a message."""
        last = max(steps[-1].delay for steps in self.schedules())
        return last + self.max_overdue + timedelta(days=1)

    def segment_for(
        self, checkout: Checkout, reason: str | None = None
    ) -> tuple[str, tuple[Step, ...] | None]:
        """The name of ``checkout``'s segment and its schedule (None: skip the cart);
        ``reason`` is the one its buyer stated for leaving, if any."""
        found = first_match(checkout, self.segments, reason)
        if found is None:
            return DEFAULT_SEGMENT, self.steps
        if found.skip:
            return found.name, None
        return found.name, found.steps if found.steps is not None else self.steps


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One outbox entry of this checkout, as the policy needs it."""

    step: int
    channel: str
    status: str


@dataclass(frozen=True, slots=True)
class History:
    """What the store remembers that matters to the decision."""

    start_at: datetime
    records: tuple[StepRecord, ...] = ()
    skipped_steps: frozenset[int] = frozenset()
    last_contacted: datetime | None = None
    last_discount: datetime | None = None
    opted_out: frozenset[str] = frozenset()
    """Channels the contact opted out of; ``*`` means all."""
    paused_until: datetime | None = None
    """The buyer replied: no reminder before this time (``datetime.max``: until resumed)."""
    reason: str | None = None
    """Why the buyer said they left (a :data:`~cartrescue.reasons.REASONS` id): segments
    may choose the schedule by it. Steps already sent stay sent when it moves the cart to
    another segment; that schedule's next pending step applies."""


class Action(StrEnum):
    """What :func:`decide` tells the engine to do; see :class:`Decision`. The values are the
    words the engine logs (``action=send``)."""

    SEND = "send"
    WAIT = "wait"
    SKIP = "skip"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of :func:`decide`.

    ``action`` is one of the :class:`Action` values:

    - ``send``: send ``step`` on ``channel`` to ``recipient`` now, with ``discount`` if set;
      ``superseded`` lists earlier steps that never went out and are now skipped.
    - ``wait``: nothing to send now; ``until`` is when to look again (None: no time known),
      ``reason`` says why (``quiet hours``, ``frequency cap``, ``not due``, ``conversation``:
      the buyer replied).
    - ``skip``: record ``step`` as skipped for ``reason`` and decide again.
    - ``stop``: no more messages for this checkout; ``status`` is what to record
      (``converted``, ``done`` or ``stopped``) and ``reason`` why.
    """

    action: Action
    reason: str = ""
    step: int | None = None
    channel: ChannelKind | None = None
    recipient: str | None = None
    discount: DiscountOffer | None = None
    until: datetime | None = None
    status: str | None = None
    superseded: tuple[int, ...] = ()
    template_variant: str | None = None
    """Set by an experiment's arm (:mod:`cartrescue.experiments`); templates see it."""
    segment: str | None = None
    """The segment the cart is in (:mod:`cartrescue.segments`), once the policy got that far."""


def contact_keys(customer: Customer | None) -> tuple[str, ...]:
    """The identities a person is known by in the store: email lower-cased, phone E.164."""
    if customer is None:
        return ()
    keys = []
    if customer.email:
        keys.append(customer.email.lower())
    if customer.phone:
        keys.append(customer.phone)
    return tuple(keys)


def _zone_or_none(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@lru_cache(maxsize=4096)
def _number_zones(phone: str) -> tuple[str, ...]:
    try:
        number = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return ()
    zones = phone_timezone.time_zones_for_number(number)
    return tuple(z for z in zones if z != "Etc/Unknown")


_SUBSCRIBER_DIGITS = 4
"""Trailing digits that never move a number to another time zone: the zone data's prefixes
end before them, and numbering plans keep them free within a number's range."""
_AREA_CACHE_SIZE = 8192
_area_zones: dict[tuple[str, int], tuple[ZoneInfo, ...]] = {}


def _phone_zones(phone: str) -> tuple[ZoneInfo, ...]:
    """The zones of a phone number's area. Looking a number up costs more than the rest of
    a decision, and every new buyer has a new number, so a valid number's zones are cached
    by its area (all but its last digits, and its length); an invalid one is looked up on
    its own, so it never hides the zones of its valid neighbours."""
    area = (phone[:-_SUBSCRIBER_DIGITS], len(phone))
    zones = _area_zones.get(area)
    if zones is None:
        zones = tuple(z for z in map(_zone_or_none, _number_zones(phone)) if z is not None)
        if zones:
            if len(_area_zones) >= _AREA_CACHE_SIZE:
                _area_zones.clear()
            _area_zones[area] = zones
    return zones


def recipient_timezones(
    customer: Customer | None, shop_timezone: str | None
) -> tuple[ZoneInfo, ...]:
    """The time zones the recipient may be in: the customer's own when known, else every zone
    their phone number's area spans, else the shop's, else UTC."""
    if customer is not None:
        own = _zone_or_none(customer.timezone)
        if own is not None:
            return (own,)
        if customer.phone:
            zones = _phone_zones(customer.phone)
            if zones:
                return zones
    shop = _zone_or_none(shop_timezone)
    return (shop,) if shop is not None else (ZoneInfo("UTC"),)


def _in_window(at: datetime, zones: Sequence[ZoneInfo], window: SendWindow) -> bool:
    return all(window.contains(at.astimezone(z)) for z in zones)


def next_window_open(
    at: datetime, zones: Sequence[ZoneInfo], window: SendWindow
) -> datetime | None:
    """The first instant at or after ``at`` that is inside the window in every zone, or None
    when the zones' windows never overlap (then the first zone alone decides)."""
    if _in_window(at, zones, window):
        return at
    candidates = []
    for zone in zones:
        local = at.astimezone(zone)
        for days in range(0, 3):
            day = (local + timedelta(days=days)).date()
            start = datetime.combine(day, window.start, tzinfo=zone)
            if start >= at:
                candidates.append(start)
    for candidate in sorted(candidates):
        if _in_window(candidate, zones, window):
            return candidate
    if len(zones) > 1:
        return next_window_open(at, zones[:1], window)
    return None


def _address(customer: Customer, channel: ChannelKind) -> str | None:
    return customer.email if channel == "email" else customer.phone


def _consents(customer: Customer, channel: ChannelKind, policy: Policy) -> bool:
    if channel == "email":
        return customer.email_consent
    if channel == "sms":
        return customer.sms_consent
    return customer.whatsapp_consent or (policy.whatsapp_consent_from_sms and customer.sms_consent)


def offer_withheld(
    offer: DiscountOffer,
    checkout: Checkout,
    last_discount: datetime | None,
    policy: Policy,
    now: datetime,
) -> str | None:
    """Why ``checkout`` gets no code for ``offer`` now, or None when it gets one."""
    if last_discount is not None and now - last_discount < policy.discount_cooldown:
        return "this person was given a code within the discount cooldown"
    if offer.min_subtotal is not None and checkout.total < offer.min_subtotal:
        return f"the cart is below the offer's minimum subtotal of {offer.min_subtotal}"
    if offer.first_time_only and customer_kind(checkout) != CustomerKind.NEW:
        return "the offer is for first-time buyers only"
    return None


def decide(
    checkout: Checkout,
    history: History,
    policy: Policy,
    channels: Sequence[ChannelKind],
    now: datetime,
    *,
    shop_timezone: str | None = None,
) -> Decision:
    """Decide what to do with one checkout now. See :class:`Decision`."""
    if checkout.completed_at is not None:
        return Decision(Action.STOP, "completed", status="converted")
    if checkout.abandoned_at < history.start_at:
        return Decision(
            Action.STOP, "abandoned before cartrescue was switched on", status="stopped"
        )
    segment, steps = policy.segment_for(checkout, history.reason)
    if (
        policy.skip_sold_out
        and checkout.line_items
        and all(li.in_stock is False for li in checkout.line_items)
    ):
        return Decision(
            Action.STOP, "every item in the cart is sold out", status="stopped", segment=segment
        )
    if policy.sold_out_items == SoldOutItems.SKIP_CART and any(
        li.in_stock is False for li in checkout.line_items
    ):
        return Decision(
            Action.STOP,
            "an item in the cart is sold out (sold_out_items = skip_cart)",
            status="stopped",
            segment=segment,
        )
    if steps is None:
        return Decision(
            Action.STOP, f"segment {segment} is skipped", status="stopped", segment=segment
        )
    decision = _decide_steps(
        checkout, history, policy, steps, channels, now, shop_timezone=shop_timezone
    )
    return replace(decision, segment=segment)


def _decide_steps(
    checkout: Checkout,
    history: History,
    policy: Policy,
    steps: Sequence[Step],
    channels: Sequence[ChannelKind],
    now: datetime,
    *,
    shop_timezone: str | None,
) -> Decision:
    customer = checkout.customer
    if customer is None or not (customer.email or customer.phone):
        detail = "; ".join(checkout.problems)
        reason = "no reachable contact" + (f" ({detail})" if detail else "")
        return Decision(Action.STOP, reason, status="stopped")

    reachable = [c for c in channels if _address(customer, c)]
    if not reachable:
        return Decision(
            Action.STOP, "no reachable contact on a configured channel", status="stopped"
        )
    consented = [c for c in reachable if _consents(customer, c, policy)]
    if not consented:
        return Decision(Action.STOP, "no consent for any configured channel", status="stopped")
    allowed = [c for c in consented if "*" not in history.opted_out and c not in history.opted_out]
    if not allowed:
        return Decision(Action.STOP, "opted out", status="stopped")

    handled = set(history.skipped_steps)
    for record in history.records:
        if record.status in ("sent", "claimed", "unknown"):
            handled.add(record.step)
    pending = [s for s in steps if s.number not in handled]
    if not pending:
        return Decision(Action.STOP, "all steps done", status="done")
    if history.paused_until is not None and now < history.paused_until:
        until = None if history.paused_until.year == datetime.max.year else history.paused_until
        return Decision(Action.WAIT, "conversation", until=until, step=pending[0].number)
    due = [s for s in pending if checkout.abandoned_at + s.delay <= now]
    if not due:
        return Decision(Action.WAIT, "not due", until=checkout.abandoned_at + pending[0].delay)
    step = due[-1]
    superseded = tuple(s.number for s in due[:-1])

    sms_sent = sum(
        1
        for r in history.records
        if r.channel == "sms" and r.status in ("sent", "claimed", "unknown")
    )
    failed_here = {
        r.channel for r in history.records if r.step == step.number and r.status == "failed"
    }
    channel: ChannelKind | None = None
    for candidate in step.channels:
        if candidate not in allowed or candidate in failed_here:
            continue
        if candidate == "sms" and sms_sent >= policy.max_sms_per_checkout:
            continue
        channel = candidate
        break
    if channel is None:
        return Decision(
            Action.SKIP, "no allowed channel for this step", step=step.number, superseded=superseded
        )

    zones = recipient_timezones(customer, shop_timezone)
    due_at = checkout.abandoned_at + step.delay
    if history.last_contacted is not None:
        due_at = max(due_at, history.last_contacted + policy.frequency_cap)
    if history.paused_until is not None:  # a pause that ended: count overdue from its end
        due_at = max(due_at, history.paused_until)
    sendable_from = next_window_open(due_at, zones, policy.send_window) or due_at
    if now - sendable_from > policy.max_overdue:
        return Decision(Action.SKIP, "overdue", step=step.number, superseded=superseded)
    if history.last_contacted is not None and now < history.last_contacted + policy.frequency_cap:
        return Decision(
            Action.WAIT,
            "frequency cap",
            until=history.last_contacted + policy.frequency_cap,
            step=step.number,
        )
    if not _in_window(now, zones, policy.send_window):
        return Decision(
            Action.WAIT,
            "quiet hours",
            until=next_window_open(now, zones, policy.send_window),
            step=step.number,
        )

    discount = step.discount
    if discount is not None and offer_withheld(
        discount, checkout, history.last_discount, policy, now
    ):
        discount = None
    return Decision(
        Action.SEND,
        step=step.number,
        channel=channel,
        recipient=_address(customer, channel),
        discount=discount,
        superseded=superseded,
    )


def look_again(
    decision: Decision, checkout: Checkout, policy: Policy, now: datetime
) -> datetime | None:
    """The earliest time :func:`decide` may answer otherwise than ``decision`` (made at
    ``now``) when nothing it reads changes — the checkout, its history, the policy, the
    channels, the shop's time zone — but the time. For a send, the answer once the message
    is recorded as sent. None: no such time is known, decide again on every pass.

    Only waits whose end is certain get a time: not due yet (until the step is due), a
    conversation's pause (until it ends), the frequency cap (until it lifts, or a later step
    falls due, whichever is first: a newly due step may have no allowed channel). Quiet
    hours get none: another checkout of the same person messaged meanwhile would turn them
    into the frequency cap. When the cart's segment can change while the checkout does not
    (:attr:`Policy.segments_drift`), only a conversation's pause gets a time: a new segment
    may bring a step due sooner.
    """
    if policy.segments_drift:
        held = decision.action == Action.WAIT and decision.reason == "conversation"
        return decision.until if held else None
    _, steps = policy.segment_for(checkout)
    if steps is None:
        return None
    if decision.action == Action.SEND:
        assert decision.step is not None
        later = [checkout.abandoned_at + s.delay for s in steps if s.number > decision.step]
        return min(later, default=None)
    if decision.action != Action.WAIT or decision.until is None:
        return None
    if decision.reason in ("not due", "conversation"):
        return decision.until
    if decision.reason == "frequency cap":
        due = [checkout.abandoned_at + s.delay for s in steps]
        return min([decision.until, *(at for at in due if at > now)])
    return None
