"""The fake WooCommerce answers as WordPress and WooCommerce do (status codes, bodies, headers,
limits, quirks), checked with plain HTTP requests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
import requests

from cartrescue.clock import FrozenClock
from cartrescue.models import Checkout, Customer, LineItem
from cartrescue_testing.fake_woocommerce import FakeWooCommerce

T0 = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def shop() -> Iterator[FakeWooCommerce]:
    with FakeWooCommerce(clock=FrozenClock(T0), timezone="Europe/Oslo", is_ssl=True) as fake:
        yield fake


def get(shop: FakeWooCommerce, route: str, auth: bool = True, **params: Any) -> requests.Response:
    credentials = (shop.consumer_key, shop.consumer_secret) if auth else None
    return requests.get(f"{shop.rest_url}{route}", params=params, auth=credentials, timeout=10)


def seed(shop: FakeWooCommerce, n: int = 5, **fields: Any) -> list[int]:
    return [
        shop.add_order(date_created_gmt=T0 - timedelta(hours=n - i), **fields)["id"]
        for i in range(n)
    ]


def test_orders_have_the_rest_api_shape(shop: FakeWooCommerce) -> None:
    shop.add_order(
        line_items=[{"name": "Mug", "quantity": 3, "price": "10.00"}],
        billing={"email": "kari@example.no"},
        date_created_gmt=T0,
    )
    response = get(shop, "/wc/v3/orders")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert "\\/checkout\\/order-pay\\/" in response.text  # wp_json_encode escapes slashes
    [order] = response.json()
    assert order["total"] == "30.00"
    assert order["date_created_gmt"] == "2025-03-14T12:00:00"
    assert order["date_created"] == "2025-03-14T13:00:00"  # Oslo, no offset
    assert order["line_items"][0]["price"] == 10  # a number, as WooCommerce computes it
    assert order["line_items"][0]["subtotal"] == "30.00"
    assert set(order["billing"]) >= {"first_name", "email", "phone", "country"}
    assert order["payment_url"].endswith(
        f"/checkout/order-pay/{order['id']}/?pay_for_order=true&key={order['order_key']}"
    )
    assert order["date_paid_gmt"] is None


def test_per_page_above_100_is_refused_like_wordpress(shop: FakeWooCommerce) -> None:
    response = get(shop, "/wc/v3/orders", per_page=101)
    assert response.status_code == 400
    assert response.json() == {
        "code": "rest_invalid_param",
        "message": "Invalid parameter(s): per_page",
        "data": {
            "status": 400,
            "params": {"per_page": "per_page must be between 1 (inclusive) and 100 (inclusive)"},
            "details": {
                "per_page": {
                    "code": "rest_out_of_bounds",
                    "message": "per_page must be between 1 (inclusive) and 100 (inclusive)",
                    "data": None,
                }
            },
        },
    }


def test_parameters_are_checked_before_permissions(shop: FakeWooCommerce) -> None:
    assert get(shop, "/wc/v3/orders", auth=False, per_page=0).status_code == 400
    assert get(shop, "/wc/v3/orders", auth=False).status_code == 401


@pytest.mark.parametrize(
    ("params", "bad"),
    [
        ({"status": "paid"}, "status"),
        ({"orderby": "total"}, "orderby"),
        ({"modified_after": "yesterday"}, "modified_after"),
        ({"dates_are_gmt": "maybe"}, "dates_are_gmt"),
        ({"page": "two"}, "page"),
    ],
)
def test_invalid_parameters(shop: FakeWooCommerce, params: dict[str, str], bad: str) -> None:
    response = get(shop, "/wc/v3/orders", **params)
    assert response.status_code == 400
    assert response.json()["message"] == f"Invalid parameter(s): {bad}"


def test_pages_headers_and_a_page_past_the_end(shop: FakeWooCommerce) -> None:
    ids = seed(shop, 25)
    first = get(shop, "/wc/v3/orders", per_page=10, orderby="id", order="asc")
    assert (first.headers["X-WP-Total"], first.headers["X-WP-TotalPages"]) == ("25", "3")
    assert [o["id"] for o in first.json()] == ids[:10]
    assert 'rel="next"' in first.headers["Link"]
    assert "page=2" in first.headers["Link"]
    last = get(shop, "/wc/v3/orders", per_page=10, page=3)
    assert len(last.json()) == 5
    past = get(shop, "/wc/v3/orders", per_page=10, page=9)
    assert past.status_code == 200
    assert past.json() == []
    assert past.headers["X-WP-TotalPages"] == "3"
    assert 'rel="prev"' in past.headers["Link"]
    assert "page=3" in past.headers["Link"]


def test_default_is_ten_newest_first(shop: FakeWooCommerce) -> None:
    ids = seed(shop, 12)
    assert [o["id"] for o in get(shop, "/wc/v3/orders").json()] == ids[::-1][:10]


def test_status_as_comma_list_array_and_any(shop: FakeWooCommerce) -> None:
    pending = seed(shop, 2)
    failed = seed(shop, 1, status="failed")
    seed(shop, 1, status="processing")
    draft = seed(shop, 1, status="checkout-draft")

    def ids(**params: Any) -> set[int]:
        return {o["id"] for o in get(shop, "/wc/v3/orders", **params).json()}

    assert ids(status="pending,failed") == set(pending + failed)
    assert ids(**{"status[]": ["pending", "failed"]}) == set(pending + failed)
    assert ids(status=["pending", "failed"]) == set(failed)  # PHP keeps the last plain name
    assert not set(draft) & ids(status="any")
    assert ids(status="checkout-draft") == set(draft)


def test_modified_after_with_dates_are_gmt(shop: FakeWooCommerce) -> None:
    old = shop.add_order(date_created_gmt=T0 - timedelta(hours=3))["id"]
    new = shop.add_order(date_created_gmt=T0 - timedelta(hours=1))["id"]

    def ids(**params: Any) -> list[int]:
        return [o["id"] for o in get(shop, "/wc/v3/orders", **params).json()]

    assert ids(modified_after="2025-03-14T10:00:00", dates_are_gmt="true") == [new]
    # strictly after, to the second
    assert ids(modified_after="2025-03-14T11:00:00", dates_are_gmt="true") == []
    assert ids(modified_after="2025-03-14T10:59:59", dates_are_gmt="true") == [new]
    # without dates_are_gmt the value is read as Oslo time (UTC+1)
    assert ids(modified_after="2025-03-14T10:30:00") == [new]
    assert ids(modified_after="2025-03-14T09:30:00") == [new, old]
    # a value with an offset is converted to the site's zone, then compared with the GMT
    # column: "08:30Z" becomes 09:30 and the order changed at 09:00 GMT is lost
    assert ids(modified_after="2025-03-14T08:30:00", dates_are_gmt="true") == [new, old]
    assert ids(modified_after="2025-03-14T08:30:00Z", dates_are_gmt="true") == [new]


def test_orderby_modified_sorts_on_the_local_column_with_id_tiebreak(shop: FakeWooCommerce) -> None:
    a = shop.add_order(date_created_gmt=T0)["id"]
    b = shop.add_order(date_created_gmt=T0 - timedelta(hours=1))["id"]
    c = shop.add_order(date_created_gmt=T0)["id"]
    shop.update_order(b, customer_note="changed")  # modified now: T0
    got = [o["id"] for o in get(shop, "/wc/v3/orders", orderby="modified", order="asc").json()]
    assert got == [a, b, c]


def test_search_include_exclude_offset_and_fields(shop: FakeWooCommerce) -> None:
    ids = seed(shop, 6)
    shop.update_order(ids[2], billing={"email": "Joanne@Example.com"})
    assert [o["id"] for o in get(shop, "/wc/v3/orders", search="anne@example").json()] == [ids[2]]
    got = get(shop, "/wc/v3/orders", include=f"{ids[0]},{ids[1]},{ids[4]}", exclude=str(ids[1]))
    assert {o["id"] for o in got.json()} == {ids[0], ids[4]}
    got = get(shop, "/wc/v3/orders", orderby="id", order="asc", per_page=2, offset=3)
    assert [o["id"] for o in got.json()] == ids[3:5]
    [slim] = get(
        shop, "/wc/v3/orders", include=str(ids[0]), _fields="id,status,billing.email"
    ).json()
    assert slim == {"id": ids[0], "status": "pending", "billing": {"email": ""}}


def test_one_order_and_an_unknown_one(shop: FakeWooCommerce) -> None:
    [order_id] = seed(shop, 1)
    assert get(shop, f"/wc/v3/orders/{order_id}").json()["id"] == order_id
    missing = get(shop, "/wc/v3/orders/999999")
    assert missing.status_code == 404
    assert missing.json()["code"] == "woocommerce_rest_shop_order_invalid_id"
    assert get(shop, "/wc/v3/nothing").json()["code"] == "rest_no_route"


# -- authentication ---------------------------------------------------------------------
def test_no_credentials_is_the_endpoints_refusal(shop: FakeWooCommerce) -> None:
    response = get(shop, "/wc/v3/orders", auth=False)
    assert response.status_code == 401
    assert response.json() == {
        "code": "woocommerce_rest_cannot_view",
        "message": "Sorry, you cannot list resources.",
        "data": {"status": 401},
    }


def test_wrong_secret_and_unknown_key(shop: FakeWooCommerce) -> None:
    wrong = requests.get(
        f"{shop.rest_url}/wc/v3/orders", auth=(shop.consumer_key, "cs_no"), timeout=10
    )
    assert (wrong.status_code, wrong.json()["message"]) == (401, "Consumer secret is invalid.")
    unknown = requests.get(f"{shop.rest_url}/wc/v3/orders", auth=("ck_no", "cs_no"), timeout=10)
    assert unknown.json()["code"] == "woocommerce_rest_cannot_view"


def test_query_string_credentials(shop: FakeWooCommerce) -> None:
    keys = {"consumer_key": shop.consumer_key, "consumer_secret": shop.consumer_secret}
    assert get(shop, "/wc/v3/orders", auth=False, **keys).status_code == 200


def test_a_server_that_drops_the_authorization_header() -> None:
    with FakeWooCommerce(is_ssl=True, drops_authorization=True) as shop:
        assert get(shop, "/wc/v3/orders").status_code == 401
        keys = {"consumer_key": shop.consumer_key, "consumer_secret": shop.consumer_secret}
        assert get(shop, "/wc/v3/orders", auth=False, **keys).status_code == 200


def test_basic_auth_over_plain_http_is_ignored() -> None:
    with FakeWooCommerce() as shop:
        response = get(shop, "/wc/v3/orders")
        assert response.json()["code"] == "woocommerce_rest_cannot_view"


def test_key_permissions() -> None:
    with FakeWooCommerce(is_ssl=True, permissions="read") as shop:
        assert get(shop, "/wc/v3/orders").status_code == 200
        response = requests.post(
            f"{shop.rest_url}/wc/v3/coupons",
            json={"code": "x"},
            auth=(shop.consumer_key, shop.consumer_secret),
            timeout=10,
        )
        assert response.status_code == 401
        assert response.json()["message"] == "The API key provided does not have write permissions."


# -- OAuth 1.0a, checked against signatures worked out by hand from
# WC_REST_Authentication::check_oauth_signature (no signer shared with the connector) --------
STAMP = 1741953600  # T0
KEY, SECRET = "ck_" + "0" * 40, "cs_" + "1" * 40


def hmac_b64(text: str, algorithm: str = "sha1") -> str:
    """base64_encode( hash_hmac( $algo, $string_to_sign, $consumer_secret . '&', true ) )"""
    return base64.b64encode(
        hmac.new(f"{SECRET}&".encode(), text.encode(), getattr(hashlib, algorithm)).digest()
    ).decode()


@pytest.fixture
def plain_http() -> Iterator[FakeWooCommerce]:
    with FakeWooCommerce(clock=FrozenClock(T0)) as fake:
        fake.add_order(
            date_created_gmt=T0 - timedelta(hours=1),
            status="pending",
            billing={"first_name": "Kari", "last_name": "Nordmann"},
        )
        fake.add_order(date_created_gmt=T0 - timedelta(hours=1), status="pending")
        yield fake


def plain_permalink_vector(shop: FakeWooCommerce, nonce: str = "n0nce") -> tuple[str, str]:
    """GET /?rest_route=/wc/v3/orders&status=pending,failed&search=Kari Nordmann, signed
    with HMAC-SHA1: (the query string to send without the signature, its signature)."""
    port = shop.base_url.rsplit(":", 1)[1]
    # The URI is the home URL alone (no trailing slash); every name and value is
    # rawurlencoded ("/" -> %2F, " " -> %20, "," -> %2C), then each pair once more (%25, %3D).
    string_to_sign = (
        f"GET&http%3A%2F%2F127.0.0.1%3A{port}&"
        f"oauth_consumer_key%3D{KEY}%26"
        f"oauth_nonce%3D{nonce}%26"
        "oauth_signature_method%3DHMAC-SHA1%26"
        f"oauth_timestamp%3D{STAMP}%26"
        "rest_route%3D%252Fwc%252Fv3%252Forders%26"
        "search%3DKari%2520Nordmann%26"
        "status%3Dpending%252Cfailed"
    )
    query = (
        "rest_route=/wc/v3/orders&status=pending%2Cfailed&search=Kari+Nordmann"
        f"&oauth_consumer_key={KEY}&oauth_timestamp={STAMP}&oauth_nonce={nonce}"
        "&oauth_signature_method=HMAC-SHA1"
    )
    return query, hmac_b64(string_to_sign)


def send(shop: FakeWooCommerce, path: str, query: str, signature: str) -> requests.Response:
    return requests.get(
        f"{shop.base_url}{path}?{query}&oauth_signature={quote(signature, safe='')}", timeout=10
    )


def refusal(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["code"], body["message"]


SIGNATURE_MISMATCH = (
    401,
    "woocommerce_rest_authentication_error",
    "Invalid signature - provided signature does not match.",
)


def test_a_plain_permalink_request_signed_by_hand_is_accepted(
    plain_http: FakeWooCommerce,
) -> None:
    query, signature = plain_permalink_vector(plain_http)
    response = send(plain_http, "/", query, signature)
    assert response.status_code == 200, response.text
    assert len(response.json()) == 1


def test_signing_the_site_root_with_a_slash_or_rest_route_unencoded_is_refused(
    plain_http: FakeWooCommerce,
) -> None:
    query, good = plain_permalink_vector(plain_http)
    port = plain_http.base_url.rsplit(":", 1)[1]
    right = f"GET&http%3A%2F%2F127.0.0.1%3A{port}&"
    rest = f"oauth_consumer_key%3D{KEY}%26oauth_nonce%3Dn0nce%26"
    rest += f"oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D{STAMP}%26"
    tail = "search%3DKari%2520Nordmann%26status%3Dpending%252Cfailed"
    assert hmac_b64(right + rest + "rest_route%3D%252Fwc%252Fv3%252Forders%26" + tail) == good
    slash = f"GET&http%3A%2F%2F127.0.0.1%3A{port}%2F&"  # the RFC 5849 base string URI
    unencoded = "rest_route%3D%2Fwc%2Fv3%2Forders%26"  # "/" left as is in the value
    for wrong in (
        hmac_b64(slash + rest + "rest_route%3D%252Fwc%252Fv3%252Forders%26" + tail),
        hmac_b64(right + rest + unencoded + tail),
    ):
        assert refusal(send(plain_http, "/", query, wrong)) == SIGNATURE_MISMATCH


def test_a_pretty_permalink_request_with_an_array_and_sha256(plain_http: FakeWooCommerce) -> None:
    port = plain_http.base_url.rsplit(":", 1)[1]
    # status[]=pending&status[]=failed reaches PHP as status => [0 => pending, 1 => failed]:
    # signed as status[0], status[1] with the brackets encoded once by WooCommerce.
    string_to_sign = (
        f"GET&http%3A%2F%2F127.0.0.1%3A{port}%2Fwp-json%2Fwc%2Fv3%2Forders&"
        f"oauth_consumer_key%3D{KEY}%26oauth_nonce%3Dabc%26"
        f"oauth_signature_method%3DHMAC-SHA256%26oauth_timestamp%3D{STAMP}%26"
        "status%255B0%255D%3Dpending%26status%255B1%255D%3Dfailed"
    )
    query = (
        "status%5B%5D=pending&status%5B%5D=failed"
        f"&oauth_consumer_key={KEY}&oauth_timestamp={STAMP}&oauth_nonce=abc"
        "&oauth_signature_method=HMAC-SHA256"
    )
    response = send(plain_http, "/wp-json/wc/v3/orders", query, hmac_b64(string_to_sign, "sha256"))
    assert response.status_code == 200, response.text


def test_oauth_parameters_in_an_authorization_header_are_signed_too(
    plain_http: FakeWooCommerce,
) -> None:
    port = plain_http.base_url.rsplit(":", 1)[1]
    string_to_sign = (
        f"GET&http%3A%2F%2F127.0.0.1%3A{port}%2Fwp-json%2Fwc%2Fv3%2Forders&"
        f"oauth_consumer_key%3D{KEY}%26oauth_nonce%3Dhdr%26"
        f"oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D{STAMP}"
    )
    header = (
        f'OAuth oauth_consumer_key="{KEY}", oauth_nonce="hdr", '
        f'oauth_signature_method="HMAC-SHA1", oauth_timestamp="{STAMP}", '
        f'oauth_signature="{quote(hmac_b64(string_to_sign), safe="")}"'
    )
    response = requests.get(
        f"{plain_http.rest_url}/wc/v3/orders", headers={"Authorization": header}, timeout=10
    )
    assert response.status_code == 200, response.text


def test_nonces_are_single_use_and_timestamps_bounded() -> None:
    clock = FrozenClock(T0)
    with FakeWooCommerce(clock=clock) as shop:
        query, signature = plain_permalink_vector(shop)
        assert send(shop, "/", query, signature).status_code == 200
        assert refusal(send(shop, "/", query, signature)) == (
            401,
            "woocommerce_rest_authentication_error",
            "Invalid nonce - nonce has already been used.",
        )
        clock.advance(timedelta(minutes=15))  # still inside the window
        assert send(shop, "/", *plain_permalink_vector(shop, "n1")).status_code == 200
        clock.advance(timedelta(seconds=1))
        assert refusal(send(shop, "/", *plain_permalink_vector(shop, "n2"))) == (
            401,
            "woocommerce_rest_authentication_error",
            "Invalid timestamp.",
        )


def test_other_keys_may_use_the_same_nonce() -> None:
    with FakeWooCommerce(clock=FrozenClock(T0)) as shop:
        shop.add_key("ck_other", "cs_other")
        assert send(shop, "/", *plain_permalink_vector(shop)).status_code == 200
        query, _ = plain_permalink_vector(shop)
        query = query.replace(KEY, "ck_other")
        port = shop.base_url.rsplit(":", 1)[1]
        text = (
            f"GET&http%3A%2F%2F127.0.0.1%3A{port}&oauth_consumer_key%3Dck_other%26"
            f"oauth_nonce%3Dn0nce%26oauth_signature_method%3DHMAC-SHA1%26"
            f"oauth_timestamp%3D{STAMP}%26rest_route%3D%252Fwc%252Fv3%252Forders%26"
            "search%3DKari%2520Nordmann%26status%3Dpending%252Cfailed"
        )
        other = base64.b64encode(hmac.new(b"cs_other&", text.encode(), "sha1").digest()).decode()
        assert send(shop, "/", query, other).status_code == 200


def test_oauth_refusals_carry_woocommerce_codes_and_messages(plain_http: FakeWooCommerce) -> None:
    query, signature = plain_permalink_vector(plain_http)
    unknown = query.replace(KEY, "ck_unknown")
    assert refusal(send(plain_http, "/", unknown, signature)) == (
        401,
        "woocommerce_rest_authentication_error",
        "Consumer key is invalid.",
    )
    tampered = query.replace("status=pending%2Cfailed", "status=any")
    assert refusal(send(plain_http, "/", tampered, signature)) == SIGNATURE_MISMATCH
    plaintext = query.replace("HMAC-SHA1", "PLAINTEXT")
    assert refusal(send(plain_http, "/", plaintext, signature)) == (
        401,
        "woocommerce_rest_authentication_error",
        "Invalid signature - signature method is invalid.",
    )
    no_nonce = query.replace("&oauth_nonce=n0nce", "")
    assert refusal(send(plain_http, "/", no_nonce, signature)) == (
        401,
        "woocommerce_rest_authentication_missing_parameter",
        "Missing OAuth parameter oauth_nonce",
    )
    # a refused signature does not use up the nonce
    assert send(plain_http, "/", query, signature).status_code == 200


# -- coupons ------------------------------------------------------------------------------
def post_coupon(shop: FakeWooCommerce, body: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{shop.rest_url}/wc/v3/coupons",
        json=body,
        auth=(shop.consumer_key, shop.consumer_secret),
        timeout=10,
    )


def test_coupons_are_created_lower_cased_and_unique(shop: FakeWooCommerce) -> None:
    body = {
        "code": "BACK-7KQ3",
        "discount_type": "percent",
        "amount": "10",
        "usage_limit": 1,
        "email_restrictions": ["Kari@Example.NO"],
        "date_expires_gmt": "2025-03-16T12:00:00",
    }
    created = post_coupon(shop, body)
    assert created.status_code == 201
    assert created.headers["Location"].endswith(f"/wp-json/wc/v3/coupons/{created.json()['id']}")
    coupon = created.json()
    assert (coupon["code"], coupon["amount"], coupon["usage_limit"]) == ("back-7kq3", "10.00", 1)
    assert coupon["email_restrictions"] == ["kari@example.no"]
    assert (coupon["date_expires_gmt"], coupon["date_expires"]) == (
        "2025-03-16T12:00:00",
        "2025-03-16T13:00:00",
    )
    assert coupon["usage_limit_per_user"] is None
    duplicate = post_coupon(shop, {**body, "code": "back-7kq3"})
    assert duplicate.status_code == 400
    assert duplicate.json()["code"] == "woocommerce_rest_coupon_code_already_exists"
    found = get(shop, "/wc/v3/coupons", code="Back-7KQ3").json()
    assert [c["id"] for c in found] == [coupon["id"]]


def test_a_coupon_needs_a_code(shop: FakeWooCommerce) -> None:
    response = post_coupon(shop, {"amount": "5"})
    assert response.status_code == 400
    assert response.json()["message"] == "Missing parameter(s): code"


# -- index, routes, quirks -----------------------------------------------------------------
def test_the_public_index_has_the_time_zone(shop: FakeWooCommerce) -> None:
    index = get(shop, "/", auth=False, _fields="timezone_string,gmt_offset").json()
    assert index == {"timezone_string": "Europe/Oslo", "gmt_offset": 1}


def test_a_manual_utc_offset_leaves_timezone_string_empty() -> None:
    with FakeWooCommerce(timezone="UTC+5.5") as shop:
        index = get(shop, "/", auth=False).json()
        assert (index["timezone_string"], index["gmt_offset"]) == ("", 5.5)


def test_plain_permalinks_route_through_rest_route(shop: FakeWooCommerce) -> None:
    seed(shop, 1)
    response = requests.get(
        f"{shop.base_url}/",
        params={"rest_route": "/wc/v3/orders"},
        auth=(shop.consumer_key, shop.consumer_secret),
        timeout=10,
    )
    assert len(response.json()) == 1
    assert requests.get(f"{shop.base_url}/shop/", timeout=10).status_code == 404


def test_scripted_faults_and_php_notices() -> None:
    with FakeWooCommerce(is_ssl=True, php_notices=True) as shop:
        shop.fail_next(503, times=2, headers={"Retry-After": "3"}, path="/orders")
        assert get(shop, "/").status_code == 200  # another path: not consumed
        first = get(shop, "/wc/v3/orders")
        assert (first.status_code, first.headers["Retry-After"]) == (503, "3")
        assert get(shop, "/wc/v3/orders").status_code == 503
        ok = get(shop, "/wc/v3/orders")
        assert ok.status_code == 200
        assert ok.text.startswith("<br />\n<b>Deprecated</b>")


def test_update_and_pay_stamp_the_modification_time(shop: FakeWooCommerce) -> None:
    [order_id] = seed(shop, 1)
    clock = shop.clock
    assert isinstance(clock, FrozenClock)
    clock.advance(timedelta(minutes=5))
    changed = shop.update_order(order_id, billing={"phone": "+4791234567"})
    assert changed["date_modified_gmt"] == "2025-03-14T12:05:00"
    assert changed["billing"]["phone"] == "+4791234567"
    assert changed["billing"]["country"] == ""  # merged, not replaced
    paid = shop.pay_order(order_id)
    assert (paid["status"], paid["date_paid_gmt"], paid["needs_payment"]) == (
        "processing",
        "2025-03-14T12:05:00",
        False,
    )


def test_seeding_from_a_checkout(shop: FakeWooCommerce) -> None:
    checkout = Checkout(
        id="1001",
        abandoned_at=T0 - timedelta(hours=2),
        updated_at=T0 - timedelta(hours=1),
        recovery_url="https://x.example/",
        currency="NOK",
        total=Decimal("1290.00"),
        line_items=(LineItem("Wool blanket", 1, Decimal("1290.00"), variant="Fjord blue"),),
        customer=Customer(
            first_name="Kari", email="kari@example.no", phone="+4791234567", sms_consent=True
        ),
    )
    order = shop.add_checkout(checkout, consent_meta={"sms": "sms_optin", "email": "news"})
    assert order["id"] == 1001
    assert order["billing"]["country"] == "NO"
    assert order["date_created_gmt"] == "2025-03-14T10:00:00"
    assert order["date_modified_gmt"] == "2025-03-14T11:00:00"
    assert order["line_items"][0]["name"] == "Wool blanket - Fjord blue"
    assert {m["key"]: m["value"] for m in order["meta_data"]} == {"sms_optin": "1", "news": "0"}


def test_webhook_delivery_and_ping(shop: FakeWooCommerce) -> None:
    [order_id] = seed(shop, 1)
    headers, body = shop.webhook_delivery(order_id, secret="s3cret", topic="order.created")
    expected = base64.b64encode(hmac.new(b"s3cret", body, hashlib.sha256).digest()).decode()
    assert headers["X-WC-Webhook-Signature"] == expected
    assert (headers["X-WC-Webhook-Topic"], headers["X-WC-Webhook-Event"]) == (
        "order.created",
        "created",
    )
    assert json.loads(body)["id"] == order_id
    assert b"\\/" in body
    ping_headers, ping = shop.webhook_ping(7)
    assert ping == b"webhook_id=7"
    assert "X-WC-Webhook-Signature" not in ping_headers


def test_sample_orders_are_unpaid_shopper_checkouts(shop: FakeWooCommerce) -> None:
    ids = shop.add_sample_orders(10, start=T0, every=timedelta(minutes=1))
    orders = {o["id"]: o for o in shop.orders}
    assert sorted(ids) == sorted(orders)
    assert {orders[i]["status"] for i in ids} == {"pending", "failed"}
    assert {orders[i]["created_via"] for i in ids} == {"checkout", "store-api"}
    assert orders[ids[3]]["date_created_gmt"] == "2025-03-14T12:03:00"
    assert orders[ids[3]]["billing"]["country"] == "US"
