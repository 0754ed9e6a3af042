"""Three segments against both platforms' fakes: each cart gets its segment's schedule, and
codes of the right kind are created only where its schedule offers one (high value: free
shipping at step 2; returning customers: no code; everyone else: 10 % at step 3)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import requests

from cartrescue.clock import FrozenClock
from cartrescue.config import load_config
from cartrescue.connectors.shopify import ShopifyConnector
from cartrescue.connectors.shopify_queries import node_cost
from cartrescue.connectors.woocommerce import WooCommerceConnector
from cartrescue.engine import Recovery
from cartrescue.models import DiscountOffer, LineItem
from cartrescue.store.sqlite import SQLiteStore
from cartrescue_testing.fake_shopify import FakeShopify
from cartrescue_testing.fake_woocommerce import FakeWooCommerce
from cartrescue_testing.memory import MemoryChannel

from .conftest import NOON, make_checkout

SEGMENTS = """
[[segments]]
name = "high-value"
min_value = 1000
[[segments.steps]]
delay = "1h"
channels = ["email"]
[[segments.steps]]
delay = "24h"
channels = ["email"]
discount = { free_shipping = true, valid_for = "48h" }

[[segments]]
name = "returning"
customer = "returning"
[[segments.steps]]
delay = "1h"
channels = ["email"]
[[segments.steps]]
delay = "24h"
channels = ["email"]
"""
# everyone else: the [policy] default, 1h, 24h, 48h with 10 % off at step 3

POLICY = load_config(None, text=SEGMENTS, env={}).policy


def run_schedule(connector, store_path, clock, policy=POLICY, passes=(1, 24, 48, 72)):
    """Passes ``passes`` hours after ``clock``'s time; the steps each checkout was sent."""
    email = MemoryChannel("email")
    start = clock()
    with SQLiteStore(store_path) as store:
        store.start_at(start - timedelta(days=1))
        recovery = Recovery(connector, [email], store, policy=policy, clock=clock)
        for hours in passes:
            clock.set(start + timedelta(hours=hours))
            assert recovery.run().ok
    steps: dict[str, list[int]] = {}
    for message in email.sent:
        steps.setdefault(message.checkout_id, []).append(message.step)
    return steps


def cart(id, total, orders):
    base = make_checkout(id, email=f"buyer{id}@example.no", phone=None, sms_consent=False)
    assert base.customer is not None
    return replace(
        base,
        total=Decimal(total),
        line_items=(LineItem("Wool blanket", 1, Decimal(total)),),
        customer=replace(base.customer, orders_count=orders),
    )


def test_shopify(tmp_path):
    carts = [cart("1", "1500.00", 4), cart("2", "300.00", 2), cart("3", "300.00", 0)]
    with FakeShopify.from_checkouts(carts, throttle=False, timezone="Europe/Oslo") as fake:
        connector = ShopifyConnector(fake.shop, fake.token, base_url=fake.base_url)
        steps = run_schedule(connector, tmp_path / "s.sqlite3", FrozenClock(NOON))
        discounts = list(fake.discounts)
    assert steps == {"1": [1, 2], "2": [1, 2], "3": [1, 2, 3]}
    # free shipping for the high-value cart's step 2, 10 % for the default segment's step 3
    assert sorted(d["type"] for d in discounts) == ["basic", "free_shipping"]
    [basic] = [d for d in discounts if d["type"] == "basic"]
    assert basic["customerGets"]["value"] == {"percentage": 0.1}
    [shipping] = [d for d in discounts if d["type"] == "free_shipping"]
    assert shipping["title"].endswith("(checkout 1)")


def test_woocommerce(tmp_path):
    start = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
    clock = FrozenClock(start)
    with FakeWooCommerce(clock=clock, timezone="Europe/Oslo") as shop:
        ids = {}
        for number, total in ((1, "1500.00"), (2, "300.00")):
            ids[total] = str(
                shop.add_order(
                    currency="NOK",
                    date_created_gmt=start,
                    date_modified_gmt=start + timedelta(seconds=4),
                    billing={
                        "first_name": f"Buyer{number}",
                        "email": f"buyer{number}@example.no",
                        "country": "NO",
                    },
                    line_items=[{"name": "Wool blanket", "quantity": 1, "price": total}],
                )["id"]
            )
        connector = WooCommerceConnector(
            shop.base_url, shop.consumer_key, shop.consumer_secret, consent=["email"], clock=clock
        )
        steps = run_schedule(connector, tmp_path / "w.sqlite3", clock)
        coupons = list(shop.coupons)
    # neither buyer has a paid order before (their history, read from the shop): nobody is
    # "returning"
    assert steps == {ids["1500.00"]: [1, 2], ids["300.00"]: [1, 2, 3]}
    assert sorted((c["discount_type"], c["amount"], c["free_shipping"]) for c in coupons) == [
        ("fixed_cart", "0.00", True),
        ("percent", "10.00", False),
    ]


def test_minimum_subtotal_reaches_both_platforms():
    offer = DiscountOffer(Decimal(10), 3600, min_subtotal=Decimal("500.00"))
    checkout = cart("1", "600.00", 0)
    with FakeShopify.from_checkouts([checkout], throttle=False) as fake:
        ShopifyConnector(fake.shop, fake.token, base_url=fake.base_url).create_discount(
            checkout, offer
        )
        [discount] = fake.discounts
    assert discount["minimumRequirement"] == {
        "subtotal": {"greaterThanOrEqualToSubtotal": "500.00"}
    }
    with FakeWooCommerce() as shop:
        WooCommerceConnector(
            shop.base_url, shop.consumer_key, shop.consumer_secret, consent=["email"]
        ).create_discount(checkout, offer)
        [coupon] = shop.coupons
    assert coupon["minimum_amount"] == "500.00"


def test_shopify_stock_and_a_sold_out_cart(tmp_path):
    sold_out = replace(
        cart("1", "300.00", 0), line_items=(LineItem("Gone", 1, Decimal(300), in_stock=False),)
    )
    carts = [sold_out, cart("2", "300.00", 0)]
    with FakeShopify.from_checkouts(carts, timezone="Europe/Oslo") as fake:
        plain = ShopifyConnector(fake.shop, fake.token, base_url=fake.base_url)
        assert {li.in_stock for c in plain.abandoned_checkouts(None) for li in c.line_items} == {
            None
        }
        session = requests.Session()
        costs = []

        def cost(response, *args, **kwargs):
            body = json.loads(response.request.body or b"{}")
            if body.get("query", "").startswith("query AbandonedCheckouts("):
                requested = response.json()["extensions"]["cost"]["requestedQueryCost"]
                costs.append((body["variables"]["first"], requested))

        session.hooks["response"].append(cost)
        stocked = ShopifyConnector(
            fake.shop, fake.token, base_url=fake.base_url, check_stock=True, session=session
        )
        by_id = {c.id: c for c in stocked.abandoned_checkouts(None)}
        assert [li.in_stock for li in by_id["1"].line_items] == [False]
        assert [li.in_stock for li in by_id["2"].line_items] == [True]
        # the connector sizes its pages by the cost Shopify counts for the variant objects
        assert costs
        assert all(req == 2 + first * node_cost(10, stock=True) for first, req in costs)
        steps = run_schedule(stocked, tmp_path / "s.sqlite3", FrozenClock(NOON))
        assert fake.failed == 0
    assert steps == {"2": [1, 2, 3]}  # the sold-out cart gets nothing


def test_woocommerce_stock_and_a_sold_out_cart(tmp_path):
    start = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
    clock = FrozenClock(start)
    with FakeWooCommerce(clock=clock, timezone="Europe/Oslo") as shop:
        shop.add_product(11, "outofstock")
        shop.add_product(12, "instock")
        shop.add_product(13, "instock")
        shop.add_product(131, "outofstock", parent_id=13)
        ids = {}
        for name, lines in (
            ("sold out", [{"name": "Gone", "quantity": 1, "price": "50.00", "product_id": 11}]),
            (
                "mixed",
                [
                    {"name": "Here", "quantity": 1, "price": "50.00", "product_id": 12},
                    {"name": "Blue", "quantity": 1, "price": "9.00", "product_id": 13,
                     "variation_id": 131},
                    {"name": "Deleted", "quantity": 1, "price": "9.00", "product_id": 99},
                    {"name": "Custom", "quantity": 1, "price": "9.00"},
                ],
            ),
        ):  # fmt: skip
            ids[name] = str(
                shop.add_order(
                    currency="NOK",
                    date_created_gmt=start,
                    date_modified_gmt=start + timedelta(seconds=4),
                    billing={"email": f"{name[:4]}@example.no", "country": "NO"},
                    line_items=lines,
                )["id"]
            )
        woo = WooCommerceConnector(
            shop.base_url,
            shop.consumer_key,
            shop.consumer_secret,
            consent=["email"],
            clock=clock,
            check_stock=True,
        )
        by_id = {c.id: c for c in woo.abandoned_checkouts(None)}
        assert [li.in_stock for li in by_id[ids["sold out"]].line_items] == [False]
        assert [li.in_stock for li in by_id[ids["mixed"]].line_items] == [True, False, False, None]
        asked = sorted(
            (r.path.rsplit("/wc/v3/", 1)[1], r.query["include"][0])
            for r in shop.requests
            if "/products" in r.path
        )
        # each order's unknown products (and variations, by parent) once, then cached
        assert asked == [
            ("products", "11"),
            ("products", "12,99"),
            ("products/13/variations", "131"),
        ]
        steps = run_schedule(woo, tmp_path / "w.sqlite3", clock)
    assert steps == {ids["mixed"]: [1, 2, 3]}
