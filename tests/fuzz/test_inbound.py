"""No signed body makes an inbound endpoint fail: Twilio form posts, WhatsApp notifications and
the shops' checkout webhooks, mapped by the connectors and served by the web app."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode
from wsgiref.util import setup_testing_defaults

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cartrescue.channels.twilio_inbound import twilio_signature
from cartrescue.channels.vonage_inbound import vonage_signature
from cartrescue.channels.whatsapp_inbound import whatsapp_signature
from cartrescue.clock import FrozenClock
from cartrescue.connectors.shopify import ShopifyConnector
from cartrescue.connectors.woocommerce import WooCommerceConnector
from cartrescue.errors import BadPayloadError
from cartrescue.models import Checkout
from cartrescue.store import SQLiteStore
from cartrescue.web import make_app
from cartrescue_testing.fake_shopify import FakeShopify

from .properties import FUZZ, TALLY, assert_brief, assert_usable
from .strategies import (
    any_text,
    form_body,
    garbage_body,
    hostile,
    mutated,
    shopify_rest_checkout,
    twilio_form,
    whatsapp_notification,
    woo_order,
)

SECRET = "whsec-0123456789abcdef"
TWILIO_TOKEN = "twilio-token-0123456789"
WA_SECRET = "wa-app-secret-0123456789"
PUBLIC = "https://shop.example/cartrescue"
VONAGE_SECRET = "vonage-signature-secret-0123"
VONAGE_NOW = 1_773_230_400  # 2026-03-11 12:00 UTC


def _json(document: Any) -> bytes:
    return json.dumps(document).encode("ascii")  # lone surrogates travel as \ud83d escapes


def _sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


@pytest.fixture(scope="module")
def shop() -> Iterator[FakeShopify]:
    with FakeShopify(currency="NOK", throttle=False) as fake:
        yield fake


@pytest.fixture(scope="module")
def shopify(shop: FakeShopify) -> ShopifyConnector:
    return ShopifyConnector(shop.shop, shop.token, base_url=shop.base_url, webhook_secret=SECRET)


@pytest.fixture(scope="module")
def woocommerce() -> WooCommerceConnector:
    return WooCommerceConnector(
        "https://shop.example", "ck_x", "cs_x", consent=["email"], webhook_secret=SECRET
    )


@pytest.fixture(scope="module")
def store() -> Iterator[SQLiteStore]:
    with SQLiteStore(":memory:") as opened:
        yield opened


def _status(
    app: Any,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    query: str = "",
    method: str = "POST",
) -> int:
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update(
        {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
        }
    )
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    seen: list[str] = []
    app(environ, lambda status, headers, exc_info=None: seen.append(status))
    return int(seen[0][:3])


def _webhook(connector: Any, body: bytes) -> Checkout | None:
    try:
        checkout = connector.checkout_from_webhook(body)
    except BadPayloadError as err:
        assert_brief(err)
        return None
    assert isinstance(checkout, Checkout)
    assert_usable(checkout)
    return checkout


@FUZZ
@given(st.one_of(mutated(shopify_rest_checkout()).map(_json), hostile().map(_json), garbage_body()))
def test_shopify_checkout_webhook_bodies(shopify: ShopifyConnector, body: bytes) -> None:
    TALLY["shopify webhook"] += 1
    _webhook(shopify, body)


@FUZZ
@given(st.one_of(mutated(woo_order()).map(_json), hostile().map(_json), garbage_body()))
@example(b"webhook_id=" + b"9" * 5000)
def test_woocommerce_order_webhook_bodies(woocommerce: WooCommerceConnector, body: bytes) -> None:
    TALLY["woocommerce webhook"] += 1
    _webhook(woocommerce, body)


@FUZZ
@given(
    st.one_of(
        mutated(shopify_rest_checkout()).map(lambda d: ("shopify", _json(d))),
        mutated(woo_order()).map(lambda d: ("woocommerce", _json(d))),
        st.tuples(st.sampled_from(["shopify", "woocommerce"]), garbage_body()),
    )
)
def test_signed_checkout_webhooks_never_fail_the_server(
    store: SQLiteStore,
    shopify: ShopifyConnector,
    woocommerce: WooCommerceConnector,
    case: tuple[str, bytes],
) -> None:
    TALLY["web: checkout webhook"] += 1
    platform, body = case
    connector = shopify if platform == "shopify" else woocommerce
    app = make_app(store, public_url=PUBLIC, connector=connector)
    header = "X-Shopify-Hmac-Sha256" if platform == "shopify" else "X-WC-Webhook-Signature"
    assert _status(app, "/webhooks/checkouts", body, {header: _sign(body)}) in (200, 400, 413)


@FUZZ
@given(st.one_of(mutated(twilio_form()).map(form_body), garbage_body()))
def test_signed_twilio_posts_never_fail_the_server(store: SQLiteStore, body: bytes) -> None:
    TALLY["web: twilio"] += 1
    app = make_app(store, public_url=PUBLIC, twilio_auth_token=TWILIO_TOKEN)
    try:
        params = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        params = []
    signature = twilio_signature(TWILIO_TOKEN, PUBLIC + "/twilio/sms", params)
    status = _status(app, "/twilio/sms", body, {"X-Twilio-Signature": signature})
    assert status in (200, 400, 413)


@st.composite
def vonage_inbound(draw: st.DrawFn) -> dict[str, Any]:
    """The fields of a Vonage inbound SMS webhook (signed ones carry timestamp and nonce)."""
    return {
        "msisdn": draw(st.sampled_from(["4791234567", "36201234567", "", "+1 415"]) | any_text(20)),
        "to": "4790000000",
        "messageId": draw(st.text("0123456789ABCDEF", min_size=16, max_size=16)),
        "text": draw(st.sampled_from(["STOP", "Stopp", "2", "hei", "", "a=b&c"]) | any_text()),
        "type": draw(st.sampled_from(["text", "unicode", "binary"])),
        "keyword": "STOP",
        "message-timestamp": "2026-03-11 12:00:00",
        "timestamp": str(VONAGE_NOW),
        "nonce": draw(st.uuids().map(str)),
    }


@FUZZ
@given(
    st.one_of(mutated(vonage_inbound()).map(form_body), mutated(vonage_inbound()).map(_json)),
    st.sampled_from(["md5hash", "sha256"]),
)
def test_signed_vonage_posts_never_fail_the_server(
    store: SQLiteStore, body: bytes, method: str
) -> None:
    TALLY["web: vonage"] += 1
    app = make_app(
        store,
        public_url=PUBLIC,
        vonage_signature_secret=VONAGE_SECRET,
        vonage_signature_method=method,
        clock=FrozenClock(datetime.fromtimestamp(VONAGE_NOW, UTC)),
    )
    try:
        if body.startswith(b"{"):
            document = json.loads(body)
            params = {str(k): "" if v is None else str(v) for k, v in document.items()}
        else:
            params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        "".join(f"{k}{v}" for k, v in params.items()).encode("utf-8")
    except (UnicodeError, ValueError, AttributeError):
        params = {"text": "\ud83d"}  # sent unsigned: the handler must refuse it, not fail
    try:
        sig = vonage_signature(VONAGE_SECRET, params, method)
    except UnicodeError:
        sig = "0" * 32
    signed = urlencode({**params, "sig": sig}, errors="surrogatepass")
    status = _status(app, "/vonage/sms", signed.encode(), {})
    assert status in (200, 400, 403, 413)


@FUZZ
@given(st.one_of(mutated(whatsapp_notification(), 6).map(_json), garbage_body()))
@example(
    _json(
        {
            "object": "whatsapp_business_account",
            "entry": [{"changes": [{"value": {"statuses": 5}}]}],
        }
    )
)
@example(
    _json(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "changes": [
                        {"value": {"statuses": [{"status": "failed", "errors": [{"code": 1e999}]}]}}
                    ]
                }
            ],
        }
    )
)
def test_signed_whatsapp_notifications_never_fail_the_server(
    store: SQLiteStore, body: bytes
) -> None:
    TALLY["web: whatsapp"] += 1
    app = make_app(store, public_url=PUBLIC, whatsapp_app_secret=WA_SECRET)
    signature = whatsapp_signature(WA_SECRET, body)
    assert _status(app, "/whatsapp", body, {"X-Hub-Signature-256": signature}) in (200, 400, 413)


@FUZZ
@given(
    st.sampled_from(["/twilio/sms", "/whatsapp", "/webhooks/checkouts"]),
    st.text(st.characters(max_codepoint=255), max_size=60),
)
def test_unauthenticated_requests_never_fail_the_server(
    store: SQLiteStore, woocommerce: WooCommerceConnector, path: str, signature: str
) -> None:
    TALLY["web: forged signature"] += 1
    app = make_app(
        store,
        public_url=PUBLIC,
        twilio_auth_token=TWILIO_TOKEN,
        whatsapp_app_secret=WA_SECRET,
        connector=woocommerce,
    )
    headers = {
        "X-Twilio-Signature": signature,
        "X-Hub-Signature-256": signature,
        "X-WC-Webhook-Signature": signature,
    }
    assert _status(app, path, b'{"id": 1}', headers) in (400, 401, 403)


@FUZZ
@given(
    st.one_of(
        any_text(200).map(lambda t: t.encode("utf-8", "surrogatepass").decode("latin-1")),
        st.text(st.characters(max_codepoint=255), max_size=300),
        st.sampled_from([".", "..", "a.b", "=.=", "AAAA.AAAA", "x" * 5000 + "." + "y" * 5000]),
    ),
    st.sampled_from(["GET", "POST"]),
)
def test_any_unsubscribe_link_is_answered(store: SQLiteStore, token: str, method: str) -> None:
    TALLY["web: unsubscribe link"] += 1
    app = make_app(store, public_url=PUBLIC, unsubscribe_secret="0123456789abcdef0123")
    status = _status(app, "/unsubscribe/" + token, b"", {}, method=method)
    assert status in (200, 403, 404)
