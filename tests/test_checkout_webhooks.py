"""The shop's checkout webhooks, through `cartrescue serve`'s app on a real loopback server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import urllib.error
import urllib.request

import pytest

from cartrescue.connectors.shopify import ShopifyConnector
from cartrescue.connectors.woocommerce import WooCommerceConnector
from cartrescue.store import SQLiteStore
from cartrescue.web import make_app, make_server

from .conftest import FIXTURES

SECRET = "whsec-0123456789abcdef"


def sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


@pytest.fixture
def serve():
    servers = []

    def start(store, connector):
        app = make_app(store, public_url="https://shop.example/cartrescue", connector=connector)
        server = make_server(app, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/webhooks/checkouts"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def post(url, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_a_signed_shopify_checkout_is_stored_and_a_forged_one_is_not(serve):
    body = (FIXTURES / "shopify" / "webhook_checkouts_create.json").read_bytes()
    expected_id = str(json.loads(body)["id"])
    with SQLiteStore(":memory:") as store:
        connector = ShopifyConnector("nordlys.myshopify.com", "shpat_x", webhook_secret=SECRET)
        url = serve(store, connector)
        headers = {"Content-Type": "application/json", "X-Shopify-Topic": "checkouts/create"}
        status, _ = post(url, body, {**headers, "X-Shopify-Hmac-Sha256": sign(b"other")})
        assert status == 403
        assert store.checkout(expected_id) is None
        status, text = post(url, body, {**headers, "X-Shopify-Hmac-Sha256": sign(body)})
        assert (status, text) == (200, "stored\n")
        assert store.checkout(expected_id) is not None
        assert store.checkout_status(expected_id) == "open"


def test_woocommerce_ping_and_signed_order(serve):
    with SQLiteStore(":memory:") as store:
        connector = WooCommerceConnector(
            "https://shop.example", "ck_x", "cs_x", consent=["email"], webhook_secret=SECRET
        )
        url = serve(store, connector)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert post(url, b"webhook_id=12", form) == (200, "ignored\n")
        order = (FIXTURES / "woocommerce" / "order_pending_checkout.json").read_bytes()
        signed = {"Content-Type": "application/json", "X-WC-Webhook-Signature": sign(order)}
        assert post(url, order, signed) == (200, "stored\n")
        assert store.checkout(str(json.loads(order)["id"])) is not None


def test_without_a_connector_the_route_is_not_mounted(serve):
    with SQLiteStore(":memory:") as store:
        url = serve(store, None)
        assert post(url, b"{}", {})[0] == 404


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"webhook_id=" + b"9" * 5000, {"Content-Type": "application/x-www-form-urlencoded"}),
        (b"{}", {"X-WC-Webhook-Signature": "sj\u00f8kort"}),
    ],
)
def test_unreadable_woocommerce_webhooks_are_403_not_500(serve, body, headers):
    with SQLiteStore(":memory:") as store:
        connector = WooCommerceConnector(
            "https://shop.example", "ck_x", "cs_x", consent=["email"], webhook_secret=SECRET
        )
        url = serve(store, connector)
        assert post(url, body, headers)[0] == 403


def test_a_non_ascii_shopify_signature_is_403(serve):
    with SQLiteStore(":memory:") as store:
        connector = ShopifyConnector("nordlys.myshopify.com", "shpat_x", webhook_secret=SECRET)
        url = serve(store, connector)
        assert post(url, b"{}", {"X-Shopify-Hmac-Sha256": "\u00e9\u00e9"})[0] == 403


# -- retried and reordered deliveries -------------------------------------------------------
def shopify_version(updated_at: str, *, subscribed: bool, completed: bool) -> bytes:
    raw = json.loads((FIXTURES / "shopify" / "webhook_checkouts_create.json").read_bytes())
    raw["updated_at"] = updated_at
    raw["customer"]["email_marketing_consent"]["state"] = (
        "subscribed" if subscribed else "unsubscribed"
    )
    raw["completed_at"] = updated_at if completed else None
    return json.dumps(raw).encode()


def shopify_headers(body: bytes, delivery: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "checkouts/update",
        "X-Shopify-Hmac-Sha256": sign(body),
        "X-Shopify-Webhook-Id": delivery,
    }


def test_an_older_signed_update_delivered_late_changes_nothing(serve):
    older = shopify_version("2026-11-23T10:00:00-05:00", subscribed=True, completed=False)
    newer = shopify_version("2026-11-23T10:20:00-05:00", subscribed=False, completed=True)
    checkout_id = str(json.loads(older)["id"])
    with SQLiteStore(":memory:") as store:
        connector = ShopifyConnector("nordlys.myshopify.com", "shpat_x", webhook_secret=SECRET)
        url = serve(store, connector)
        assert post(url, newer, shopify_headers(newer, "d-2")) == (200, "stored\n")
        assert post(url, older, shopify_headers(older, "d-1"))[0] == 200
        stored = store.checkout(checkout_id)
        assert stored is not None and stored.customer is not None
        assert stored.customer.email_consent is False
        assert stored.completed_at is not None


def test_a_delivery_taken_before_is_ignored(serve):
    first = shopify_version("2026-11-23T10:00:00-05:00", subscribed=False, completed=False)
    # The same delivery id again: even a body that would be newer is not applied.
    again = shopify_version("2026-11-23T11:00:00-05:00", subscribed=True, completed=False)
    checkout_id = str(json.loads(first)["id"])
    with SQLiteStore(":memory:") as store:
        connector = ShopifyConnector("nordlys.myshopify.com", "shpat_x", webhook_secret=SECRET)
        url = serve(store, connector)
        assert post(url, first, shopify_headers(first, "d-1")) == (200, "stored\n")
        assert post(url, again, shopify_headers(again, "d-1")) == (200, "duplicate\n")
        stored = store.checkout(checkout_id)
        assert stored is not None and stored.customer is not None
        assert stored.customer.email_consent is False


def test_a_woocommerce_delivery_taken_before_is_ignored(serve):
    order = (FIXTURES / "woocommerce" / "order_pending_checkout.json").read_bytes()
    with SQLiteStore(":memory:") as store:
        connector = WooCommerceConnector(
            "https://shop.example", "ck_x", "cs_x", consent=["email"], webhook_secret=SECRET
        )
        url = serve(store, connector)
        headers = {
            "Content-Type": "application/json",
            "X-WC-Webhook-Signature": sign(order),
            "X-WC-Webhook-Delivery-ID": "77",
        }
        assert post(url, order, headers) == (200, "stored\n")
        assert post(url, order, headers) == (200, "duplicate\n")
