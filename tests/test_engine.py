from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from cartrescue import (
    BadCheckout,
    Checkout,
    FrozenClock,
    PermanentSendError,
    Purchase,
    Recovery,
    SendOutcomeUnknown,
    SQLiteStore,
    TemplateRenderer,
    TransientSendError,
)
from cartrescue_testing import MemoryChannel

from .conftest import NOON, make_checkout

# Every engine test fails if cartrescue logs a watched contact or secret (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("scanned_logs")


class ListConnector:
    """A connector over a list: the smallest thing that satisfies the protocol."""

    name = "list"

    def __init__(self, items, purchases=None):
        self.items = list(items)
        self.purchases = purchases or {}
        self.since: list[datetime | None] = []
        self.purchase_calls = 0

    def abandoned_checkouts(self, since) -> Iterator[Checkout | BadCheckout]:
        self.since.append(since)
        yield from self.items

    def find_purchase(self, checkout):
        self.purchase_calls += 1
        return self.purchases.get(checkout.id)


@pytest.fixture
def clock():
    return FrozenClock(NOON + timedelta(hours=1))


@pytest.fixture
def store():
    with SQLiteStore(":memory:") as s:
        s.start_at(NOON - timedelta(days=1))
        yield s


def recovery(connector, store, clock, **kw):
    channels = kw.pop("channels", None) or [MemoryChannel("sms"), MemoryChannel("email")]
    return Recovery(connector, channels, store, clock=clock, **kw)


def test_a_pass_sends_due_messages_and_records_them(store, clock):
    r = recovery(ListConnector([make_checkout("c1")]), store, clock)
    report = r.run()
    assert report.ok
    assert report.counts["sent"] == 1
    (message,) = r.channels["sms"].sent
    assert message.key == "c1:1:sms"
    assert message.to == "+4791234567"
    assert "Kari" in message.text
    assert "https://shop.example/checkouts/c1/recover" in message.text
    assert [e.status for e in store.outbox_for("c1")] == ["sent"]
    # the next pass does not send it again
    assert recovery(ListConnector([make_checkout("c1")]), store, clock).run().counts["sent"] == 0


def test_watermark_advances_with_overlap(store, clock):
    connector = ListConnector([])
    r = recovery(connector, store, clock)
    r.run()
    clock.advance(timedelta(minutes=15))
    r.run()
    assert connector.since[0] == NOON - timedelta(days=1) - timedelta(minutes=10)
    assert connector.since[1] == NOON + timedelta(hours=1) - timedelta(minutes=10)


def test_stored_checkouts_get_later_steps_without_being_refetched(store, clock):
    connector = ListConnector([make_checkout("c1")])
    recovery(connector, store, clock).run()
    clock.advance(timedelta(hours=23))
    r = recovery(ListConnector([]), store, clock)
    assert r.run().counts["sent"] == 1
    assert r.channels["email"].sent[0].key == "c1:2:email"


def test_bad_input_is_recorded_and_the_pass_goes_on(store, clock, tmp_path):
    (tmp_path / "sms").mkdir()
    (tmp_path / "sms" / "1.fi.j2").write_text("Hei {{ no_such_variable }}")
    items = [
        make_checkout("no-contact", customer=False),
        make_checkout("bad-phone", phone=None, email=None, problems=("invalid phone number",)),
        BadCheckout("bad-price", "price '12,50 kr' is not a number"),
        make_checkout(
            "bad-template",
            locale="fi",
            email_consent=False,
            phone="+4791234568",
            email="a@example.no",
        ),
        make_checkout("good", phone="+4791234569", email="b@example.no"),
    ]
    r = recovery(ListConnector(items), store, clock, renderer=TemplateRenderer([tmp_path]))
    report = r.run()
    assert report.ok
    assert report.counts["sent"] == 1
    assert [m.checkout_id for m in r.channels["sms"].sent] == ["good"]
    assert store.checkout_status("no-contact") == "stopped"
    assert store.checkout_status("bad-phone") == "stopped"
    assert ("bad-price", "price '12,50 kr' is not a number") in store.bad_checkouts()
    (entry,) = store.outbox_for("bad-template")
    assert entry.status == "not_rendered"
    assert "no_such_variable" in (entry.error or "")
    failures = dict(report.failures)
    assert "no_such_variable" in failures["bad-template"]
    assert "bad-price" in failures


def test_dry_run_renders_but_sends_and_records_nothing(store, clock):
    connector = ListConnector([make_checkout("c1")])
    r = recovery(connector, store, clock)
    report = r.run(dry_run=True)
    assert report.counts["would send"] == 1
    assert report.messages[0].key == "c1:1:sms"
    assert r.channels["sms"].sent == []
    assert store.outbox_for("c1") == []
    assert store.checkout("c1") is None
    assert store.watermark("list") is None


def test_completed_checkout_is_converted_and_attributed(store, clock):
    recovery(ListConnector([make_checkout("c1")]), store, clock).run()
    clock.advance(timedelta(hours=2))
    paid = make_checkout("c1", completed_at=clock())
    report = recovery(ListConnector([paid]), store, clock).run()
    assert report.counts["converted"] == 1
    assert store.checkout_status("c1") == "converted"
    stats = store.stats(clock())
    assert stats.recovered == 1
    assert stats.revenue_recovered == {"NOK": Decimal("499.00")}


def test_bought_elsewhere_stops_before_sending(store, clock):
    purchase = Purchase("order-9", NOON + timedelta(minutes=30), Decimal("10"), "NOK")
    connector = ListConnector([make_checkout("c1")], purchases={"c1": purchase})
    r = recovery(connector, store, clock)
    report = r.run()
    assert report.counts["converted elsewhere"] == 1
    assert r.channels["sms"].sent == []
    assert store.checkout_status("c1") == "converted_elsewhere"


def test_frequency_cap_holds_across_two_checkouts_of_one_contact(store, clock):
    items = [make_checkout("c1"), make_checkout("c2", abandoned_at=NOON + timedelta(minutes=5))]
    clock.advance(timedelta(minutes=10))
    r = recovery(ListConnector(items), store, clock)
    report = r.run()
    assert report.counts["sent"] == 1
    assert report.counts["held: frequency cap"] == 1


@pytest.mark.parametrize(
    ("error", "status", "counted"),
    [
        (
            PermanentSendError("invalid number", provider="t", code=21211),
            "failed",
            "failed: rejected by provider",
        ),
        (TransientSendError("429", provider="t"), "retry", "failed: will retry"),
        (SendOutcomeUnknown("read timeout", provider="t"), "unknown", "unknown outcome"),
        (RuntimeError("bug in a plugin"), "unknown", "unknown outcome"),
    ],
)
def test_send_errors_are_recorded(store, clock, error, status, counted):
    def fail(message):
        raise error

    channels = [MemoryChannel("sms", fail=fail), MemoryChannel("email")]
    report = recovery(ListConnector([make_checkout("c1")]), store, clock, channels=channels).run()
    assert report.counts[counted] == 1
    assert store.outbox_for("c1")[0].status == status


def test_opt_out_error_adds_the_contact_to_opt_outs(store, clock):
    def fail(message):
        raise PermanentSendError("replied STOP", provider="twilio", code=21610, opted_out=True)

    channels = [MemoryChannel("sms", fail=fail), MemoryChannel("email")]
    recovery(ListConnector([make_checkout("c1")]), store, clock, channels=channels).run()
    assert store.optouts_for(["+4791234567"]) == {"sms"}


def test_transient_failure_is_retried_on_the_next_pass(store, clock):
    calls = []

    def fail_once(message):
        calls.append(message.key)
        if len(calls) == 1:
            raise TransientSendError("429", provider="t")

    channels = [MemoryChannel("sms", fail=fail_once), MemoryChannel("email")]
    connector = ListConnector([make_checkout("c1")])
    recovery(connector, store, clock, channels=channels).run()
    clock.advance(timedelta(minutes=15))
    report = recovery(connector, store, clock, channels=channels).run()
    assert report.counts["sent"] == 1
    assert calls == ["c1:1:sms", "c1:1:sms"]


def test_two_recoveries_side_by_side_share_nothing(tmp_path, clock):
    a = recovery(ListConnector([make_checkout("a1")]), SQLiteStore(tmp_path / "a.db"), clock)
    b = recovery(
        ListConnector([make_checkout("b1", phone="+4791234560", email="x@example.no")]),
        SQLiteStore(tmp_path / "b.db"),
        clock,
    )
    for r in (a, b):
        r.store.start_at(NOON - timedelta(days=1))
    a.run()
    b.run()
    assert [m.key for m in a.channels["sms"].sent] == ["a1:1:sms"]
    assert [m.key for m in b.channels["sms"].sent] == ["b1:1:sms"]


def test_log_lines_mask_contacts(store, clock, caplog):
    caplog.set_level("INFO", logger="cartrescue")
    recovery(ListConnector([make_checkout("c1")]), store, clock).run()
    text = caplog.text
    assert "action=send" in text
    assert "+4791234567" not in text
    assert "kari@example.no" not in text


def test_payment_after_the_last_step_still_counts_as_recovered(store, clock):
    connector = ListConnector([make_checkout("c1")])
    for hours in (1, 24, 48, 49):  # steps 1, 2 and 3, then nothing left
        clock.set(NOON + timedelta(hours=hours))
        recovery(connector, store, clock).run()
    assert [e.step for e in store.outbox_for("c1")] == [1, 2, 3]
    assert store.checkout_status("c1") == "done"
    clock.advance(timedelta(hours=3))
    paid = make_checkout("c1", completed_at=clock())
    report = recovery(ListConnector([paid]), store, clock).run()
    assert report.counts["converted"] == 1
    assert store.checkout_status("c1") == "converted"
    assert store.stats(clock()).recovered == 1


class ConcurrentChannel(MemoryChannel):
    """A channel that may be called from ``concurrency`` threads; refuses one number and
    notes, at each send, how many keys of the store are claimed without a result."""

    def __init__(self, store, kind="sms", concurrency=4):
        super().__init__(kind)
        self.concurrency = concurrency
        self.store = store
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.claimed_at_send: list[int] = []

    def send(self, message):
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            claimed = self.store._query("SELECT count(*) FROM outbox WHERE status = 'claimed'")
            self.claimed_at_send.append(int(claimed[0][0]))
        try:
            time.sleep(0.01)
            if message.to == "+4791230003":
                raise PermanentSendError("invalid number", provider="batch", code=21211)
            with self.lock:
                return super().send(message)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_a_channel_sends_from_concurrency_workers_and_each_result_is_recorded_at_once(store, clock):
    items = [
        make_checkout(f"c{n}", phone=f"+479123{n:04d}", email=f"p{n}@example.no") for n in range(45)
    ]
    sms = ConcurrentChannel(store, concurrency=4)
    r = Recovery(ListConnector(items), [sms, MemoryChannel("email")], store, clock=clock)
    report = r.run(keep_messages=True)
    assert 1 < sms.most_in_flight <= 4
    # a key is claimed only when a worker is about to send it, and recorded when it returns
    assert max(sms.claimed_at_send) <= 4
    assert report.counts["sent"] == 44
    assert report.counts["failed: rejected by provider"] == 1
    assert store.outbox_for("c3")[0].status == "failed"
    assert {e.status for n in range(45) if n != 3 for e in store.outbox_for(f"c{n}")} == {"sent"}
    assert sorted(m.checkout_id for m in report.messages) == sorted(
        f"c{n}" for n in range(45) if n != 3
    )


def test_dry_run_renders_with_a_link_as_long_as_a_real_short_link(store, clock):
    from cartrescue.links import SelfHostedLinks

    links = SelfHostedLinks("https://go.shop.example/r/", store, clock=clock)
    r = recovery(ListConnector([make_checkout("c1")]), store, clock, links=links)
    report = r.run(dry_run=True)
    (message,) = report.messages
    assert links.example() in message.text
    assert store.link_for("c1", 1, "sms") is None


def test_a_run_saves_its_counts_under_their_plain_names(tmp_path, clock):
    import json
    import sqlite3

    path = tmp_path / "store.sqlite"
    with SQLiteStore(path) as store:
        store.start_at(NOON - timedelta(days=1))
        recovery(ListConnector([make_checkout("c1")]), store, clock).run()
    with sqlite3.connect(path) as db:
        (saved,) = db.execute("SELECT counts FROM runs").fetchone()
    assert json.loads(saved) == {"fetched": 1, "sent": 1}


class PagedConnector(ListConnector):
    """Notes, as it yields each item, how many of its items the store already holds."""

    def __init__(self, items, store):
        super().__init__(items)
        self.store = store
        self.stored_when_yielding: list[int] = []

    def abandoned_checkouts(self, since) -> Iterator[Checkout | BadCheckout]:
        for item in self.items:
            stored = sum(self.store.checkout(c.id) is not None for c in self.items)
            self.stored_when_yielding.append(stored)
            yield item


def test_each_page_is_stored_and_decided_before_the_next_is_fetched(store, clock):
    items = [
        make_checkout(f"c{n}", phone=f"+479123{n:04d}", email=f"p{n}@example.no") for n in range(7)
    ]
    connector = PagedConnector(items, store)
    r = Recovery(connector, [MemoryChannel("sms")], store, clock=clock, batch_size=3)
    report = r.run()
    assert connector.stored_when_yielding == [0, 0, 0, 3, 3, 3, 6]
    assert report.counts["sent"] == 7
    assert len(r.channels["sms"].sent) == 7


def test_open_checkouts_the_shop_did_not_return_are_decided_once_each(store, clock):
    items = [
        make_checkout(f"c{n}", phone=f"+479123{n:04d}", email=f"p{n}@example.no") for n in range(5)
    ]
    recovery(ListConnector(items), store, clock, batch_size=2).run()  # all sent: step 1
    clock.advance(timedelta(hours=23, minutes=30))
    # the shop now returns only two of them (the others did not change)
    r = recovery(ListConnector(items[3:]), store, clock, batch_size=2)
    report = r.run()
    assert report.counts["sent"] == 5  # step 2, by email, once per checkout
    assert sorted(m.checkout_id for m in r.channels["email"].sent) == [f"c{n}" for n in range(5)]


def test_the_report_keeps_messages_only_when_asked_or_in_a_dry_run(store, clock):
    items = [make_checkout("c1"), make_checkout("c2", phone="+4791234568", email="b@example.no")]
    assert recovery(ListConnector(items), store, clock).run(dry_run=True).messages
    report = recovery(ListConnector(items[:1]), store, clock).run()
    assert report.counts["sent"] == 1
    assert report.messages == []
    kept = recovery(ListConnector(items[1:]), store, clock).run(keep_messages=True)
    assert [m.key for m in kept.messages] == ["c2:1:sms"]


def test_a_page_of_due_checkouts_is_checked_for_purchases_in_bulk() -> None:
    """Shopify answers a page's purchase checks in one query per 50 checkouts: a pass over
    120 due checkouts makes a handful of requests, not one per checkout."""
    from cartrescue.connectors.shopify import ShopifyConnector
    from cartrescue_testing.fake_shopify import FakeShopify

    checkouts = [
        make_checkout(f"{7000 + n}", email=f"buyer{n}@example.no", phone=None) for n in range(120)
    ]
    clock = FrozenClock(NOON + timedelta(hours=2))
    with (
        FakeShopify.from_checkouts(checkouts, throttle=False) as fake,
        SQLiteStore(":memory:") as store,
    ):
        store.start_at(NOON - timedelta(days=1))
        shop = ShopifyConnector(fake.shop, fake.token, base_url=fake.base_url)
        email = MemoryChannel("email")
        report = Recovery(shop, [email], store, clock=clock).run()
        assert report.ok, report.error
        assert len(email.sent) == 120
        assert len(fake.requests) < 15, len(fake.requests)
