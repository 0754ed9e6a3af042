"""WooCommerce connector: polling, mapping, consent, authentication and errors, against
documented payload shapes served by ``responses``."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests
import responses

from cartrescue.config import load_config
from cartrescue.connectors.base import (
    Connector,
    DiscountCapable,
    PurchaseLookup,
    ShopTimezone,
    WebhookCapable,
)
from cartrescue.connectors.woocommerce import WooCommerceConnector
from cartrescue.doctor import SelfCheck
from cartrescue.errors import ConfigError, ConnectorAuthError, ConnectorError
from cartrescue.models import BadCheckout, Checkout

from .test_woocommerce_helpers import (
    KEY,
    OPTIN,
    ORDERS,
    REST,
    SECRET,
    SHOP,
    connector,
    error,
    fixture,
    order,
    params,
)

SINCE = datetime(2025, 3, 14, 8, 0, 0, 250000, tzinfo=UTC)


def page(orders: list[object], total_pages: int, status: int = 200) -> None:
    responses.get(
        ORDERS,
        json=orders,
        status=status,
        headers={"X-WP-Total": str(len(orders) * total_pages), "X-WP-TotalPages": str(total_pages)},
    )


def fetch(conn: WooCommerceConnector, since: datetime = SINCE) -> list[Checkout | BadCheckout]:
    return list(conn.abandoned_checkouts(since))


def test_implements_the_connector_protocol_and_every_capability() -> None:
    conn = connector()
    for protocol in (
        Connector,
        PurchaseLookup,
        DiscountCapable,
        ShopTimezone,
        WebhookCapable,
        SelfCheck,
    ):
        assert isinstance(conn, protocol)
    assert conn.name == "woocommerce"


@responses.activate
def test_maps_a_pending_checkout_order() -> None:
    page([order()], 1)
    [checkout] = fetch(connector())
    assert isinstance(checkout, Checkout)
    assert checkout.id == "4512"
    assert checkout.name == "#4512"
    assert checkout.abandoned_at == datetime(2025, 3, 14, 9, 2, 11, tzinfo=UTC)
    assert checkout.updated_at == datetime(2025, 3, 14, 9, 2, 15, tzinfo=UTC)
    assert checkout.recovery_url == (
        "https://shop.example/checkout/order-pay/4512/?pay_for_order=true&key=wc_order_Xk2pQ9mLr4TzA"
    )
    assert (checkout.currency, checkout.total) == ("NOK", Decimal("1538.00"))
    assert checkout.country == "NO"
    blanket, candles = checkout.line_items
    assert (blanket.title, blanket.variant, blanket.sku) == (
        "Wool blanket – Fjord blue",
        "150×200",
        "WB-FJ-150",
    )
    assert blanket.price == Decimal("1290.00")  # prices include tax: subtotal + subtotal_tax
    assert (candles.quantity, candles.price, candles.variant) == (2, Decimal("124.00"), None)
    customer = checkout.customer
    assert customer is not None
    assert (customer.first_name, customer.last_name) == ("Kari", "Nordmann")
    assert customer.email == "Kari.Nordmann@example.no"
    assert customer.phone == "+4791234567"
    assert (customer.sms_consent, customer.email_consent, customer.whatsapp_consent) == (
        True,
        False,
        False,
    )
    assert checkout.completed_at is None
    assert checkout.problems == ()


@responses.activate
def test_asks_for_unpaid_orders_modified_after_the_watermark_in_gmt_without_offset() -> None:
    page([], 0)
    oslo = SINCE.astimezone(timezone(timedelta(hours=1)))
    assert fetch(connector(), oslo) == []
    sent = params(responses.calls[0])
    assert sent["status"] == "pending,failed"
    assert sent["dates_are_gmt"] == "true"
    # floored to the second, minus one: WordPress compares ">" on whole seconds
    assert sent["modified_after"] == "2025-03-14T07:59:59"
    assert (sent["orderby"], sent["order"], sent["per_page"], sent["page"]) == (
        "modified",
        "asc",
        "100",
        "1",
    )
    assert {"id", "status", "created_via", "billing", "meta_data", "payment_url"} <= set(
        sent["_fields"].split(",")
    )


@responses.activate
def test_since_none_looks_back_thirty_days() -> None:
    page([], 0)
    now = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
    list(connector(clock=lambda: now).abandoned_checkouts(None))
    assert params(responses.calls[0])["modified_after"] == "2025-02-12T11:59:59"


@responses.activate
def test_walks_every_page_moving_the_modified_cursor() -> None:
    first = [order(1, "2025-03-14T09:00:01"), order(2, "2025-03-14T09:00:05")]
    second = [order(2, "2025-03-14T09:00:05"), order(3, "2025-03-14T09:01:00")]
    third = [order(4, "2025-03-14T09:02:00")]
    page(first, 3)
    page(second, 2)
    page(third, 1)
    got = fetch(connector(per_page=2))
    assert [c.id for c in got] == ["1", "2", "3", "4"]  # order 2, met twice, is yielded once
    sent = [params(c) for c in responses.calls]
    assert [s["modified_after"] for s in sent] == [
        "2025-03-14T07:59:59",
        "2025-03-14T09:00:04",
        "2025-03-14T09:00:59",
    ]
    assert {s["page"] for s in sent} == {"1"}
    assert {s["per_page"] for s in sent} == {"2"}


@responses.activate
def test_a_page_of_orders_changed_in_one_second_walks_on_to_page_two() -> None:
    same = [order(1, "2025-03-14T09:00:00"), order(2, "2025-03-14T09:00:00")]
    page([order(9, "2025-03-14T08:59:59"), same[0]], 2)  # last changed 09:00:00
    page(same, 2)  # every order in the cursor's second: no progress → page 2
    page([order(3, "2025-03-14T09:00:00")], 2)
    got = fetch(connector(per_page=2))
    assert [c.id for c in got] == ["9", "1", "2", "3"]
    sent = [(params(c)["modified_after"], params(c)["page"]) for c in responses.calls]
    assert sent == [
        ("2025-03-14T07:59:59", "1"),
        ("2025-03-14T08:59:59", "1"),
        ("2025-03-14T08:59:59", "2"),
    ]


@responses.activate
def test_a_shop_ignoring_modified_after_is_read_by_plain_pages_and_filtered_here(
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = order(1, "2025-01-01T00:00:00")
    page([old, order(2, "2025-03-14T09:00:00")], 2)
    page([order(3, "2025-03-14T09:30:00")], 2)
    with caplog.at_level(logging.WARNING):
        got = fetch(connector(per_page=2))
    assert [c.id for c in got] == ["2", "3"]
    assert params(responses.calls[1])["page"] == "2"
    assert "ignores orderby=modified or modified_after" in caplog.text


@responses.activate
def test_an_unknown_page_count_reads_until_a_short_page() -> None:
    responses.get(ORDERS, json=[order(1, "2025-03-14T09:00:00"), order(2, "2025-03-14T09:00:09")])
    responses.get(ORDERS, json=[order(3, "2025-03-14T09:10:00")])
    assert [c.id for c in fetch(connector(per_page=2))] == ["1", "2", "3"]
    assert len(responses.calls) == 2


@pytest.mark.parametrize(
    ("status", "link_is_pay_page", "problem"),
    [
        ("pending", True, None),
        ("failed", True, None),
        ("cancelled", False, "a cancelled order cannot be paid"),
        ("on-hold", False, "a on-hold order cannot be paid"),
        ("checkout-draft", False, "a checkout-draft order cannot be paid"),
    ],
)
@responses.activate
def test_each_status(status: str, link_is_pay_page: bool, problem: str | None) -> None:
    statuses = ["pending", "failed", "cancelled", "on-hold", "checkout-draft"]
    page([order(status=status)], 1)
    [checkout] = fetch(connector(statuses=statuses))
    assert isinstance(checkout, Checkout)
    assert params(responses.calls[0])["status"] == ",".join(statuses)
    assert ("order-pay/4512" in checkout.recovery_url) is link_is_pay_page
    if problem is None:
        assert checkout.problems == ()
    else:
        assert checkout.recovery_url == f"{SHOP}/"
        assert any(problem in p for p in checkout.problems)


@responses.activate
def test_orders_in_statuses_not_asked_for_are_left_out() -> None:
    page([order(1, status="processing"), order(2)], 1)
    assert [c.id for c in fetch(connector())] == ["2"]


@responses.activate
def test_a_pay_link_is_built_from_order_key_when_payment_url_is_absent() -> None:
    data = order()
    del data["payment_url"]
    page([data], 1)
    [checkout] = fetch(connector())
    assert checkout.recovery_url == (
        f"{SHOP}/checkout/order-pay/4512/?pay_for_order=true&key=wc_order_Xk2pQ9mLr4TzA"
    )


@pytest.mark.parametrize(
    ("created_via", "kept"),
    [("checkout", True), ("store-api", True), ("admin", False), ("rest-api", False), ("", False)],
)
@responses.activate
def test_only_shopper_checkouts_are_kept(created_via: str, kept: bool) -> None:
    page([order(created_via=created_via)], 1)
    assert len(fetch(connector())) == int(kept)


@responses.activate
def test_created_via_is_configurable() -> None:
    page([order(1, created_via="admin"), order(2, created_via="checkout")], 1)
    assert [c.id for c in fetch(connector(created_via=["admin"]))] == ["1"]


@pytest.mark.parametrize(
    ("phone", "country", "expected"),
    [
        ("912 34 567", "NO", "+4791234567"),
        ("(11) 98765-4321", "BR", "+5511987654321"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("07911 123456", "GB", "+447911123456"),
        ("030 1234567", "DE", "+49301234567"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("+33 6 12 34 56 78", "", "+33612345678"),
    ],
)
@responses.activate
def test_phone_is_normalised_with_the_billing_country(
    phone: str, country: str, expected: str
) -> None:
    page([order(billing={"phone": phone, "country": country})], 1)
    [checkout] = fetch(connector())
    assert checkout.customer is not None
    assert checkout.customer.phone == expected
    assert checkout.problems == ()


@responses.activate
def test_the_shipping_country_and_phone_stand_in_for_empty_billing_ones() -> None:
    page([order(billing={"phone": "", "country": ""}, shipping={"phone": "912 34 567"})], 1)
    [checkout] = fetch(connector())
    assert checkout.customer is not None
    assert checkout.customer.phone == "+4791234567"


@pytest.mark.parametrize(
    ("phone", "country", "says"),
    [
        ("(555) 555-5555", "US", "not a valid number in US"),
        ("12", "NO", "not a valid number in NO"),
        ("912 34 567", "", "has no country"),
    ],
)
@responses.activate
def test_an_invalid_phone_is_a_problem_not_a_failure(phone: str, country: str, says: str) -> None:
    page(
        [
            order(1, billing={"phone": phone, "country": country}, shipping={"country": ""}),
            order(2, "2025-03-14T09:03:00"),
        ],
        1,
    )
    first, second = fetch(connector())
    assert isinstance(first, Checkout)
    assert first.customer is not None
    assert first.customer.phone is None
    assert first.customer.email == "Kari.Nordmann@example.no"
    assert any(says in p for p in first.problems)
    assert phone not in " ".join(first.problems)
    assert isinstance(second, Checkout)
    assert second.problems == ()


@responses.activate
def test_missing_phone_and_email_are_none_without_problems() -> None:
    page([order(billing={"phone": "", "email": ""}, shipping={"phone": ""})], 1)
    [checkout] = fetch(connector())
    assert checkout.customer is not None
    assert (checkout.customer.phone, checkout.customer.email) == (None, None)
    assert checkout.problems == ()


@responses.activate
def test_an_invalid_email_is_a_problem() -> None:
    page([order(billing={"email": "kari.nordmann@"})], 1)
    [checkout] = fetch(connector())
    assert checkout.customer is not None
    assert checkout.customer.email is None
    assert checkout.problems == ("the billing email is not an email address",)


@pytest.mark.parametrize(
    ("value", "options", "sms"),
    [
        ("1", {}, True),
        ("yes", {}, True),
        (True, {}, True),
        ("on", {}, True),
        ("0", {}, False),
        ("", {}, False),
        (False, {}, False),
        ("no", {}, False),
        ("Yes-please", {"consent_meta_value": "yes-please"}, True),
        ("1", {"consent_meta_value": "yes-please"}, False),
        ("ja", {"consent_meta_value": {"sms": ["ja", "yes"]}}, True),
    ],
)
@responses.activate
def test_consent_from_order_meta(value: object, options: dict[str, object], sms: bool) -> None:
    page([order(meta_data=[{"id": 1, "key": OPTIN, "value": value}])], 1)
    [checkout] = fetch(connector(**options))
    assert checkout.customer is not None
    assert checkout.customer.sms_consent is sms
    assert checkout.customer.email_consent is False


@responses.activate
def test_consent_meta_for_several_channels_and_store_level_consent() -> None:
    meta = [
        {"id": 1, "key": OPTIN, "value": "0"},
        {"id": 2, "key": "whatsapp_optin", "value": "1"},
    ]
    page([order(meta_data=meta)], 1)
    conn = connector(
        consent_meta={"sms": OPTIN, "whatsapp": "whatsapp_optin"},
        consent=["email"],
    )
    [checkout] = fetch(conn)
    assert checkout.customer is not None
    assert (
        checkout.customer.sms_consent,
        checkout.customer.whatsapp_consent,
        checkout.customer.email_consent,
    ) == (False, True, True)


@responses.activate
def test_without_consent_settings_nothing_is_consented_and_the_log_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    page([order()], 1)
    with caplog.at_level(logging.WARNING):
        [checkout] = fetch(connector(consent_meta=None))
    assert checkout.customer is not None
    assert not (checkout.customer.sms_consent)
    assert not (checkout.customer.email_consent)
    assert "no consent configured: nothing will be sent" in caplog.text


@responses.activate
def test_a_bad_order_is_named_and_the_rest_goes_on() -> None:
    bad_total = order(1, "2025-03-14T09:00:01", total="12,50 kr")
    bad_date = order(2, "2025-03-14T09:00:02", date_created_gmt=None)
    bad_currency = order(3, "2025-03-14T09:00:03", currency="kroner")
    bad_items = order(4, "2025-03-14T09:00:04", line_items=[{"name": "x", "quantity": "two"}])
    page(
        [
            bad_total,
            bad_date,
            bad_currency,
            bad_items,
            "not an order",
            order(5, "2025-03-14T09:00:05"),
        ],
        1,
    )
    got = fetch(connector())
    assert [type(c).__name__ for c in got] == ["BadCheckout"] * 5 + ["Checkout"]
    reasons = {c.id: c.reason for c in got if isinstance(c, BadCheckout)}
    assert "'12,50 kr' is not a number" in reasons["1"]
    assert "not an ISO 8601 string" in reasons["2"]
    assert "ISO 4217" in reasons["3"]
    assert "'two' is not a number" in reasons["4"]
    assert reasons["?"] == "an order is not a JSON object"


@responses.activate
def test_php_notices_before_the_json_are_tolerated(caplog: pytest.LogCaptureFixture) -> None:
    import json

    notice = (
        "<br />\n<b>Deprecated</b>:  Creation of dynamic property X::$y in <b>x.php</b><br />\n"
    )
    responses.get(ORDERS, body=notice + json.dumps([order()]), headers={"X-WP-TotalPages": "1"})
    with caplog.at_level(logging.WARNING):
        assert [c.id for c in fetch(connector())] == ["4512"]
    assert "PHP notices" in caplog.text


@responses.activate
def test_a_body_that_is_not_json_is_a_connector_error() -> None:
    responses.get(ORDERS, body="<html>Maintenance</html>", status=200)
    with pytest.raises(ConnectorError, match="not JSON"):
        fetch(connector())


# -- authentication ---------------------------------------------------------------------
@responses.activate
def test_https_uses_basic_auth() -> None:
    page([], 0)
    fetch(connector())
    request = responses.calls[0].request
    expected = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    assert request.headers["Authorization"] == expected
    assert "consumer_key" not in params(responses.calls[0])


@responses.activate
def test_query_string_auth_puts_the_key_in_the_query() -> None:
    page([], 0)
    fetch(connector(query_string_auth=True))
    sent = params(responses.calls[0])
    assert (sent["consumer_key"], sent["consumer_secret"]) == (KEY, SECRET)
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_plain_http_is_signed_with_oauth1() -> None:
    responses.get("http://shop.example/wp-json/wc/v3/orders", json=[])
    conn = WooCommerceConnector("http://shop.example", KEY, SECRET, consent=["email"])
    fetch(conn)
    sent = params(responses.calls[0])
    assert sent["oauth_consumer_key"] == KEY
    assert sent["oauth_signature_method"] == "HMAC-SHA256"
    assert len(sent["oauth_nonce"]) == 32
    assert SECRET not in responses.calls[0].request.url
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_401_without_credentials_explains_query_string_auth(
    caplog: pytest.LogCaptureFixture,
) -> None:
    responses.get(ORDERS, json=error("cannot_view"), status=401)
    with caplog.at_level(logging.DEBUG), pytest.raises(ConnectorAuthError) as info:
        fetch(connector())
    message = str(info.value)
    assert info.value.status == 401
    assert "Sorry, you cannot list resources." in message
    assert "query_string_auth = true" in message
    assert "drops the Authorization header" in message
    assert len(responses.calls) == 1  # never retried
    for text in (message, info.value.snippet or "", caplog.text):
        assert SECRET not in text
        assert KEY not in text


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (error("secret_invalid"), 401, "consumer_secret does not belong to consumer_key"),
        (error("no_write"), 401, "Read/Write to create discount codes"),
        (
            {
                "code": "woocommerce_rest_authentication_error",
                "message": "Invalid nonce - nonce has already been used.",
                "data": {"status": 401},
            },
            401,
            "sent this one twice",
        ),
        (
            {
                "code": "woocommerce_rest_authentication_missing_parameter",
                "message": "Missing OAuth parameter oauth_nonce",
                "data": {"status": 401},
            },
            401,
            "cut the OAuth parameters",
        ),
        (
            {"code": "woocommerce_rest_cannot_view", "message": "Sorry", "data": {}},
            403,
            "manage_woocommerce",
        ),
    ],
)
@responses.activate
def test_other_refusals_are_explained(body: object, status: int, says: str) -> None:
    responses.get(ORDERS, json=body, status=status)
    with pytest.raises(ConnectorAuthError, match=says):
        fetch(connector())


@responses.activate
def test_query_string_auth_refused_names_the_key_not_the_header() -> None:
    responses.get(ORDERS, json=error("cannot_view"), status=401)
    with pytest.raises(ConnectorAuthError) as info:
        fetch(connector(query_string_auth=True))
    assert "consumer_key is unknown" in str(info.value)
    assert SECRET not in str(info.value)


# -- retries ----------------------------------------------------------------------------
@responses.activate
def test_5xx_then_success_is_retried_with_backoff() -> None:
    responses.get(ORDERS, status=503, body="<h1>503 Service Unavailable</h1>")
    responses.get(ORDERS, status=502, body="Bad Gateway")
    page([order()], 1)
    waits: list[float] = []
    assert [c.id for c in fetch(connector(waits))] == ["4512"]
    assert len(responses.calls) == 3
    assert len(waits) == 2
    assert all(0 < w <= 60 for w in waits)


@responses.activate
def test_429_honours_retry_after() -> None:
    responses.get(ORDERS, status=429, headers={"Retry-After": "7"})
    page([], 0)
    waits: list[float] = []
    fetch(connector(waits))
    assert waits == [7.0]


@responses.activate
def test_connection_errors_are_retried_then_raise() -> None:
    responses.get(ORDERS, body=requests.ConnectionError("refused"))
    waits: list[float] = []
    with pytest.raises(ConnectorError, match="after 3 attempt"):
        fetch(connector(waits, attempts=3))
    assert len(waits) == 2


@responses.activate
def test_400_names_the_wordpress_error() -> None:
    responses.get(ORDERS, json=error("per_page"), status=400)
    with pytest.raises(ConnectorError) as info:
        fetch(connector())
    assert "rest_invalid_param" in str(info.value)
    assert "Invalid parameter(s): per_page" in str(info.value)
    assert not isinstance(info.value, ConnectorAuthError)


# -- configuration ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"statuses": ["processing"]}, "statuses"),
        ({"statuses": []}, "statuses"),
        ({"statuses": "pending"}, None),
        ({"created_via": [1]}, "created_via"),
        ({"consent_meta": {"fax": "optin"}}, "consent_meta.fax"),
        ({"consent_meta": {"sms": ""}}, "consent_meta.sms"),
        ({"consent_meta": "optin"}, "consent_meta"),
        ({"consent_meta": None, "consent_meta_value": "1"}, "consent_meta_value"),
        ({"consent": ["pigeon"]}, "consent"),
        ({"per_page": 101}, "per_page"),
        ({"timeout": "soon"}, "timeout"),
        ({"query_string_auth": "yes"}, "query_string_auth"),
        ({"coupon_prefix": "no spaces"}, "coupon_prefix"),
        ({"base_url": "shop.example/wp-json"}, "base_url"),
        ({"attempts": 0}, "attempts"),
        ({"webhook_secret": ""}, "webhook_secret"),
    ],
)
def test_settings_are_checked_when_built(options: dict[str, object], key: str | None) -> None:
    if key is None:
        assert connector(**options).statuses == ("pending",)
        return
    with pytest.raises(ConfigError) as info:
        connector(**options)
    assert info.value.key == key


@pytest.mark.parametrize(
    ("url", "key", "secret", "bad"),
    [
        ("shop.example", KEY, SECRET, "url"),
        ("https://shop.example", "", SECRET, "consumer_key"),
        ("https://shop.example", KEY, " ", "consumer_secret"),
    ],
)
def test_address_and_key_are_required(url: str, key: str, secret: str, bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        WooCommerceConnector(url, key, secret)
    assert info.value.key == bad


CONFIG = """
[connector]
type = "woocommerce"
url = "https://shop.example/"
consumer_key_env = "WC_KEY"
consumer_secret_env = "WC_SECRET"
statuses = ["pending", "failed", "cancelled"]
consent_meta = { sms = "_wc_other/acme/sms-optin", email = "newsletter" }
consent_meta_value = { sms = "1", email = ["yes", "1"] }
timeout = [5, 20]

[channels.sms]
type = "cartrescue_testing:MemoryChannel"
"""


def test_built_from_cartrescue_toml() -> None:
    config = load_config(None, text=CONFIG, env={"WC_KEY": KEY, "WC_SECRET": SECRET})
    conn = config.connector()
    assert isinstance(conn, WooCommerceConnector)
    assert conn.url == SHOP
    assert conn.statuses == ("pending", "failed", "cancelled")
    assert conn.consent.meta == {"sms": OPTIN, "email": "newsletter"}
    assert conn.consent.values["email"] == frozenset({"yes", "1"})
    assert conn.client.http.timeout == (5.0, 20.0)


def test_a_wrong_key_in_cartrescue_toml_is_named() -> None:
    text = CONFIG.replace('email = "newsletter"', 'fax = "newsletter"')
    with pytest.raises(ConfigError, match=r"consent_meta\.fax"):
        load_config(None, text=text, env={"WC_KEY": KEY, "WC_SECRET": SECRET}).connector()


# -- the documented example order ---------------------------------------------------------
@responses.activate
def test_the_documented_order_example_maps_as_paid_with_its_problems() -> None:
    example = fixture("order_docs_example.json")
    example["created_via"] = "checkout"
    page([example], 1)
    conn = connector(statuses=["pending", "failed", "on-hold"], paid_statuses=["processing"])
    assert fetch(conn) == []  # a processing order is not among the statuses asked for
    checkout = conn.checkout_from_webhook(__import__("json").dumps(example).encode())
    assert checkout.completed_at == datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC)
    assert checkout.total == Decimal("29.35")
    assert [li.title for li in checkout.line_items][
        1
    ] == "Ship Your Idea – Color: Black, Size: M Test"
    assert checkout.line_items[0].price == Decimal("3.00")
    assert any("not a valid number in US" in p for p in checkout.problems)


@responses.activate
def test_shop_timezone_from_the_public_rest_index() -> None:
    responses.get(f"{REST}/", json=fixture("index.json"))
    conn = connector()
    assert conn.shop_timezone() == "Europe/Oslo"
    assert conn.shop_timezone() == "Europe/Oslo"
    assert len(responses.calls) == 1
    assert params(responses.calls[0])["_fields"] == "timezone_string,gmt_offset"
    assert "Authorization" not in responses.calls[0].request.headers


@pytest.mark.parametrize(
    ("index", "zone"),
    [
        ({"timezone_string": "", "gmt_offset": 2}, "Etc/GMT-2"),
        ({"timezone_string": "", "gmt_offset": "-5"}, "Etc/GMT+5"),
        ({"timezone_string": "", "gmt_offset": 0}, "UTC"),
        ({"timezone_string": "", "gmt_offset": 5.5}, None),
        ({"timezone_string": "Mars/Olympus", "gmt_offset": 0}, None),
    ],
)
@responses.activate
def test_shop_timezone_from_a_manual_offset(index: dict[str, object], zone: str | None) -> None:
    responses.get(f"{REST}/", json=index)
    assert connector().shop_timezone() == zone


@responses.activate
def test_plain_permalinks_use_rest_route() -> None:
    responses.get(f"{SHOP}/", json=[], headers={"X-WP-TotalPages": "0"})
    conn = connector(base_url=f"{SHOP}/?rest_route=")
    fetch(conn)
    assert params(responses.calls[0])["rest_route"] == "/wc/v3/orders"


def test_a_connection_error_with_query_string_auth_keeps_the_secret_out_of_tracebacks() -> None:
    import socket
    import traceback

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conn = WooCommerceConnector(
        "https://shop.example",
        KEY,
        SECRET,
        query_string_auth=True,
        base_url=f"http://127.0.0.1:{port}/wp-json",
        attempts=1,
        consent=["email"],
    )
    with pytest.raises(ConnectorError) as info:
        fetch(conn)
    assert info.value.status is None
    text = "".join(traceback.format_exception(info.value))
    assert "Connection" in text
    assert SECRET not in text
