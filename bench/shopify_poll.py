"""Checkouts per second polled from the fake Shopify, with and without the cost throttle.

(a) no throttle: the bucket never empties, so this is the connector's and the fake's own
    speed over loopback HTTP;
(b) a restore rate of 100 points a second (Shopify's standard plan): the speed the cost
    bucket allows. The restore rate allows in theory ``restore rate / points a checkout
    costs`` checkouts a second (the actual cost the fake charged, per checkout). Target:
    (b) / theory >= 0.9. Since the bucket starts full, a short run can beat the theory; so
    the steady state (from the first wait for the bucket on) is reported too, and so is the
    loosest bound, ``(points spent - bucket size) / restore rate`` seconds, which no client
    reaches with pages that must each find their whole *requested* cost in the bucket.

Run: ``python bench/shopify_poll.py [checkouts for (a)] [checkouts for (b)]``.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cartrescue.connectors.shopify import ShopifyConnector
from cartrescue.models import Checkout, Customer, LineItem
from cartrescue_testing.fake_shopify import FakeShopify

START = datetime(2026, 11, 1, tzinfo=UTC)
BUCKET = 1000.0
RESTORE = 100.0


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
                line_items=(
                    LineItem("Linen napkins", 2, Decimal("22.00"), variant="Sand", sku="LN-S"),
                    LineItem("Tea towel", 1, Decimal("10.00")),
                ),
                customer=Customer(
                    first_name="Emily",
                    last_name="Carter",
                    email=f"buyer{n}@example.com",
                    phone="+14155552671",
                    locale="en",
                    email_consent=True,
                    sms_consent=n % 2 == 0,
                ),
            )
        )
    return out


class Run:
    """One poll, noting when the connector first had to wait for the bucket."""

    def __init__(self, count: int, **fake_options: object) -> None:
        self.count = count
        self.got = 0
        self.first_wait: tuple[float, int, float] | None = None
        with FakeShopify.from_checkouts(checkouts(count), **fake_options) as fake:
            self.fake = fake
            self.shop = ShopifyConnector(
                fake.shop, fake.token, base_url=fake.base_url, sleep=self._sleep
            )
            started = time.perf_counter()
            for _ in self.shop.abandoned_checkouts(None):
                self.got += 1
            self.ended = time.perf_counter()
        self.elapsed = self.ended - started
        assert self.got == count, (self.got, count)
        assert fake.failed == 0, fake.stats

    def _sleep(self, seconds: float) -> None:
        if self.first_wait is None:
            self.first_wait = (time.perf_counter(), self.got, self.fake.points_spent)
        time.sleep(seconds)


def main() -> None:
    fast_count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    slow_count = int(sys.argv[2]) if len(sys.argv) > 2 else 200

    fast = Run(fast_count, bucket_size=BUCKET, throttle=False)
    print(
        f"(a) no throttle: {fast_count} checkouts in {fast.elapsed:.2f} s = "
        f"{fast_count / fast.elapsed:,.0f} checkouts/s "
        f"({fast.fake.stats['graphql']} requests of {fast.shop.page_size()} checkouts)"
    )

    slow = Run(slow_count, bucket_size=BUCKET, restore_rate=RESTORE)
    fake = slow.fake
    measured = slow_count / slow.elapsed
    per_checkout = fake.points_spent / slow_count
    theory = RESTORE / per_checkout
    print(
        f"(b) restore rate {RESTORE:.0f} points/s, bucket {BUCKET:.0f}: {slow_count} checkouts "
        f"in {slow.elapsed:.2f} s = {measured:.2f} checkouts/s; {fake.points_spent:.0f} points "
        f"spent ({per_checkout:.2f} a checkout), {fake.stats['graphql']} requests, "
        f"{fake.stats['throttled']} throttled answers, waited {slow.shop.throttle.waited:.2f} s"
    )
    print(f"    theory: {RESTORE:.0f} / {per_checkout:.2f} = {theory:.2f} checkouts/s")
    print(f"    ratio (b) / theory = {measured / theory:.3f} (target >= 0.9)")
    if slow.first_wait is not None:
        at, got, spent = slow.first_wait
        steady = (slow_count - got) / (slow.ended - at)
        steady_theory = RESTORE * (slow_count - got) / (fake.points_spent - spent)
        print(
            f"    steady state (after the first wait, {slow_count - got} checkouts): "
            f"{steady:.2f} checkouts/s vs {steady_theory:.2f} in theory, "
            f"ratio {steady / steady_theory:.3f}"
        )
    bound = (fake.points_spent - BUCKET) / RESTORE
    print(
        f"    loosest bound: {bound:.2f} s if the whole starting bucket could be spent, "
        f"ratio {bound / slow.elapsed:.3f}"
    )


if __name__ == "__main__":
    main()
