"""A Shopify pass against the fake, as a multiple of fetching the checkouts alone.

    python bench/shopify_pass.py [--checkouts 10000] [--repeats 3]

Against ``FakeShopify`` (throttle off, so this is the connector's and the fake's own work
over loopback HTTP; the fake looks checkouts up by id and orders by email, as Shopify does)
it times, median of ``--repeats``:

- fetch: iterating ``abandoned_checkouts`` over every checkout;
- fetch + checks one by one: and ``find_purchase`` for each (a query per checkout);
- fetch + checks in bulk: and ``find_purchases`` for each page (a query per 50);
- full pass: ``Recovery.run()`` with in-memory channels and a SQLite file, every checkout
  due (the engine decides how it asks; see ``cartrescue.plugin.find_purchases``).

Each is printed with its ratio to fetch; the goal for a full pass is 2x.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice
from pathlib import Path

from cartrescue.clock import FrozenClock
from cartrescue.connectors.shopify import ShopifyConnector
from cartrescue.engine import Recovery
from cartrescue.models import Checkout, Customer, LineItem
from cartrescue.store import SQLiteStore
from cartrescue_testing.fake_shopify import FakeShopify
from cartrescue_testing.memory import MemoryChannel

START = datetime(2026, 11, 1, tzinfo=UTC)
GOAL = 2.0
PAGE = 250


def pages(items: Iterable[object], size: int) -> Iterator[list[object]]:
    iterator = iter(items)
    while page := list(islice(iterator, size)):
        yield page


def checkouts(count: int) -> list[Checkout]:
    out = []
    for n in range(count):
        at = START + timedelta(seconds=n)
        out.append(
            Checkout(
                id=str(1_000_000 + n),
                abandoned_at=at,
                updated_at=at,
                recovery_url=f"https://bench.myshopify.com/1/checkouts/ac/{n:032x}/recover?key=k",
                currency="USD",
                total=Decimal("54.00"),
                line_items=(LineItem("Linen napkins", 2, Decimal("22.00"), variant="Sand"),),
                customer=Customer(
                    first_name="Emily",
                    email=f"buyer{n}@example.com",
                    phone=f"+1415555{n % 10000:04d}",
                    locale="en",
                    email_consent=True,
                    sms_consent=n % 2 == 0,
                ),
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkouts", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    items = checkouts(args.checkouts)
    now = START + timedelta(days=1)
    with FakeShopify.from_checkouts(items, throttle=False) as fake:
        for n in range(0, args.checkouts, 20):  # one buyer in twenty ordered since
            fake.add_order(email=f"buyer{n}@example.com", created_at=now - timedelta(hours=1))

        def connector() -> ShopifyConnector:
            return ShopifyConnector(
                fake.shop, fake.token, base_url=fake.base_url, clock=lambda: now
            )

        def fetch() -> None:
            for _ in connector().abandoned_checkouts(None):
                pass

        def one_by_one() -> None:
            shop = connector()
            for item in shop.abandoned_checkouts(None):
                assert isinstance(item, Checkout)
                shop.find_purchase(item)

        def bulk() -> None:
            shop = connector()
            for page in pages(shop.abandoned_checkouts(None), PAGE):
                shop.find_purchases([c for c in page if isinstance(c, Checkout)])

        def full_pass() -> None:
            with tempfile.TemporaryDirectory() as folder:
                store = SQLiteStore(Path(folder) / "bench.sqlite3")
                channels = [MemoryChannel("sms"), MemoryChannel("email")]
                clock = FrozenClock(now)
                Recovery(connector(), channels, store, clock=clock).run()
                store.close()

        figures: list[tuple[str, Callable[[], None]]] = [
            ("fetch", fetch),
            ("fetch + checks one by one", one_by_one),
            ("fetch + checks in bulk", bulk),
            ("full pass", full_pass),
        ]
        times: dict[str, list[float]] = {name: [] for name, _ in figures}
        for _ in range(args.repeats):
            for name, work in figures:
                start = time.perf_counter()
                work()
                times[name].append(time.perf_counter() - start)
                print(".", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    print(
        f"Shopify pass benchmark: {args.checkouts:,} checkouts, fake without throttle, "
        f"median of {args.repeats}"
    )
    base = statistics.median(times["fetch"])
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"{name:<28}{median:>8.2f} s{median / base:>7.1f}x")
    ratio = statistics.median(times["full pass"]) / base
    print(f"full pass vs fetch {ratio:.1f}x ({'meets' if ratio <= GOAL else 'misses'} {GOAL}x)")


if __name__ == "__main__":
    main()
