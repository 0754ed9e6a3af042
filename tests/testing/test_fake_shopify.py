"""FakeShopify answers like Shopify's documentation says, whoever the client is."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests

from cartrescue.connectors.shopify_queries import (
    CHECK_QUERY,
    DISCOUNT_MUTATION,
    checkouts_query,
    node_cost,
)
from cartrescue.models import BadCheckout, Checkout, Customer, LineItem
from cartrescue_testing.fake_shopify import FakeShopify, SimulatedTime

T0 = datetime(2026, 11, 1, tzinfo=UTC)
VERSION = "2026-10"


def record(n, **extra):
    at = T0 + timedelta(hours=n)
    return {
        "id": 1000 + n,
        "created_at": at.isoformat(),
        "updated_at": (at + timedelta(minutes=5)).isoformat(),
        "abandoned_checkout_url": f"https://fake-shop.myshopify.com/c/{n}/recover?key=k",
        "currency": "USD",
        "total_price": "10.00",
        "line_items": [{"title": "Mug", "quantity": 1, "price": "10.00"}] * 2,
        "customer": {
            "id": 5,
            "first_name": "Ann",
            "email": f"ann{n}@example.com",
            "phone": "+14155552671",
            "email_marketing_consent": {"state": "subscribed"},
            "sms_marketing_consent": {"state": "unsubscribed"},
        },
        **extra,
    }


def gql(fake, query, variables=None, *, version=VERSION, token=None):
    return requests.post(
        f"{fake.base_url}/admin/api/{version}/graphql.json",
        json={"query": query, "variables": variables or {}},
        headers={"X-Shopify-Access-Token": token or fake.token},
        timeout=5,
    )


def rest(fake, params=None, *, url=None, token=None):
    return requests.get(
        url or f"{fake.base_url}/admin/api/{VERSION}/checkouts.json",
        params=params,
        headers={"X-Shopify-Access-Token": token or fake.token},
        timeout=5,
    )


def test_wrong_or_missing_token_is_401_like_shopify():
    with FakeShopify() as fake:
        for response in (gql(fake, "{ shop { name } }", token="nope"), rest(fake, token="x")):
            assert response.status_code == 401
            assert "Invalid API key or access token" in response.json()["errors"]
        assert fake.stats["unauthorized"] == 2


def test_requested_and_actual_cost_follow_shopifys_rules():
    with FakeShopify([record(n) for n in range(3)], restore_rate=100) as fake:
        answer = gql(fake, checkouts_query(VERSION, 10), {"first": 20}).json()
    cost = answer["extensions"]["cost"]
    # connection 2 + first x node, whatever comes back
    assert cost["requestedQueryCost"] == 2 + 20 * node_cost(10)
    # what came back: 3 checkouts of 1 + 2 (price) + 3 (customer, email, phone) + 2 + 2 x 3
    assert cost["actualQueryCost"] == 2 + 3 * (1 + 2 + 3 + 2 + 2 * 3)
    status = cost["throttleStatus"]
    assert status == {
        "maximumAvailable": 2000.0,
        "currentlyAvailable": 2000 - cost["actualQueryCost"],
        "restoreRate": 100.0,
    }
    assert len(answer["data"]["abandonedCheckouts"]["nodes"]) == 3


def test_a_query_the_bucket_cannot_hold_is_throttled_until_it_refills():
    time = SimulatedTime()
    query = checkouts_query(VERSION, 10)
    records = [record(n) for n in range(24)]
    with FakeShopify(records, bucket_size=1000, restore_rate=50, now=time.now) as fake:
        # 962 points requested, 2 + 24 x 14 spent: 662 are left, too few for the next page
        assert "data" in gql(fake, query, {"first": 24}).json()
        throttled = gql(fake, query, {"first": 24})
        assert throttled.status_code == 200
        body = throttled.json()
        assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
        assert body["extensions"]["cost"]["actualQueryCost"] is None
        available = body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
        time.sleep((962 - available) / 50 + 0.1)
        assert "data" in gql(fake, query, {"first": 24}).json()
        assert fake.stats["throttled"] == 1
        assert fake.failed == 1


def test_throttled_can_be_served_as_429():
    with FakeShopify([record(0)], bucket_size=100, throttled_status=429) as fake:
        response = gql(fake, checkouts_query(VERSION, 10), {"first": 5})
        assert response.status_code == 429
        assert response.json()["errors"][0]["extensions"]["code"] == "THROTTLED"


def test_unthrottled_bucket_stays_full():
    with FakeShopify([record(0)], bucket_size=1000, throttle=False) as fake:
        for _ in range(3):
            answer = gql(fake, checkouts_query(VERSION, 10), {"first": 24}).json()
        assert answer["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 1000


def test_a_query_over_the_cost_cap_is_refused():
    with FakeShopify([record(0)]) as fake:
        answer = gql(fake, checkouts_query(VERSION, 10), {"first": 250}).json()
        error = answer["errors"][0]
        assert error["extensions"] == {"code": "MAX_COST_EXCEEDED", "cost": 10002, "maxCost": 1000}
        assert "exceeds the single query max cost limit (1000)" in error["message"]
        assert fake.stats["max_cost"] == 1


def test_fields_follow_the_api_version():
    with FakeShopify([record(0)]) as fake:
        modern = gql(fake, checkouts_query("2025-04", 1), {"first": 1}, version="2025-04")
        old = gql(fake, checkouts_query("2025-04", 1), {"first": 1}, version="2025-01")
        legacy = gql(fake, checkouts_query("2025-01", 1), {"first": 1}, version="2025-01")
        before = gql(fake, checkouts_query("2025-01", 1), {"first": 1}, version="2024-07")
    assert "errors" not in modern.json()
    assert "defaultEmailAddress" in old.json()["errors"][0]["message"]
    customer = legacy.json()["data"]["abandonedCheckouts"]["nodes"][0]["customer"]
    assert customer["emailMarketingConsent"] == {"marketingState": "SUBSCRIBED"}
    assert customer["smsMarketingConsent"] == {"marketingState": "UNSUBSCRIBED"}
    assert "abandonedCheckouts" in before.json()["errors"][0]["message"]


def test_search_filter_and_cursor_pagination():
    records = [record(n) for n in range(7)] + [record(7, closed_at=T0.isoformat())]
    query = """query($after: String, $q: String) {
      abandonedCheckouts(first: 2, after: $after, query: $q) {
        nodes { id updatedAt }
        pageInfo { hasNextPage endCursor }
      }
    }"""
    since = (T0 + timedelta(hours=2, minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with FakeShopify(records) as fake:
        seen, after = [], None
        while True:
            data = gql(fake, query, {"after": after, "q": f"updated_at:>'{since}' AND status:open"})
            page = data.json()["data"]["abandonedCheckouts"]
            seen += [n["id"] for n in page["nodes"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
    assert seen == [f"gid://shopify/AbandonedCheckout/{1000 + n}" for n in range(3, 7)]


def test_rest_link_pagination_and_page_info_rules():
    with FakeShopify([record(n) for n in range(5)]) as fake:
        first = rest(fake, {"limit": 2, "updated_at_min": "2026-11-01T01:00:00Z"})
        assert [c["id"] for c in first.json()["checkouts"]] == [1001, 1002]
        assert first.headers["X-Shopify-Shop-Api-Call-Limit"] == "1/40"
        assert 'rel="previous"' not in first.headers["Link"]
        following = first.links["next"]["url"]
        assert following.startswith(fake.base_url)
        assert set(requests.utils.urlparse(following).query.split("&")[0:1]) <= {"limit=2"}

        refused = rest(fake, url=following + "&status=open")
        assert refused.status_code == 400
        assert "page_info" in refused.json()["errors"]

        second = rest(fake, url=following)
        assert [c["id"] for c in second.json()["checkouts"]] == [1003, 1004]
        assert 'rel="previous"' in second.headers["Link"]
        assert "next" not in second.links
        # REST times carry the shop's offset, like Shopify's
        assert second.json()["checkouts"][0]["created_at"] == "2026-10-31T23:00:00-04:00"


def test_rest_bucket_overflows_into_429_with_retry_after():
    time = SimulatedTime()
    with FakeShopify([record(0)], rest_bucket_size=2, rest_leak_rate=2, now=time.now) as fake:
        assert rest(fake).status_code == 200
        assert rest(fake).headers["X-Shopify-Shop-Api-Call-Limit"] == "2/2"
        full = rest(fake)
        assert full.status_code == 429
        assert float(full.headers["Retry-After"]) == pytest.approx(0.5)
        time.sleep(0.5)
        assert rest(fake).status_code == 200
        assert fake.stats["rest_429"] == 1


def test_scopes_are_enforced():
    with FakeShopify([record(0)], scopes=["read_customers"]) as fake:
        denied = gql(fake, checkouts_query(VERSION, 1), {"first": 1}).json()
        assert denied["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
        assert "read_orders" in denied["errors"][0]["message"]
        assert rest(fake).status_code == 403
    with FakeShopify([record(0)], scopes=["read_orders"]) as fake:
        partial = gql(fake, checkouts_query(VERSION, 1), {"first": 1}).json()
        assert partial["data"]["abandonedCheckouts"]["nodes"][0]["customer"] is None
        assert "read_customers" in partial["errors"][0]["message"]
        scopes = gql(fake, CHECK_QUERY).json()["data"]["currentAppInstallation"]
        assert scopes == {"accessScopes": [{"handle": "read_orders"}]}


def test_discount_codes_are_created_once():
    payload = {
        "title": "t",
        "code": "BACK10-X",
        "startsAt": "2026-11-01T00:00:00Z",
        "customerGets": {"value": {"percentage": 0.1}, "items": {"all": True}},
        "context": {"all": "ALL"},
        "usageLimit": 1,
    }
    with FakeShopify() as fake:
        created = gql(fake, DISCOUNT_MUTATION, {"input": payload}).json()
        assert created["data"]["discountCodeBasicCreate"]["userErrors"] == []
        assert created["extensions"]["cost"]["requestedQueryCost"] == 10
        again = gql(fake, DISCOUNT_MUTATION, {"input": payload}).json()
        assert again["data"]["discountCodeBasicCreate"]["userErrors"][0]["code"] == "TAKEN"
        older = gql(fake, DISCOUNT_MUTATION, {"input": payload}, version="2025-07").json()
        assert "context" in older["errors"][0]["message"]
        assert len(fake.discounts) == 1


def test_fail_next_injects_errors():
    with FakeShopify() as fake:
        fake.fail_next(503, times=2, headers={"Retry-After": "1"})
        assert gql(fake, "{ shop { name } }").status_code == 503
        assert rest(fake).status_code == 503
        assert gql(fake, "{ shop { name } }").status_code == 200
        assert fake.stats["injected"] == 2


def test_from_checkouts_serves_cartrescue_objects():
    checkout = Checkout(
        id="42",
        abandoned_at=T0,
        updated_at=T0,
        recovery_url="https://fake-shop.myshopify.com/c/42/recover?key=a",
        currency="EUR",
        total=Decimal("5.50"),
        line_items=(LineItem("Tea", 1, Decimal("5.50")),),
        customer=Customer(email="a@example.fi", phone="+358401234567", email_consent=True),
    )
    bad = BadCheckout(id="43", reason="broken", updated_at=T0)
    with FakeShopify.from_checkouts([checkout, bad]) as fake:
        items = rest(fake).json()["checkouts"]
    assert [c["id"] for c in items] == [42, 43]
    assert items[0]["billing_address"] == {"country_code": "FI"}
    assert items[0]["customer"]["email_marketing_consent"] == {"state": "subscribed"}
    assert items[1]["total_price"] == "not a number"
    assert json.dumps(items)
