"""Whatever one item does — in the connector, the store, the policy, the renderer or the
channel — it is recorded for that item, the pass goes on and the watermark moves past it.
A broken store, by contrast, stops the pass with a ``StoreError``."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cartrescue import BadCheckout, Checkout, FrozenClock, Recovery, SQLiteStore
from cartrescue.connectors.shopify import ShopifyConnector
from cartrescue.connectors.woocommerce import WooCommerceConnector
from cartrescue.errors import BadPayloadError, StoreError
from cartrescue_testing.fake_shopify import FakeShopify
from cartrescue_testing.fake_woocommerce import FakeWooCommerce
from cartrescue_testing.memory import MemoryChannel

from .conftest import NOON, make_checkout

# Every engine test fails if cartrescue logs a watched contact or secret (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("scanned_logs")

T0 = NOON + timedelta(hours=1)  # 14:00 in Oslo: step 1 of a cart abandoned at NOON is due


def good(n: int) -> Checkout:
    return make_checkout(str(n), phone=f"+479123{n:04d}", email=f"buyer{n}@example.no")


def new_store() -> SQLiteStore:
    store = SQLiteStore(":memory:")
    store.start_at(NOON - timedelta(days=1))
    return store


def assert_handled(store: SQLiteStore, checkout_id: str) -> None:
    """A bad item is a recorded bad payload or failure, and no key of it is left unknown."""
    bad = {item for item, _ in store.bad_checkouts()}
    failed = {kind for kind, _ in store.events(checkout_id)} & {"failed", "render_failed"}
    statuses = {e.status for e in store.outbox_for(checkout_id)}
    stopped = store.checkout_status(checkout_id) == "stopped"  # kept with its reason
    assert checkout_id in bad or failed or stopped or statuses == {"sent"}, (checkout_id, statuses)
    assert not statuses & {"claimed", "unknown"}, (checkout_id, statuses)


def two_passes(recovery: Recovery, clock: FrozenClock) -> None:
    first = recovery.run()
    assert first.ok, first.summary()
    assert recovery.store.watermark(recovery.connector.name) == T0
    clock.advance(timedelta(minutes=5))
    second = recovery.run()
    assert second.ok, second.summary()
    assert recovery.store.watermark(recovery.connector.name) == T0 + timedelta(minutes=5)


def test_bad_woocommerce_orders_among_good_ones_do_not_stop_any_pass() -> None:
    clock = FrozenClock(T0)
    goods = [good(n) for n in range(101, 105)]
    with FakeWooCommerce(clock=clock) as shop, new_store() as store:
        shop.add_checkouts(goods, country="NO")
        bad_via = shop.add_checkout(good(201), country="NO", created_via=["checkout"])  # type: ignore[arg-type]
        surrogate = make_checkout("203", phone="+4791239203", email="ka\ud83dri@example.no")
        bad_email = shop.add_checkout(surrogate, country="NO")
        connector = WooCommerceConnector(
            shop.base_url,
            shop.consumer_key,
            shop.consumer_secret,
            consent=["email", "sms"],
            clock=clock,  # OAuth timestamps must agree with the fake's clock
        )
        sms = MemoryChannel("sms")
        recovery = Recovery(connector, [sms, MemoryChannel("email")], store, clock=clock)
        two_passes(recovery, clock)
        # The lone surrogate is cleaned where the model is built, so 203 is messaged too.
        assert sorted(m.checkout_id for m in sms.sent) == sorted([*(c.id for c in goods), "203"])
        assert_handled(store, str(bad_email["id"]))
        # created_via that is not text: not an order a shopper's checkout made, so it is left
        # alone like any other order the shop created by hand; the pass went on past it.
        assert store.outbox_for(str(bad_via["id"])) == []


def test_a_total_that_cannot_be_formatted_is_not_rendered_and_its_key_released() -> None:
    clock = FrozenClock(T0)
    huge = dataclasses.replace(good(2), total=Decimal("1e999999"))

    class Lister:
        name = "list"

        def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout]:
            yield from (good(1), huge, good(3))

    with new_store() as store:
        sms = MemoryChannel("sms")
        recovery = Recovery(Lister(), [sms], store, clock=clock)
        two_passes(recovery, clock)
        assert sorted(m.checkout_id for m in sms.sent) == ["1", "3"]
        assert_handled(store, "2")
        # The first pass decides it from the page it came in: the message cannot be rendered,
        # nothing left the machine, and the key is released, never left unknown. Read back
        # from the store later, the model's money rule refuses it: a bad payload, stopped.
        entries = store.outbox_for("2")
        assert [e.status for e in entries] == ["not_rendered"]
        assert "InvalidOperation" in (entries[0].error or "")
        assert store.checkout_status("2") == "stopped"


def test_a_shopify_checkout_with_a_date_before_the_first_utc_instant_is_a_bad_payload() -> None:
    clock = FrozenClock(T0)
    goods = [good(n) for n in range(301, 304)]
    fake = FakeShopify.from_checkouts(goods, throttle=False, timezone="Europe/Oslo")
    record = fake.record_from_checkout(good(309))
    record["created_at"] = "0001-01-01T00:30:00+01:00"
    fake.add_checkout(record)
    with fake, new_store() as store:
        connector = ShopifyConnector(fake.shop, fake.token, base_url=fake.base_url)
        sms = MemoryChannel("sms")
        recovery = Recovery(connector, [sms, MemoryChannel("email")], store, clock=clock)
        two_passes(recovery, clock)
        assert sorted(m.checkout_id for m in sms.sent) == [c.id for c in goods]
        reasons = dict(store.bad_checkouts())
        assert "is out of range" in reasons["309"]


class RaisingIterator:
    """A hand-written connector iterator that raises ``BadPayloadError`` for some items
    instead of yielding a ``BadCheckout``, and goes on with the next."""

    def __init__(self, items: list[Checkout | Exception]) -> None:
        self.items = iter(items)

    def __iter__(self) -> RaisingIterator:
        return self

    def __next__(self) -> Checkout:
        item = next(self.items)
        if isinstance(item, Exception):
            raise item
        return item


class IteratorConnector:
    name = "hand-written"

    def __init__(self, items: list[Checkout | Exception]) -> None:
        self.items = items

    def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout | BadCheckout]:
        return RaisingIterator(self.items)


def test_a_connector_raising_for_one_item_is_recorded_and_its_next_items_are_read() -> None:
    clock = FrozenClock(T0)
    items: list[Checkout | Exception] = [
        good(1),
        BadPayloadError("price 'x' is not a number", item="2"),
        good(3),
        TypeError("unhashable type: 'list'"),
        good(5),
    ]
    with new_store() as store:
        sms = MemoryChannel("sms")
        recovery = Recovery(IteratorConnector(items), [sms], store, clock=clock)
        two_passes(recovery, clock)
        assert sorted(m.checkout_id for m in sms.sent) == ["1", "3", "5"]
        assert dict(store.bad_checkouts()) == {
            "2": "price 'x' is not a number",
            "#4": "connector raised TypeError: unhashable type: 'list'",
        }


def test_a_connector_generator_that_raises_ends_its_items_but_not_the_pass() -> None:
    clock = FrozenClock(T0)

    class Dying:
        name = "dying"

        def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout]:
            yield good(1)
            raise KeyError("created_via")

    with new_store() as store:
        store.upsert_checkout(good(7), NOON)  # seen by an earlier pass
        sms = MemoryChannel("sms")
        recovery = Recovery(Dying(), [sms], store, clock=clock)
        two_passes(recovery, clock)
        assert sorted(m.checkout_id for m in sms.sent) == ["1", "7"]
        assert [item for item, _ in store.bad_checkouts()] == ["#2"]


def test_an_item_the_policy_cannot_decide_is_a_recorded_failure() -> None:
    clock = FrozenClock(T0)
    end_of_time = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    odd = dataclasses.replace(good(2), abandoned_at=end_of_time, updated_at=end_of_time)

    class Lister:
        name = "list"

        def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout]:
            yield from (good(1), odd, good(3))

    with new_store() as store:
        sms = MemoryChannel("sms")
        recovery = Recovery(Lister(), [sms], store, clock=clock)
        two_passes(recovery, clock)
        assert sorted(m.checkout_id for m in sms.sent) == ["1", "3"]
        assert_handled(store, "2")  # the year 9999 is refused when the row is read back


def test_a_store_that_breaks_in_the_middle_of_a_pass_stops_it_with_a_store_error(
    tmp_path,
) -> None:
    clock = FrozenClock(T0)
    path = tmp_path / "store.sqlite3"
    locker = sqlite3.connect(path, isolation_level=None)

    class LocksTheStore:
        """Another program takes the store's write lock while the pass is reading."""

        name = "list"

        def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout]:
            yield good(1)
            locker.execute("BEGIN EXCLUSIVE")
            yield good(2)

    with SQLiteStore(path, timeout=0.2) as store:
        store.start_at(NOON - timedelta(days=1))
        sms = MemoryChannel("sms")
        recovery = Recovery(LocksTheStore(), [sms], store, clock=clock)
        with pytest.raises(StoreError, match=r"store\.sqlite3"):
            recovery.run()
        locker.execute("ROLLBACK")
        assert sms.sent == []
        assert store.bad_checkouts() == []
    locker.close()


def test_a_store_that_breaks_while_sending_stops_the_pass_and_keeps_the_key_unknown(
    tmp_path,
) -> None:
    clock = FrozenClock(T0)
    path = tmp_path / "store.sqlite3"
    locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    class LockingChannel(MemoryChannel):
        def send(self, message):  # the provider accepts; then the store is locked
            receipt = super().send(message)
            locker.execute("BEGIN EXCLUSIVE")
            return receipt

    class Lister:
        name = "list"

        def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout]:
            yield from (good(1), good(2))

    with SQLiteStore(path, timeout=0.2) as store:
        store.start_at(NOON - timedelta(days=1))
        sms = LockingChannel("sms")
        recovery = Recovery(Lister(), [sms], store, clock=clock)
        with pytest.raises(StoreError):
            recovery.run()
        locker.execute("ROLLBACK")
        assert [m.checkout_id for m in sms.sent] == ["1"]
        assert [e.status for e in store.outbox_for("1")] == ["claimed"]  # shown as unknown
        assert store.outbox_for("2") == []
    locker.close()


@pytest.mark.parametrize("read_ahead", [False, True])  # True: raised in the reading thread
def test_keyboard_interrupt_is_not_recorded_as_a_bad_item(read_ahead: bool) -> None:
    class Interrupted:
        name = "list"

        def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout]:
            yield good(1)
            raise KeyboardInterrupt

    Interrupted.read_ahead = read_ahead  # type: ignore[attr-defined]
    with new_store() as store:
        recovery = Recovery(Interrupted(), [MemoryChannel("sms")], store, clock=FrozenClock(T0))
        with pytest.raises(KeyboardInterrupt):
            recovery.run()
        assert store.bad_checkouts() == []


def test_a_stored_checkout_that_cannot_be_read_back_does_not_stop_the_pass(tmp_path) -> None:
    clock = FrozenClock(T0)
    path = tmp_path / "store.sqlite3"
    with SQLiteStore(path) as store:
        store.start_at(NOON - timedelta(days=1))
        store.upsert_checkout(good(1), NOON)
        store.upsert_checkout(good(2), NOON)
        with sqlite3.connect(path) as db:  # written by an older or damaged program
            db.execute("UPDATE checkouts SET data = '{\"id\": \"2\"}' WHERE id = '2'")
        sms = MemoryChannel("sms")

        class Nothing:
            name = "list"

            def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout]:
                return iter(())

        report = Recovery(Nothing(), [sms], store, clock=clock).run()
        assert report.ok
        assert [m.checkout_id for m in sms.sent] == ["1"]
