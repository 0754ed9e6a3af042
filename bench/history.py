"""What reading customer history adds to a pass, with and without the per-pass cache.

    python bench/history.py [--checkouts 3000] [--customers 1000] [--throttled 600]

A shop of ``--checkouts`` checkouts by ``--customers`` people (so most people left several
carts, spread over the pass's pages) is read page by page (250 checkouts, as the engine
does) three ways:

- fetch: the checkouts alone;
- + history, cached: one :class:`~cartrescue.history.HistoryCache` for the pass, as the
  engine uses it (each person asked about once a pass);
- + history, uncached: a new cache for each page (each page asks about all its people).

For Shopify (``FakeShopify``, throttle off) it prints the query points, requests and time
each adds per checkout; for WooCommerce (``FakeWooCommerce``) the requests and time. Then a
Shopify pass with history on through a bucket of 1,000 points restored at 100 a second
(the standard plan): checkouts a second against the theory ``restore rate / points a
checkout cost``, the throttle ratio (target >= 0.9), measured in this one run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from itertools import islice

from cartrescue.connectors.shopify import ShopifyConnector
from cartrescue.connectors.woocommerce import WooCommerceConnector
from cartrescue.history import HistoryCache
from cartrescue.models import Checkout, Customer, LineItem
from cartrescue.rfm import Rfm
from cartrescue_testing.fake_shopify import FakeShopify
from cartrescue_testing.fake_woocommerce import FakeWooCommerce

START = datetime(2026, 11, 1, tzinfo=UTC)
NOW = START + timedelta(days=1)
PAGE = 250
BUCKET = 1000.0
RESTORE = 100.0


def checkouts(count: int, people: int) -> list[Checkout]:
    out = []
    for n in range(count):
        at = START + timedelta(seconds=n)
        person = n % people
        out.append(
            Checkout(
                id=str(1_000_000 + n),
                abandoned_at=at,
                updated_at=at,
                recovery_url=f"https://bench.example/checkouts/{n}/recover?key=k",
                currency="USD",
                total=Decimal("54.00"),
                line_items=(LineItem("Linen napkins", 2, Decimal("22.00"), variant="Sand"),),
                customer=Customer(
                    first_name="Emily",
                    email=f"buyer{person}@example.com",
                    locale="en",
                    email_consent=True,
                    orders_count=person % 7,
                    id=str(10_000 + person),
                    amount_spent=Decimal(40 * (person % 7)),
                    last_order_at=START - timedelta(days=person % 200) if person % 7 else None,
                ),
            )
        )
    return out


def pages(items: Iterable[object]) -> Iterator[list[Checkout]]:
    iterator = iter(items)
    while page := list(islice(iterator, PAGE)):
        yield [c for c in page if isinstance(c, Checkout)]


def read(connector: object, fetch: Callable[[], Iterable[object]], mode: str) -> int:
    """Read every page; ``mode`` is ``fetch``, ``cached`` or ``uncached``. Returns the
    checkouts read."""
    cache = HistoryCache(connector, Rfm(), fetch_all=True)  # type: ignore[arg-type]
    count = 0
    for page in pages(fetch()):
        count += len(page)
        if mode == "uncached":
            cache = HistoryCache(connector, Rfm(), fetch_all=True)  # type: ignore[arg-type]
        if mode != "fetch":
            cache.attach(page, NOW)
    return count


def shopify(count: int, people: int) -> None:
    items = checkouts(count, people)
    base: tuple[float, float, int] | None = None
    print(f"Shopify, {count} checkouts by {people} people, throttle off:")
    for mode in ("fetch", "cached", "uncached"):
        with FakeShopify.from_checkouts(items, throttle=False) as fake:
            shop = ShopifyConnector(fake.shop, fake.token, base_url=fake.base_url)
            started = time.perf_counter()
            assert read(shop, partial(shop.abandoned_checkouts, None), mode) == count
            elapsed = time.perf_counter() - started
            figures = (fake.points_spent, elapsed, fake.stats["graphql"])
            assert fake.failed == 0, fake.stats
        if base is None:
            base = figures
            print(
                f"  fetch: {figures[0] / count:.2f} points, {figures[2]} requests, "
                f"{1000 * elapsed / count:.3f} ms a checkout"
            )
            continue
        print(
            f"  + history, {mode}: +{(figures[0] - base[0]) / count:.2f} points, "
            f"+{figures[2] - base[2]} requests, "
            f"+{1000 * (figures[1] - base[1]) / count:.3f} ms a checkout"
        )


def woocommerce(count: int, people: int) -> None:
    items = checkouts(count, people)
    base: tuple[int, float] | None = None
    print(f"WooCommerce, {count} checkouts by {people} people:")
    for mode in ("fetch", "cached", "uncached"):
        with FakeWooCommerce() as shop:
            shop.add_checkouts(items)
            woo = WooCommerceConnector(
                shop.base_url, shop.consumer_key, shop.consumer_secret, consent=["email"]
            )
            started = time.perf_counter()
            assert read(woo, partial(woo.abandoned_checkouts, START), mode) == count
            elapsed = time.perf_counter() - started
            figures = (len(shop.requests), elapsed)
        if base is None:
            base = figures
            print(f"  fetch: {figures[0]} requests, {1000 * elapsed / count:.3f} ms a checkout")
            continue
        print(
            f"  + history, {mode}: +{(figures[0] - base[0]) / count:.3f} requests, "
            f"+{1000 * (figures[1] - base[1]) / count:.3f} ms a checkout"
        )


def throttled(count: int, people: int) -> None:
    items = checkouts(count, people)
    with FakeShopify.from_checkouts(items, bucket_size=BUCKET, restore_rate=RESTORE) as fake:
        shop = ShopifyConnector(fake.shop, fake.token, base_url=fake.base_url)
        started = time.perf_counter()
        assert read(shop, partial(shop.abandoned_checkouts, None), "cached") == count
        elapsed = time.perf_counter() - started
        assert fake.failed == 0, fake.stats
    measured = count / elapsed
    per_checkout = fake.points_spent / count
    theory = RESTORE / per_checkout
    # the bucket starts full: what a client can do at best is spend it, then the restore rate
    bound = max(0.0, fake.points_spent - BUCKET) / RESTORE
    print(
        f"Shopify with history, restore {RESTORE:.0f} points/s, bucket {BUCKET:.0f}: {count} "
        f"checkouts in {elapsed:.2f} s = {measured:.2f}/s; {per_checkout:.2f} points a "
        f"checkout, {fake.stats['graphql']} requests, {fake.stats['throttled']} throttled, "
        f"waited {shop.throttle.waited:.2f} s"
    )
    print(f"  theory {RESTORE:.0f} / {per_checkout:.2f} = {theory:.2f}/s")
    print(f"  throttle ratio (measured / theory) = {measured / theory:.3f} (target >= 0.9)")
    print(f"  against the loosest bound ({bound:.2f} s): {bound / elapsed:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkouts", type=int, default=3000)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--throttled", type=int, default=600)
    args = parser.parse_args()
    shopify(args.checkouts, args.customers)
    woocommerce(args.checkouts, args.customers)
    throttled(args.throttled, max(1, args.throttled // 3))


if __name__ == "__main__":
    main()
