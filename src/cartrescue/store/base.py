"""The Store protocol: what the engine needs to remember between passes.

``SQLiteStore`` is the embedded default. Another store (a server database for several
workers) implements the same methods; the one that matters most is :meth:`Store.claim`,
which must be atomic across processes.

Contacts are passed as their normalised forms: an email lower-cased, a phone in E.164.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

from ..models import Checkout, Purchase

__all__ = [
    "RELEASED",
    "ConversionKind",
    "Histories",
    "LinkRecord",
    "OptOut",
    "OutboxEntry",
    "OutboxStatus",
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
class Store(Protocol):
    """Persistent memory of passes, checkouts, messages and opt-outs."""

    # -- passes ---------------------------------------------------------------------------
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

    # -- checkouts ------------------------------------------------------------------------
    def upsert_checkout(self, checkout: Checkout, at: datetime) -> None:
        """Remember the newest version of a checkout (its status is kept)."""
        ...

    def upsert_checkouts(self, checkouts: Sequence[Checkout], at: datetime) -> dict[str, str]:
        """:meth:`upsert_checkout` for a page of checkouts, in one transaction; return each
        one's status after the write (id → ``open``, ``done``, …; see :meth:`checkout_status`)."""
        ...

    def record_bad_checkout(self, checkout_id: str, reason: str, at: datetime) -> None: ...

    def active_checkouts(self, abandoned_after: datetime) -> Iterator[Checkout]:
        """Open checkouts abandoned after the given time, oldest first. Read in batches, so
        any number of them fits in memory; rows written while iterating may or may not be
        seen."""
        ...

    def checkout_status(self, checkout_id: str) -> str | None:
        """``open``, ``converted``, ``converted_elsewhere``, ``done``, ``stopped``, or None."""
        ...

    def close_checkout(self, checkout_id: str, status: str, reason: str, at: datetime) -> None:
        """Stop working on an open checkout (converted, all steps done, or an exit rule).
        A ``done`` checkout may still become ``converted``/``converted_elsewhere``; any other
        closed checkout keeps its status."""
        ...

    # -- outbox ---------------------------------------------------------------------------
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

    # -- opt-outs -------------------------------------------------------------------------
    def add_optout(self, contact: str, channel: str, source: str, at: datetime) -> None:
        """``channel`` is a channel kind or ``*`` for all."""
        ...

    def remove_optout(self, contact: str, channel: str = "*") -> int: ...

    def optouts_for(self, contacts: Sequence[str]) -> set[str]:
        """The channels (or ``*``) any of ``contacts`` opted out of."""
        ...

    def list_optouts(self) -> list[OptOut]: ...

    # -- outcomes -------------------------------------------------------------------------
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

    def forget(self, contact: str) -> int:
        """Erase every row that names ``contact``; return how many were removed."""
        ...

    # -- short links ----------------------------------------------------------------------
    def save_link(self, link: LinkRecord) -> None: ...

    def link(self, code: str) -> LinkRecord | None: ...

    def link_for(self, checkout_id: str, step: int, channel: str) -> LinkRecord | None: ...

    def record_click(self, code: str, at: datetime) -> None: ...

    def close(self) -> None: ...
