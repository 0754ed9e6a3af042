"""A connector with ``read_ahead = True`` is read a page ahead, in a thread of its own: the
pass does what it did without it, the connector is never called from two threads at once,
what it raises is raised in the pass as before (a KeyboardInterrupt too: see
test_engine_faults), and a pass that stops stops reading."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest

from cartrescue import BadCheckout, Checkout, FrozenClock, Recovery, SQLiteStore
from cartrescue.errors import BadPayloadError, ConnectorError, StoreError
from cartrescue.models import Purchase
from cartrescue_testing.memory import MemoryChannel

from .conftest import NOON
from .test_engine_faults import T0, IteratorConnector, good, new_store

pytestmark = pytest.mark.usefixtures("scanned_logs")

READER = "cartrescue-read-ahead"


class Platform:
    """A connector whose every call takes a moment (as a request does) and notes when two
    calls overlap, which thread made them and how far the reading got."""

    name = "platform"

    def __init__(self, count: int, *, read_ahead: bool, page: int = 7, bought: int = 0) -> None:
        self.read_ahead = read_ahead
        self.count = count
        self.page = page
        self.bought = bought
        self.busy = threading.Lock()
        self.overlaps = 0
        self.reading_threads: set[str] = set()
        self.yielded = 0
        self.closed = False

    @contextmanager
    def call(self) -> Iterator[None]:
        if not self.busy.acquire(blocking=False):
            self.overlaps += 1
            self.busy.acquire()
        try:
            time.sleep(0.002)
            yield
        finally:
            self.busy.release()

    def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout | BadCheckout]:
        try:
            for start in range(1, self.count + 1, self.page):
                with self.call():
                    self.reading_threads.add(threading.current_thread().name)
                    page = [good(n) for n in range(start, min(start + self.page, self.count + 1))]
                for item in page:
                    self.yielded += 1
                    yield item
        finally:
            self.closed = True

    def find_purchase(self, checkout: Checkout) -> Purchase | None:
        return self.find_purchases([checkout])[checkout.id]

    def find_purchases(self, checkouts: Sequence[Checkout]) -> dict[str, Purchase | None]:
        with self.call():
            return {
                c.id: Purchase(order_id=f"o{c.id}", placed_at=T0, same_checkout=True)
                if int(c.id) <= self.bought
                else None
                for c in checkouts
            }


@pytest.mark.parametrize("read_ahead", [False, True])
def test_a_pass_does_the_same_with_and_without_reading_ahead(read_ahead: bool) -> None:
    platform = Platform(60, read_ahead=read_ahead, bought=5)
    with new_store() as store:
        sms = MemoryChannel("sms")
        recovery = Recovery(platform, [sms], store, clock=FrozenClock(T0), batch_size=10)
        report = recovery.run()
        assert report.ok, report.summary()
        assert report.fetched == 60
        assert sorted(int(m.checkout_id) for m in sms.sent) == list(range(6, 61))
        assert report.counts["converted"] == 5
        assert store.watermark("platform") == T0
    assert platform.overlaps == 0  # never two calls at once, whoever made them
    assert platform.reading_threads == ({READER} if read_ahead else {"MainThread"})
    assert platform.closed


def test_reading_ahead_stays_within_two_batches_of_the_pass() -> None:
    platform = Platform(300, read_ahead=True, page=25)
    ahead: list[int] = []

    def progress(report, decided: int) -> None:
        ahead.append(platform.yielded - report.fetched)

    with new_store() as store:
        recovery = Recovery(
            platform, [MemoryChannel("sms")], store, clock=FrozenClock(T0), batch_size=20
        )
        report = recovery.run(progress=progress)
    assert report.counts["sent"] == 300
    # the batch being handed over, the one waiting, and the rest of the pass's own
    assert 0 < max(ahead) <= 3 * 20


@pytest.mark.parametrize("read_ahead", [False, True])
def test_what_a_read_ahead_connector_raises_is_handled_as_before(read_ahead: bool) -> None:
    items: list[Checkout | Exception] = [
        good(1),
        BadPayloadError("price 'x' is not a number", item="2"),
        good(3),
        TypeError("unhashable type: 'list'"),
        good(5),
        ConnectorError("platform: 503 after 5 tries", connector="hand-written"),
        good(7),  # never read: the platform could not be read past the error
    ]
    connector = IteratorConnector(items)
    connector.read_ahead = read_ahead  # type: ignore[attr-defined]
    with new_store() as store:
        sms = MemoryChannel("sms")
        recovery = Recovery(connector, [sms], store, clock=FrozenClock(T0))
        report = recovery.run()
        assert report.error is not None and "503 after 5 tries" in report.error
        # the batch in hand waits for the next pass, which reads it again
        assert sms.sent == []
        assert store.checkout_status("1") is None
        assert dict(store.bad_checkouts()) == {
            "2": "price 'x' is not a number",
            "#4": "connector raised TypeError: unhashable type: 'list'",
        }
        assert store.watermark(connector.name) is None  # an unread platform keeps its watermark


def test_a_pass_that_stops_on_a_broken_store_stops_reading_ahead() -> None:
    platform = Platform(400, read_ahead=True, page=10)

    class Breaking(SQLiteStore):
        def upsert_checkouts(self, checkouts, at):  # the disk fills on the second batch
            if self.pages == 1:
                raise StoreError("store full: free some disk space")
            self.pages += 1
            return super().upsert_checkouts(checkouts, at)

    store = Breaking(":memory:")
    store.pages = 0  # type: ignore[attr-defined]
    store.start_at(NOON - timedelta(days=1))
    recovery = Recovery(
        platform, [MemoryChannel("sms")], store, clock=FrozenClock(T0), batch_size=20
    )
    with pytest.raises(StoreError, match="store full"):
        recovery.run()
    deadline = time.monotonic() + 5
    while any(t.name == READER for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.name == READER for t in threading.enumerate())
    assert platform.closed  # the connector's generator was closed, in the reading thread
    assert platform.yielded < 400  # and was not read to its end
    store.close()


def test_the_platform_connectors_read_ahead() -> None:
    from cartrescue.connectors.shopify import ShopifyConnector
    from cartrescue.connectors.woocommerce import WooCommerceConnector

    assert ShopifyConnector.read_ahead is True
    assert WooCommerceConnector.read_ahead is True
