"""ShopifyConnector against documented payload shapes (``responses`` at the HTTP boundary)."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import responses
from responses import matchers

from cartrescue.connectors.base import (
    Connector,
    DiscountCapable,
    PurchaseLookup,
    ShopTimezone,
    WebhookCapable,
)
from cartrescue.connectors.shopify import ShopifyConnector, discount_url
from cartrescue.doctor import SelfCheck
from cartrescue.errors import BadPayloadError, ConfigError, ConnectorAuthError, ConnectorError
from cartrescue.models import BadCheckout, Checkout, Customer, DiscountOffer, LineItem

FIXTURES = Path(__file__).parent.parent / "fixtures" / "shopify"
SHOP = "nordlys.myshopify.com"
TOKEN = "shpat_0123456789abcdef"
VERSION = "2026-10"
GRAPHQL = f"https://{SHOP}/admin/api/{VERSION}/graphql.json"
REST = f"https://{SHOP}/admin/api/{VERSION}/checkouts.json"
SINCE = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


def connector(**kw):
    sleeps = []
    kw.setdefault("sleep", sleeps.append)
    kw.setdefault("clock", lambda: datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    return ShopifyConnector(SHOP, TOKEN, **kw), sleeps


def gql_body(call):
    return json.loads(call.request.body)


def add_graphql_pages():
    responses.post(GRAPHQL, json=fixture("graphql_checkouts_page1.json"))
    responses.post(GRAPHQL, json=fixture("graphql_checkouts_page2.json"))


def add_rest_pages():
    responses.get(
        REST,
        json=fixture("rest_checkouts_page1.json"),
        headers={
            "X-Shopify-Shop-Api-Call-Limit": "1/40",
            "Link": f'<{REST}?limit=250&page_info=eyJsYXN0IjoyfQ>; rel="next"',
        },
    )
    responses.get(
        REST,
        json=fixture("rest_checkouts_page2.json"),
        headers={
            "X-Shopify-Shop-Api-Call-Limit": "2/40",
            "Link": f'<{REST}?limit=250&page_info=eyJmaXJzdCI6MX0>; rel="previous"',
        },
    )


KARI = Checkout(
    id="450789469",
    abandoned_at=datetime(2026, 11, 23, 10, 5, 27, tzinfo=UTC),
    updated_at=datetime(2026, 11, 23, 10, 15, tzinfo=UTC),
    recovery_url="https://nordlys.myshopify.com/548380009/checkouts/ac/"
    "2a1ace52255252df566af0faaedfbfa7/recover?key=fa2e4c7a6b1c&locale=nb-NO",
    currency="NOK",
    total=Decimal("379.69"),
    line_items=(
        LineItem("Wool blanket", 1, Decimal("199.00"), variant="Fjord blue", sku="WB-FJ"),
        LineItem("Beeswax candles", 2, Decimal("90.35")),
    ),
    customer=Customer(
        first_name="Kari",
        last_name="Nordmann",
        email="Kari.Nordmann@example.no",
        phone="+4791234567",
        locale="nb",
        email_consent=True,
        sms_consent=True,
        orders_count=3,
        id="207119551",
    ),
    name="#450789469",
    country="NO",
)


@responses.activate
def test_graphql_maps_every_field_and_follows_cursor_pages():
    add_graphql_pages()
    shop, _ = connector()
    items = list(shop.abandoned_checkouts(SINCE))

    assert [i.id for i in items] == [
        "450789469",
        "450789470",
        "450789471",
        "450789472",
        "450789473",
    ]
    assert items[0] == KARI
    no_customer, completed, bad_phone, bad = items[1:]
    assert no_customer.customer is None
    assert no_customer.line_items == (LineItem("Gift card", 1, Decimal("99.00")),)
    assert completed.completed_at == datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
    assert completed.customer.phone is None
    assert completed.customer.email_consent is False
    assert bad_phone.customer.phone is None
    assert bad_phone.customer.sms_consent is False
    assert len(bad_phone.problems) == 1
    assert "invalid phone number" in bad_phone.problems[0]
    assert isinstance(bad, BadCheckout)
    assert "12,50 kr" in bad.reason
    assert bad.updated_at == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)

    first, second = (gql_body(c) for c in responses.calls)
    assert first["variables"]["query"] == "updated_at:>'2026-11-23T09:00:00Z' AND status:open"
    assert first["variables"]["after"] is None
    assert second["variables"]["after"] == (
        "eyJsYXN0X2lkIjo0NTA3ODk0NzAsImxhc3RfdmFsdWUiOiI0NTA3ODk0NzAifQ=="
    )
    assert "defaultEmailAddress" in first["query"]
    for call in responses.calls:
        assert call.request.headers["X-Shopify-Access-Token"] == TOKEN


@responses.activate
def test_rest_gives_the_same_checkouts_as_graphql():
    add_graphql_pages()
    add_rest_pages()
    graphql, _ = connector()
    rest, _ = connector(api="rest")
    from_graphql = list(graphql.abandoned_checkouts(SINCE))
    from_rest = list(rest.abandoned_checkouts(SINCE))

    assert from_rest == from_graphql
    first, second = (c.request for c in responses.calls if c.request.method == "GET")
    assert "updated_at_min=2026-11-23T09%3A00%3A00Z" in first.url
    assert "limit=250" in first.url
    assert "status=open" in first.url
    # a page_info request carries only what the link gives
    assert second.url == f"{REST}?limit=250&page_info=eyJsYXN0IjoyfQ"


@responses.activate
def test_rest_without_currency_fields_uses_the_shops_currency():
    page = fixture("rest_checkouts_page1.json")
    for item in page["checkouts"]:
        item.pop("currency", None)
        item.pop("presentment_currency", None)
    responses.get(REST, json=page)
    responses.post(GRAPHQL, json=fixture("graphql_shop.json"))
    rest, _ = connector(api="rest")
    items = list(rest.abandoned_checkouts(None))
    assert [i.currency for i in items] == ["NOK", "NOK"]
    assert len([c for c in responses.calls if c.request.method == "POST"]) == 1


@pytest.mark.parametrize(
    ("email_state", "sms_state", "email_consent", "sms_consent"),
    [
        ("SUBSCRIBED", "SUBSCRIBED", True, True),
        ("NOT_SUBSCRIBED", "SUBSCRIBED", False, True),
        ("PENDING", "PENDING", False, False),
        ("UNSUBSCRIBED", "UNSUBSCRIBED", False, False),
        ("INVALID", "REDACTED", False, False),
    ],
)
@responses.activate
def test_only_subscribed_counts_as_consent(email_state, sms_state, email_consent, sms_consent):
    page = fixture("graphql_checkouts_page1.json")
    customer = page["data"]["abandonedCheckouts"]["nodes"][0]["customer"]
    customer["defaultEmailAddress"]["marketingState"] = email_state
    customer["defaultPhoneNumber"]["marketingState"] = sms_state
    page["data"]["abandonedCheckouts"]["pageInfo"]["hasNextPage"] = False
    responses.post(GRAPHQL, json=page)
    shop, _ = connector()
    first = next(iter(shop.abandoned_checkouts(None)))
    assert first.customer.email_consent is email_consent
    assert first.customer.sms_consent is sms_consent


@responses.activate
def test_versions_before_2025_04_read_the_legacy_consent_fields():
    page = fixture("graphql_checkouts_page1.json")
    page["data"]["abandonedCheckouts"]["pageInfo"]["hasNextPage"] = False
    node = page["data"]["abandonedCheckouts"]["nodes"][0]
    node["customer"] = {
        "id": "gid://shopify/Customer/207119551",
        "firstName": "Kari",
        "lastName": "Nordmann",
        "locale": "nb",
        "numberOfOrders": "3",
        "email": "Kari.Nordmann@Example.NO",
        "phone": "+4791234567",
        "emailMarketingConsent": {"marketingState": "SUBSCRIBED"},
        "smsMarketingConsent": {"marketingState": "SUBSCRIBED"},
    }
    responses.post(
        f"https://{SHOP}/admin/api/2025-01/graphql.json",
        json=page,
    )
    shop, _ = connector(api_version="2025-01")
    first = next(iter(shop.abandoned_checkouts(None)))
    assert first == KARI
    query = gql_body(responses.calls[0])["query"]
    assert "emailMarketingConsent" in query
    assert "defaultEmailAddress" not in query
    assert gql_body(responses.calls[0])["variables"]["query"] == "status:open"


@responses.activate
def test_page_size_follows_query_cost_not_the_largest_first():
    add_graphql_pages()
    shop, _ = connector()
    list(shop.abandoned_checkouts(None))
    first = gql_body(responses.calls[0])["variables"]["first"]
    # 10 line items: 10 + 3 * 10 = 40 points a checkout, plus 2 for the connection
    assert first == 24
    assert first * 40 + 2 <= 1000
    # calibrated from requestedQueryCost 962 for first=24: (962 - 2) / 24 = 40 a node
    assert gql_body(responses.calls[1])["variables"]["first"] == 24


@responses.activate
def test_fewer_line_items_make_larger_pages():
    add_graphql_pages()
    shop, _ = connector(line_items=3)
    list(shop.abandoned_checkouts(None))
    assert gql_body(responses.calls[0])["variables"]["first"] == (1000 - 2) // 19
    assert "lineItems(first: 3)" in gql_body(responses.calls[0])["query"]


@responses.activate
def test_max_cost_exceeded_shrinks_the_page_and_retries():
    responses.post(GRAPHQL, json=fixture("graphql_max_cost_exceeded.json"))
    add_graphql_pages()
    shop, _ = connector()
    items = list(shop.abandoned_checkouts(None))
    assert len(items) == 5
    sizes = [gql_body(c)["variables"]["first"] for c in responses.calls]
    # the refused query cost 2002 for 24 nodes: 83.3 a node, so 11 fit under 1000
    assert sizes[0] == 24
    assert sizes[1] == 11


@pytest.mark.parametrize("status", [200, 429])
@responses.activate
def test_throttled_then_successful_waits_the_computed_time(status):
    responses.post(GRAPHQL, json=fixture("graphql_throttled.json"), status=status)
    add_graphql_pages()
    shop, sleeps = connector()
    items = list(shop.abandoned_checkouts(None))
    assert len(items) == 5
    assert len(responses.calls) == 3
    # 962 requested, 562 available, restoring 100/s: 4 s
    assert sleeps[0] == pytest.approx(4.0, abs=0.05)
    assert shop.graphql.throttled == 1


@responses.activate
def test_pacing_waits_before_a_page_the_bucket_cannot_hold():
    page1 = fixture("graphql_checkouts_page1.json")
    page1["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] = 462
    responses.post(GRAPHQL, json=page1)
    responses.post(GRAPHQL, json=fixture("graphql_checkouts_page2.json"))
    clock = [0.0]
    shop, sleeps = connector(monotonic=lambda: clock[0])
    list(shop.abandoned_checkouts(None))
    # the next page requests 24 * 40 + 2 = 962 points (+1 of margin); 462 are there and
    # 100 come back a second
    assert sleeps == [pytest.approx(5.01)]


@responses.activate
def test_server_errors_are_retried_then_succeed():
    responses.post(GRAPHQL, status=502, body="<html>Bad Gateway</html>")
    responses.post(GRAPHQL, body=requests.ConnectionError("reset"))
    add_graphql_pages()
    shop, sleeps = connector()
    assert len(list(shop.abandoned_checkouts(None))) == 5
    assert len(responses.calls) == 4
    assert len(sleeps) == 2


@responses.activate
def test_rest_429_honours_retry_after():
    responses.get(
        REST,
        status=429,
        json={"errors": "Exceeded 2 calls per second for api client."},
        headers={"Retry-After": "2.0", "X-Shopify-Shop-Api-Call-Limit": "40/40"},
    )
    responses.get(REST, json=fixture("rest_checkouts_page2.json"))
    shop, sleeps = connector(api="rest")
    assert len(list(shop.abandoned_checkouts(None))) == 3
    assert sleeps == [2.0]


@responses.activate
def test_rest_paces_by_the_call_limit_header():
    page = fixture("rest_checkouts_page1.json")
    responses.get(
        REST,
        json=page,
        headers={
            "X-Shopify-Shop-Api-Call-Limit": "39/40",
            "Link": f'<{REST}?limit=250&page_info=abc>; rel="next"',
        },
    )
    responses.get(REST, json={"checkouts": []}, headers={"X-Shopify-Shop-Api-Call-Limit": "38/40"})
    shop, sleeps = connector(api="rest", monotonic=lambda: 0.0)
    list(shop.abandoned_checkouts(None))
    # 39 of 40 used: wait until at most 38 are, at 2 calls a second
    assert sleeps == [pytest.approx(0.5)]


@pytest.mark.parametrize("api", ["graphql", "rest"])
@responses.activate
def test_401_is_a_clear_auth_error_without_the_token(api):
    body = {"errors": f"[API] Invalid API key or access token {TOKEN}"}
    responses.post(GRAPHQL, status=401, json=body)
    responses.get(REST, status=401, json=body)
    shop, _ = connector(api=api)
    with pytest.raises(ConnectorAuthError) as info:
        list(shop.abandoned_checkouts(None))
    message = str(info.value) + (info.value.snippet or "")
    assert SHOP in message
    assert "read_orders" in message
    assert TOKEN not in message
    assert len(responses.calls) == 1


@responses.activate
def test_403_names_the_missing_scope():
    responses.get(
        REST,
        status=403,
        json={"errors": "[API] This action requires merchant approval for read_orders scope."},
    )
    shop, _ = connector(api="rest")
    with pytest.raises(ConnectorAuthError, match="read_orders"):
        list(shop.abandoned_checkouts(None))


@responses.activate
def test_access_denied_in_graphql_is_an_auth_error_naming_the_scope():
    responses.post(GRAPHQL, json=fixture("graphql_access_denied.json"))
    shop, _ = connector()
    with pytest.raises(ConnectorAuthError, match="read_orders") as info:
        list(shop.abandoned_checkouts(None))
    assert SHOP in str(info.value)


@responses.activate
def test_404_says_which_shop_and_version_to_check():
    responses.post(GRAPHQL, status=404, json={"errors": "Not Found"})
    shop, _ = connector()
    with pytest.raises(ConnectorError, match="api_version") as info:
        list(shop.abandoned_checkouts(None))
    assert info.value.status == 404
    assert SHOP in str(info.value)


@responses.activate
def test_other_graphql_errors_raise_with_the_message():
    responses.post(
        GRAPHQL,
        json={"errors": [{"message": "Field 'foo' doesn't exist on type 'Customer'"}]},
    )
    shop, _ = connector()
    with pytest.raises(ConnectorError, match="doesn't exist"):
        list(shop.abandoned_checkouts(None))


@responses.activate
def test_shop_timezone():
    responses.post(GRAPHQL, json=fixture("graphql_shop.json"))
    shop, _ = connector()
    assert shop.shop_timezone() == "Europe/Oslo"
    assert "ianaTimezone" in gql_body(responses.calls[0])["query"]


@responses.activate
def test_find_purchase_by_email_since_abandonment():
    responses.post(GRAPHQL, json=fixture("graphql_purchase_order.json"))
    shop, _ = connector()
    purchase = shop.find_purchase(KARI)
    assert purchase is not None
    assert purchase.order_id == "#1042"
    assert purchase.placed_at == datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
    assert purchase.total == Decimal("410.00")
    assert purchase.same_checkout is False
    variables = gql_body(responses.calls[0])["variables"]
    assert variables["orders"] == (
        "email:\"Kari.Nordmann@example.no\" AND created_at:>'2026-11-23T10:05:27Z'"
    )
    assert variables["checkout"] == "id:450789469"
    assert variables["abandonedCheckoutId"] == "gid://shopify/AbandonedCheckout/450789469"


@responses.activate
def test_find_purchase_same_checkout_completed():
    answer = fixture("graphql_purchase_order.json")
    answer["data"]["abandonedCheckouts"]["nodes"][0]["completedAt"] = "2026-11-23T17:00:00Z"
    responses.post(GRAPHQL, json=answer)
    shop, _ = connector()
    purchase = shop.find_purchase(KARI)
    assert purchase.same_checkout is True
    assert purchase.order_id == KARI.id
    assert purchase.placed_at == datetime(2026, 11, 23, 17, 0, tzinfo=UTC)


@responses.activate
def test_find_purchase_none_and_phone_only_contacts():
    answer = {
        "data": {
            "abandonedCheckouts": {"nodes": [{"id": "x", "completedAt": None}]},
            "abandonmentByAbandonedCheckoutId": {"customerHasNoOrderSinceAbandonment": True},
        }
    }
    responses.post(GRAPHQL, json=answer)
    shop, _ = connector()
    phone_only = Checkout(
        **{
            **{f: getattr(KARI, f) for f in KARI.__dataclass_fields__},
            "customer": Customer(phone="+4791234567", sms_consent=True),
        }
    )
    assert shop.find_purchase(phone_only) is None
    assert gql_body(responses.calls[0])["variables"]["byEmail"] is False

    answer["data"]["abandonmentByAbandonedCheckoutId"]["customerHasNoOrderSinceAbandonment"] = False
    responses.post(GRAPHQL, json=answer)
    purchase = shop.find_purchase(phone_only)
    assert purchase is not None
    assert purchase.same_checkout is False


@responses.activate
def test_create_discount_single_use_percentage_code():
    responses.post(GRAPHQL, json=fixture("graphql_discount_created.json"))
    shop, _ = connector()
    offer = DiscountOffer(Decimal("10"), 48 * 3600)
    discount = shop.create_discount(KARI, offer)

    assert discount.code.startswith("BACK10-")
    assert discount.percent == Decimal("10")
    assert discount.expires_at == datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert discount.url == f"{KARI.recovery_url}&discount={discount.code}"
    body = gql_body(responses.calls[0])
    assert "discountCodeBasicCreate" in body["query"]
    sent = body["variables"]["input"]
    assert sent["code"] == discount.code
    assert sent["usageLimit"] == 1
    assert sent["appliesOncePerCustomer"] is True
    assert sent["customerGets"] == {"value": {"percentage": 0.1}, "items": {"all": True}}
    assert sent["endsAt"] == "2026-11-26T12:00:00Z"
    assert sent["context"] == {"all": "ALL"}
    assert "customerSelection" not in sent


@responses.activate
def test_create_discount_before_2025_10_uses_customer_selection():
    responses.post(
        f"https://{SHOP}/admin/api/2025-07/graphql.json",
        json=fixture("graphql_discount_created.json"),
    )
    shop, _ = connector(api_version="2025-07")
    shop.create_discount(KARI, DiscountOffer(Decimal("15"), 3600))
    sent = gql_body(responses.calls[0])["variables"]["input"]
    assert sent["customerSelection"] == {"all": True}
    assert "context" not in sent


def discount_refused(field, code, message):
    return {
        "data": {
            "discountCodeBasicCreate": {
                "codeDiscountNode": None,
                "userErrors": [
                    {"field": ["basicCodeDiscount", field], "code": code, "message": message}
                ],
            }
        }
    }


@responses.activate
def test_create_discount_user_errors_raise_and_mutations_are_not_retried():
    responses.post(
        GRAPHQL, json=discount_refused("endsAt", "INVALID", "Ends at needs to be after starts_at")
    )
    shop, _ = connector()
    with pytest.raises(ConnectorError, match="Ends at needs to be after"):
        shop.create_discount(KARI, DiscountOffer(Decimal("10"), 60))

    responses.post(GRAPHQL, status=503)
    with pytest.raises(ConnectorError):
        shop.create_discount(KARI, DiscountOffer(Decimal("10"), 60))
    assert len(responses.calls) == 2


@responses.activate
def test_create_discount_retries_a_taken_code_with_a_new_one():
    responses.post(GRAPHQL, json=discount_refused("code", "TAKEN", "Code must be unique."))
    responses.post(GRAPHQL, json=fixture("graphql_discount_created.json"))
    shop, _ = connector()
    discount = shop.create_discount(KARI, DiscountOffer(Decimal("10"), 60))
    codes = [gql_body(c)["variables"]["input"]["code"] for c in responses.calls]
    assert codes[0] != codes[1] == discount.code


@pytest.mark.parametrize(
    ("url", "code", "expected"),
    [
        ("https://s.example/r?key=a", "BACK10-AB", "https://s.example/r?key=a&discount=BACK10-AB"),
        (
            "https://s.example/r?key=a",
            "10% OFF&x",
            "https://s.example/r?key=a&discount=10%25%20OFF%26x",
        ),
        ("https://s.example/r", "SAVE", "https://s.example/r?discount=SAVE"),
    ],
)
def test_discount_url_encodes_the_code(url, code, expected):
    assert discount_url(url, code) == expected


def test_webhook_signature_is_checked():
    body = (FIXTURES / "webhook_checkouts_create.json").read_bytes()
    secret = "whsec_test"
    good = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    shop, _ = connector(webhook_secret=secret)
    assert shop.verify_webhook({"X-Shopify-Hmac-Sha256": good}, body) is True
    assert shop.verify_webhook({"x-shopify-hmac-sha256": good}, body) is True
    assert shop.verify_webhook({"X-Shopify-Hmac-Sha256": good}, body + b" ") is False
    assert shop.verify_webhook({"X-Shopify-Hmac-Sha256": "AAAA"}, body) is False
    assert shop.verify_webhook({}, body) is False
    unconfigured, _ = connector()
    with pytest.raises(ConfigError, match="webhook_secret"):
        unconfigured.verify_webhook({"X-Shopify-Hmac-Sha256": good}, body)


def test_checkout_from_webhook_maps_the_rest_shape():
    shop, _ = connector()
    checkout = shop.checkout_from_webhook((FIXTURES / "webhook_checkouts_create.json").read_bytes())
    assert checkout.id == "981820079255243537"
    assert checkout.abandoned_at == datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    assert checkout.total == Decimal("19.99")
    assert checkout.currency == "USD"
    assert checkout.line_items == (
        LineItem("Example T-Shirt", 1, Decimal("19.99"), variant="Small", sku="example-shirt-s"),
    )
    assert checkout.customer.email == "john@example.com"
    assert checkout.customer.email_consent is True
    assert checkout.customer.sms_consent is False
    with pytest.raises(BadPayloadError):
        shop.checkout_from_webhook(b"not json")
    with pytest.raises(BadPayloadError, match="981"):
        shop.checkout_from_webhook(b'{"id": 981, "total_price": "x", "currency": "USD"}')


@responses.activate
def test_check_reports_missing_scopes_with_fixes():
    responses.post(GRAPHQL, json=fixture("graphql_check.json"))
    add_graphql_pages()
    shop, _ = connector()
    problems = shop.check()
    # read_orders granted; write_customers implies read_customers; write_discounts missing
    assert len(problems) == 1
    assert "write_discounts" in problems[0].message
    assert problems[0].severity == "warning"
    assert "write_discounts" in problems[0].fix
    assert TOKEN not in problems[0].message + problems[0].fix
    # the probe read one checkout, nothing else
    probe = gql_body(responses.calls[1])
    assert probe["variables"] == {"first": 1}


@responses.activate
def test_check_reports_missing_scopes_and_the_staff_permission():
    answer = fixture("graphql_check.json")
    answer["data"]["currentAppInstallation"]["accessScopes"] = [{"handle": "read_orders"}]
    responses.post(GRAPHQL, json=answer)
    responses.post(GRAPHQL, json=fixture("graphql_access_denied.json"))
    shop, _ = connector()
    problems = shop.check()
    messages = " | ".join(p.message for p in problems)
    assert "read_customers" in messages
    assert "write_discounts" in messages
    assert any("manage abandoned checkouts" in p.fix for p in problems)
    assert [p.severity for p in problems].count("error") == 2


@responses.activate
def test_check_reports_a_refused_token():
    responses.post(GRAPHQL, status=401, json={"errors": "[API] Invalid API key or access token"})
    shop, _ = connector()
    problems = shop.check()
    assert len(problems) == 1
    assert "refused the access token" in problems[0].message
    assert "token_env" in problems[0].fix
    assert TOKEN not in problems[0].message + problems[0].fix


def test_implements_the_protocols():
    shop, _ = connector()
    for protocol in (
        Connector,
        PurchaseLookup,
        DiscountCapable,
        ShopTimezone,
        WebhookCapable,
        SelfCheck,
    ):
        assert isinstance(shop, protocol)
    assert shop.name == "shopify"
    assert TOKEN not in repr(shop)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"shop": "nordlys.example.com"}, "shop"),
        ({"shop": "not a shop"}, "shop"),
        ({"shop": ""}, "shop"),
        ({"token": " "}, "token"),
        ({"api": "soap"}, "api"),
        ({"api_version": "2026-13"}, "api_version"),
        ({"api_version": "2024-07"}, "api_version"),
        ({"line_items": 0}, "line_items"),
        ({"line_items": 400}, "line_items"),
        ({"timeout": -1}, "timeout"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"discount_prefix": "back!"}, "discount_prefix"),
    ],
)
def test_bad_settings_name_the_key(kwargs, key):
    options = {"shop": SHOP, "token": TOKEN, **kwargs}
    with pytest.raises(ConfigError) as info:
        ShopifyConnector(**options)
    assert info.value.key == key


def test_shop_names_are_normalised_and_rest_accepts_older_versions():
    assert ShopifyConnector("Nordlys", TOKEN).shop == SHOP
    assert ShopifyConnector("https://nordlys.myshopify.com/admin", TOKEN).shop == SHOP
    assert ShopifyConnector(SHOP, TOKEN, api="rest", api_version="2024-07").api_version == "2024-07"


@responses.activate
def test_base_url_replaces_the_shop_host():
    responses.post(
        "http://proxy.internal:8080/admin/api/2026-10/graphql.json",
        json=fixture("graphql_shop.json"),
        match=[matchers.header_matcher({"X-Shopify-Access-Token": TOKEN})],
    )
    shop, _ = connector(base_url="http://proxy.internal:8080/")
    assert shop.shop_timezone() == "Europe/Oslo"


@responses.activate
def test_check_in_rest_mode_probes_checkouts_json():
    answer = fixture("graphql_check.json")
    answer["data"]["currentAppInstallation"]["accessScopes"] = [
        {"handle": "read_orders"},
        {"handle": "read_customers"},
        {"handle": "write_discounts"},
    ]
    responses.post(GRAPHQL, json=answer)
    responses.get(
        REST,
        status=403,
        json={"errors": "[API] This action requires merchant approval for read_orders scope."},
    )
    shop, _ = connector(api="rest")
    problems = shop.check()
    assert len(problems) == 1
    assert "manage abandoned checkouts" in problems[0].fix
    assert responses.calls[1].request.url == f"{REST}?limit=1"


@responses.activate
def test_a_bucket_smaller_than_one_checkout_is_a_clear_error():
    page = fixture("graphql_checkouts_page1.json")
    page["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] = 30.0
    responses.post(GRAPHQL, json=page)
    shop, _ = connector()
    with pytest.raises(ConnectorError, match="line_items"):
        list(shop.abandoned_checkouts(None))
    assert len(responses.calls) == 1


def test_injectables_must_be_functions():
    with pytest.raises(ConfigError) as info:
        ShopifyConnector(SHOP, TOKEN, sleep=1)
    assert info.value.key == "sleep"
