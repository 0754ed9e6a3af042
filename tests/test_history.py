"""Customer history and RFM segments against both platforms' fakes: a returning big spender
lands in the champions segment and gets its schedule; each person is looked up once a pass;
a failed lookup leaves the person's group unknown and the pass goes on."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests

from cartrescue.clock import FrozenClock
from cartrescue.config import load_config
from cartrescue.connectors.base import CustomerHistoryLookup
from cartrescue.connectors.shopify import ShopifyConnector
from cartrescue.connectors.shopify_queries import HISTORY_QUERY, history_cost
from cartrescue.connectors.woocommerce import WooCommerceConnector
from cartrescue.engine import Recovery
from cartrescue.errors import ConnectorError
from cartrescue.models import CustomerHistory, LineItem
from cartrescue.store.sqlite import SQLiteStore
from cartrescue_testing.fake_shopify import FakeShopify
from cartrescue_testing.fake_woocommerce import FakeWooCommerce
from cartrescue_testing.memory import MemoryChannel

from .conftest import NOON, make_checkout
from .test_segments_end_to_end import run_schedule as segment_schedule

CONFIG = """
[rfm]
orders = [2, 3]

[[segments]]
name = "vip"
rfm = ["champions"]
[[segments.steps]]
delay = "1h"
channels = ["email"]
"""
# everyone else: the [policy] default, 1h, 24h, 48h

POLICY = load_config(None, text=CONFIG, env={}).policy


def run_schedule(connector, store_path, clock):
    return segment_schedule(connector, store_path, clock, POLICY, passes=(1, 24, 48))


def cart(id, customer_id=None, orders=None, spent=None, days=None, email=None):
    base = make_checkout(id, email=email or f"buyer{id}@example.no", phone=None, sms_consent=False)
    assert base.customer is not None
    return replace(
        base,
        line_items=(LineItem("Wool blanket", 1, Decimal("499.00")),),
        customer=replace(
            base.customer,
            id=customer_id,
            orders_count=orders,
            amount_spent=None if spent is None else Decimal(spent),
            last_order_at=None if days is None else NOON - timedelta(days=days),
        ),
    )


def counting_session(log: list[list[str]]) -> requests.Session:
    session = requests.Session()

    def hook(response, *args, **kwargs):
        body = json.loads(response.request.body or b"{}")
        if body.get("query") == HISTORY_QUERY:
            log.append(body["variables"]["ids"])
            cost = response.json()["extensions"]["cost"]
            assert cost["requestedQueryCost"] == history_cost(len(body["variables"]["ids"]))

    session.hooks["response"].append(hook)
    return session


def test_shopify_champions_get_their_schedule_and_each_customer_is_asked_once_a_pass(tmp_path):
    carts = [
        cart("1", "101", orders=7, spent="2500.00", days=5),  # a returning big spender
        cart("4", "101", orders=7, spent="2500.00", days=5),  # the same person again
        cart("2", "102", orders=0),  # new
        cart("3", "103", orders=7, spent="2500.00", days=400),  # at risk
    ]
    asked: list[list[str]] = []
    with FakeShopify.from_checkouts(carts, timezone="Europe/Oslo") as fake:
        connector = ShopifyConnector(
            fake.shop, fake.token, base_url=fake.base_url, session=counting_session(asked)
        )
        assert isinstance(connector, CustomerHistoryLookup)
        # the listing carries the order count only; the rest comes from the history query
        listed = list(connector.abandoned_checkouts(None))
        assert {c.customer.amount_spent for c in listed} == {None}
        asked.clear()
        steps = run_schedule(connector, tmp_path / "s.sqlite3", FrozenClock(NOON))
        assert fake.failed == 0
    assert steps == {"1": [1], "4": [1], "2": [1, 2, 3], "3": [1, 2, 3]}
    # one query a pass, each customer once in it, nothing carried over between passes; the
    # champions' checkouts are closed after their one step, so the last pass skips them
    everyone = [f"gid://shopify/Customer/{n}" for n in (101, 102, 103)]
    assert [sorted(ids) for ids in asked] == [everyone, everyone, everyone[1:]]


def test_the_shopify_history_of_one_page_of_customers():
    carts = [
        cart("1", "101", orders=7, spent="2500.00", days=5),
        cart("2", "102", orders=0),
        cart("3", None),  # no account (the fake gives it one) …
        replace(make_checkout("5"), customer=None),  # … and no customer at all
    ]
    with FakeShopify.from_checkouts(carts, throttle=False) as fake:
        connector = ShopifyConnector(fake.shop, fake.token, base_url=fake.base_url)
        listed = list(connector.abandoned_checkouts(None))
        gone = replace(carts[0], id="9", customer=replace(carts[0].customer, id="999"))
        found = connector.customer_histories([*listed, gone])
    assert found["1"] == CustomerHistory(7, Decimal("2500.00"), NOON - timedelta(days=5))
    assert found["2"] == CustomerHistory(0, Decimal("0.00"), None)
    assert found["3"] == CustomerHistory(0, Decimal("0.00"), None)
    assert found["5"] is None
    assert isinstance(found["9"], ConnectorError)
    assert "no customer 999" in str(found["9"])


def shopify_query(fake, ids, query=HISTORY_QUERY):
    return fake.graphql("2026-10", {"query": query, "variables": {"ids": ids}})


def test_the_shopify_fake_prices_nodes_per_id_and_refuses_what_shopify_refuses():
    carts = [cart(str(n), str(100 + n), orders=2, spent="50.00", days=3) for n in range(1, 4)]
    fake = FakeShopify.from_checkouts(carts, throttle=False)
    ids = [f"gid://shopify/Customer/{100 + n}" for n in range(1, 4)]
    status, body = shopify_query(fake, [*ids, "gid://shopify/Customer/1"])
    assert status == 200
    nodes = body["data"]["nodes"]
    assert nodes[3] is None  # no such customer
    assert nodes[0] == {
        "id": "gid://shopify/Customer/101",
        "numberOfOrders": "2",
        "amountSpent": {"amount": "50.00", "currencyCode": "USD"},
        "lastOrder": {"createdAt": "2026-03-08T12:00:00Z"},
    }
    cost = body["extensions"]["cost"]
    # the interface costs its dearest selection (customer, amountSpent, lastOrder) per id
    assert cost["requestedQueryCost"] == 3 * 4
    assert cost["actualQueryCost"] == 3 * 3  # the null costs nothing

    _, body = shopify_query(fake, ids * 84)  # 252 ids
    assert body["errors"][0]["extensions"]["code"] == "MAX_INPUT_SIZE_EXCEEDED"
    assert "data" not in body
    _, body = shopify_query(fake, ["101"])
    assert body["errors"][0]["message"] == "Invalid global id '101'"

    no_customers = FakeShopify.from_checkouts(carts, throttle=False, scopes=["read_orders"])
    _, body = shopify_query(no_customers, ids[:1])
    assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
    assert body["errors"][0]["extensions"]["requiredAccess"] == "`read_customers` access scope."
    no_orders = FakeShopify.from_checkouts(carts, throttle=False, scopes=["read_customers"])
    _, body = shopify_query(no_orders, ids[:1])
    assert body["data"]["nodes"][0]["lastOrder"] is None
    assert body["errors"][0]["path"] == ["nodes", 0, "lastOrder"]


def test_woocommerce_champions_by_account_and_guests_by_exact_billing_email(tmp_path):
    start = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
    clock = FrozenClock(start)
    with FakeWooCommerce(clock=clock, timezone="Europe/Oslo") as shop:

        def order(email, *, status="pending", customer_id=0, total="499.00", days=0):
            at = start - timedelta(days=days)
            return str(
                shop.add_order(
                    status=status,
                    customer_id=customer_id,
                    currency="NOK",
                    total=total,
                    date_created_gmt=at,
                    date_modified_gmt=at + timedelta(seconds=4),
                    date_paid_gmt=at if status != "pending" else None,
                    billing={"email": email, "country": "NO"},
                    line_items=[{"name": "Wool blanket", "quantity": 1, "price": total}],
                )["id"]
            )

        for days, total in ((3, "800.00"), (40, "700.00"), (100, "600.00")):
            order("kari@example.no", status="completed", customer_id=7, total=total, days=days)
        order("other@example.no", status="processing", customer_id=8, total="900.00", days=2)
        order("b@example.no", status="completed", total="50.00", days=400)
        for days in (2, 3, 4):  # a different person whose address contains b@example.no
            order("bob@example.no", status="completed", total="900.00", days=days)
        order("kari@example.no", status="cancelled", customer_id=7, total="999.00", days=1)
        champion = order("kari@example.no", customer_id=7)
        guest = order("b@example.no")
        new = order("new@example.no")
        connector = WooCommerceConnector(
            shop.base_url, shop.consumer_key, shop.consumer_secret, consent=["email"], clock=clock
        )
        listed = {c.id: c for c in connector.abandoned_checkouts(None)}
        found = connector.customer_histories(list(listed.values()))
        steps = run_schedule(connector, tmp_path / "w.sqlite3", clock)
        searches = [
            (str(r.query.get("customer")), str(r.query.get("search")))
            for r in shop.requests
            if r.path.endswith("/wc/v3/orders") and ("customer" in r.query or "search" in r.query)
        ]
    assert listed[champion].customer.id == "7"
    assert listed[guest].customer.id is None
    assert found[champion] == CustomerHistory(
        3, Decimal("2100.00"), start - timedelta(days=3)
    )  # paid orders only: the cancelled one does not count
    assert found[guest] == CustomerHistory(1, Decimal("50.00"), start - timedelta(days=400))
    assert found[new] == CustomerHistory(0, Decimal(0), None)
    assert steps == {champion: [1], guest: [1, 2, 3], new: [1, 2, 3]}
    # one search per open checkout's person a pass: the direct call, then 3 passes (the
    # champion's checkout is closed after its one step)
    assert len(searches) == 3 + 3 + 3 + 2
    assert sorted(set(searches)) == [
        ("None", "['b@example.no']"),
        ("None", "['new@example.no']"),
        ("['7']", "None"),
    ]


class HalfBrokenShop:
    """A connector whose history lookup fails for one person (as a platform might)."""

    name = "half-broken"

    def __init__(self, checkouts):
        self.checkouts = checkouts
        self.asked: list[list[str]] = []

    def abandoned_checkouts(self, since):
        return iter(self.checkouts)

    def customer_histories(self, checkouts):
        self.asked.append([c.id for c in checkouts])
        return {
            c.id: ConnectorError("the shop timed out")
            if c.id == "1"
            else CustomerHistory(9, Decimal("9000"), NOON - timedelta(days=1))
            for c in checkouts
        }


def test_a_failed_lookup_leaves_the_group_unknown_and_the_pass_goes_on(tmp_path, caplog):
    shop = HalfBrokenShop([cart("1", "101"), cart("2", "102")])
    steps = run_schedule(shop, tmp_path / "b.sqlite3", FrozenClock(NOON))
    assert steps == {"1": [1, 2, 3], "2": [1]}
    assert shop.asked == [["1", "2"], ["1", "2"], ["1"]]  # 2 is done after its one step
    assert "checkout=1 customer history unknown: the shop timed out" in caplog.text


def test_no_history_is_fetched_when_no_segment_needs_it(tmp_path):
    shop = HalfBrokenShop([cart("1", "101")])
    with SQLiteStore(tmp_path / "n.sqlite3") as store:
        recovery = Recovery(shop, [MemoryChannel("email")], store, clock=FrozenClock(NOON))
        assert recovery.run().ok
        assert recovery.histories is None
    assert shop.asked == []


@pytest.mark.parametrize("broken", [RuntimeError("bug"), ConnectorError("down")])
def test_a_lookup_that_raises_is_logged_and_the_pass_goes_on(tmp_path, broken):
    class Raising(HalfBrokenShop):
        def customer_histories(self, checkouts):
            raise broken

    shop = Raising([cart("1", "101")])
    steps = run_schedule(shop, tmp_path / "r.sqlite3", FrozenClock(NOON))
    assert steps == {"1": [1, 2, 3]}


def test_explain_reads_the_buyers_history_and_shows_the_group(tmp_path):
    from cartrescue.explain import explain, format_explanation

    carts = [cart("1", "101", orders=7, spent="2500.00", days=5)]
    clock = FrozenClock(NOON)
    with FakeShopify.from_checkouts(carts, throttle=False, currency="NOK") as fake:
        connector = ShopifyConnector(fake.shop, fake.token, base_url=fake.base_url)
        with SQLiteStore(tmp_path / "e.sqlite3") as store:
            store.start_at(NOON - timedelta(days=1))
            Recovery(connector, [MemoryChannel("email")], store, policy=POLICY, clock=clock).run()
            found = explain("1", store, POLICY, ["email"], NOON, connector=connector)
            without = explain("1", store, POLICY, ["email"], NOON)
    text = format_explanation(found)
    assert (
        "  customer history: 7 order(s), spent NOK 2500.00, last 2026-03-06, "
        "RFM group champions\n" in text
    )
    assert "  segment: vip\n" in text
    assert without.segment == "default"
    assert without.segment_trail == (("vip", "unknown RFM group (no customer history)"),)
    assert without.history is not None and without.history.startswith("unknown")
