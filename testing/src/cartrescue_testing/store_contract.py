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
any column) is also checked with it after ``forget``.

Part of the ``cartrescue-testing`` distribution.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import pytest

from cartrescue.models import Checkout, Customer, LineItem, Purchase
from cartrescue.store.base import (
    CheckoutStore,
    ConversationStore,
    LinkRecord,
    LinkStore,
    OptOutStore,
    OutboxStore,
    ReportStore,
    Store,
)

__all__ = ["StoreContract"]

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


def _race(calls: Sequence[Callable[[], bool]]) -> list[bool]:
    """Run every call at the same instant, each in its own thread; their results."""
    barrier = threading.Barrier(len(calls))
    results: list[bool | BaseException] = [False] * len(calls)

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
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return [bool(r) for r in results]


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

    # -- conversations (a store without them is skipped) ------------------------------------
    def test_reasons_of_a_page_read_together(self, store: Store) -> None:
        if not isinstance(store, ConversationStore):
            pytest.skip(f"{type(store).__name__} keeps no conversations")
        for checkout_id in ("c1", "c2", "c3"):
            store.upsert_checkout(_checkout(checkout_id), NOON)
        store.record_reason("c1", "price", NOON)
        store.record_reason("c2", "price", NOON)
        store.record_reason("c2", "shipping_cost", NOON + timedelta(minutes=1))  # replaces
        assert dict(store.reasons(["c1", "c2", "c3", "c1", "missing"])) == {
            "c1": "price",
            "c2": "shipping_cost",
        }
        assert dict(store.reasons([])) == {}
        many = [f"x{n}" for n in range(1000)] + ["c2"]  # more than one bound list holds
        assert dict(store.reasons(many)) == {"c2": "shipping_cost"}
