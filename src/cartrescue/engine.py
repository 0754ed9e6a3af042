"""The recovery engine: one polling pass is fetch → decide → render → claim → send → record."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import queue
import secrets
import threading
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from ._version import __version__
from .channels.base import Channel
from .clock import Clock, utc_now
from .connectors.base import (
    BulkPurchaseLookup,
    Connector,
    DiscountCapable,
    PurchaseCheck,
    PurchaseLookup,
    ShopTimezone,
    find_purchases,
)
from .errors import (
    BadPayloadError,
    CartRescueError,
    ConfigError,
    ConnectorError,
    PermanentSendError,
    SendOutcomeUnknown,
    StoreError,
    TransientSendError,
    explain_connector_error,
)
from .experiments import ArmCounts, ExperimentPlan, assign, with_arm
from .history import HistoryCache
from .links import LinkShortener
from .logmask import mask_contact, mask_text
from .models import (
    BadCheckout,
    ChannelKind,
    Checkout,
    Discount,
    Message,
    OutboxKey,
    Purchase,
    Receipt,
    ShopInfo,
)
from .policy import (
    Action,
    Decision,
    History,
    Policy,
    SoldOutItems,
    StepRecord,
    _consents,
    buyable,
    contact_keys,
    decide,
    look_again,
)
from .render import MessageContext, Renderer, TemplateRenderer
from .store.base import (
    ConversationStore,
    ConversionKind,
    ExperimentStore,
    Histories,
    LookAgain,
    LookAgainStore,
    Store,
    Unchanged,
)

__all__ = ["Progress", "Recovery", "RunCount", "RunReport"]

log = logging.getLogger("cartrescue.engine")


class RunCount(StrEnum):
    """The names of the counts in :attr:`RunReport.counts`, saved with each run.

    Besides these, a checkout the policy stopped is counted under the policy's reason
    (``opted out``, ``all steps done``, …), a held one under :meth:`held` and a skipped step
    under :meth:`step_skipped`.
    """

    FETCHED = "fetched"
    SENT = "sent"
    WOULD_SEND = "would send"
    WAITING = "waiting"
    CONVERTED = "converted"
    CONVERTED_ELSEWHERE = "converted elsewhere"
    BAD_PAYLOAD = "bad payload"
    FAILED = "failed"
    NOT_RENDERED = "failed: not rendered"
    REJECTED = "failed: rejected by provider"
    WILL_RETRY = "failed: will retry"
    UNKNOWN_OUTCOME = "unknown outcome"
    NOT_CLAIMED = "not claimed (sent by another pass or capped)"
    PURCHASE_CHECK_FAILED = "held: purchase check failed"
    SUPERSEDED = "step skipped: superseded"

    @staticmethod
    def held(reason: str) -> str:
        """The count of checkouts held back for ``reason`` (``quiet hours``, …)."""
        return f"held: {reason}"

    @staticmethod
    def step_skipped(reason: str) -> str:
        """The count of steps skipped for ``reason`` (``overdue``, …)."""
        return f"step skipped: {reason}"


_QUEUE_PER_WORKER = 2
_QUEUE_MIN = 32
"""A channel's jobs waiting or running at once: enough that a worker never waits for the
pass to decide the next message, few enough that the pass stays close to its sends."""

_MAX_CONNECTOR_ERRORS = 1000
"""Consecutive errors from a connector's iterator after which it counts as unreadable."""

Unsubscribe = Callable[[str, ChannelKind, str], str]
"""Given a recipient, a channel and the message's locale, the one-click unsubscribe URL to put
in the message (:class:`~cartrescue.unsubscribe.UnsubscribeLinks` is one)."""
Progress = Callable[["RunReport", int], None]
"""Called as a pass goes, after each checkout fetched and each decided: the report so far
(``fetched``, ``counts``) and how many checkouts were decided. It must be cheap."""


@dataclass
class RunReport:
    """What one pass did. ``counts`` maps an outcome (``sent``, ``held: quiet hours``, …) to
    how many checkouts had it; ``messages`` are the messages that would have been sent, in a
    dry run, or the messages sent when the pass was asked to keep them
    (``run(keep_messages=True)``; otherwise a pass keeps counts only, so its memory stays flat
    however many it sends); ``failures`` lists (checkout id, reason) for checkouts that went
    wrong; ``error`` is set when the pass itself could not complete."""

    started_at: datetime
    dry_run: bool = False
    finished_at: datetime | None = None
    fetched: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    messages: list[Message] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    keep_messages: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def not_rendered(self) -> int:
        """Messages that could not be rendered (a template error): nothing was sent, the
        step stays due, and the pass needs attention."""
        return self.counts[RunCount.NOT_RENDERED]

    def _merge(self, other: RunReport) -> None:
        self.counts.update(other.counts)
        if self.dry_run or self.keep_messages:
            self.messages.extend(other.messages)
        self.failures.extend(other.failures)

    def summary(self) -> str:
        lines = [
            f"{'Dry run' if self.dry_run else 'Pass'} at {self.started_at:%Y-%m-%d %H:%M} UTC:"
            f" {self.fetched} checkout(s) fetched",
        ]
        lines += [f"  {outcome}: {n}" for outcome, n in sorted(self.counts.items())]
        lines += [f"  ! {checkout}: {reason}" for checkout, reason in self.failures]
        if self.error:
            lines.append(f"  pass did not complete: {self.error}")
        return "\n".join(lines)


class Recovery:
    """Runs recovery passes for one shop.

    ``channels`` maps a channel kind to the channel that sends it (a sequence of channels is
    keyed by their ``kind``). Everything else has a default: the default :class:`Policy`,
    the package's templates, the real clock, no link shortener (the raw recovery URL).
    Nothing is global: two ``Recovery`` objects for two shops run side by side.

    Each channel sends from its own worker threads, as many as its ``concurrency``
    attribute says (1 when it has none; a channel with ``concurrency`` above 1 must be safe
    to call from several threads). A worker claims a key right before it sends it and
    records the result as soon as the send returns, so a process killed at any moment
    leaves at most ``concurrency`` keys per channel whose outcome is unknown. The store is
    called from those threads too.
    """

    def __init__(
        self,
        connector: Connector,
        channels: Mapping[str, Channel] | Iterable[Channel],
        store: Store,
        *,
        policy: Policy | None = None,
        renderer: Renderer | None = None,
        clock: Clock = utc_now,
        shop: ShopInfo | None = None,
        links: LinkShortener | None = None,
        unsubscribe: Unsubscribe | None = None,
        watermark_overlap: timedelta = timedelta(minutes=10),
        batch_size: int = 250,
        experiments: ExperimentPlan | None = None,
        experiment_key: bytes | None = None,
    ) -> None:
        self.connector = connector
        if isinstance(channels, Mapping):
            self.channels: dict[ChannelKind, Channel] = {}
            for kind, channel in channels.items():
                if channel.kind != kind:
                    raise ConfigError(
                        f"channel {type(channel).__name__} sends {channel.kind!r}, not {kind!r}",
                        key=f"channels.{kind}",
                    )
                self.channels[channel.kind] = channel
        else:
            self.channels = {c.kind: c for c in channels}
        self.store = store
        self.policy = policy or Policy()
        self.renderer = renderer or TemplateRenderer()
        self.clock = clock
        self.shop = shop or ShopInfo(name=connector.name)
        self.links = links
        self.unsubscribe = unsubscribe
        self.watermark_overlap = watermark_overlap
        self._shop_timezone: str | None = self.shop.timezone
        self._purchases: dict[tuple[str, ...], PurchaseCheck] = {}
        self._bulk = False
        self._conversations: ConversationStore | None = None
        self._pauses: dict[str, datetime] = {}
        self._reasons: Mapping[str, str] = {}
        self._deferred: list[tuple[Checkout, Decision, datetime]] = []
        self.batch_size = max(1, batch_size)
        """Checkouts stored and decided together (a page); sends are not batched."""
        self._senders: dict[ChannelKind, _Sender] = {}
        self._connector_lock = _FairLock()
        self._contacted: tuple[dict[str, datetime], dict[str, datetime]] = ({}, {})
        """Contacts handed to a channel in the page before and in this one."""
        self._lookup: PurchaseLookup | None = None
        self.histories: HistoryCache | None = None
        """The customer histories of the current (or last) pass, when a segment needs them."""
        self._progress: Progress | None = None
        self._decided = 0
        self.experiments = experiments if experiments and experiments.active else None
        if self.experiments is not None and not isinstance(store, ExperimentStore):
            raise ConfigError(
                f"{type(store).__name__} cannot record experiment arms",
                key="experiment",
                fix="use the SQLite or PostgreSQL store, or remove [experiment]",
            )
        self._experiment_key = experiment_key
        self._arm_counts: tuple[datetime | None, dict[str, dict[str, ArmCounts]]] = (None, {})
        self._looks: LookAgainStore | None = None
        self._look_config = ""
        self._look_token = ""
        self._look_waits: list[LookAgain] = []
        self._look_sends: tuple[list[LookAgain], list[LookAgain]] = ([], [])
        """Look-again times of the sends handed to a channel in the page before and in this
        one: written a page later, when the worker has most likely claimed the key."""

    # -- the pass -------------------------------------------------------------------------
    def run(
        self,
        *,
        dry_run: bool = False,
        keep_messages: bool = False,
        progress: Progress | None = None,
    ) -> RunReport:
        """One polling pass. With ``dry_run`` messages are rendered and reported, nothing is
        sent, and nothing about sends, checkouts or the watermark is written.

        Each page of checkouts is stored and decided as it arrives, then the open checkouts
        the shop did not return are read back in batches, so memory stays flat however many
        there are. The report keeps the messages only in a dry run or with
        ``keep_messages``. ``progress`` is told how the pass goes (see :data:`Progress`)."""
        now = self.clock()
        report = RunReport(started_at=now, dry_run=dry_run, keep_messages=keep_messages)
        run_id = None if dry_run else self.store.begin_run(now)
        self._purchases = {}
        self._contacted = ({}, {})
        connector = self.connector  # the Protocol check is slow: once a pass, not per send
        self._lookup = connector if isinstance(connector, PurchaseLookup) else None
        self._bulk = isinstance(connector, BulkPurchaseLookup)
        store = self.store  # the Protocol checks are slow: once a pass
        self._conversations = store if isinstance(store, ConversationStore) else None
        self._deferred = []
        self.histories = HistoryCache.for_pass(connector, self.policy)
        start_at = self.store.start_at(now - self.policy.lookback)
        self._resolve_shop_timezone()
        self._looks = store if isinstance(store, LookAgainStore) else None
        self._look_config = self._fingerprint(start_at)
        self._look_token = secrets.token_hex(8)
        self._look_waits, self._look_sends = [], ([], [])
        seen: set[int] = set()
        self._progress, self._decided = progress, 0
        try:
            try:
                self._ingest(report, start_at, now, run_id, seen)
            except ConnectorError as err:
                report.error = mask_text(
                    explain_connector_error(err, shop=self.shop.name, connector=self.connector.name)
                )
                log.error("pass stopped: %s", report.error)
            if report.error is None:
                if not dry_run:
                    self.store.set_watermark(self.connector.name, now)
                self._leftovers(report, start_at, now, run_id, seen)
        except BaseException:
            self._drain(report, cancel=True)
            self._close_channels()
            raise
        self._drain(report)
        self._write_looks(report, *self._look_sends)
        self._close_channels()
        if progress is not None:  # messages still in flight were recorded last
            progress(report, self._decided)
        report.finished_at = self.clock()
        if run_id is not None:
            counts = {**report.counts, RunCount.FETCHED: report.fetched}
            self.store.finish_run(run_id, report.finished_at, counts, report.error)
        return report

    def _fingerprint(self, start_at: datetime) -> str:
        """What a look-again time was decided under besides the store's data: a time set
        under another policy, channels, shop time zone, experiments, start or cartrescue
        is not trusted."""
        inputs = (
            __version__,
            _canonical(self.policy),
            sorted(self.channels),
            self._shop_timezone,
            _canonical(self.experiments),
            start_at.isoformat(),
        )
        text = json.dumps(inputs, sort_keys=True, default=str)
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()

    def _write_looks(self, report: RunReport, *groups: list[LookAgain]) -> None:
        looks = self._looks
        if looks is None or report.dry_run:
            return
        entries = [e for group in groups for e in group]
        if entries:
            looks.set_look_again(entries, self._look_config, self._look_token)

    def _resolve_shop_timezone(self) -> None:
        if self._shop_timezone is None and isinstance(self.connector, ShopTimezone):
            try:
                self._shop_timezone = self.connector.shop_timezone()
            except ConnectorError as err:
                why = explain_connector_error(
                    err, shop=self.shop.name, connector=self.connector.name
                )
                log.warning("shop time zone unknown, using UTC: %s", mask_text(why))

    def _ingest(
        self,
        report: RunReport,
        start_at: datetime,
        now: datetime,
        run_id: int | None,
        seen: set[int],
    ) -> None:
        """Fetch, and store and decide each page as it arrives; ``seen`` gets the (hashed)
        ids decided, so the leftovers read from the store afterwards skip them."""
        watermark = self.store.watermark(self.connector.name) or start_at
        since = watermark - self.watermark_overlap
        page: dict[str, Checkout] = {}
        items = self._items(since)
        try:
            for item in items:
                report.fetched += 1
                if self._progress is not None:
                    self._progress(report, self._decided)
                if isinstance(item, BadCheckout):
                    self._bad_payload(report, item.id, item.reason, now)
                    continue
                page[item.id] = item
                if len(page) >= self.batch_size:
                    self._fetched_page(list(page.values()), report, start_at, now, run_id, seen)
                    page = {}
        finally:
            items.close()  # a read-ahead thread stops now, not when the traceback goes
        if page:
            self._fetched_page(list(page.values()), report, start_at, now, run_id, seen)

    def _fetched_page(
        self,
        page: list[Checkout],
        report: RunReport,
        start_at: datetime,
        now: datetime,
        run_id: int | None,
        seen: set[int],
    ) -> None:
        horizon = now - self.policy.horizon
        page = [c for c in page if hash(c.id) not in seen]  # a shop may repeat one
        if report.dry_run:
            todo = [c for c in page if c.abandoned_at >= horizon]
        else:
            statuses = self._store_page(page, report, now)
            todo = []
            for item in page:
                status = statuses.get(item.id)
                if item.completed_at is not None and status == "done":
                    try:
                        self._stop(
                            item,
                            Decision(Action.STOP, "completed", status="converted"),
                            report,
                            now,
                        )
                    except StoreError:
                        raise
                    except Exception as err:  # this one checkout cannot be stored
                        log.debug("checkout=%s cannot be stored", item.id, exc_info=True)
                        self._bad_payload(
                            report, item.id, f"cannot be stored: {_describe(err)}", now
                        )
                elif status == "open" and item.abandoned_at >= horizon:
                    todo.append(item)
        seen.update(hash(c.id) for c in todo)
        self._decide_page(todo, report, start_at, run_id)

    def _store_page(self, page: list[Checkout], report: RunReport, now: datetime) -> dict[str, str]:
        """Upsert a page at once; when that fails for a reason other than a broken store,
        one at a time, so only the checkouts that cannot be stored are bad payloads."""
        try:
            return self.store.upsert_checkouts(page, now)
        except StoreError:
            raise
        except Exception:
            log.debug("a page of checkouts cannot be stored at once", exc_info=True)
        statuses: dict[str, str] = {}
        for item in page:
            try:
                self.store.upsert_checkout(item, now)
                status = self.store.checkout_status(item.id)
            except StoreError:
                raise
            except Exception as err:  # this one checkout cannot be stored: the pass goes on
                log.debug("checkout=%s cannot be stored", _printable(item.id), exc_info=True)
                self._bad_payload(report, item.id, f"cannot be stored: {_describe(err)}", now)
                continue
            if status is not None:
                statuses[item.id] = status
        return statuses

    def _leftovers(
        self,
        report: RunReport,
        start_at: datetime,
        now: datetime,
        run_id: int | None,
        seen: set[int],
    ) -> None:
        """Decide the open checkouts the shop did not return this pass, a batch at a time;
        one whose look-again time has not come is counted as it was last decided."""
        page: list[Checkout] = []
        looks = self._looks
        items: Iterable[Checkout | Unchanged] = (
            looks.checkouts_to_decide(
                now - self.policy.horizon, self.clock(), self._look_config, self._look_token
            )
            if looks is not None
            else self.store.active_checkouts(now - self.policy.horizon)
        )
        for item in items:
            if hash(item.id) in seen:
                continue
            if isinstance(item, Unchanged):
                report.counts[item.count] += 1
                self._decided += 1
                if self._progress is not None:
                    self._progress(report, self._decided)
                continue
            page.append(item)
            if len(page) >= self.batch_size:
                self._decide_page(page, report, start_at, run_id)
                page = []
        self._decide_page(page, report, start_at, run_id)

    def _decide_page(
        self, page: list[Checkout], report: RunReport, start_at: datetime, run_id: int | None
    ) -> None:
        if not page:
            return
        self._purchases = {}
        self._contacted = (self._contacted[1], {})
        if self.histories is not None:  # one lookup a page, for the people not seen yet
            with self._connector_lock:
                page = self.histories.attach(page, self.clock())
        if self._looks is not None and not report.dry_run:  # before the histories are read
            self._looks.arm_look_again([c.id for c in page], self._look_token)
        histories = self.store.histories(
            [c.id for c in page], [k for c in page for k in contact_keys(c.customer)]
        )
        conversations = self._conversations
        ids = [c.id for c in page]
        self._pauses = conversations.pauses(ids) if conversations else {}
        self._reasons = conversations.reasons(ids) if conversations else {}
        for checkout in page:
            self._process(checkout, start_at, report, run_id, histories)
            self._decided += 1
            if self._progress is not None:
                self._progress(report, self._decided)
        self._send_deferred(report, run_id)
        earlier, current = self._look_sends
        self._write_looks(report, self._look_waits, earlier)
        self._look_waits, self._look_sends = [], (current, [])

    def _send_deferred(self, report: RunReport, run_id: int | None) -> None:
        """The page's sends, after one bulk purchase check for all of them (a connector
        with ``find_purchases`` answers a page in a request or two instead of one each)."""
        deferred, self._deferred = self._deferred, []
        if not deferred:
            return
        with self._connector_lock:  # a read-ahead thread may be fetching the next page
            answers = find_purchases(self.connector, [c for c, _, _ in deferred])
        for checkout, _, _ in deferred:
            self._purchases[(checkout.id, *contact_keys(checkout.customer))] = answers.get(
                checkout.id
            )
        for checkout, decision, now in deferred:
            try:
                self._send(checkout, decision, report, run_id, now, deferred=False)
            except StoreError:
                raise
            except CartRescueError as err:
                self._fail(report, checkout.id, str(err))
            except Exception as err:  # one bad checkout must not end the pass
                log.exception("checkout=%s unexpected error", _printable(checkout.id))
                self._fail(report, checkout.id, f"unexpected {_describe(err)}")

    def _items(self, since: datetime) -> Generator[Checkout | BadCheckout, None, None]:
        """The connector's items; an error it raises for one item becomes a bad payload (a
        generator that raised has ended, so the items after it wait for a later pass)."""
        items: Iterator[Checkout | BadCheckout] = iter(self.connector.abandoned_checkouts(since))
        if getattr(self.connector, "read_ahead", False) is True:
            items = _ReadAhead(items, self._connector_lock, self.batch_size)
        try:
            yield from self._read(items)
        finally:
            if isinstance(items, _ReadAhead):
                items.close()

    def _read(self, items: Iterator[Checkout | BadCheckout]) -> Iterator[Checkout | BadCheckout]:
        errors = 0
        position = 0
        while True:
            position += 1
            try:
                item = next(items)
            except StopIteration:
                return
            except (ConnectorError, StoreError):
                raise
            except Exception as err:
                errors += 1
                if errors >= _MAX_CONNECTOR_ERRORS:
                    raise ConnectorError(
                        f"{self.connector.name}: {errors} items in a row could not be read",
                        connector=self.connector.name,
                    ) from err
                if isinstance(err, BadPayloadError):
                    yield BadCheckout(id=err.item or f"#{position}", reason=err.detail)
                else:
                    log.warning(
                        "%s connector raised for item #%d",
                        self.connector.name,
                        position,
                        exc_info=True,
                    )
                    yield BadCheckout(
                        id=f"#{position}", reason=f"connector raised {_describe(err)}"
                    )
                continue
            errors = 0
            yield item

    def _bad_payload(
        self, report: RunReport, checkout_id: object, reason: str, now: datetime
    ) -> None:
        item, why = _printable(checkout_id), _printable(mask_text(reason))
        report.counts[RunCount.BAD_PAYLOAD] += 1
        report.failures.append((item, why))
        log.warning("checkout=%s action=skip reason=%r", item, why)
        if not report.dry_run:
            self.store.record_bad_checkout(item, why, now)

    # -- one checkout ---------------------------------------------------------------------
    def _history(
        self, checkout: Checkout, start_at: datetime, skipped: set[int], known: Histories
    ) -> History:
        contacts = [c.lower() for c in contact_keys(checkout.customer)]
        # A contact this pass just handed to a channel counts as contacted now, even if
        # the worker has not claimed the key yet (the claim checks the cap again).
        contacted = [known.last_contacted.get(c) for c in contacts]
        contacted += [recent.get(c) for recent in self._contacted for c in contacts]
        discounts = [known.last_discount.get(c) for c in contacts]
        return History(
            start_at=start_at,
            records=tuple(StepRecord(*entry) for entry in known.steps.get(checkout.id, ())),
            skipped_steps=known.skipped.get(checkout.id, frozenset()) | skipped,
            last_contacted=max((at for at in contacted if at is not None), default=None),
            last_discount=max((at for at in discounts if at is not None), default=None),
            opted_out=frozenset().union(*(known.optouts.get(c, ()) for c in contacts)),
            paused_until=self._pauses.get(checkout.id),
            reason=self._reasons.get(checkout.id),
        )

    def _process(
        self,
        checkout: Checkout,
        start_at: datetime,
        report: RunReport,
        run_id: int | None,
        known: Histories,
    ) -> None:
        try:
            self._decide_and_act(checkout, start_at, report, run_id, known)
        except StoreError:
            raise  # the store itself is broken: nothing more can be recorded
        except CartRescueError as err:
            self._fail(report, checkout.id, str(err))
        except Exception as err:  # one bad checkout must not end the pass
            log.exception("checkout=%s unexpected error", _printable(checkout.id))
            self._fail(report, checkout.id, f"unexpected {_describe(err)}")

    def _fail(self, report: RunReport, checkout_id: str, reason: str) -> None:
        item, why = _printable(checkout_id), _printable(mask_text(reason))
        report.counts[RunCount.FAILED] += 1
        report.failures.append((item, why))
        if not report.dry_run:
            self.store.record_event("failed", self.clock(), checkout_id=item, detail=why)

    def _decide_and_act(
        self,
        checkout: Checkout,
        start_at: datetime,
        report: RunReport,
        run_id: int | None,
        known: Histories,
    ) -> None:
        dry = report.dry_run
        contact = _Masked(next(iter(contact_keys(checkout.customer)), None))
        skipped: set[int] = set()
        for _ in range(self.policy.max_steps + 1):
            now = self.clock()
            decision = decide(
                checkout,
                self._history(checkout, start_at, skipped, known),
                self.policy,
                list(self.channels),
                now,
                shop_timezone=self._shop_timezone,
            )
            log.info(
                "checkout=%s contact=%s action=%s step=%s channel=%s reason=%r",
                checkout.id,
                contact,
                decision.action,
                decision.step,
                decision.channel,
                decision.reason,
            )
            if decision.action == Action.SKIP:
                assert decision.step is not None
                for step in (*decision.superseded, decision.step):
                    why = decision.reason if step == decision.step else "superseded"
                    skipped.add(step)
                    report.counts[RunCount.step_skipped(why)] += 1
                    if not dry:
                        self.store.skip_step(checkout.id, step, why, now)
                continue
            if decision.action == Action.STOP:
                self._stop(checkout, decision, report, now)
            elif decision.action == Action.WAIT:
                count = (
                    RunCount.WAITING
                    if decision.reason == "not due"
                    else RunCount.held(decision.reason)
                )
                report.counts[count] += 1
                if not dry:
                    self._look_at_wait(checkout, decision, count, known, now)
            else:
                for step in decision.superseded:
                    report.counts[RunCount.SUPERSEDED] += 1
                    if not dry:
                        self.store.skip_step(checkout.id, step, "superseded", now)
                self._send(checkout, decision, report, run_id, now)
            return

    def _look_at_wait(
        self, checkout: Checkout, decision: Decision, count: str, known: Histories, now: datetime
    ) -> None:
        at = look_again(decision, checkout, self.policy, now)
        if at is None or self._looks is None:
            return
        if decision.reason == "frequency cap":
            # The cap must come from the store: a contact this pass handed to a channel a
            # moment ago may still fail to be claimed, and then nothing would drop the time.
            stored = [known.last_contacted.get(c.lower()) for c in contact_keys(checkout.customer)]
            last = max((t for t in stored if t is not None), default=None)
            if last is None or last + self.policy.frequency_cap != decision.until:
                return
        self._look_waits.append(LookAgain(checkout.id, at, count))

    def _stop(
        self, checkout: Checkout, decision: Decision, report: RunReport, now: datetime
    ) -> None:
        status = decision.status or "stopped"
        report.counts[RunCount.CONVERTED if status == "converted" else decision.reason] += 1
        if report.dry_run:
            return
        if status == "converted":
            self.store.record_conversion(
                checkout.id,
                "converted",
                Purchase(
                    order_id=checkout.id,
                    placed_at=checkout.completed_at or now,
                    total=checkout.total,
                    currency=checkout.currency,
                    same_checkout=True,
                ),
                now,
                now - self.policy.attribution_window,
            )
        self.store.close_checkout(checkout.id, status, decision.reason, now)

    def _purchase(self, checkout: Checkout) -> Purchase | None:
        lookup = self._lookup
        if lookup is None:
            return None
        cache_key = (checkout.id, *contact_keys(checkout.customer))
        if cache_key not in self._purchases:
            with self._connector_lock:
                self._purchases[cache_key] = lookup.find_purchase(checkout)
        found = self._purchases[cache_key]
        if isinstance(found, ConnectorError):  # the bulk check failed for this one
            raise found
        return found

    def _send(
        self,
        checkout: Checkout,
        decision: Decision,
        report: RunReport,
        run_id: int | None,
        now: datetime,
        *,
        deferred: bool = True,
    ) -> None:
        assert decision.step is not None
        assert decision.channel is not None
        assert decision.recipient is not None
        if deferred and self._bulk:  # checked for the whole page at once, then sent
            self._deferred.append((checkout, decision, now))
            return
        try:
            purchase = self._purchase(checkout)
        except ConnectorError as err:
            report.counts[RunCount.PURCHASE_CHECK_FAILED] += 1
            log.warning("checkout=%s held: purchase check failed: %s", checkout.id, err)
            return
        if purchase is not None:
            kind_of: ConversionKind = (
                "converted" if purchase.same_checkout else "converted_elsewhere"
            )
            report.counts[
                RunCount.CONVERTED if purchase.same_checkout else RunCount.CONVERTED_ELSEWHERE
            ] += 1
            if not report.dry_run:
                self.store.record_conversion(
                    checkout.id, kind_of, purchase, now, now - self.policy.attribution_window
                )
                self.store.close_checkout(checkout.id, kind_of, f"order {purchase.order_id}", now)
            return

        if self.experiments is not None:
            decision = self._experiment(checkout, decision, report, now)
            if decision.action != Action.SEND:
                return
        assert decision.step is not None
        assert decision.channel is not None
        kind = decision.channel
        key = OutboxKey(checkout.id, decision.step, kind).format()
        if report.dry_run:
            try:
                message = self._compose(checkout, decision, key, True, now)
            except StoreError:
                raise
            except Exception as err:
                self._not_rendered(report, checkout, decision, key, err, now)
                return
            report.counts[RunCount.WOULD_SEND] += 1
            report.messages.append(message)
            return
        self._sender(kind, report).submit(lambda: self._job(checkout, decision, key, now, run_id))
        if self._looks is not None:
            at = look_again(decision, checkout, self.policy, now)
            if at is not None:
                self._look_sends[1].append(LookAgain(checkout.id, at, RunCount.WAITING, key))
        for contact in contact_keys(checkout.customer):
            self._contacted[1][contact.lower()] = now

    def _experiment(
        self, checkout: Checkout, decision: Decision, report: RunReport, now: datetime
    ) -> Decision:
        """Put the person in the holdout or an experiment's arm (recorded once per
        checkout) and apply the arm to ``decision``; a held-out step is skipped with the
        reason ``holdout`` (the checkout is still watched), a delayed arm waits."""
        assert self.experiments is not None
        assert decision.step is not None
        plan, step = self.experiments, decision.step
        store = self.store
        assert isinstance(store, ExperimentStore)  # checked when the Recovery was built
        if self._experiment_key is None:
            self._experiment_key = store.assignment_key()
        recorded = store.assignments(checkout.id)
        if self._arm_counts[0] != report.started_at:  # adaptive counts: read once a pass
            self._arm_counts = (report.started_at, {})
        counts = self._arm_counts[1]
        for e in plan.experiments:
            if e.allocation == "adaptive" and e.name not in counts and e.running(now):
                found_counts = store.arm_counts(e.name).items()
                counts[e.name] = {a: ArmCounts(*n) for a, n in found_counts}
        contacts = contact_keys(checkout.customer)
        found = assign(
            plan, self._experiment_key, self.shop.name, contacts, step, now,
            recorded=recorded, counts=counts,
        )  # fmt: skip
        new = [(e, a, _step_of(plan, e)) for e, a in found.arms.items() if e not in recorded]
        if new and not report.dry_run:
            store.record_assignments(checkout.id, new, now)
        if found.held_out:
            report.counts[RunCount.step_skipped("holdout")] += 1
            if not report.dry_run:
                self.store.skip_step(checkout.id, step, "holdout", now)
            return replace(decision, action=Action.SKIP, reason="holdout")
        arm = found.arm
        if arm is None:
            return decision
        if arm.delay is not None and now < checkout.abandoned_at + arm.delay:
            report.counts[RunCount.held(f"experiment {found.experiment}")] += 1
            return replace(decision, action=Action.WAIT, reason="experiment delay")
        customer, opted_out = checkout.customer, self.store.optouts_for(contacts)
        allowed = [
            k
            for k in self.channels
            if customer is not None
            and _consents(customer, k, self.policy)
            and not opted_out & {k, "*"}
        ]
        channel, discount = with_arm(arm, decision.channel, decision.discount, allowed)
        recipient = decision.recipient
        if channel != decision.channel and customer is not None:
            recipient = customer.email if channel == "email" else customer.phone
        if not recipient:
            return decision
        return replace(
            decision,
            channel=channel,
            discount=discount,
            recipient=recipient,
            template_variant=arm.template,
        )

    def _job(
        self, checkout: Checkout, decision: Decision, key: str, now: datetime, run_id: int | None
    ) -> RunReport:
        tally = RunReport(started_at=now)
        try:
            self._deliver(checkout, decision, key, now, run_id, tally)
        except StoreError:
            raise
        except Exception as err:  # one message must not end the pass
            log.exception("checkout=%s key=%s unexpected error", _printable(checkout.id), key)
            self._fail(tally, checkout.id, f"unexpected {_describe(err)}")
        return tally

    def _deliver(
        self,
        checkout: Checkout,
        decision: Decision,
        key: str,
        now: datetime,
        run_id: int | None,
        report: RunReport,
    ) -> None:
        """In a channel's worker: claim ``key``, build the message, send it and record the
        result at once. Counts go to ``report``, this job's own tally."""
        assert decision.step is not None
        assert decision.channel is not None
        assert decision.recipient is not None
        if not self.store.claim(
            key,
            checkout_id=checkout.id,
            step=decision.step,
            channel=decision.channel,
            recipient=decision.recipient,
            contacts=contact_keys(checkout.customer),
            at=now,
            cap_since=now - self.policy.frequency_cap,
            run_id=run_id,
        ):
            report.counts[RunCount.NOT_CLAIMED] += 1
            return
        try:
            message = self._compose(checkout, decision, key, False, now)
        except StoreError:
            raise
        except Exception as err:  # nothing left this machine: release the key
            self._not_rendered(report, checkout, decision, key, err, now)
            return
        result: Receipt | Exception
        try:
            result = self.channels[message.channel].send(message)
        except Exception as err:  # recorded below, per class
            result = err
        self._record(message, result, report)

    def _not_rendered(
        self,
        report: RunReport,
        checkout: Checkout,
        decision: Decision,
        key: str,
        err: Exception,
        now: datetime,
    ) -> None:
        """The message could not be built, so nothing was sent: the key is released (the
        step stays due and is tried again next pass, until it is overdue)."""
        known = isinstance(err, CartRescueError)
        reason = _printable(mask_text(str(err) if known else _describe(err)))
        report.counts[RunCount.NOT_RENDERED] += 1
        report.failures.append((_printable(checkout.id), reason))
        if not known:
            log.error("key=%s building the message raised", key, exc_info=err)
        log.warning("checkout=%s key=%s not rendered: %s", checkout.id, key, reason)
        if report.dry_run:
            return
        self.store.finish(key, "not_rendered", self.clock(), error=reason)
        self.store.record_event(
            "render_failed",
            now,
            checkout_id=checkout.id,
            step=decision.step,
            channel=decision.channel,
            detail=reason,
        )

    def _compose(
        self, checkout: Checkout, decision: Decision, key: str, dry_run: bool, now: datetime
    ) -> Message:
        assert decision.step is not None
        assert decision.channel is not None
        assert decision.recipient is not None
        step, kind = decision.step, decision.channel
        discount: Discount | None = None
        if decision.discount is not None and isinstance(self.connector, DiscountCapable):
            if dry_run:
                discount = Discount.of(
                    decision.discount,
                    "PREVIEW",
                    now + timedelta(seconds=decision.discount.valid_for_seconds),
                )
            else:
                try:
                    with self._connector_lock:  # never two calls at once (see _ReadAhead)
                        discount = self.connector.create_discount(checkout, decision.discount)
                except ConnectorError as err:
                    log.warning("checkout=%s no discount code: %s", checkout.id, err)
                    self.store.record_event(
                        "discount_failed",
                        now,
                        checkout_id=checkout.id,
                        step=step,
                        detail=mask_text(str(err)),
                    )
                else:
                    self.store.record_discount(
                        checkout.id, contact_keys(checkout.customer), discount.code, now
                    )
        link = discount.url if discount and discount.url else checkout.recovery_url
        if self.links is not None:
            if not dry_run:
                link = self.links.shorten(link, checkout_id=checkout.id, step=step, channel=kind)
            elif callable(example := getattr(self.links, "example", None)):
                link = str(example())  # as long as a real short link, and nothing stored
        customer = checkout.customer
        locale = (customer.locale if customer else None) or self.shop.locale
        unsubscribe_url = (
            self.unsubscribe(decision.recipient, kind, locale)
            if self.unsubscribe is not None
            else None
        )
        content = self.renderer.render(
            kind,
            step,
            MessageContext(
                # a reminder never shows what cannot be bought (SKIP_CART never gets here
                # with a sold-out item: decide() stopped the cart)
                checkout=buyable(checkout)
                if self.policy.sold_out_items == SoldOutItems.DROP
                else checkout,
                shop=self.shop,
                locale=locale,
                link=link,
                discount=discount,
                unsubscribe_url=unsubscribe_url,
                template_variant=decision.template_variant,
            ),
        )
        return Message(
            key=key,
            channel=kind,
            to=decision.recipient,
            checkout_id=checkout.id,
            step=step,
            locale=locale,
            content=content,
            unsubscribe_url=unsubscribe_url,
        )

    def _sender(self, kind: ChannelKind, report: RunReport) -> _Sender:
        sender = self._senders.get(kind)
        if sender is None:
            tally = RunReport(started_at=report.started_at, keep_messages=report.keep_messages)
            sender = _Sender(kind, _concurrency(self.channels[kind]), tally)
            self._senders[kind] = sender
        return sender

    def _drain(self, report: RunReport, *, cancel: bool = False) -> None:
        """Wait for every channel's sends of this pass (``cancel``: drop the ones not yet
        started) and add up what they did; a broken store seen by a worker is raised here."""
        senders, self._senders = self._senders, {}
        fatal: BaseException | None = None
        for sender in senders.values():
            try:
                sender.finish(report, cancel=cancel)
            except BaseException as err:  # finish the other channels' sends first
                fatal = fatal or err
        if fatal is not None and not cancel:
            raise fatal

    def _close_channels(self) -> None:
        for channel in self.channels.values():
            try:
                channel.close()
            except Exception as err:  # a channel failing to close must not lose the report
                log.warning("closing %s channel failed: %s", channel.kind, err)

    def _record(self, message: Message, result: Receipt | Exception, report: RunReport) -> None:
        who = _Masked(message.to)
        now = self.clock()
        if isinstance(result, Receipt):
            self.store.finish(message.key, "sent", now, provider_id=result.provider_id)
            report.counts[RunCount.SENT] += 1
            report.messages.append(message)
            log.info("key=%s to=%s sent via %s", message.key, who, result.provider)
            return
        reason = mask_text(str(result))
        if isinstance(result, PermanentSendError):
            self.store.finish(message.key, "failed", now, error=reason)
            report.counts[RunCount.REJECTED] += 1
            report.failures.append((message.checkout_id, reason))
            if result.opted_out:
                self.store.add_optout(
                    message.to.lower(), message.channel, result.provider or "provider", now
                )
            if result.skip_step:
                self.store.skip_step(message.checkout_id, message.step, reason, now)
            log.warning("key=%s to=%s failed permanently: %s", message.key, who, reason)
        elif isinstance(result, TransientSendError):
            self.store.finish(message.key, "retry", now, error=reason)
            report.counts[RunCount.WILL_RETRY] += 1
            log.warning("key=%s to=%s failed, will retry next pass: %s", message.key, who, reason)
        else:
            # SendOutcomeUnknown, or a channel bug that may strike after sending: never resend.
            if not isinstance(result, SendOutcomeUnknown):
                reason = f"unexpected {type(result).__name__}: {reason}"
                report.failures.append((message.checkout_id, reason))
                log.error("key=%s to=%s channel raised %s", message.key, who, reason)
            self.store.finish(message.key, "unknown", now, error=reason)
            report.counts[RunCount.UNKNOWN_OUTCOME] += 1
            log.warning("key=%s to=%s outcome unknown, not resent: %s", message.key, who, reason)


class _Sender:
    """One channel's worker threads for one pass, fed as each message is decided. At most
    ``queue`` jobs wait or run at once, so the pass never runs far ahead of the sends; a
    job claims its key only when a worker runs it, so the queue does not widen the window
    in which a killed process leaves keys unknown. Each job's counts are added up as it
    ends: nothing is kept per job."""

    def __init__(self, kind: ChannelKind, workers: int, tally: RunReport) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"cartrescue-{kind}")
        self._room = max(_QUEUE_PER_WORKER * workers, _QUEUE_MIN)
        self._refill = (self._room + workers) // 2
        self._pending = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._tally = tally
        self._failed: BaseException | None = None

    def submit(self, job: Callable[[], RunReport]) -> None:
        with self._changed:
            if self._pending >= self._room:
                # Wait until the queue is down to ``_refill``, then fill it again in one go:
                # a pass woken for every freed place would take the GIL from the workers
                # between each of their store calls.
                self._changed.wait_for(
                    lambda: self._pending <= self._refill or self._failed is not None
                )
            if self._failed is not None:
                raise self._failed
            self._pending += 1
        self._pool.submit(job).add_done_callback(self._done)

    def _done(self, future: Future[RunReport]) -> None:
        with self._changed:
            self._pending -= 1
            if not future.cancelled():
                error = future.exception()
                if error is not None:
                    self._failed = self._failed or error
                else:
                    self._tally._merge(future.result())
            if self._pending <= self._refill or self._failed is not None:
                self._changed.notify()

    def finish(self, report: RunReport, *, cancel: bool = False) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel or self._failed is not None)
        report._merge(self._tally)
        if self._failed is not None:
            raise self._failed


class _FairLock:
    """A lock taken in the order it was asked for. A read-ahead thread takes the connector's
    lock for every item; with a plain lock it would take it again before a thread woken to
    wait for it ran, and the pass's own connector calls would wait for pages on end."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiting: deque[threading.Lock] = deque()

    def __enter__(self) -> None:
        with self._mutex:
            if not self._held:
                self._held = True
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        turn.acquire()  # released by the holder before us, which hands the lock over

    def __exit__(self, *exc: object) -> None:
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._held = False


_END = object()
"""What a :class:`_ReadAhead` hands over when the connector's iterator has ended."""


class _ReadAhead:
    """A connector's checkouts, fetched in a thread of their own a page ahead of the pass.

    For a connector with ``read_ahead = True``: while the pass stores, decides and sends
    one page, the next is on its way. Each ``next()`` on the connector's iterator is made
    holding ``lock``, which every other call of the pass to the connector holds too, so the
    connector is never called from two threads at once. What the iterator raised is
    raised again here, in order; at most two chunks of ``chunk`` items wait, so memory
    stays flat. :meth:`close` stops the thread, which closes the iterator itself."""

    def __init__(
        self, items: Iterator[Checkout | BadCheckout], lock: _FairLock, chunk: int
    ) -> None:
        self._items = items
        self._lock = lock
        self._chunk = max(1, chunk)
        self._handed: queue.Queue[list[object]] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._current: list[object] = []
        self._position = 0
        self._ended = False
        self._thread = threading.Thread(
            target=self._fetch, name="cartrescue-read-ahead", daemon=True
        )
        self._thread.start()

    def __iter__(self) -> _ReadAhead:
        return self

    def __next__(self) -> Checkout | BadCheckout:
        if self._position >= len(self._current):
            if self._ended:
                raise StopIteration
            self._current, self._position = self._handed.get(), 0
        outcome = self._current[self._position]
        self._position += 1
        if outcome is _END:
            self._ended = True
            raise StopIteration
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[return-value]

    def _fetch(self) -> None:
        chunk: list[object] = []
        try:
            while not self._stop.is_set():
                try:
                    with self._lock:
                        chunk.append(next(self._items))
                except StopIteration:
                    chunk.append(_END)
                    return
                except BaseException as err:  # raised again in the pass's thread
                    chunk.append(err)
                    if isinstance(err, ConnectorError | StoreError) or not isinstance(
                        err, Exception
                    ):
                        return
                if len(chunk) >= self._chunk:
                    self._hand(chunk)
                    chunk = []
        finally:
            if chunk:
                self._hand(chunk)
            close = getattr(self._items, "close", None)
            if callable(close):
                with self._lock, contextlib.suppress(Exception):
                    close()

    def _hand(self, chunk: list[object]) -> None:
        while not self._stop.is_set():
            try:
                self._handed.put(chunk, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Stop fetching (a request under way ends first, in the background)."""
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            self._handed.get_nowait()


class _Masked:
    """A contact masked only if the log line that shows it is written."""

    __slots__ = ("value",)

    def __init__(self, value: str | None) -> None:
        self.value = value

    def __str__(self) -> str:
        return mask_contact(self.value)


def _canonical(value: object) -> object:
    """``value`` as plain data whose JSON is the same in every process (a set's order is
    not); an object with no such form gives its ``repr``, which at worst differs between
    processes and so only costs look-again times."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)} | {
            "": type(value).__qualname__
        }
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(json.dumps(_canonical(v), sort_keys=True, default=str) for v in value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return f"{type(value).__qualname__}:{value!r}"


def _step_of(plan: ExperimentPlan, name: str) -> int | None:
    return next((e.step for e in plan.experiments if e.name == name), None)


def _concurrency(channel: Channel) -> int:
    value = getattr(channel, "concurrency", 1)
    return value if isinstance(value, int) and value >= 1 else 1


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _printable(value: object) -> str:
    """``value`` as text that can be stored and logged (a lone surrogate is escaped)."""
    text = value if isinstance(value, str) else str(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
