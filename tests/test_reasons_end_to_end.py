"""A stated reason chooses the next step: a buyer who answers "shipping cost" (a WhatsApp list
reply or an SMS digit, through the signed inbound webhooks) gets a free-shipping code at the
next step, created on the platform's fake, while another cart gets the percent code."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

from cartrescue.clock import FrozenClock
from cartrescue.config import load_config
from cartrescue.connectors.shopify import ShopifyConnector
from cartrescue.connectors.woocommerce import WooCommerceConnector
from cartrescue.engine import Recovery
from cartrescue.explain import explain, format_explanation
from cartrescue.models import Checkout, LineItem
from cartrescue.store.sqlite import SQLiteStore
from cartrescue.web import make_app
from cartrescue_testing.fake_shopify import FakeShopify
from cartrescue_testing.fake_woocommerce import FakeWooCommerce
from cartrescue_testing.memory import MemoryChannel

from .conftest import NOON, make_checkout
from .test_web import APP_SECRET, PUBLIC, TWILIO_TOKEN, call, hand_signed_twilio, post_whatsapp

CONFIG = """
[[policy.steps]]
delay = "1h"
[[policy.steps]]
delay = "24h"
discount = { percent = 10 }

[[segments]]
name = "shipping-cost"
reasons = ["shipping_cost"]
[[segments.steps]]
delay = "1h"
[[segments.steps]]
delay = "24h"
discount = { free_shipping = true }
"""
POLICY = load_config(None, text=CONFIG, env={}).policy
KARI, OLA = "+4791234567", "+4798765432"


def cart(id: str, phone: str) -> Checkout:
    base = make_checkout(id, email=f"buyer{id}@example.no", phone=phone)
    return replace(base, line_items=(LineItem("Wool blanket", 1, Decimal("499.00")),))


def whatsapp_list_reply(phone: str, row: str, message_id: str) -> bytes:
    reply = {"type": "list_reply", "list_reply": {"id": row, "title": "Frakten koster for mye"}}
    message = {
        "from": phone.lstrip("+"),
        "id": message_id,
        "timestamp": str(int(NOON.timestamp())),
        "type": "interactive",
        "interactive": reply,
    }
    value = {"messaging_product": "whatsapp", "messages": [message]}
    return json.dumps(
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": value}]}]}
    ).encode()


def twilio_sms(app, phone: str, text: str, sid: str) -> int:
    body = urlencode({"Body": text, "From": phone, "MessageSid": sid}).encode()
    signature = hand_signed_twilio(f"{PUBLIC}/twilio/sms", body).decode()
    status, _, _ = call(app, "POST", "/twilio/sms", body, {"X-Twilio-Signature": signature})
    return int(status)


def run_with_answers(connector, store_path, answer) -> tuple[dict[str, list[int]], str]:
    """Step 1 at 1 h; the buyers answer at 2 h through ``answer(app)``; step 2 at 24 h."""
    clock = FrozenClock(NOON)
    email = MemoryChannel("email")
    with SQLiteStore(store_path) as store:
        store.start_at(NOON - timedelta(days=1))
        recovery = Recovery(connector, [email], store, policy=POLICY, clock=clock)
        clock.set(NOON + timedelta(hours=1))
        assert recovery.run().counts["sent"] == 2
        clock.set(NOON + timedelta(hours=2))
        app = make_app(
            store,
            public_url=PUBLIC,
            twilio_auth_token=TWILIO_TOKEN,
            whatsapp_app_secret=APP_SECRET,
            clock=clock,
        )
        answer(app)
        clock.set(NOON + timedelta(hours=24))
        first = next(m.checkout_id for m in email.sent if m.to == "buyer1@example.no")
        trail = format_explanation(explain(first, store, POLICY, ["email"], clock()))
        assert recovery.run().counts["sent"] == 2
    steps: dict[str, list[int]] = {}
    for message in email.sent:
        steps.setdefault(message.to, []).append(message.step)
    return steps, trail


def test_a_whatsapp_list_reply_gets_free_shipping_on_shopify(tmp_path):
    def answer(app):
        body = whatsapp_list_reply(KARI, "shipping_cost", "wamid.r1")
        assert post_whatsapp(app, body)[0] == 200

    carts = [cart("1", KARI), cart("2", OLA)]
    with FakeShopify.from_checkouts(carts, throttle=False, timezone="Europe/Oslo") as fake:
        connector = ShopifyConnector(fake.shop, fake.token, base_url=fake.base_url)
        steps, trail = run_with_answers(connector, tmp_path / "s.sqlite3", answer)
        discounts = list(fake.discounts)
    # the steps already sent stay sent; the new segment's step 2 applies
    assert steps == {"buyer1@example.no": [1, 2], "buyer2@example.no": [1, 2]}
    by_checkout = {d["title"].rsplit("checkout ", 1)[1].rstrip(")"): d for d in discounts}
    assert by_checkout["1"]["type"] == "free_shipping"
    assert by_checkout["2"]["type"] == "basic"
    assert by_checkout["2"]["customerGets"]["value"] == {"percentage": 0.1}
    assert "stated reason: shipping cost" in trail
    assert "segment: shipping-cost (matched by the stated reason)" in trail
    assert "incentive: free shipping" in trail


def test_an_sms_digit_gets_free_shipping_on_woocommerce(tmp_path):
    def answer(app):
        assert twilio_sms(app, KARI, "1", "SM1") == 200  # 1: shipping cost
        assert twilio_sms(app, OLA, "2", "SM2") == 200  # 2: price, no segment of its own

    clock = FrozenClock(NOON)
    with FakeWooCommerce(clock=clock, timezone="Europe/Oslo") as shop:
        for number, phone in ((1, KARI), (2, OLA)):
            shop.add_order(
                currency="NOK",
                date_created_gmt=NOON,
                date_modified_gmt=NOON + timedelta(seconds=4),
                billing={
                    "first_name": f"Buyer{number}",
                    "email": f"buyer{number}@example.no",
                    "phone": phone,
                    "country": "NO",
                },
                line_items=[{"name": "Wool blanket", "quantity": 1, "price": "499.00"}],
            )
        connector = WooCommerceConnector(
            shop.base_url, shop.consumer_key, shop.consumer_secret, consent=["email"], clock=clock
        )
        steps, trail = run_with_answers(connector, tmp_path / "w.sqlite3", answer)
        coupons = {c["email_restrictions"][0]: c for c in shop.coupons}
    assert steps == {"buyer1@example.no": [1, 2], "buyer2@example.no": [1, 2]}
    assert coupons["buyer1@example.no"]["free_shipping"] is True
    assert coupons["buyer1@example.no"]["discount_type"] == "fixed_cart"
    assert coupons["buyer2@example.no"]["discount_type"] == "percent"
    assert coupons["buyer2@example.no"]["free_shipping"] is False
    assert "stated reason: shipping cost" in trail
