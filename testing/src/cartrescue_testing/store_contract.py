"""The store conformance suite: every promise a cartrescue store makes, as a test.

``SQLiteStore`` and ``PostgresStore`` pass it; so must an integrator's own store. Subclass it
in a test module (the class name must start with ``Test``) and provide ``open_store``: a
callable that opens a *new* handle (its own connections) on one fresh, empty database that
stays the same for the whole test. Tests that need two handles at once (claims from two
connections, reopening to check migrations) call it more than once::

    from cartrescue_testing.store_contract import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def open_store(self, tmp_path):
            return lambda: MyStore(tmp_path / "db", hash_key=StoreContract.hash_key)

The ``store`` fixture (one handle from ``open_store``, closed afterwards) may be overridden
too. A store that has ``rows_naming(contact) -> int`` (how many rows still name a contact in
any column) is also checked with it after ``forget``. The tests of
:class:`~cartrescue.store.base.ExperimentStore` (arms, ``cartrescue report``'s aggregates),
:class:`~cartrescue.store.base.ConversationStore` (replies, pauses, stated reasons) and
:class:`~cartrescue.store.base.SignalStore` (engagement signals) skip for a store that does
not have that protocol.

Part of the ``cartrescue-testing`` distribution.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar, TypeVar, cast

import pytest

from cartrescue.models import Checkout, Customer, LineItem, Purchase
from cartrescue.store.base import (
    AttributionWindows,
    CheckoutStore,
    ConversationEntry,
    ConversationStore,
    ExperimentStore,
    LinkRecord,
    LinkStore,
    LookAgain,
    LookAgainStore,
    OptOutStore,
    OutboxStore,
    ReportStore,
    Signal,
    SignalOutcome,
    SignalStore,
    Store,
    Unchanged,
)

__all__ = ["StoreContract"]

T = TypeVar("T")

NOON = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
EMAIL = "kari.nordmann@example.no"
PHONE = "+4791234567"
OTHER = "ola@example.no"


def _checkout(
    id: str, *, email: str | None = EMAIL, phone: str | None = PHONE, at: datetime = NOON
) -> Checkout:
    return Checkout(
        id=id,
        abandoned_at=at,
        updated_at=at + timedelta(minutes=1),
        recovery_url=f"https://shop.example/checkouts/{id}/recover",
        currency="NOK",
        total=Decimal("499.00"),
        line_items=(LineItem("Wool socks", 1, Decimal("499.00")),),
        customer=Customer(first_name="Kari", email=email, phone=phone, timezone="Europe/Oslo"),
    )


def _claim(
    store: OutboxStore,
    key: str,
    contacts: Sequence[str] = (EMAIL,),
    *,
    at: datetime = NOON,
    cap_since: datetime | None = None,
) -> bool:
    checkout_id, step, channel = key.split(":")
    return store.claim(
        key,
        checkout_id=checkout_id,
        step=int(step),
        channel=channel,
        recipient=contacts[0],
        contacts=contacts,
        at=at,
        cap_since=cap_since,
        run_id=None,
    )


def _open(store: Store) -> dict[str, Checkout]:
    return {c.id: c for c in store.active_checkouts(NOON - timedelta(days=1))}


def _race(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run every call at the same instant, each in its own thread; their results."""
    barrier = threading.Barrier(len(calls))
    results: list[T | BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except BaseException as err:  # reported below, in the test's thread
            results[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    done: list[T] = []
    for r in results:
        if isinstance(r, BaseException):
            raise r
        done.append(cast(T, r))
    return done


def _experiments(store: object) -> ExperimentStore:
    """``store`` as an :class:`ExperimentStore`; the test skips for a store without it."""
    if not isinstance(store, ExperimentStore):
        pytest.skip(f"{type(store).__name__} is not an ExperimentStore")
    return store


def _conversations(store: object) -> ConversationStore:
    """``store`` as a :class:`ConversationStore`; the test skips for a store without it."""
    if not isinstance(store, ConversationStore):
        pytest.skip(f"{type(store).__name__} is not a ConversationStore")
    return store


def _reply(checkout_id: str, text: str, at: datetime, source: str = "twilio") -> ConversationEntry:
    return ConversationEntry(checkout_id, at, "sms", "in", text, source)


def _link(code: str, checkout_id: str, step: int = 1, channel: str = "sms") -> LinkRecord:
    return LinkRecord(
        code=code,
        checkout_id=checkout_id,
        step=step,
        channel=channel,
        destination=f"https://shop.example/checkouts/{checkout_id}/recover",
        home_url="https://shop.example/",
        created_at=NOON,
        expires_at=NOON + timedelta(days=30),
    )


class StoreContract:
    """Base class of a store's conformance tests; see the module docstring."""

    hash_key: ClassVar[str] = "contract-hash-key-" + "k" * 32
    """A key for forgotten opt-outs' hashes, for stores that take one."""

    racers: ClassVar[int] = 8
    """How many threads race for one claim."""

    @pytest.fixture
    def open_store(self) -> Callable[[], Store]:
        raise NotImplementedError("override the open_store fixture")  # pragma: no cover

    @pytest.fixture
    def store(self, open_store: Callable[[], Store]) -> Iterator[Store]:
        handle = open_store()
        try:
            yield handle
        finally:
            handle.close()

    # -- shape ------------------------------------------------------------------------------
    def test_is_every_store_protocol(self, store: Store) -> None:
        for protocol in (OutboxStore, CheckoutStore, OptOutStore, LinkStore, ReportStore, Store):
            assert isinstance(store, protocol), protocol.__name__

    def test_opening_twice_migrates_once_and_keeps_data(
        self, store: Store, open_store: Callable[[], Store]
    ) -> None:
        store.upsert_checkout(_checkout("c1"), NOON)
        store.set_watermark("shop", NOON)
        assert _claim(store, "c1:1:sms")
        second = open_store()
        third = open_store()
        try:
            assert second.checkout_status("c1") == "open"
            assert third.watermark("shop") == NOON
            assert not _claim(third, "c1:1:sms")
            version = getattr(store, "schema_version", None)
            if callable(version):
                assert version() == getattr(third, "schema_version")()  # noqa: B009
        finally:
            second.close()
            third.close()

    # -- outbox and claims ------------------------------------------------------------------
    def test_a_key_is_claimed_once(self, store: Store) -> None:
        assert _claim(store, "c1:1:sms")
        assert not _claim(store, "c1:1:sms")
        assert not _claim(store, "c1:1:sms", at=NOON + timedelta(days=1))
        assert _claim(store, "c1:2:sms")

    @pytest.mark.parametrize("status", ["sent", "failed", "unknown"])
    def test_a_finished_key_is_never_claimed_again(self, store: Store, status: str) -> None:
        assert _claim(store, "c1:1:sms")
        store.finish("c1:1:sms", status, NOON, provider_id="p1", error=None)  # type: ignore[arg-type]
        assert not _claim(store, "c1:1:sms", at=NOON + timedelta(hours=1))
        [entry] = store.outbox_for("c1")
        assert (entry.key, entry.status) == ("c1:1:sms", status)

    def test_a_claim_without_a_result_is_never_claimed_again(
        self, store: Store, open_store: Callable[[], Store]
    ) -> None:
        assert _claim(store, "c1:1:sms")
        other = open_store()  # another process, after the first one died mid-send
        try:
            assert not _claim(other, "c1:1:sms", at=NOON + timedelta(hours=2))
        finally:
            other.close()
        stats = store.stats(NOON + timedelta(hours=2))
        assert stats.messages == {(1, "sms", "unknown"): 1}

    def test_retry_releases_the_key(self, store: Store) -> None:
        assert _claim(store, "c1:1:sms")
        store.finish("c1:1:sms", "retry", NOON, error="timeout")
        assert _claim(store, "c1:1:sms", at=NOON + timedelta(minutes=15))
        assert not _claim(store, "c1:1:sms", at=NOON + timedelta(minutes=30))
        [entry] = store.outbox_for("c1")
        assert entry.status == "claimed"
        assert entry.error is None

    def test_outbox_entries(self, store: Store) -> None:
        assert _claim(store, "c1:1:sms", at=NOON)
        assert _claim(store, "c1:2:email", at=NOON + timedelta(hours=1))
        store.finish("c1:1:sms", "sent", NOON + timedelta(seconds=1), provider_id="SM1")
        store.finish("c1:2:email", "failed", NOON + timedelta(hours=1), error="bounced")
        entries = store.outbox_for("c1")
        assert [(e.key, e.step, e.channel, e.status) for e in entries] == [
            ("c1:1:sms", 1, "sms", "sent"),
            ("c1:2:email", 2, "email", "failed"),
        ]
        assert entries[0].claimed_at == NOON
        assert entries[0].finished_at == NOON + timedelta(seconds=1)
        assert entries[1].error == "bounced"
        assert store.outbox_for("nobody") == []

    def test_one_thread_wins_a_claim_on_one_handle(self, store: Store) -> None:
        results = _race([lambda: _claim(store, "c1:1:sms")] * self.racers)
        assert results.count(True) == 1

    def test_one_connection_wins_a_claim_across_handles(
        self, open_store: Callable[[], Store]
    ) -> None:
        handles = [open_store() for _ in range(4)]
        try:
            for attempt in range(5):
                key = f"c{attempt}:1:sms"
                results = _race([lambda h=h, k=key: _claim(h, k) for h in handles])  # type: ignore[misc]
                assert results.count(True) == 1, key
        finally:
            for h in handles:
                h.close()

    def test_frequency_cap_across_claims(self, store: Store) -> None:
        assert _claim(store, "c1:1:sms", (PHONE, EMAIL), at=NOON)
        store.finish("c1:1:sms", "sent", NOON)
        later = NOON + timedelta(hours=2)
        # Another checkout of the same person, reached through one shared contact.
        assert not _claim(store, "c2:1:email", (EMAIL,), at=later, cap_since=NOON)
        assert not _claim(store, "c2:1:email", (EMAIL,), at=later, cap_since=NOON - timedelta(1))
        assert _claim(store, "c2:1:email", (EMAIL,), at=later, cap_since=NOON + timedelta(1))
        assert _claim(store, "c3:1:email", (OTHER,), at=later, cap_since=NOON)
        assert store.last_contacted([EMAIL]) == later
        assert store.last_contacted([PHONE]) == NOON
        assert store.last_contacted(["nobody@example.no"]) is None
        assert store.last_contacted([]) is None

    def test_a_message_in_flight_counts_for_the_cap_and_a_failed_one_does_not(
        self, store: Store
    ) -> None:
        later = NOON + timedelta(hours=1)
        assert _claim(store, "c1:1:sms", (PHONE,), at=NOON)  # claimed, no result yet
        assert not _claim(store, "c2:1:sms", (PHONE,), at=later, cap_since=NOON)
        store.finish("c1:1:sms", "failed", NOON, error="invalid number")
        assert _claim(store, "c2:1:sms", (PHONE,), at=later, cap_since=NOON)
        store.finish("c2:1:sms", "retry", later, error="timeout")
        assert _claim(store, "c3:1:sms", (PHONE,), at=later, cap_since=NOON)

    def test_the_cap_holds_when_two_connections_message_one_person_at_once(
        self, open_store: Callable[[], Store]
    ) -> None:
        handles = [open_store() for _ in range(4)]
        try:
            for attempt in range(5):
                person = f"p{attempt}@example.no"
                calls = [
                    lambda h=h, i=i, p=person: _claim(
                        h, f"{p}-{i}:1:email", (p,), cap_since=NOON - timedelta(days=1)
                    )
                    for i, h in enumerate(handles)
                ]
                assert _race(calls).count(True) == 1, person
        finally:
            for h in handles:
                h.close()

    def test_skipped_steps(self, store: Store) -> None:
        assert store.skipped_steps("c1") == set()
        store.skip_step("c1", 1, "quiet hours", NOON)
        store.skip_step("c1", 1, "again", NOON)
        store.skip_step("c1", 3, "too long", NOON)
        assert store.skipped_steps("c1") == {1, 3}
        assert store.skipped_steps("c2") == set()
        assert store.stats(NOON).skip_reasons == {
            "step skipped: quiet hours": 1,
            "step skipped: too long": 1,
        }

    def test_discounts(self, store: Store) -> None:
        assert store.last_discount([EMAIL]) is None
        store.record_discount("c1", [EMAIL, PHONE], "BACK10", NOON)
        store.record_discount("c2", [EMAIL], "BACK15", NOON + timedelta(days=2))
        assert store.last_discount([EMAIL]) == NOON + timedelta(days=2)
        assert store.last_discount([PHONE]) == NOON
        assert store.last_discount([OTHER]) is None
        assert store.last_discount([]) is None

    # -- checkouts and watermarks -----------------------------------------------------------
    def test_watermarks(self, store: Store) -> None:
        assert store.watermark("shopify") is None
        store.set_watermark("shopify", NOON)
        store.set_watermark("woocommerce", NOON - timedelta(days=1))
        store.set_watermark("shopify", NOON + timedelta(minutes=15))
        assert store.watermark("shopify") == NOON + timedelta(minutes=15)
        assert store.watermark("woocommerce") == NOON - timedelta(days=1)

    def test_start_at_is_set_once(self, store: Store) -> None:
        assert store.start_at(NOON) == NOON
        assert store.start_at(NOON + timedelta(days=1)) == NOON

    def test_checkouts(self, store: Store) -> None:
        assert store.checkout_status("c1") is None
        store.upsert_checkout(_checkout("c2", at=NOON + timedelta(hours=1)), NOON)
        store.upsert_checkout(_checkout("c1", at=NOON), NOON)
        store.upsert_checkout(_checkout("old", at=NOON - timedelta(days=9)), NOON)
        assert [c.id for c in store.active_checkouts(NOON - timedelta(days=1))] == ["c1", "c2"]
        [first, _] = store.active_checkouts(NOON - timedelta(days=1))
        assert first == _checkout("c1")
        store.close_checkout("c1", "stopped", "no consent", NOON)
        store.upsert_checkout(_checkout("c1"), NOON + timedelta(hours=1))  # status is kept
        assert store.checkout_status("c1") == "stopped"
        store.close_checkout("c1", "converted", "paid", NOON)  # a stopped one stays stopped
        assert store.checkout_status("c1") == "stopped"
        store.close_checkout("c2", "done", "all steps sent", NOON)
        store.close_checkout("c2", "converted", "paid", NOON)  # a done one may still convert
        assert store.checkout_status("c2") == "converted"
        assert [c.id for c in store.active_checkouts(NOON - timedelta(days=30))] == ["old"]
        store.record_bad_checkout("bad", "no recovery url", NOON)
        stats = store.stats(NOON)
        assert stats.checkouts_by_status == {"stopped": 1, "converted": 1, "open": 1}
        assert stats.bad_payloads == 1
        assert stats.skip_reasons.get("no consent") == 1

    def test_an_older_version_never_overwrites_a_newer_one(self, store: Store) -> None:
        from dataclasses import replace

        newer = replace(_checkout("c1"), updated_at=NOON + timedelta(hours=2), name="newer")
        store.upsert_checkout(newer, NOON)
        store.upsert_checkout(replace(newer, updated_at=NOON, name="older"), NOON)
        [kept] = store.active_checkouts(NOON - timedelta(days=1))
        assert kept.name == "newer"
        store.upsert_checkout(replace(newer, name="polled again"), NOON)
        [kept] = store.active_checkouts(NOON - timedelta(days=1))
        assert kept.name == "polled again"

    def test_a_page_is_stored_at_once_and_answers_each_status(self, store: Store) -> None:
        store.upsert_checkout(_checkout("c1"), NOON)
        store.close_checkout("c1", "done", "all steps sent", NOON)
        store.record_bad_checkout("c2", "bad price", NOON)
        page = [_checkout("c1"), _checkout("c2"), _checkout("c3", email=OTHER, phone=None)]
        assert store.upsert_checkouts(page, NOON + timedelta(hours=1)) == {
            "c1": "done",
            "c2": "open",
            "c3": "open",
        }
        assert store.stats(NOON).bad_payloads == 0
        assert _open(store)["c3"] == page[2]
        assert store.upsert_checkouts([], NOON) == {}

    def test_in_a_page_the_newest_version_wins_as_one_by_one(self, store: Store) -> None:
        from dataclasses import replace

        stored = replace(_checkout("c1"), updated_at=NOON + timedelta(hours=2), name="stored")
        store.upsert_checkout(stored, NOON)
        late = replace(stored, updated_at=NOON, name="late webhook")
        page = [
            late,
            replace(_checkout("c2"), name="first"),
            replace(_checkout("c2"), updated_at=NOON + timedelta(hours=3), name="newest"),
            replace(_checkout("c2"), updated_at=NOON + timedelta(hours=3), name="polled again"),
            replace(_checkout("c2"), name="older"),
        ]
        store.upsert_checkouts(page, NOON)
        assert _open(store)["c1"] == stored
        assert _open(store)["c2"].name == "polled again"

    def test_overlapping_pages_from_two_handles_are_both_stored(
        self, open_store: Callable[[], Store]
    ) -> None:
        # Two workers polling one shop at once, its pages in opposite orders: both finish.
        page = [_checkout(f"c{n:03d}") for n in range(200)]
        handles = [open_store() for _ in range(2)]
        try:
            for attempt in range(5):
                at = NOON + timedelta(minutes=attempt)
                pages = zip(handles, (page, page[::-1]), strict=True)
                results = _race([partial(h.upsert_checkouts, p, at) for h, p in pages])
                assert [len(r) for r in results] == [200, 200]
        finally:
            for h in handles:
                h.close()

    def test_histories_answer_for_a_page_what_the_single_reads_do(self, store: Store) -> None:
        assert _claim(store, "c1:1:sms", (PHONE, EMAIL))
        store.finish("c1:1:sms", "sent", NOON)
        assert _claim(store, "c1:2:email", (EMAIL,), at=NOON + timedelta(hours=1))
        store.finish("c1:2:email", "retry", NOON + timedelta(hours=1))
        assert _claim(store, "c3:1:email", (OTHER,), at=NOON + timedelta(hours=2))
        store.finish("c3:1:email", "failed", NOON + timedelta(hours=2), error="bounced")
        store.skip_step("c2", 1, "overdue", NOON)
        store.skip_step("c2", 2, "overdue", NOON)
        store.record_discount("c2", [EMAIL], "BACK10", NOON)
        store.record_discount("c3", [EMAIL], "BACK15", NOON + timedelta(hours=3))
        store.add_optout(PHONE, "sms", "STOP", NOON)
        store.add_optout(PHONE, "email", "unsubscribe link", NOON)
        known = store.histories(
            ["c1", "c2", "c3", "c4", "c1"], [EMAIL.upper(), PHONE, OTHER, "", PHONE]
        )
        assert known.steps == {
            "c1": ((1, "sms", "sent"), (2, "email", "retry")),
            "c3": ((1, "email", "failed"),),
        }
        assert known.skipped == {"c2": frozenset({1, 2})}
        assert known.last_contacted == {EMAIL: NOON, PHONE: NOON}
        assert known.last_contacted[EMAIL] == store.last_contacted([EMAIL])
        assert known.last_discount == {EMAIL: NOON + timedelta(hours=3)}
        assert known.optouts == {PHONE: frozenset({"sms", "email"})}
        nothing = store.histories([], [])
        assert (nothing.steps, nothing.skipped, nothing.optouts) == ({}, {}, {})

    def test_histories_see_a_forgotten_opt_out_by_its_hash(self, store: Store) -> None:
        store.add_optout(EMAIL, "*", "STOP", NOON)
        store.add_optout(OTHER, "sms", "STOP", NOON)
        store.forget(EMAIL)
        known = store.histories([], [EMAIL.upper(), OTHER, PHONE])
        assert known.optouts == {EMAIL: frozenset({"*"}), OTHER: frozenset({"sms"})}

    def test_a_delivery_is_taken_once_and_forgotten_after_a_week(self, store: Store) -> None:
        assert store.record_delivery("shopify", "wh-1", NOON) is True
        assert store.record_delivery("shopify", "wh-1", NOON + timedelta(hours=1)) is False
        assert store.record_delivery("twilio", "wh-1", NOON) is True  # another source
        later = NOON + timedelta(days=8)
        assert store.record_delivery("shopify", "wh-2", later) is True
        assert store.record_delivery("shopify", "wh-1", later) is True

    def test_runs(self, store: Store) -> None:
        first = store.begin_run(NOON)
        store.finish_run(first, NOON + timedelta(minutes=1), {"sent": 2}, None)
        second = store.begin_run(NOON + timedelta(minutes=15))
        assert second != first
        failure = "shop unreachable"
        store.finish_run(second, NOON + timedelta(minutes=16), {}, failure)
        stats = store.stats(NOON + timedelta(minutes=20))
        assert stats.last_pass_completed == NOON + timedelta(minutes=1)
        assert stats.last_pass_started == NOON + timedelta(minutes=15)
        assert stats.last_pass_error == failure
        assert stats.passes_completed == 1

    # -- opt-outs ---------------------------------------------------------------------------
    def test_optouts(self, store: Store) -> None:
        assert store.optouts_for([PHONE]) == set()
        store.add_optout(PHONE, "sms", "twilio", NOON)
        store.add_optout(EMAIL.upper(), "*", "unsubscribe", NOON)
        assert store.optouts_for([PHONE]) == {"sms"}
        assert store.optouts_for([EMAIL, PHONE]) == {"sms", "*"}
        assert store.optouts_for([OTHER]) == set()
        assert store.optouts_for([]) == set()
        listed = {(o.contact, o.channel, o.source) for o in store.list_optouts()}
        assert listed == {(PHONE, "sms", "twilio"), (EMAIL, "*", "unsubscribe")}
        assert store.stats(NOON).opt_outs == 2
        store.add_optout(PHONE, "whatsapp", "whatsapp", NOON)
        assert store.remove_optout(PHONE, "whatsapp") == 1
        assert store.optouts_for([PHONE]) == {"sms"}
        assert store.remove_optout(EMAIL) == 1
        assert store.remove_optout(EMAIL) == 0
        assert store.optouts_for([EMAIL]) == set()

    # -- links and clicks -------------------------------------------------------------------
    def test_links_and_clicks(self, store: Store) -> None:
        assert store.link("nope") is None
        link = _link("abc123", "c1")
        store.save_link(link)
        assert store.link("abc123") == link
        assert store.link_for("c1", 1, "sms") == link
        assert store.link_for("c1", 2, "sms") is None
        store.record_click("abc123", NOON + timedelta(minutes=5))
        store.record_click("abc123", NOON + timedelta(minutes=6))
        store.record_click("unknown", NOON)  # nothing to count, and no error
        assert store.stats(NOON).clicks == 2

    # -- events, conversions and stats ------------------------------------------------------
    def test_conversion_is_attributed_to_the_last_message_in_the_window(self, store: Store) -> None:
        store.upsert_checkout(_checkout("c1"), NOON)
        for step, hours in ((1, 0), (2, 24)):
            key = f"c1:{step}:sms"
            assert _claim(store, key, (PHONE,), at=NOON + timedelta(hours=hours))
            store.finish(key, "sent", NOON + timedelta(hours=hours))
        paid = NOON + timedelta(hours=30)
        purchase = Purchase("1001", paid, total=Decimal("499.00"), currency="NOK")
        attributed = store.record_conversion("c1", "converted", purchase, paid, NOON)
        assert attributed == "c1:2:sms"
        # Once per checkout.
        again = store.record_conversion("c1", "converted", purchase, paid, NOON)
        assert again in (attributed, None)
        store.close_checkout("c1", "converted", "paid", paid)
        stats = store.stats(paid)
        assert stats.conversions == {"converted": 1}
        assert stats.recovered == 1
        assert stats.revenue_recovered == {"NOK": Decimal("499.00")}
        assert stats.messaged_checkouts == 1
        assert stats.messages == {(1, "sms", "sent"): 1, (2, "sms", "sent"): 1}
        assert stats.recovery_rate == 1.0

    def test_a_clicked_link_wins_the_attribution(self, store: Store) -> None:
        for step, channel, hours in ((1, "sms", 0), (2, "email", 24)):
            key = f"c1:{step}:{channel}"
            assert _claim(store, key, (EMAIL,), at=NOON + timedelta(hours=hours))
            store.finish(key, "sent", NOON + timedelta(hours=hours))
        store.save_link(_link("s1", "c1", 1, "sms"))
        store.record_click("s1", NOON + timedelta(hours=25))
        attributed = store.record_conversion(
            "c1", "converted", None, NOON + timedelta(hours=26), NOON - timedelta(days=1)
        )
        assert attributed == "c1:1:sms"

    def test_a_conversion_outside_the_window_is_not_attributed(self, store: Store) -> None:
        assert _claim(store, "c1:1:sms", (PHONE,), at=NOON)
        store.finish("c1:1:sms", "sent", NOON)
        late = NOON + timedelta(days=10)
        key = store.record_conversion(
            "c1", "converted_elsewhere", None, late, late - timedelta(days=7)
        )
        assert key is None
        stats = store.stats(late)
        assert stats.conversions == {"converted_elsewhere": 1}
        assert stats.recovered == 0

    def test_events_are_recorded(self, store: Store) -> None:
        store.record_event("sent", NOON, checkout_id="c1", step=1, channel="sms", detail="ok")
        store.record_event("reply", NOON)
        events = getattr(store, "events", None)
        if callable(events):
            assert [kind for kind, _ in events()] == ["sent", "reply"]
            assert events("c1") == [("sent", "ok")]

    # -- forget -----------------------------------------------------------------------------
    def _fill(self, store: Store) -> None:
        store.upsert_checkout(_checkout("c1"), NOON)
        store.upsert_checkout(_checkout("c2", phone=None), NOON)
        store.upsert_checkout(_checkout("other", email=OTHER, phone=None), NOON)
        for checkout_id, channel, to in (("c1", "sms", PHONE), ("c2", "email", EMAIL)):
            key = f"{checkout_id}:1:{channel}"
            assert _claim(store, key, (to, EMAIL))
            store.finish(key, "sent", NOON, provider_id="p")
            store.save_link(_link(f"l-{checkout_id}", checkout_id, 1, channel))
            store.record_click(f"l-{checkout_id}", NOON)
            store.record_event("sent", NOON, checkout_id=checkout_id, detail=to)
        assert _claim(store, "other:1:email", (OTHER,))
        store.skip_step("c1", 2, "quiet hours", NOON)
        store.record_discount("c1", [EMAIL, PHONE], "BACK10", NOON)
        store.record_conversion("c2", "converted", None, NOON, NOON)
        store.add_optout(PHONE, "sms", "twilio", NOON)
        store.add_optout(PHONE[1:], "whatsapp", "whatsapp", NOON)  # a WhatsApp id has no "+"
        store.add_optout(EMAIL, "email", "unsubscribe", NOON)

    def test_forget_erases_every_row_naming_the_contact(self, store: Store) -> None:
        self._fill(store)
        assert store.forget(EMAIL) > 0
        assert store.forget(PHONE) > 0
        for checkout_id in ("c1", "c2"):
            assert store.checkout_status(checkout_id) is None
            assert store.outbox_for(checkout_id) == []
            assert store.skipped_steps(checkout_id) == set()
            assert store.link_for(checkout_id, 1, "sms") is None
            assert store.link_for(checkout_id, 1, "email") is None
        assert store.link("l-c1") is None
        assert store.last_contacted([EMAIL, PHONE]) is None
        assert store.last_discount([EMAIL, PHONE]) is None
        assert all(o.contact not in (EMAIL, PHONE, PHONE[1:]) for o in store.list_optouts())
        rows_naming: Any = getattr(store, "rows_naming", None)
        if callable(rows_naming):
            for form in (EMAIL, PHONE, PHONE[1:]):
                assert rows_naming(form) == 0, form
        # Someone else's data stays.
        assert store.checkout_status("other") == "open"
        assert [e.key for e in store.outbox_for("other")] == ["other:1:email"]
        stats = store.stats(NOON)
        assert stats.clicks == 0
        assert stats.conversions == {}

    def test_forget_keeps_the_opt_out_as_a_hash(self, store: Store) -> None:
        self._fill(store)
        store.forget(EMAIL)
        store.forget(PHONE)
        assert store.optouts_for([EMAIL]) == {"email"}
        assert store.optouts_for([PHONE]) == {"sms", "whatsapp"}
        assert store.optouts_for([OTHER]) == set()
        # A forgotten person who asks to be messaged again can be.
        assert store.remove_optout(EMAIL) >= 1
        assert store.optouts_for([EMAIL]) == set()

    def test_forget_of_a_stranger_removes_nothing(self, store: Store) -> None:
        self._fill(store)
        assert store.forget("stranger@example.no") == 0
        assert store.checkout_status("c1") == "open"

    # -- engagement signals -----------------------------------------------------------------
    def _signals(self, store: Store) -> SignalStore:
        if not isinstance(store, SignalStore):
            pytest.skip(f"{type(store).__name__} does not keep engagement signals")
        store.upsert_checkout(_checkout("c1"), NOON)
        store.upsert_checkout(_checkout("c2", at=NOON + timedelta(days=2)), NOON)
        for key, provider_id in (
            ("c1:1:sms", "SM1"),
            ("c1:2:whatsapp", "wamid.1"),
            ("c2:1:sms", "SM2"),
            ("c2:2:whatsapp", "wamid.2"),
        ):
            assert _claim(store, key)
            store.finish(key, "sent", NOON, provider_id=provider_id)
        assert _claim(store, "c2:3:email")
        store.finish("c2:3:email", "failed", NOON, error="refused")
        return store

    def test_a_signal_moves_forward_only(self, store: Store) -> None:
        signals = self._signals(store)
        later = NOON + timedelta(minutes=1)
        assert signals.record_signal("wamid.1", Signal.SENT, NOON) is SignalOutcome.RECORDED
        assert signals.record_signal("wamid.1", Signal.READ, later) is SignalOutcome.RECORDED
        # A late "delivered" and a redelivered "read" change nothing.
        assert signals.record_signal("wamid.1", Signal.DELIVERED, later) is SignalOutcome.UNCHANGED
        assert signals.record_signal("wamid.1", Signal.READ, later) is SignalOutcome.UNCHANGED
        assert signals.record_signal("SM1", Signal.DELIVERED, NOON) is SignalOutcome.RECORDED
        assert signals.record_signal("SM1", Signal.FAILED, later) is SignalOutcome.UNCHANGED
        assert signals.record_signal("SM2", Signal.FAILED, NOON) is SignalOutcome.RECORDED
        assert signals.record_signal("SM2", Signal.DELIVERED, later) is SignalOutcome.UNCHANGED
        assert signals.record_signal("nobody", Signal.READ, NOON) is SignalOutcome.UNKNOWN
        counts = signals.signal_counts()
        assert set(counts) == {"sms", "whatsapp"}
        sms, whatsapp = counts["sms"], counts["whatsapp"]
        assert (sms.sent, sms.delivered, sms.read, sms.failed) == (2, 1, 0, 1)
        assert (whatsapp.sent, whatsapp.delivered, whatsapp.read, whatsapp.failed) == (2, 1, 1, 0)
        assert sms.delivery_rate == 0.5
        assert sms.read_rate is None
        assert whatsapp.read_rate == 0.5

    def test_a_failed_delivery_stays_counted_as_sent(self, store: Store) -> None:
        signals = self._signals(store)
        signals.record_signal("wamid.2", Signal.FAILED, NOON)
        store.finish("c2:2:whatsapp", "failed", NOON, error="WhatsApp 131026")
        whatsapp = signals.signal_counts()["whatsapp"]
        assert (whatsapp.sent, whatsapp.failed) == (2, 1)

    def test_signal_counts_for_checkouts_abandoned_in_a_span(self, store: Store) -> None:
        signals = self._signals(store)
        signals.record_signal("SM2", Signal.DELIVERED, NOON)
        span = signals.signal_counts(NOON + timedelta(days=1), NOON + timedelta(days=3))
        assert (span["sms"].sent, span["sms"].delivered) == (1, 1)
        assert signals.signal_counts(NOON - timedelta(days=9), NOON - timedelta(days=8)) == {}

    # -- experiments (ExperimentStore) ------------------------------------------------------
    def test_assignment_key_is_made_once_and_shared(
        self, store: Store, open_store: Callable[[], Store]
    ) -> None:
        ex = _experiments(store)
        handles = [open_store() for _ in range(4)]
        try:
            keys = _race([lambda h=h: h.assignment_key() for h in handles])  # type: ignore[misc]
        finally:
            for h in handles:
                h.close()
        assert len(set(keys)) == 1  # every process keys the assignment the same way
        (key,) = set(keys)
        assert len(key) >= 32
        assert ex.assignment_key() == key

    def test_the_first_arm_recorded_stays(self, store: Store) -> None:
        ex = _experiments(store)
        assert ex.assignments("c1") == {}
        ex.record_assignments("c1", [("holdout", "treated", None), ("offer", "b", 1)], NOON)
        ex.record_assignments("c1", [("offer", "a", 1), ("wording", "short", 2)], NOON)
        ex.record_assignments("c2", [], NOON)
        assert ex.assignments("c1") == {"holdout": "treated", "offer": "b", "wording": "short"}
        assert ex.assignments("c2") == {}

    def test_two_connections_assigning_one_checkout_agree(
        self, open_store: Callable[[], Store]
    ) -> None:
        handles = [open_store() for _ in range(4)]
        try:
            stores = [_experiments(h) for h in handles]
            _race(
                [
                    lambda x=x, i=i: x.record_assignments("c1", [("offer", f"arm{i}", None)], NOON)  # type: ignore[misc]
                    for i, x in enumerate(stores)
                ]
            )
            seen = {str(x.assignments("c1")) for x in stores}
        finally:
            for h in handles:
                h.close()
        assert len(seen) == 1

    def test_arm_counts(self, store: Store) -> None:
        ex = _experiments(store)
        for cid, arm in (("c1", "a"), ("c2", "a"), ("c3", "b")):
            ex.record_assignments(cid, [("offer", arm, None), ("holdout", "treated", None)], NOON)
        store.record_conversion("c2", "converted", None, NOON, NOON)
        assert ex.arm_counts("offer") == {"a": (2, 1), "b": (1, 0)}
        assert ex.arm_counts("holdout") == {"treated": (3, 1)}
        assert ex.arm_counts("nothing") == {}

    def test_report_facts(self, store: Store) -> None:
        ex = _experiments(store)
        for cid in ("c1", "c2", "h1"):
            store.upsert_checkout(_checkout(cid, email=f"{cid}@example.no", phone=None), NOON)
        store.upsert_checkout(_checkout("old", at=NOON - timedelta(days=40)), NOON)
        ex.record_assignments("c1", [("holdout", "treated", None), ("offer", "b", 1)], NOON)
        ex.record_assignments("c2", [("holdout", "treated", None), ("offer", "a", 2)], NOON)
        ex.record_assignments("h1", [("holdout", "holdout", None)], NOON)
        for cid in ("c1", "c2"):
            key = f"{cid}:1:email"
            assert _claim(store, key, (f"{cid}@example.no",), at=NOON + timedelta(hours=1))
            store.finish(key, "sent", NOON + timedelta(hours=1))
        paid = NOON + timedelta(hours=3)
        purchase = Purchase("1001", paid, total=Decimal("499.00"), currency="NOK")
        store.record_conversion("c1", "converted", purchase, paid, NOON)
        store.record_conversion("h1", "converted_elsewhere", purchase, paid, NOON)
        store.add_optout("c2@example.no", "*", "reply", paid)
        facts = ex.report_facts(NOON - timedelta(days=1), NOON + timedelta(days=1), _WINDOWS)
        assert (facts.abandoned, facts.abandoned_items, facts.currency) == (3, 3, "NOK")
        assert facts.abandoned_value == 3 * 499.0
        assert (facts.converted, facts.converted_revenue) == (2, 998.0)
        assert (facts.attributed, facts.attributed_revenue) == (1, 499.0)
        assert facts.hours_to_recovery == 3.0
        groups = {(g.experiment, g.arm): g for g in facts.groups}
        treated, held = groups["holdout", "treated"], groups["holdout", "holdout"]
        assert (treated.eligible, treated.messaged, treated.attributed, treated.opted_out) == (
            2,
            2,
            1,
            1,
        )
        assert (held.eligible, held.messaged, held.converted, held.revenue) == (1, 0, 1, 499.0)
        assert held.revenue_squares == 499.0**2
        # An outbox entry carries the arm of the test covering its step (c2's covers step 2).
        rows = {(r.experiment, r.arm): r for r in facts.breakdown}
        assert set(rows) == {("offer", "b"), (None, None)}
        assert (rows["offer", "b"].sent, rows["offer", "b"].attributed) == (1, 1)
        assert rows["offer", "b"].revenue == 499.0
        assert (rows[None, None].sent, rows[None, None].opted_out) == (1, 1)
        [day] = facts.days
        assert (day.day, day.attributed, day.treated, day.held_out) == ("2026-03-11", 1, 2, 1)
        empty = ex.report_facts(NOON + timedelta(days=5), NOON + timedelta(days=6), _WINDOWS)
        assert (empty.abandoned, empty.groups, empty.breakdown, empty.days) == (0, (), (), ())
        assert empty.hours_to_recovery is None

    # -- conversations (ConversationStore) --------------------------------------------------
    def test_a_reply_finds_the_latest_open_checkout_of_its_contact(self, store: Store) -> None:
        talk = _conversations(store)
        assert talk.checkout_for_contact(PHONE) is None
        store.upsert_checkout(_checkout("old", at=NOON - timedelta(days=2)), NOON)
        store.upsert_checkout(_checkout("new", at=NOON), NOON)
        store.upsert_checkout(_checkout("other", email=OTHER, phone=None), NOON)
        found = talk.checkout_for_contact(PHONE)
        assert found is not None
        assert found.id == "new"
        store.close_checkout("new", "done", "all steps sent", NOON)
        found = talk.checkout_for_contact(EMAIL)
        assert found is not None
        assert found.id == "old"  # open first
        store.close_checkout("old", "stopped", "no consent", NOON)
        found = talk.checkout_for_contact(PHONE)
        assert found is not None
        assert found.id == "new"  # else the latest
        found = talk.checkout_for_contact(OTHER)
        assert found is not None
        assert found.id == "other"
        assert talk.checkout_for_contact("nobody@example.no") is None

    def test_a_reply_is_recorded_once_per_provider_message_id(self, store: Store) -> None:
        talk = _conversations(store)
        first = _reply("c1", "Is the blue one back?", NOON)
        assert talk.add_conversation_entry(first, "SM1")
        assert not talk.add_conversation_entry(first, "SM1")  # the provider retried
        assert talk.add_conversation_entry(_reply("c1", "Hello?", NOON, "vonage"), "SM1")
        answer = ConversationEntry("c1", NOON + timedelta(minutes=5), "sms", "out", "Yes!", "shop")
        assert talk.add_conversation_entry(answer, None)
        assert talk.add_conversation_entry(answer, None)  # no id: nothing to deduplicate by
        entries = talk.conversation("c1")
        assert [(e.direction, e.text, e.source) for e in entries] == [
            ("in", "Is the blue one back?", "twilio"),
            ("in", "Hello?", "vonage"),
            ("out", "Yes!", "shop"),
            ("out", "Yes!", "shop"),
        ]
        assert entries[0] == first
        assert talk.conversation("c2") == []

    def test_one_connection_records_a_redelivered_reply(
        self, open_store: Callable[[], Store]
    ) -> None:
        handles = [open_store() for _ in range(4)]
        try:
            talks = [_conversations(h) for h in handles]
            results = _race(
                [
                    lambda t=t: t.add_conversation_entry(_reply("c1", "hi", NOON), "SM9")  # type: ignore[misc]
                    for t in talks
                ]
            )
            entries = talks[0].conversation("c1")
        finally:
            for h in handles:
                h.close()
        assert results.count(True) == 1
        assert len(entries) == 1

    def test_pauses(self, store: Store) -> None:
        talk = _conversations(store)
        forever = datetime.max.replace(tzinfo=UTC)
        assert talk.paused_until("c1") is None
        talk.pause_checkout("c1", NOON + timedelta(days=2), NOON)
        talk.pause_checkout("c2", None, NOON)
        assert talk.paused_until("c1") == NOON + timedelta(days=2)
        assert talk.paused_until("c2") == forever
        talk.pause_checkout("c1", NOON + timedelta(days=5), NOON + timedelta(hours=1))
        assert talk.pauses(["c1", "c2", "c3", "c1"]) == {
            "c1": NOON + timedelta(days=5),
            "c2": forever,
        }
        assert talk.pauses([]) == {}

    def test_stated_reasons(self, store: Store) -> None:
        talk = _conversations(store)
        assert talk.abandonment_reason("c1") is None
        assert talk.reasons(["c1"]) == {}
        talk.record_reason("c1", "price", NOON)
        talk.record_reason("c2", "shipping_cost", NOON)
        talk.record_reason("c1", "just_looking", NOON + timedelta(hours=1))  # replaces
        talk.record_reason("c3", "shipping_cost", NOON)
        assert talk.abandonment_reason("c1") == "just_looking"
        assert dict(talk.reasons(["c1", "c2", "nobody", "c1"])) == {
            "c1": "just_looking",
            "c2": "shipping_cost",
        }
        assert talk.reasons([]) == {}
        assert talk.reason_counts() == {"just_looking": 1, "shipping_cost": 2}

    def test_forget_erases_arms_conversations_pauses_and_reasons(self, store: Store) -> None:
        ex, talk = _experiments(store), _conversations(store)
        self._fill(store)
        for cid in ("c1", "other"):
            ex.record_assignments(cid, [("holdout", "treated", None)], NOON)
            talk.add_conversation_entry(_reply(cid, f"write to me at {EMAIL}", NOON), f"m-{cid}")
            talk.pause_checkout(cid, None, NOON)
            talk.record_reason(cid, "price", NOON)
        store.forget(EMAIL)
        store.forget(PHONE)
        assert ex.assignments("c1") == {}
        assert talk.conversation("c1") == []
        assert talk.paused_until("c1") is None
        assert talk.reasons(["c1"]) == {}
        rows_naming: Any = getattr(store, "rows_naming", None)
        if callable(rows_naming):
            store.forget(OTHER)  # its reply quoted the address too
            assert rows_naming(EMAIL) == 0
        else:
            # Someone else's rows stay.
            assert ex.assignments("other") == {"holdout": "treated"}
            assert talk.reason_counts() == {"price": 1}

    # -- look-again times (LookAgainStore, optional) -----------------------------------------
    LATER = NOON + timedelta(hours=20)

    def _looks(self, store: Store) -> LookAgainStore:
        if not isinstance(store, LookAgainStore):
            pytest.skip(f"{type(store).__name__} keeps no look-again times")
        return store

    def _decide(self, store: Store, at: datetime = NOON, config: str = "cfg") -> dict[str, str]:
        """Each open checkout's id → ``decide`` or the count it is waiting under."""
        found = self._looks(store).checkouts_to_decide(NOON - timedelta(days=1), at, config, "t9")
        return {item.id: item.count if isinstance(item, Unchanged) else "decide" for item in found}

    def _wait(self, store: Store, *ids: str, key: str | None = None, arm: bool = True) -> None:
        looks = self._looks(store)
        if arm:
            looks.arm_look_again(list(ids), "t1")
        looks.set_look_again([LookAgain(i, self.LATER, "waiting", key) for i in ids], "cfg", "t1")

    def test_a_look_again_time_stands_until_it_comes(self, store: Store) -> None:
        store.upsert_checkout(_checkout("c1"), NOON)
        store.upsert_checkout(_checkout("c2", email=OTHER, phone=None), NOON)
        assert self._decide(store) == {"c1": "decide", "c2": "decide"}
        self._wait(store, "c1")
        assert self._decide(store) == {"c1": "waiting", "c2": "decide"}
        assert self._decide(store, self.LATER) == {"c1": "decide", "c2": "decide"}
        assert self._decide(store, config="other") == {"c1": "decide", "c2": "decide"}
        assert [c.id for c in store.active_checkouts(NOON - timedelta(days=1))] == ["c1", "c2"]
        store.close_checkout("c1", "stopped", "test", NOON)
        assert self._decide(store) == {"c2": "decide"}

    def test_a_checkout_armed_by_the_pass_asking_may_be_left_out(self, store: Store) -> None:
        store.upsert_checkout(_checkout("c1"), NOON)
        store.upsert_checkout(_checkout("c2", email=OTHER, phone=None), NOON)
        self._looks(store).arm_look_again(["c1"], "t9")
        assert self._decide(store) in ({"c2": "decide"}, {"c1": "decide", "c2": "decide"})

    def test_a_time_is_kept_only_for_an_armed_checkout(self, store: Store) -> None:
        store.upsert_checkout(_checkout("c1"), NOON)
        self._wait(store, "c1", arm=False)
        assert self._decide(store) == {"c1": "decide"}
        self._looks(store).arm_look_again(["c1"], "t0")  # another pass armed it since
        self._looks(store).set_look_again([LookAgain("c1", self.LATER, "waiting")], "cfg", "t1")
        assert self._decide(store) == {"c1": "decide"}

    def test_new_platform_data_drops_the_time(self, store: Store) -> None:
        store.upsert_checkout(_checkout("c1"), NOON)
        self._wait(store, "c1")
        changed = _checkout("c1", at=NOON + timedelta(minutes=5))
        store.upsert_checkout(changed, NOON)
        assert self._decide(store) == {"c1": "decide"}
        # armed before the change: the pass that read the old data cannot set a time
        self._looks(store).set_look_again([LookAgain("c1", self.LATER, "waiting")], "cfg", "t1")
        assert self._decide(store) == {"c1": "decide"}

    def test_a_page_with_new_data_drops_the_time_and_an_older_one_does_not(
        self, store: Store
    ) -> None:
        store.upsert_checkouts([_checkout("c1"), _checkout("c2")], NOON)
        self._wait(store, "c1", "c2")
        newer = _checkout("c1", at=NOON + timedelta(minutes=5))
        older = _checkout("c2", at=NOON - timedelta(minutes=5))
        store.upsert_checkouts([newer, older], NOON)
        assert self._decide(store) == {"c1": "decide", "c2": "waiting"}

    def test_a_send_s_time_needs_its_key_sent(self, store: Store) -> None:
        store.upsert_checkout(_checkout("c1"), NOON)
        self._wait(store, "c1", key="c1:1:sms")  # not claimed yet
        assert self._decide(store) == {"c1": "decide"}
        assert _claim(store, "c1:1:sms")
        self._wait(store, "c1", key="c1:1:sms")
        assert self._decide(store) == {"c1": "waiting"}
        store.finish("c1:1:sms", "sent", NOON)
        assert self._decide(store) == {"c1": "waiting"}

    @pytest.mark.parametrize("status", ["failed", "retry"])
    def test_a_failed_send_drops_the_times_of_its_contact(self, store: Store, status: str) -> None:
        store.upsert_checkout(_checkout("c1"), NOON)
        store.upsert_checkout(_checkout("c2", phone=None), NOON)  # the same email
        store.upsert_checkout(_checkout("c3", email=OTHER, phone=None), NOON)
        assert _claim(store, "c1:1:sms", (EMAIL, PHONE))
        self._wait(store, "c1", key="c1:1:sms")
        self._wait(store, "c2", "c3")
        store.finish("c1:1:sms", status, NOON, error="no")  # type: ignore[arg-type]
        assert self._decide(store) == {"c1": "decide", "c2": "decide", "c3": "waiting"}
        self._wait(store, "c1", key="c1:1:sms")
        assert self._decide(store)["c1"] == "decide"

    def test_an_opt_out_drops_the_times_of_its_contact(self, store: Store) -> None:
        store.upsert_checkout(_checkout("c1"), NOON)
        store.upsert_checkout(_checkout("c2", email=OTHER, phone=None), NOON)
        self._wait(store, "c1", "c2")
        store.add_optout(PHONE, "sms", "twilio", NOON)
        assert self._decide(store) == {"c1": "decide", "c2": "waiting"}
        self._wait(store, "c1", "c2")
        store.add_optout(EMAIL.upper(), "*", "unsubscribe", NOON)
        assert self._decide(store) == {"c1": "decide", "c2": "waiting"}

    def test_a_forgotten_opt_out_drops_every_time(self, store: Store) -> None:
        store.upsert_checkout(_checkout("c1"), NOON)
        store.upsert_checkout(_checkout("c2", email=OTHER, phone=None), NOON)
        store.add_optout(EMAIL, "*", "unsubscribe", NOON)
        self._wait(store, "c1", "c2")
        store.forget(EMAIL)  # the opt-out outlives it as a hash, which names no checkout
        assert self._decide(store) == {"c2": "decide"}

    def test_a_skipped_step_drops_the_time_not_the_mark(self, store: Store) -> None:
        store.upsert_checkout(_checkout("c1"), NOON)
        self._wait(store, "c1")
        store.skip_step("c1", 2, "WhatsApp marketing cap", NOON)
        assert self._decide(store) == {"c1": "decide"}
        # a pass's own skips come before its decision, which then sets the time
        self._looks(store).set_look_again([LookAgain("c1", self.LATER, "waiting")], "cfg", "t1")
        assert self._decide(store) == {"c1": "waiting"}

    def test_a_pause_drops_the_time(self, store: Store) -> None:
        if not isinstance(store, ConversationStore):
            pytest.skip(f"{type(store).__name__} keeps no conversations")
        store.upsert_checkout(_checkout("c1"), NOON)
        self._wait(store, "c1")
        store.pause_checkout("c1", NOON + timedelta(days=3), NOON)
        assert self._decide(store) == {"c1": "decide"}
        self._wait(store, "c1")
        store.pause_checkout("c1", None, NOON)
        assert self._decide(store) == {"c1": "decide"}
        self._wait(store, "c1")
        store.record_reason("c1", "price", NOON)
        assert self._decide(store) == {"c1": "decide"}


_WINDOWS = AttributionWindows()
