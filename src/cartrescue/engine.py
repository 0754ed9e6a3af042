"""The recovery engine: one polling pass is fetch → decide → render → claim → send → record."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from .channels.base import Channel
from .clock import Clock, utc_now
from .connectors.base import Connector, DiscountCapable, PurchaseLookup, ShopTimezone
from .errors import (
    CartRescueError,
    ConfigError,
    ConnectorError,
    PermanentSendError,
    SendOutcomeUnknown,
    TransientSendError,
    explain_connector_error,
)
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
from .policy import Action, Decision, History, Policy, StepRecord, contact_keys, decide
from .render import MessageContext, Renderer, TemplateRenderer
from .store.base import ConversionKind, Store

__all__ = ["Progress", "Recovery", "RunCount", "RunReport"]

log = logging.getLogger("cartrescue.engine")

Unsubscribe = Callable[[str, ChannelKind], str]
"""Given a recipient and a channel, the one-click unsubscribe URL to put in the message."""
Progress = Callable[["RunReport", int], None]
"""Called as a pass goes, after each checkout fetched and each decided: the report so far
(``fetched``, ``counts``) and how many checkouts were decided. It must be cheap."""


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


@dataclass
class RunReport:
    """What one pass did. ``counts`` maps an outcome (a :class:`RunCount`, or a policy's
    reason) to how many checkouts had it; ``messages`` are the messages sent (or, in a dry run, that
    would have been sent); ``failures`` lists (checkout id, reason) for checkouts that went
    wrong; ``error`` is set when the pass itself could not complete."""

    started_at: datetime
    dry_run: bool = False
    finished_at: datetime | None = None
    fetched: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    messages: list[Message] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

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
        batch_size: int = 20,
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
        self._purchases: dict[tuple[str, ...], Purchase | None] = {}
        self.batch_size = max(1, batch_size)
        self._pending: dict[ChannelKind, list[Message]] = {}
        self._progress: Progress | None = None

    # -- the pass -------------------------------------------------------------------------
    def run(self, *, dry_run: bool = False, progress: Progress | None = None) -> RunReport:
        """One polling pass. With ``dry_run`` messages are rendered and reported, nothing is
        sent, and nothing about sends, checkouts or the watermark is written. ``progress``
        is told how the pass goes (see :data:`Progress`)."""
        self._progress = progress
        now = self.clock()
        report = RunReport(started_at=now, dry_run=dry_run)
        run_id = None if dry_run else self.store.begin_run(now)
        self._purchases = {}
        start_at = self.store.start_at(now - self.policy.lookback)
        self._resolve_shop_timezone()
        fetched: dict[str, Checkout] = {}
        decided = 0
        try:
            self._ingest(report, start_at, now, fetched if dry_run else None)
        except ConnectorError as err:
            report.error = mask_text(
                explain_connector_error(err, shop=self.shop.name, connector=self.connector.name)
            )
            log.error("pass stopped: %s", report.error)
        if report.error is None:
            if not dry_run:
                self.store.set_watermark(self.connector.name, now)
            checkouts: dict[str, Checkout] = {
                c.id: c for c in self.store.active_checkouts(now - self.policy.horizon)
            }
            checkouts.update(fetched)
            for decided, checkout in enumerate(checkouts.values(), start=1):
                self._process(checkout, start_at, report, run_id)
                if progress is not None:
                    progress(report, decided)
        for kind in list(self._pending):
            self._flush(kind, report)
        if progress is not None:  # batches flushed last: the final figures
            progress(report, decided)
        for channel in self.channels.values():
            try:
                channel.close()
            except Exception as err:  # a channel failing to close must not lose the report
                log.warning("closing %s channel failed: %s", channel.kind, err)
        report.finished_at = self.clock()
        if run_id is not None:
            counts = {**report.counts, RunCount.FETCHED: report.fetched}
            self.store.finish_run(run_id, report.finished_at, counts, report.error)
        return report

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
        keep: dict[str, Checkout] | None,
    ) -> None:
        watermark = self.store.watermark(self.connector.name) or start_at
        since = watermark - self.watermark_overlap
        for item in self.connector.abandoned_checkouts(since):
            report.fetched += 1
            if self._progress is not None:
                self._progress(report, 0)
            if isinstance(item, BadCheckout):
                reason = mask_text(item.reason)
                report.counts[RunCount.BAD_PAYLOAD] += 1
                report.failures.append((item.id, reason))
                log.warning("checkout=%s action=skip reason=%r", item.id, reason)
                if keep is None:
                    self.store.record_bad_checkout(item.id, reason, now)
                continue
            if keep is None:
                self.store.upsert_checkout(item, now)
                if item.completed_at is not None and self.store.checkout_status(item.id) == "done":
                    self._stop(
                        item, Decision(Action.STOP, "completed", status="converted"), report, now
                    )
            elif item.abandoned_at >= now - self.policy.horizon:
                keep[item.id] = item

    # -- one checkout ---------------------------------------------------------------------
    def _history(self, checkout: Checkout, start_at: datetime, skipped: set[int]) -> History:
        contacts = contact_keys(checkout.customer)
        return History(
            start_at=start_at,
            records=tuple(
                StepRecord(e.step, e.channel, e.status) for e in self.store.outbox_for(checkout.id)
            ),
            skipped_steps=frozenset(self.store.skipped_steps(checkout.id) | skipped),
            last_contacted=self.store.last_contacted(contacts),
            last_discount=self.store.last_discount(contacts),
            opted_out=frozenset(self.store.optouts_for(contacts)),
        )

    def _process(
        self, checkout: Checkout, start_at: datetime, report: RunReport, run_id: int | None
    ) -> None:
        try:
            self._decide_and_act(checkout, start_at, report, run_id)
        except CartRescueError as err:
            self._fail(report, checkout.id, mask_text(str(err)))
        except Exception as err:  # one bad checkout must not end the pass
            log.exception("checkout=%s unexpected error", checkout.id)
            self._fail(report, checkout.id, f"unexpected {type(err).__name__}: {err}")

    def _fail(self, report: RunReport, checkout_id: str, reason: str) -> None:
        report.counts[RunCount.FAILED] += 1
        report.failures.append((checkout_id, reason))
        if not report.dry_run:
            self.store.record_event("failed", self.clock(), checkout_id=checkout_id, detail=reason)

    def _decide_and_act(
        self, checkout: Checkout, start_at: datetime, report: RunReport, run_id: int | None
    ) -> None:
        dry = report.dry_run
        contact = mask_contact(next(iter(contact_keys(checkout.customer)), None))
        skipped: set[int] = set()
        for _ in range(len(self.policy.steps) + 1):
            now = self.clock()
            decision = decide(
                checkout,
                self._history(checkout, start_at, skipped),
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
                if decision.reason != "not due":
                    report.counts[RunCount.held(decision.reason)] += 1
                else:
                    report.counts[RunCount.WAITING] += 1
            else:
                for step in decision.superseded:
                    report.counts[RunCount.SUPERSEDED] += 1
                    if not dry:
                        self.store.skip_step(checkout.id, step, "superseded", now)
                self._send(checkout, decision, report, run_id, now)
            return

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
        if not isinstance(self.connector, PurchaseLookup):
            return None
        cache_key = (checkout.id, *contact_keys(checkout.customer))
        if cache_key not in self._purchases:
            self._purchases[cache_key] = self.connector.find_purchase(checkout)
        return self._purchases[cache_key]

    def _send(
        self,
        checkout: Checkout,
        decision: Decision,
        report: RunReport,
        run_id: int | None,
        now: datetime,
    ) -> None:
        assert decision.step is not None
        assert decision.channel is not None
        assert decision.recipient is not None
        step, kind, recipient = decision.step, decision.channel, decision.recipient
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

        key = OutboxKey(checkout.id, step, kind).format()
        contacts = contact_keys(checkout.customer)
        if not report.dry_run and not self.store.claim(
            key,
            checkout_id=checkout.id,
            step=step,
            channel=kind,
            recipient=recipient,
            contacts=contacts,
            at=now,
            cap_since=now - self.policy.frequency_cap,
            run_id=run_id,
        ):
            report.counts[RunCount.NOT_CLAIMED] += 1
            return
        try:
            message = self._compose(checkout, decision, key, report.dry_run, now)
        except CartRescueError as err:
            reason = mask_text(str(err))
            report.counts[RunCount.NOT_RENDERED] += 1
            report.failures.append((checkout.id, reason))
            if not report.dry_run:
                self.store.finish(key, "failed", self.clock(), error=reason)
                self.store.record_event(
                    "render_failed",
                    now,
                    checkout_id=checkout.id,
                    step=step,
                    channel=kind,
                    detail=reason,
                )
            log.warning("checkout=%s key=%s not rendered: %s", checkout.id, key, reason)
            return
        if report.dry_run:
            report.counts[RunCount.WOULD_SEND] += 1
            report.messages.append(message)
            return
        self._queue(message, report)

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
                discount = Discount(
                    code="PREVIEW",
                    percent=decision.discount.percent,
                    expires_at=now + timedelta(seconds=decision.discount.valid_for_seconds),
                )
            else:
                try:
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
            self.unsubscribe(decision.recipient, kind) if self.unsubscribe is not None else None
        )
        content = self.renderer.render(
            kind,
            step,
            MessageContext(
                checkout=checkout,
                shop=self.shop,
                locale=locale,
                link=link,
                discount=discount,
                unsubscribe_url=unsubscribe_url,
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

    def _queue(self, message: Message, report: RunReport) -> None:
        """Send now, or, for a channel that sends batches concurrently, once a batch is full.
        Keys are claimed before they wait here, so a crash leaves them ``unknown``, never
        sent twice."""
        channel = self.channels[message.channel]
        pending = self._pending.setdefault(message.channel, [])
        pending.append(message)
        if not hasattr(channel, "send_batch") or len(pending) >= self.batch_size:
            self._flush(message.channel, report)

    def _flush(self, kind: ChannelKind, report: RunReport) -> None:
        messages = self._pending.pop(kind, [])
        if not messages:
            return
        channel = self.channels[kind]
        send_batch = getattr(channel, "send_batch", None)
        results: list[Receipt | Exception]
        if send_batch is not None:
            try:
                results = list(send_batch(messages))
            except Exception as err:  # the whole batch failed in the channel: may have sent
                log.exception("%s channel failed a batch of %d", kind, len(messages))
                results = [err] * len(messages)
            if len(results) != len(messages):
                error = SendOutcomeUnknown(
                    f"{kind} channel returned {len(results)} results for {len(messages)} messages"
                )
                results = [error] * len(messages)
        else:
            results = []
            for message in messages:
                try:
                    results.append(channel.send(message))
                except Exception as err:  # recorded below, per class
                    results.append(err)
        for message, result in zip(messages, results, strict=True):
            self._record(message, result, report)

    def _record(self, message: Message, result: Receipt | Exception, report: RunReport) -> None:
        who = mask_contact(message.to)
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
