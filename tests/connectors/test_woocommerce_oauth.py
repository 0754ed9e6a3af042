"""The connector's OAuth 1.0a signer builds the string WooCommerce recomputes
(``WC_REST_Authentication::check_oauth_signature``), checked against strings written out by
hand; the fake's verifier is other code, tested on its own."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import pytest

from cartrescue.connectors._woo_oauth import base_uri, sign_url

KEY, SECRET = "ck_" + "0" * 40, "cs_" + "1" * 40
STAMP = 1741953600


@pytest.mark.parametrize(
    ("url", "home", "expected"),
    [
        # plain permalinks on the site root: the home URL alone, no trailing slash
        ("http://shop.example/?rest_route=/wc/v3/orders", "http://shop.example", "http://shop.example"),
        ("http://shop.example/index.php?rest_route=/x", "http://shop.example", "http://shop.example/index.php"),
        ("http://shop.example/wp-json/wc/v3/orders", "http://shop.example", "http://shop.example/wp-json/wc/v3/orders"),
        # WordPress in a subdirectory: the home path stays, its trailing slash does not
        ("http://shop.example/blog/?rest_route=/wc/v3/orders", "http://shop.example/blog", "http://shop.example/blog"),
        ("http://shop.example/blog/wp-json/wc/v3/orders", "http://shop.example/blog", "http://shop.example/blog/wp-json/wc/v3/orders"),
        # through a proxy: host and path from the home URL WordPress knows
        ("http://127.0.0.1:8080/wp-json/wc/v3/orders", "http://shop.example", "http://shop.example/wp-json/wc/v3/orders"),
    ],
)  # fmt: skip
def test_the_signed_uri_is_rebuilt_from_the_home_url(url: str, home: str, expected: str) -> None:
    assert base_uri(url, home) == expected


def hand_signature(text: str) -> str:
    digest = hmac.new(f"{SECRET}&".encode(), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed(url: str, method: str = "GET", home: str = "http://shop.example") -> dict[str, str]:
    out = sign_url(
        method,
        url,
        home=home,
        consumer_key=KEY,
        consumer_secret=SECRET,
        timestamp=STAMP,
        nonce="abc123",
    )
    return dict(parse_qsl(urlsplit(out).query, keep_blank_values=True))


def test_plain_permalinks_sign_rest_route_with_encoded_slashes() -> None:
    sent = signed("http://shop.example/?rest_route=%2Fwc%2Fv3%2Forders&status=pending%2Cfailed")
    text = (
        "GET&http%3A%2F%2Fshop.example&"
        f"oauth_consumer_key%3D{KEY}%26oauth_nonce%3Dabc123%26"
        f"oauth_signature_method%3DHMAC-SHA256%26oauth_timestamp%3D{STAMP}%26"
        "rest_route%3D%252Fwc%252Fv3%252Forders%26status%3Dpending%252Cfailed"
    )
    assert sent["oauth_signature"] == hand_signature(text)
    assert (sent["rest_route"], sent["status"]) == ("/wc/v3/orders", "pending,failed")


def test_pretty_permalinks_spaces_and_arrays_as_php_reads_them() -> None:
    sent = signed(
        "http://shop.example/wp-json/wc/v3/orders?search=Kari+Nordmann"
        "&include%5B%5D=7&include%5B%5D=9&_fields=id,status",
        method="post",
    )
    text = (
        "POST&http%3A%2F%2Fshop.example%2Fwp-json%2Fwc%2Fv3%2Forders&"
        "_fields%3Did%252Cstatus%26include%255B0%255D%3D7%26include%255B1%255D%3D9%26"
        f"oauth_consumer_key%3D{KEY}%26oauth_nonce%3Dabc123%26"
        f"oauth_signature_method%3DHMAC-SHA256%26oauth_timestamp%3D{STAMP}%26"
        "search%3DKari%2520Nordmann"
    )
    assert sent["oauth_signature"] == hand_signature(text)


def test_oauth_parameters_already_in_the_url_are_replaced() -> None:
    sent = signed("http://shop.example/wp-json/wc/v3/orders?oauth_nonce=old&page=2")
    assert sent["oauth_nonce"] == "abc123"
    assert sent["page"] == "2"


def test_wooauth_without_a_home_signs_for_the_site_root() -> None:
    import requests

    from cartrescue.clock import FrozenClock
    from cartrescue.connectors._woo_client import WooAuth

    when = FrozenClock(datetime.fromtimestamp(STAMP, UTC))
    request = requests.Request(
        "GET", "http://shop.example/wp-json/wc/v3/orders", params={"page": "2"}
    ).prepare()
    sent = dict(
        parse_qsl(urlsplit(WooAuth(KEY, SECRET, "oauth1", clock=when)(request).url or "").query)
    )
    text = (
        "GET&http%3A%2F%2Fshop.example%2Fwp-json%2Fwc%2Fv3%2Forders&"
        f"oauth_consumer_key%3D{KEY}%26oauth_nonce%3D{sent['oauth_nonce']}%26"
        f"oauth_signature_method%3DHMAC-SHA256%26oauth_timestamp%3D{STAMP}%26page%3D2"
    )
    assert sent["oauth_signature"] == hand_signature(text)
