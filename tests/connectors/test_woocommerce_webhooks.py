"""WooCommerce webhooks: ``X-WC-Webhook-Signature``, the ping, ``order.created``/``updated``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from cartrescue.errors import BadPayloadError, ConfigError

from .test_woocommerce_helpers import connector, order

WEBHOOK_SECRET = "p&4L!x<secret>'\"%d"


def signed(body: bytes, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return {
        "Content-Type": "application/json",
        "X-WC-Webhook-Topic": "order.updated",
        "X-WC-Webhook-Resource": "order",
        "X-WC-Webhook-Event": "updated",
        "X-WC-Webhook-Signature": signature.decode(),
        "X-WC-Webhook-ID": "3",
        "X-WC-Webhook-Delivery-ID": "8d5b6c0e0f2a4f4b9a1e0c3d2b1a0f9e",
    }


def body_of(data: object) -> bytes:
    # wp_json_encode escapes slashes; the signature covers these exact bytes
    return json.dumps(data, separators=(",", ":")).replace("/", "\\/").encode()


def test_a_valid_signature_verifies() -> None:
    body = body_of(order())
    assert connector(webhook_secret=WEBHOOK_SECRET).verify_webhook(signed(body), body)


def test_header_names_are_matched_without_case() -> None:
    body = body_of(order())
    headers = {k.lower(): v for k, v in signed(body).items()}
    assert connector(webhook_secret=WEBHOOK_SECRET).verify_webhook(headers, body)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b.replace(b"4512", b"4513")),
        lambda h, b: (signed(b, "another secret"), b),
        lambda h, b: ({k: v for k, v in h.items() if k != "X-WC-Webhook-Signature"}, b),
        lambda h, b: ({**h, "X-WC-Webhook-Signature": "not base64"}, b),
    ],
)
def test_a_bad_or_missing_signature_is_refused(tamper: object) -> None:
    body = body_of(order())
    headers, body = tamper(signed(body), body)  # type: ignore[operator]
    assert not connector(webhook_secret=WEBHOOK_SECRET).verify_webhook(headers, body)


def test_the_unsigned_ping_is_recognised_and_carries_no_order() -> None:
    conn = connector(webhook_secret=WEBHOOK_SECRET)
    headers = {"User-Agent": "WooCommerce/9.8.5 Hookshot (WordPress/6.8.1)"}
    assert conn.webhook_ping(headers, b"webhook_id=3") == 3
    assert conn.verify_webhook(headers, b"webhook_id=3")
    with pytest.raises(BadPayloadError, match="ping"):
        conn.checkout_from_webhook(b"webhook_id=3")


def test_a_ping_shaped_body_with_a_signature_is_not_a_ping() -> None:
    conn = connector(webhook_secret=WEBHOOK_SECRET)
    headers = {"X-WC-Webhook-Signature": "forged"}
    assert conn.webhook_ping(headers, b"webhook_id=3") is None
    assert not conn.verify_webhook(headers, b"webhook_id=3")


def test_without_a_webhook_secret_verifying_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="webhook_secret"):
        connector().verify_webhook({}, b"{}")


def test_order_created_maps_to_a_checkout() -> None:
    checkout = connector().checkout_from_webhook(body_of(order()))
    assert checkout.id == "4512"
    assert checkout.recovery_url.endswith("key=wc_order_Xk2pQ9mLr4TzA")
    assert checkout.customer is not None
    assert checkout.customer.sms_consent is True
    assert checkout.completed_at is None


def test_order_updated_to_paid_maps_to_a_completed_checkout() -> None:
    paid = order(status="processing", date_paid_gmt="2025-03-14T11:00:00")
    checkout = connector().checkout_from_webhook(body_of(paid))
    assert checkout.completed_at == datetime(2025, 3, 14, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"id":4512}', "deleted"),
        (body_of(order(created_via="admin")), "not a shopper checkout"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not an order object"),
        (body_of(order(total=None)), "4512: price None is not a number"),
    ],
)
def test_payloads_that_are_not_checkouts_are_refused_by_name(body: bytes, says: str) -> None:
    with pytest.raises(BadPayloadError, match=says):
        connector().checkout_from_webhook(body)
