"""The store protocols: what cartrescue needs to remember between passes, split by job.

Each protocol is one job, so a part of cartrescue asks only for what it uses and a store can
be reasoned about (and tested) a job at a time:

- :class:`OutboxStore` — outbox and claims: the idempotency key of every message, the
  frequency cap, skipped steps, discounts handed out. The one job that must be atomic across
  processes and hosts (:meth:`OutboxStore.claim`); the engine's send path needs only this.
- :class:`CheckoutStore` — checkouts, passes and watermarks: what the connector delivered and
  how far it has read. Written by the pass, one page at a time.
- :class:`OptOutStore` — suppressions: who said STOP, on which channel. Read on every send,
  written by inbound handlers and the unsubscribe page; it must outlive ``forget`` as a keyed
  hash.
- :class:`LinkStore` — short links and their clicks, for the web redirect.
- :class:`ReportStore` — events, conversions and stats: what ``stats`` and reports read.
  Append-only from the pass's point of view.
- :class:`ExperimentStore` and :class:`ConversationStore` (optional, outside :class:`Store`)
  — experiment arms and the report's aggregates; the replies a buyer wrote and the pause
  they put on their checkout's reminders. Both built-in stores have them.
- :class:`SignalStore` (optional, outside :class:`Store`) — what the providers' status
  callbacks said about each message sent (delivered, read, failed).

The cut follows who reads and writes what: the web process needs links and opt-outs only,
the send path outbox and opt-outs, reporting only the last. ``forget`` and ``close`` cross
every job, so they live on :class:`Store`, the union the engine takes; any object with all
the methods is a ``Store`` (``SQLiteStore``, ``PostgresStore``, an integrator's own), checked
by one conformance suite, ``cartrescue_testing.store_contract.StoreContract``.

Contacts are passed as their normalised forms: an email lower-cased, a phone in E.164.
Times are timezone-aware; a store may return them in UTC.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

from ..models import Checkout, Purchase

__all__ = [
    "READS_REPORTED",
    "RELEASED",
    "AttributionWindows",
    "BreakdownFacts",
    "CheckoutStore",
    "ConversationEntry",
    "ConversationStore",
    "ConversionKind",
    "DayFacts",
    "ExperimentStore",
    "GroupFacts",
    "Histories",
    "LinkRecord",
    "LinkStore",
    "OptOut",
    "OptOutStore",
    "OutboxEntry",
    "OutboxStatus",
    "OutboxStore",
    "ReportFacts",
    "ReportStore",
    "Signal",
    "SignalCounts",
    "SignalOutcome",
    "SignalStore",
    "Stats",
    "Store",
]

OutboxStatus = Literal["claimed", "sent", "failed", "unknown", "retry", "not_rendered"]
"""``claimed``: a process took the key and has not recorded a result (if it died, the
outcome is unknown and the key is never sent again); ``retry``: a transient failure released
the key for a later pass; ``not_rendered``: the message could not be built (a template
error), nothing was sent, and the key is released like ``retry``."""

RELEASED: tuple[OutboxStatus, ...] = ("retry", "not_rendered")
"""Statuses whose key :meth:`Store.claim` may take again."""

ConversionKind = Literal["converted", "converted_elsewhere"]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    key: str
    checkout_id: str
    step: int
    channel: str
    status: OutboxStatus
    claimed_at: datetime
    finished_at: datetime | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class OptOut:
    contact: str
    channel: str
    source: str
    at: datetime


@dataclass(frozen=True, slots=True)
class LinkRecord:
    code: str
    checkout_id: str
    step: int
    channel: str
    destination: str
    home_url: str | None
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Stats:
    """What ``cartrescue stats`` prints."""

    checkouts_seen: int
    checkouts_by_status: Mapping[str, int]
    messages: Mapping[tuple[int, str, str], int]
    """(step, channel, status) → count; a ``claimed`` key whose process is gone counts as
    ``unknown``."""
    messaged_checkouts: int
    conversions: Mapping[str, int]
    recovered: int
    """Checkouts paid after a message, within the attribution window."""
    revenue_recovered: Mapping[str, Decimal]
    """Currency → sum of recovered order totals."""
    clicks: int
    opt_outs: int
    bad_payloads: int
    last_pass_completed: datetime | None
    last_pass_started: datetime | None
    last_pass_error: str | None
    skip_reasons: Mapping[str, int] = field(default_factory=dict)
    passes_completed: int = 0
    """Passes that finished without an error, ever."""
    not_rendered: int = 0
    """Keys whose message could not be rendered and that were not sent since."""

    @property
    def recovery_rate(self) -> float | None:
        if not self.messaged_checkouts:
            return None
        return self.recovered / self.messaged_checkouts


@dataclass(frozen=True, slots=True)
class AttributionWindows:
    """A purchase is *attributed* to a message when it comes within ``click`` of a click on
    the message's link, or within ``send`` of its send; ``channels`` overrides both per
    channel kind (``{"sms": (click, send)}``)."""

    click: timedelta = timedelta(days=5)
    send: timedelta = timedelta(hours=24)
    channels: Mapping[str, tuple[timedelta, timedelta]] = field(default_factory=dict)

    def of(self, channel: str) -> tuple[timedelta, timedelta]:
        """(click window, send window) of ``channel``."""
        return self.channels.get(channel, (self.click, self.send))


@dataclass(frozen=True, slots=True)
class GroupFacts:
    """The checkouts assigned to one arm of one experiment (the holdout is the experiment
    ``holdout`` with arms ``holdout`` and ``treated``)."""

    experiment: str
    arm: str
    eligible: int
    messaged: int
    clicked: int
    converted: int
    attributed: int
    revenue: float
    revenue_squares: float
    """Sum of squared order totals, for the variance of revenue per person."""
    opted_out: int


@dataclass(frozen=True, slots=True)
class BreakdownFacts:
    """The messages sent for one (step, channel, locale, experiment, arm): how many, clicked,
    and the conversions credited to them (the last qualifying message before the purchase
    gets it)."""

    step: int
    channel: str
    locale: str
    experiment: str | None
    arm: str | None
    sent: int
    recipients_days: int
    """Distinct (recipient, day) pairs: the conversations a WhatsApp message opens."""
    clicked: int
    attributed: int
    revenue: float
    opted_out: int


@dataclass(frozen=True, slots=True)
class DayFacts:
    """One day: attributed revenue (by purchase day), and the holdout comparison (by
    assignment day)."""

    day: str
    attributed: int
    attributed_revenue: float
    treated: int
    treated_revenue: float
    held_out: int
    held_out_revenue: float


@dataclass(frozen=True, slots=True)
class ReportFacts:
    """What ``cartrescue report`` reads from a store: aggregates only, so reading stays
    flat in memory however many rows there are. Checkouts abandoned in [since, until)."""

    since: datetime
    until: datetime
    abandoned: int
    abandoned_value: float
    abandoned_items: int
    converted: int
    converted_revenue: float
    attributed: int
    attributed_revenue: float
    hours_to_recovery: float | None
    """Mean hours from abandonment to an attributed purchase."""
    currency: str | None
    groups: tuple[GroupFacts, ...] = ()
    breakdown: tuple[BreakdownFacts, ...] = ()
    days: tuple[DayFacts, ...] = ()


@dataclass(frozen=True, slots=True)
class Histories:
    """What the store remembers about a page of checkouts and their contacts, read at once
    (:meth:`Store.histories`). Contacts are keyed lower-cased; a checkout or contact the
    store knows nothing about is simply missing."""

    steps: Mapping[str, tuple[tuple[int, str, OutboxStatus], ...]] = field(default_factory=dict)
    """Checkout id → its outbox entries as (step, channel, status), oldest claim first."""
    skipped: Mapping[str, frozenset[int]] = field(default_factory=dict)
    """Checkout id → the steps recorded as skipped."""
    last_contacted: Mapping[str, datetime] = field(default_factory=dict)
    """Contact → when a message to it was last claimed (``claimed``/``sent``/``unknown``)."""
    last_discount: Mapping[str, datetime] = field(default_factory=dict)
    """Contact → when it was last given a discount code."""
    optouts: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Contact → the channels (or ``*``) it opted out of, as :meth:`Store.optouts_for`."""


@runtime_checkable
class OutboxStore(Protocol):
    """Outbox and claims: every message's idempotency key, the frequency cap, skipped steps
    and discounts. :meth:`claim` must be atomic across threads, processes and hosts, and
    :meth:`claim` and :meth:`finish` may be called from several threads of one process at
    once (the engine dispatches in worker threads)."""

    def outbox_for(self, checkout_id: str) -> list[OutboxEntry]: ...

    def skipped_steps(self, checkout_id: str) -> set[int]: ...

    def histories(self, checkout_ids: Sequence[str], contacts: Sequence[str]) -> Histories:
        """What :meth:`outbox_for`, :meth:`skipped_steps`, :meth:`last_contacted`,
        :meth:`last_discount` and :meth:`optouts_for` say about these checkouts and
        contacts, read in a few queries for a whole page."""
        ...

    def skip_step(self, checkout_id: str, step: int, reason: str, at: datetime) -> None: ...

    def claim(
        self,
        key: str,
        *,
        checkout_id: str,
        step: int,
        channel: str,
        recipient: str,
        contacts: Sequence[str],
        at: datetime,
        cap_since: datetime | None,
        run_id: int | None,
    ) -> bool:
        """Atomically take ``key`` for sending. False when the key was taken before (by any
        process, at any time) unless released (:data:`RELEASED`), or when any of ``contacts`` was
        messaged at or after ``cap_since`` (the frequency cap, checked in the same
        transaction so two processes cannot both pass it)."""
        ...

    def finish(
        self,
        key: str,
        status: OutboxStatus,
        at: datetime,
        *,
        provider_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record what happened to a claimed key. ``retry`` and ``not_rendered`` release
        it. The engine calls ``claim`` and ``finish`` from its send threads: a store must
        be safe to use from several threads."""
        ...

    def last_contacted(self, contacts: Sequence[str]) -> datetime | None: ...

    def record_discount(
        self, checkout_id: str, contacts: Sequence[str], code: str, at: datetime
    ) -> None: ...

    def last_discount(self, contacts: Sequence[str]) -> datetime | None: ...


@runtime_checkable
class CheckoutStore(Protocol):
    """Checkouts, passes and watermarks: what the connector delivered and how far it read."""

    def begin_run(self, at: datetime) -> int:
        """Record that a pass started; return its id."""
        ...

    def finish_run(
        self, run_id: int, at: datetime, counts: Mapping[str, int], error: str | None
    ) -> None:
        """Record the end of a pass: its counts, and ``error`` if it did not complete."""
        ...

    def start_at(self, default: datetime) -> datetime:
        """The first moment cartrescue was switched on for this shop. Carts abandoned
        before it are never messaged. On the first call store ``default`` and return it."""
        ...

    def watermark(self, connector: str) -> datetime | None: ...

    def set_watermark(self, connector: str, at: datetime) -> None: ...

    def upsert_checkout(self, checkout: Checkout, at: datetime) -> None:
        """Remember the newest version of a checkout (its status is kept): a version whose
        ``updated_at`` is older than the stored one's changes nothing."""
        ...

    def upsert_checkouts(self, checkouts: Sequence[Checkout], at: datetime) -> dict[str, str]:
        """:meth:`upsert_checkout` for a page of checkouts, in one transaction; return each
        one's status after the write (id → ``open``, ``done``, …; see :meth:`checkout_status`)."""
        ...

    def record_bad_checkout(self, checkout_id: str, reason: str, at: datetime) -> None: ...

    def record_delivery(self, source: str, delivery_id: str, at: datetime) -> bool:
        """Remember that the inbound delivery ``delivery_id`` from ``source`` (a platform's
        webhook id, a provider's message id) was taken; True the first time, False for a
        repeat, which the caller then ignores. Ids are kept for at least a week."""
        ...

    def active_checkouts(self, abandoned_after: datetime) -> Iterator[Checkout]:
        """Open checkouts abandoned after the given time, oldest first."""
        ...

    def checkout_status(self, checkout_id: str) -> str | None:
        """``open``, ``converted``, ``converted_elsewhere``, ``done``, ``stopped``, or None."""
        ...

    def close_checkout(self, checkout_id: str, status: str, reason: str, at: datetime) -> None:
        """Stop working on an open checkout (converted, all steps done, or an exit rule).
        A ``done`` checkout may still become ``converted``/``converted_elsewhere``; any other
        closed checkout keeps its status."""
        ...


@runtime_checkable
class OptOutStore(Protocol):
    """Suppressions: who opted out of which channel. An opt-out outlives ``forget``."""

    def add_optout(self, contact: str, channel: str, source: str, at: datetime) -> None:
        """``channel`` is a channel kind or ``*`` for all."""
        ...

    def remove_optout(self, contact: str, channel: str = "*") -> int: ...

    def optouts_for(self, contacts: Sequence[str]) -> set[str]:
        """The channels (or ``*``) any of ``contacts`` opted out of."""
        ...

    def list_optouts(self, channel: str | None = None) -> list[OptOut]:
        """Opt-outs by contact, oldest first; with ``channel``, those that stop that channel
        (its own and those for every channel, ``"*"``)."""


@runtime_checkable
class LinkStore(Protocol):
    """Short links and their clicks."""

    def save_link(self, link: LinkRecord) -> None: ...

    def link(self, code: str) -> LinkRecord | None: ...

    def link_for(self, checkout_id: str, step: int, channel: str) -> LinkRecord | None: ...

    def record_click(self, code: str, at: datetime) -> None: ...


@runtime_checkable
class ReportStore(Protocol):
    """Events, conversions and stats: what reporting reads."""

    def record_conversion(
        self,
        checkout_id: str,
        kind: ConversionKind,
        purchase: Purchase | None,
        at: datetime,
        attribution_since: datetime,
    ) -> str | None:
        """Record a conversion once per checkout; return the outbox key it is attributed to:
        the message whose short link was clicked last since ``attribution_since``, else the
        last message sent since then, else None."""
        ...

    def record_event(
        self,
        kind: str,
        at: datetime,
        *,
        checkout_id: str | None = None,
        step: int | None = None,
        channel: str | None = None,
        detail: str | None = None,
    ) -> None: ...

    def stats(self, now: datetime) -> Stats: ...


@runtime_checkable
class Store(OutboxStore, CheckoutStore, OptOutStore, LinkStore, ReportStore, Protocol):
    """Everything the engine needs: the union of the jobs, plus erasure and closing."""

    def forget(self, contact: str) -> int:
        """Erase every row that names ``contact``; return how many were removed."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ExperimentStore(Protocol):
    """What holdouts, A/B tests and ``cartrescue report`` need of a store, besides
    :class:`Store`. ``SQLiteStore`` and ``PostgresStore`` have it; a store without it runs
    passes but not experiments or reports."""

    def assignment_key(self) -> bytes:
        """A random secret kept in the store, created on first use, keying experiment
        assignment when no ``[store] hash_key`` is configured."""
        ...

    def assignments(self, checkout_id: str) -> dict[str, str]:
        """Experiment → arm recorded for this checkout."""
        ...

    def record_assignments(
        self,
        checkout_id: str,
        arms: Sequence[tuple[str, str, int | None]],
        at: datetime,
    ) -> None:
        """Record (experiment, arm, step or None for every step) for a checkout; an
        experiment already recorded for it keeps its arm. An outbox entry claimed later
        for a covered step carries the experiment and arm."""
        ...

    def arm_counts(self, experiment: str) -> dict[str, tuple[int, int]]:
        """Arm → (checkouts assigned, of which converted), for adaptive allocation."""
        ...

    def report_facts(
        self, since: datetime, until: datetime, windows: AttributionWindows
    ) -> ReportFacts:
        """The aggregates of :class:`ReportFacts` for checkouts abandoned in the span."""
        ...


@dataclass(frozen=True, slots=True)
class ConversationEntry:
    """One message of a checkout's conversation: ``direction`` is ``in`` (the buyer wrote)
    or ``out``; ``source`` names the provider that delivered it (``twilio``)."""

    checkout_id: str
    at: datetime
    channel: str
    direction: Literal["in", "out"]
    text: str
    source: str


@runtime_checkable
class ConversationStore(Protocol):
    """What conversations (replies that are not keywords) need of a store, besides
    :class:`Store`. ``SQLiteStore`` and ``PostgresStore`` have it; with a store without
    it replies are still verified and keywords still act, but other replies are
    neither recorded nor pause anything."""

    def checkout_for_contact(self, contact: str) -> Checkout | None:
        """The checkout a reply from ``contact`` (E.164 phone or lower-case email) is about:
        its latest open checkout, else its latest checkout; None when there is none."""
        ...

    def add_conversation_entry(self, entry: ConversationEntry, message_id: str | None) -> bool:
        """Record ``entry``; False (and nothing recorded) when ``message_id`` from the same
        ``source`` was recorded before."""
        ...

    def conversation(self, checkout_id: str) -> list[ConversationEntry]:
        """The checkout's conversation, oldest first."""
        ...

    def pause_checkout(self, checkout_id: str, until: datetime | None, at: datetime) -> None:
        """Hold the checkout's remaining reminders until ``until`` (None: for good)."""
        ...

    def paused_until(self, checkout_id: str) -> datetime | None:
        """When the checkout's pause ends: None when it is not paused, ``datetime.max``
        (UTC) when it is paused for good."""
        ...

    def pauses(self, checkout_ids: Sequence[str]) -> dict[str, datetime]:
        """:meth:`paused_until` for a page of checkouts in one read; a checkout that is not
        paused is missing."""
        ...

    def record_reason(self, checkout_id: str, reason: str, at: datetime) -> None:
        """Record why the buyer says they left (a later answer replaces an earlier one)."""
        ...

    def abandonment_reason(self, checkout_id: str) -> str | None:
        """The reason the buyer gave for this checkout, if any."""
        ...

    def reasons(self, checkout_ids: Sequence[str]) -> Mapping[str, str]:
        """The stated abandonment reason id of each of these checkouts that has one, read
        in one query."""
        ...

    def reason_counts(self) -> dict[str, int]:
        """Reason → how many checkouts gave it."""
        ...


class Signal(StrEnum):
    """What a provider's status callback says about a message it accepted. A message's
    signal only moves forward (:meth:`rank`): ``sent`` → ``delivered`` or ``failed`` →
    ``read``; a late ``delivered`` never replaces ``read``, and ``delivered`` and ``failed``
    (both final outcomes of a delivery attempt) never replace each other."""

    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    READ = "read"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Signal.SENT: 1, Signal.DELIVERED: 2, Signal.FAILED: 2, Signal.READ: 3}


class SignalOutcome(StrEnum):
    """What :meth:`SignalStore.record_signal` did."""

    RECORDED = "recorded"
    """The message's signal moved forward."""
    UNCHANGED = "unchanged"
    """The message already had this signal or a later one (a redelivery, or out of order)."""
    UNKNOWN = "unknown"
    """No message sent has this provider id."""


READS_REPORTED = frozenset({"whatsapp"})
"""The channel kinds whose providers report that a message was read."""


@dataclass(frozen=True, slots=True)
class SignalCounts:
    """One channel's messages accepted by the provider (``sent``), and of those how many it
    reported delivered (read ones included), read and failed."""

    channel: str
    sent: int
    delivered: int
    read: int
    failed: int

    @property
    def reads_reported(self) -> bool:
        return self.channel in READS_REPORTED

    @property
    def delivery_rate(self) -> float | None:
        return self.delivered / self.sent if self.sent else None

    @property
    def read_rate(self) -> float | None:
        """None when nothing was sent or the channel does not report reads."""
        return self.read / self.sent if self.sent and self.reads_reported else None


@runtime_checkable
class SignalStore(Protocol):
    """What engagement signals need of a store, besides :class:`Store`. Both built-in stores
    have it; with a store without it status callbacks are verified and ignored."""

    def record_signal(self, provider_id: str, signal: Signal, at: datetime) -> SignalOutcome:
        """Record ``signal`` on the outbox entry the provider accepted as ``provider_id``
        (:meth:`OutboxStore.finish`), only if it moves the entry's signal forward
        (:attr:`Signal.rank`), so a redelivered or late callback changes nothing."""
        ...

    def signal_counts(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, SignalCounts]:
        """Channel → its :class:`SignalCounts`, over every message, or with ``since`` and
        ``until`` over the messages for checkouts abandoned in [since, until). A channel
        with no message accepted is missing."""
        ...
