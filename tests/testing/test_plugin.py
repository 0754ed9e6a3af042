"""The fixtures the cartrescue-testing pytest plugin gives every test, without an import."""

from __future__ import annotations

from datetime import UTC, datetime

from cartrescue.connectors.shopify import ShopifyConnector
from cartrescue.connectors.woocommerce import WooCommerceConnector
from cartrescue.demo import demo_checkouts
from cartrescue.models import BadCheckout, Content, Message

NOW = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)


def test_fake_shopify_is_a_running_shop_the_real_connector_reads(fake_shopify):
    kari = next(c for c in demo_checkouts(NOW) if c.id == "1001")
    assert not isinstance(kari, BadCheckout)
    fake_shopify.add_checkout(fake_shopify.record_from_checkout(kari))
    shop = ShopifyConnector(fake_shopify.shop, fake_shopify.token, base_url=fake_shopify.base_url)
    (read,) = list(shop.abandoned_checkouts(None))
    assert read.id == "1001" and read.total == kari.total


def test_fake_woocommerce_is_a_running_shop_the_real_connector_reads(fake_woocommerce):
    fake_woocommerce.add_checkouts([c for c in demo_checkouts(NOW) if c.id == "1001"])
    shop = WooCommerceConnector(
        fake_woocommerce.base_url,
        fake_woocommerce.consumer_key,
        fake_woocommerce.consumer_secret,
    )
    (read,) = [c for c in shop.abandoned_checkouts(None) if not isinstance(c, BadCheckout)]
    assert read.customer is not None and read.customer.first_name == "Kari"


def test_memory_channel_keeps_what_it_sends(memory_channel):
    message = Message(
        key="1001:1:sms",
        checkout_id="1001",
        step=1,
        channel="sms",
        to="+4791234567",
        locale="nb",
        content=Content(text="Hei Kari!"),
    )
    receipt = memory_channel.send(message)
    assert memory_channel.kind == "sms"
    assert memory_channel.sent == [message]
    assert receipt.provider == "memory"
