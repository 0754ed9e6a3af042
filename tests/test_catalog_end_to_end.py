"""Product data end to end against both platforms' fakes: a cart with one sold-out item
among two is reminded of the buyable one only (with its picture), or skipped with
``sold_out_items = "skip_cart"``; segments on product tags and collections route carts by
what the platform says about their products."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests

from cartrescue.clock import FrozenClock
from cartrescue.config import load_config
from cartrescue.connectors.shopify import ShopifyConnector
from cartrescue.connectors.shopify_queries import node_cost
from cartrescue.engine import Recovery
from cartrescue.errors import ConfigError, ConnectorAuthError
from cartrescue.models import Checkout, LineItem
from cartrescue.store.sqlite import SQLiteStore
from cartrescue_testing.fake_shopify import FakeShopify
from cartrescue_testing.fake_woocommerce import FakeWooCommerce
from cartrescue_testing.memory import MemoryChannel

from .conftest import NOON, make_checkout
from .helpers import record_checkout_query_costs, stocked_woocommerce

BLANKET = "https://cdn.shop.example/products/blanket.jpg"
SCARF = "https://cdn.shop.example/products/scarf.jpg"

POLICY = """
[[segments]]
name = "wool"
product_tags = ["Wool"]
[[segments.steps]]
delay = "1h"
channels = ["email"]

[[segments]]
name = "sale"
collections = ["Winter sale"]
skip = true
"""


def policy(sold_out_items: str = "drop"):
    text = POLICY + f'[policy]\nsold_out_items = "{sold_out_items}"\n'
    return load_config(None, text=text, env={}).policy


def segments_of(connector):
    """Each cart's segment, as the policy puts it from what the connector reads."""
    rules = policy()
    return {c.id: rules.segment_for(c)[0] for c in connector.abandoned_checkouts(None)}


def first_pass(connector, tmp_path, clock, *, sold_out_items="drop"):
    """The emails one pass an hour after NOON sends, by checkout."""
    email = MemoryChannel("email")
    with SQLiteStore(tmp_path / f"{sold_out_items}.sqlite3") as store:
        store.start_at(clock() - timedelta(days=1))
        recovery = Recovery(connector, [email], store, policy=policy(sold_out_items), clock=clock)
        clock.set(clock() + timedelta(hours=1))
        assert recovery.run().ok
    return {m.checkout_id: m for m in email.sent}


def buyer(id: str, *lines: LineItem) -> Checkout:
    base = make_checkout(id, email=f"buyer{id}@example.no", phone=None, sms_consent=False)
    return replace(
        base, total=sum((li.price * li.quantity for li in lines), Decimal(0)), line_items=lines
    )


SHOPIFY_CARTS = [
    buyer(  # one sold-out item among two
        "1",
        LineItem("Wool blanket", 1, Decimal("900.00"), in_stock=True, image_url=BLANKET),
        LineItem("Silk scarf", 1, Decimal("350.00"), in_stock=False, image_url=SCARF),
    ),
    buyer(
        "2",
        LineItem("Merino socks", 2, Decimal("150.00"), in_stock=True, product_tags=("wool",)),
    ),
    buyer(
        "3",
        LineItem(
            "Candle", 1, Decimal("90.00"), in_stock=True, collections=("Winter sale", "Gifts")
        ),
    ),
]


def test_shopify_reminds_of_what_can_be_bought_with_its_picture(tmp_path):
    with FakeShopify.from_checkouts(
        SHOPIFY_CARTS,
        timezone="Europe/Oslo",
        scopes=("read_orders", "read_customers", "read_products"),
    ) as fake:
        session = requests.Session()
        costs = record_checkout_query_costs(session)
        connector = ShopifyConnector(
            fake.shop,
            fake.token,
            base_url=fake.base_url,
            check_stock=True,
            product_details=True,
            collections_per_product=3,
            session=session,
        )
        sent = first_pass(connector, tmp_path, FrozenClock(NOON))
        segments = segments_of(connector)
        assert fake.failed == 0
    # pages sized by what Shopify prices: variant, image, product and 3 collections a line
    per_node = node_cost(10, stock=True, images=True, collections=3)
    assert per_node == 10 + (3 + 1 + 1 + 1 + 2 + 3) * 10
    assert costs
    assert all(req == 2 + first * per_node <= 1000 for first, req in costs)
    assert segments == {"1": "default", "2": "wool", "3": "sale"}
    assert set(sent) == {"1", "2"}  # the sale segment is skipped
    message = sent["1"].content
    assert "Wool blanket" in message.text
    assert "Silk scarf" not in message.text
    assert "Silk scarf" not in (message.html or "")
    assert SCARF not in (message.html or "")
    assert f'<img src="{BLANKET}" alt="Wool blanket" width="64" height="64"' in (message.html or "")
    assert "900.00" in message.text and "1,250.00" not in message.text


def test_shopify_skip_cart_sends_nothing_for_a_cart_with_a_sold_out_item(tmp_path):
    with FakeShopify.from_checkouts(SHOPIFY_CARTS[:1], timezone="Europe/Oslo") as fake:
        connector = ShopifyConnector(
            fake.shop, fake.token, base_url=fake.base_url, check_stock=True
        )
        sent = first_pass(connector, tmp_path, FrozenClock(NOON), sold_out_items="skip_cart")
    assert sent == {}


def test_shopify_product_details_need_read_products(tmp_path):
    with FakeShopify.from_checkouts(SHOPIFY_CARTS, timezone="Europe/Oslo") as fake:
        connector = ShopifyConnector(
            fake.shop, fake.token, base_url=fake.base_url, product_details=True
        )
        with pytest.raises(ConnectorAuthError, match="read_products"):
            list(connector.abandoned_checkouts(None))
        problems = connector.check()
    assert any("read_products" in p.message and p.severity == "error" for p in problems)


def test_shopify_without_product_details_reads_no_tags(tmp_path):
    with FakeShopify.from_checkouts(SHOPIFY_CARTS, timezone="Europe/Oslo") as fake:
        connector = ShopifyConnector(fake.shop, fake.token, base_url=fake.base_url)
        by_id = {c.id: c for c in connector.abandoned_checkouts(None)}
    lines = [li for c in by_id.values() for li in c.line_items]
    assert {li.product_tags for li in lines} == {None}
    assert {li.collections for li in lines} == {None}
    assert [li.image_url for li in by_id["1"].line_items] == [BLANKET, SCARF]


def test_woocommerce_reminds_of_what_can_be_bought_with_its_picture(tmp_path):
    start = NOON
    clock = FrozenClock(start)
    with FakeWooCommerce(clock=clock, timezone="Europe/Oslo") as shop:
        shop.add_product(11, "instock", tags=["Wool"], categories=["Blankets"])
        shop.add_product(12, "outofstock", categories=["Scarves"])
        shop.add_product(13, "instock", categories=["Winter sale", "Tea & coffee"])
        shop.add_product(131, "instock", parent_id=13)
        ids = {}
        for name, lines in (
            (
                "mixed",
                [
                    {"name": "Wool blanket", "quantity": 1, "price": "900.00",
                     "product_id": 11, "image": BLANKET},
                    {"name": "Silk scarf", "quantity": 1, "price": "350.00",
                     "product_id": 12, "image": SCARF},
                ],
            ),
            (
                "sale",
                [
                    {"name": "Candle", "quantity": 1, "price": "90.00", "product_id": 13,
                     "variation_id": 131, "image": "http://shop.example/candle.jpg"},
                ],
            ),
        ):  # fmt: skip
            ids[name] = str(
                shop.add_order(
                    currency="NOK",
                    date_created_gmt=start,
                    date_modified_gmt=start + timedelta(seconds=4),
                    billing={"email": f"{name}@example.no", "country": "NO", "first_name": "Kari"},
                    meta_data=[{"key": "_optin", "value": "1"}],
                    line_items=lines,
                )["id"]
            )
        woo = stocked_woocommerce(shop, clock, product_details=True)
        by_id = {c.id: c for c in woo.abandoned_checkouts(None)}
        mixed, sale = by_id[ids["mixed"]], by_id[ids["sale"]]
        assert [li.in_stock for li in mixed.line_items] == [True, False]
        assert [li.image_url for li in mixed.line_items] == [BLANKET, SCARF]
        assert mixed.line_items[0].product_tags == ("Wool", "wool")
        # a variation has its parent's categories; names unescaped; http images dropped
        assert sale.line_items[0].collections == (
            "Winter sale",
            "winter-sale",
            "Tea & coffee",
            "tea-coffee",
        )
        assert sale.line_items[0].image_url is None
        asked = sorted(
            (r.path.rsplit("/wc/v3/", 1)[1], r.query["include"][0], r.query["_fields"][0])
            for r in shop.requests
            if "/products" in r.path
        )
        # stock, tags and categories of a page's products in one request; variations'
        # stock by parent
        assert asked == [
            ("products", "11,12,13", "id,stock_status,tags,categories"),
            ("products/13/variations", "131", "id,stock_status"),
        ]
        shop.requests.clear()
        sent = first_pass(woo, tmp_path, clock)
        # a new pass asks again (stock changes), once a page
        assert sum(1 for r in shop.requests if r.path.endswith("/wc/v3/products")) == 1
        segments = segments_of(woo)
    assert segments == {ids["mixed"]: "wool", ids["sale"]: "sale"}
    assert set(sent) == {ids["mixed"]}
    message = sent[ids["mixed"]].content
    assert "Wool blanket" in message.text
    assert "Silk scarf" not in message.text
    assert SCARF not in (message.html or "")
    assert f'<img src="{BLANKET}" alt="Wool blanket"' in (message.html or "")


def test_woocommerce_skip_cart(tmp_path):
    clock = FrozenClock(NOON)
    with FakeWooCommerce(clock=clock, timezone="Europe/Oslo") as shop:
        shop.add_product(11, "instock")
        shop.add_product(12, "outofstock")
        shop.add_order(
            currency="NOK",
            date_created_gmt=NOON,
            date_modified_gmt=NOON + timedelta(seconds=4),
            billing={"email": "kari@example.no", "country": "NO"},
            line_items=[
                {"name": "Blanket", "quantity": 1, "price": "9.00", "product_id": 11},
                {"name": "Scarf", "quantity": 1, "price": "9.00", "product_id": 12},
            ],
        )
        woo = stocked_woocommerce(shop, clock)
        dropped = first_pass(woo, tmp_path, FrozenClock(NOON))
        skipped = first_pass(woo, tmp_path, FrozenClock(NOON), sold_out_items="skip_cart")
    assert [m.content.text.count("Scarf") for m in dropped.values()] == [0]
    assert skipped == {}


def test_fake_woocommerce_products_look_like_wordpress():
    with FakeWooCommerce(clock=FrozenClock(datetime(2026, 3, 1, tzinfo=UTC))) as shop:
        shop.add_product(5, tags=["Tea & coffee"])
        shop.add_product(51, parent_id=5)
        products = shop.products
    assert products[5]["tags"][0]["name"] == "Tea &amp; coffee"
    assert products[5]["categories"][0]["slug"] == "uncategorized"
    assert "tags" not in products[51] and "categories" not in products[51]


def test_shopify_rest_cannot_read_product_details():
    with pytest.raises(ConfigError, match="product_details"):
        ShopifyConnector("x", "t", api="rest", product_details=True)


def test_woocommerce_asks_for_a_pages_products_together():
    clock = FrozenClock(NOON)
    with FakeWooCommerce(clock=clock, timezone="Europe/Oslo") as shop:
        for n in range(30):
            shop.add_product(100 + n, tags=[f"tag {n}"])
            shop.add_order(
                currency="NOK",
                date_created_gmt=NOON,
                date_modified_gmt=NOON + timedelta(seconds=n),
                billing={"email": f"buyer{n}@example.no", "country": "NO"},
                line_items=[
                    {"name": "Thing", "quantity": 1, "price": "9.00", "product_id": 100 + n},
                    {"name": "Same", "quantity": 1, "price": "9.00", "product_id": 100},
                ],
            )
        checkouts = list(
            stocked_woocommerce(shop, clock, product_details=True, per_page=20).abandoned_checkouts(
                None
            )
        )
        products = [r for r in shop.requests if r.path.endswith("/wc/v3/products")]
    assert len(checkouts) == 30
    assert {c.line_items[1].product_tags for c in checkouts} == {("tag 0", "tag-0")}
    # two pages of orders, one products request each, no product asked twice
    assert len(products) == 2
    asked = [i for r in products for i in r.query["include"][0].split(",")]
    assert sorted(asked) == sorted(str(100 + n) for n in range(30))
