"""A whole pass over a page mixing good and hostile checkouts, from the Shopify GraphQL API
(answered at the HTTP boundary) to the channels: every good checkout is messaged, every one
the mapper refuses is recorded as a bad payload, and the watermark moves."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from cartrescue.clock import FrozenClock
from cartrescue.connectors._woo_orders import order_ref
from cartrescue.connectors.shopify import ShopifyConnector
from cartrescue.connectors.shopify_map import from_graphql, numeric_id
from cartrescue.connectors.woocommerce import WooCommerceConnector
from cartrescue.engine import Recovery
from cartrescue.errors import BadPayloadError
from cartrescue.models import ShopInfo
from cartrescue.store import SQLiteStore
from cartrescue_testing.memory import MemoryChannel

from .properties import EXAMPLES, FUZZ, TALLY
from .strategies import FIXTURES, mutated

NOW = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)  # a Wednesday: 13:00 in Oslo
COST = json.loads((FIXTURES / "shopify" / "graphql_shop.json").read_text())["extensions"]


def good_node(n: int) -> dict[str, Any]:
    created = NOW - timedelta(minutes=70)
    return {
        "id": f"gid://shopify/AbandonedCheckout/{1000 + n}",
        "name": f"#{1000 + n}",
        "createdAt": created.isoformat().replace("+00:00", "Z"),
        "updatedAt": (created + timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
        "completedAt": None,
        "abandonedCheckoutUrl": f"https://nordlys.myshopify.com/1/checkouts/ac/{n}/recover?key=k",
        "totalPriceSet": {"presentmentMoney": {"amount": "349.00", "currencyCode": "NOK"}},
        "billingAddress": {"countryCodeV2": "NO"},
        "shippingAddress": None,
        "customer": {
            "firstName": "Kari",
            "lastName": "Nordmann",
            "locale": "nb",
            "defaultEmailAddress": {
                "emailAddress": f"kari{n}@example.no",
                "marketingState": "SUBSCRIBED",
            },
            "defaultPhoneNumber": {
                "phoneNumber": f"+47912345{n:02d}",
                "marketingState": "SUBSCRIBED",
            },
        },
        "lineItems": {
            "nodes": [
                {
                    "title": "Wool socks",
                    "variantTitle": "M",
                    "quantity": 1,
                    "sku": "WS-M",
                    "originalUnitPriceSet": {
                        "presentmentMoney": {"amount": "349.00", "currencyCode": "NOK"}
                    },
                }
            ]
        },
    }


@st.composite
def page(draw: st.DrawFn) -> list[tuple[bool, Any]]:
    """(good?, node) for up to eight checkouts, each good or mutated at least once."""
    nodes = []
    for n, bad in enumerate(draw(st.lists(st.booleans(), min_size=1, max_size=8))):
        base = st.just(good_node(n))
        nodes.append((not bad, draw(mutated(base, 3, min_mutations=1)) if bad else good_node(n)))
    return nodes


def _shopify(nodes: list[Any]) -> responses.RequestsMock:
    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        query = json.loads(request.body)["query"]
        if "query AbandonedCheckouts" in query:
            data: dict[str, Any] = {
                "abandonedCheckouts": {
                    "nodes": nodes,
                    "pageInfo": {"hasNextPage": False, "endCursor": None},
                }
            }
        elif "query Purchase" in query:
            data = {
                "abandonedCheckouts": {"nodes": []},
                "orders": {"nodes": []},
                "abandonmentByAbandonedCheckoutId": {"customerHasNoOrderSinceAbandonment": True},
            }
        else:
            data = {
                "shop": {"name": "Nordlys", "ianaTimezone": "Europe/Oslo", "currencyCode": "NOK"}
            }
        return (
            200,
            {"Content-Type": "application/json"},
            json.dumps({"data": data, "extensions": COST}),
        )

    mock = responses.RequestsMock(assert_all_requests_are_fired=False)
    mock.add_callback(
        responses.POST, re.compile(r"https://nordlys\.myshopify\.com/.*graphql\.json"), answer
    )
    return mock


@settings(FUZZ, max_examples=max(25, EXAMPLES // 5))
@given(page())
def test_a_pass_messages_every_good_checkout_and_records_every_bad_one(
    items: list[tuple[bool, Any]],
) -> None:
    TALLY["whole pass (checkouts)"] += len(items)
    nodes = [node for _, node in items]
    refused: set[str] = set()
    mapped: set[str] = set()  # an item refused and then met again in good shape is not bad
    for position, node in enumerate(nodes):
        if not isinstance(node, dict):
            refused.add(f"#{position}")
            continue
        try:
            mapped.add(from_graphql(node).id)
        except BadPayloadError:
            refused.add(numeric_id(node.get("id")) or f"#{position}")
    sms, email = MemoryChannel("sms"), MemoryChannel("email")
    with SQLiteStore(":memory:") as store, _shopify(nodes):
        connector = ShopifyConnector("nordlys.myshopify.com", "shpat_x", sleep=lambda _: None)
        recovery = Recovery(
            connector,
            [sms, email],
            store,
            clock=FrozenClock(NOW),
            shop=ShopInfo(name="Nordlys", locale="nb", timezone="Europe/Oslo"),
        )
        report = recovery.run()
        assert report.error is None, report.error
        assert store.watermark(connector.name) == NOW
        messaged = {m.checkout_id for m in sms.sent + email.sent}
        for good, node in items:
            if good:
                assert numeric_id(node["id"]) in messaged, report.failures
        assert refused - mapped <= {bad_id for bad_id, _ in store.bad_checkouts()}


def good_order(n: int) -> dict[str, Any]:
    created = (NOW - timedelta(minutes=70)).replace(tzinfo=None)
    return {
        "id": 4000 + n,
        "number": str(4000 + n),
        "order_key": f"wc_order_{n}",
        "created_via": "checkout",
        "status": "pending",
        "currency": "NOK",
        "customer_id": 0,
        "date_created_gmt": created.isoformat(),
        "date_modified": (created + timedelta(hours=1, minutes=1)).isoformat(),
        "date_modified_gmt": (created + timedelta(minutes=1)).isoformat(),
        "date_paid_gmt": None,
        "date_completed_gmt": None,
        "total": "349.00",
        "prices_include_tax": True,
        "billing": {
            "first_name": "Kari",
            "last_name": "Nordmann",
            "country": "NO",
            "email": f"kari{n}@example.no",
            "phone": f"912345{n:02d}",
        },
        "shipping": {"country": "NO"},
        "meta_data": [],
        "line_items": [{"name": "Wool socks", "quantity": 1, "subtotal": "349.00"}],
        "payment_url": f"https://shop.example/checkout/order-pay/{4000 + n}/?key=k",
    }


def _hashable_id(order: Any) -> bool:
    return not isinstance(order, dict) or not isinstance(order.get("id"), list | dict)


@st.composite
def orders(draw: st.DrawFn) -> list[tuple[bool, Any]]:
    found = []
    for n, bad in enumerate(draw(st.lists(st.booleans(), min_size=1, max_size=8))):
        base = st.just(good_order(n))
        # An id that is a list or an object is left to the test below (the order walk).
        hostile = mutated(base, 3, min_mutations=1).filter(_hashable_id)
        found.append((not bad, draw(hostile) if bad else good_order(n)))
    return found


def _woocommerce(found: list[Any]) -> responses.RequestsMock:
    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        path = request.path_url.split("?", 1)[0]
        headers = {"Content-Type": "application/json", "X-WP-TotalPages": "1"}
        one = re.fullmatch(r"/wp-json/wc/v3/orders/(\d+)", path)
        if one:
            wanted = int(one.group(1))
            for order in found:
                if isinstance(order, dict) and order.get("id") == wanted:
                    return 200, headers, json.dumps(order)
            return 404, headers, json.dumps({"code": "woocommerce_rest_shop_order_invalid_id"})
        if path == "/wp-json/wc/v3/orders":
            wanted_all = "search=" not in request.url and "customer=" not in request.url
            return 200, headers, json.dumps(found if wanted_all else [])
        return 200, headers, json.dumps({"timezone_string": "Europe/Oslo", "gmt_offset": 1})

    mock = responses.RequestsMock(assert_all_requests_are_fired=False)
    mock.add_callback(responses.GET, re.compile(r"https://shop\.example/.*"), answer)
    return mock


@settings(FUZZ, max_examples=max(25, EXAMPLES // 5))
@given(orders())
def test_a_woocommerce_pass_messages_every_good_order_and_records_every_bad_one(
    items: list[tuple[bool, Any]],
) -> None:
    TALLY["whole pass (orders)"] += len(items)
    found = [order for _, order in items]
    sms, email = MemoryChannel("sms"), MemoryChannel("email")
    with SQLiteStore(":memory:") as store, _woocommerce(found):
        connector = WooCommerceConnector(
            "https://shop.example", "ck_x", "cs_x", consent=["sms", "email"], sleep=lambda _: None
        )
        mapper = connector.mapper
        refused: set[str] = set()
        mapped: set[str] = set()
        for order in found:
            if isinstance(order, dict) and (
                order.get("status") not in connector.statuses
                or mapper.skip_reason(order) is not None
            ):
                continue  # not an abandoned shopper checkout: skipped, rightly
            try:
                mapped.add(mapper.checkout(order).id)
            except BadPayloadError:
                refused.add(order_ref(order))
        recovery = Recovery(
            connector,
            [sms, email],
            store,
            clock=FrozenClock(NOW),
            shop=ShopInfo(name="Nordlys", locale="nb", timezone="Europe/Oslo"),
        )
        report = recovery.run()
        assert report.error is None, report.error
        assert store.watermark(connector.name) == NOW
        messaged = {m.checkout_id for m in sms.sent + email.sent}
        for good, order in items:
            if good:
                assert str(order["id"]) in messaged, report.failures
        assert refused - mapped <= {bad_id for bad_id, _ in store.bad_checkouts()}


def test_a_woocommerce_order_whose_id_is_a_list_does_not_end_the_pass() -> None:
    bad = dict(good_order(1), id=[4001])
    found = [good_order(0), bad]
    sms = MemoryChannel("sms")
    with SQLiteStore(":memory:") as store, _woocommerce(found):
        connector = WooCommerceConnector(
            "https://shop.example", "ck_x", "cs_x", consent=["sms"], sleep=lambda _: None
        )
        report = Recovery(connector, [sms], store, clock=FrozenClock(NOW)).run()
        assert report.error is None
        assert [m.checkout_id for m in sms.sent] == ["4000"]
        assert store.watermark(connector.name) == NOW
