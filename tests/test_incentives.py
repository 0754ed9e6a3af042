"""Percent, amount-off and free-shipping offers: settings, both platforms' codes (against
their fakes), and the words templates get."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cartrescue.config import load_config
from cartrescue.connectors.shopify import ShopifyConnector
from cartrescue.connectors.woocommerce import WooCommerceConnector
from cartrescue.errors import ConfigError
from cartrescue.models import Discount, DiscountOffer, IncentiveKind, ShopInfo
from cartrescue.render import MessageContext, TemplateRenderer
from cartrescue_testing.fake_shopify import FakeShopify
from cartrescue_testing.fake_woocommerce import FakeWooCommerce

from .conftest import make_checkout

AMOUNT = DiscountOffer(None, 3600, amount=Decimal("50.00"))
FREE = DiscountOffer(None, 3600, free_shipping=True)
PERCENT = DiscountOffer(Decimal(10), 3600)


@pytest.mark.parametrize(
    ("kwargs", "ok"),
    [
        ({"percent": Decimal(10)}, True),
        ({"percent": None, "amount": Decimal(5)}, True),
        ({"percent": None, "free_shipping": True}, True),
        ({"percent": None}, False),
        ({"percent": Decimal(10), "amount": Decimal(5)}, False),
        ({"percent": None, "amount": Decimal(5), "free_shipping": True}, False),
        ({"percent": None, "amount": Decimal(0)}, False),
    ],
)
def test_an_offer_gives_exactly_one_thing(kwargs, ok):
    if ok:
        DiscountOffer(valid_for_seconds=60, **kwargs)
    else:
        with pytest.raises(ValueError, match=r"percent|amount"):
            DiscountOffer(valid_for_seconds=60, **kwargs)


def test_kinds():
    assert (PERCENT.kind, AMOUNT.kind, FREE.kind) == (
        IncentiveKind.PERCENT,
        IncentiveKind.AMOUNT,
        IncentiveKind.FREE_SHIPPING,
    )


def test_config_reads_each_kind():
    text = (
        '[[policy.steps]]\ndelay = "1h"\ndiscount = { amount = 50 }\n'
        '[[policy.steps]]\ndelay = "2h"\ndiscount = { free_shipping = true, valid_for = "1h" }\n'
    )
    one, two = load_config(None, text=text, env={}).policy.steps
    assert one.discount == DiscountOffer(None, 48 * 3600, amount=Decimal(50))
    assert two.discount == FREE
    bad = '[[policy.steps]]\ndelay = "1h"\ndiscount = { percent = 10, free_shipping = true }\n'
    with pytest.raises(ConfigError, match="one of percent, amount or free_shipping"):
        load_config(None, text=bad, env={})


def test_shopify_amount_and_free_shipping_codes():
    checkout = make_checkout("1")
    with FakeShopify.from_checkouts([checkout], throttle=False) as fake:
        shop = ShopifyConnector(fake.shop, fake.token, base_url=fake.base_url)
        amount = shop.create_discount(checkout, AMOUNT)
        free = shop.create_discount(checkout, FREE)
        basic, shipping = fake.discounts
    assert basic["type"] == "basic"
    assert basic["customerGets"]["value"] == {
        "discountAmount": {"amount": "50.00", "appliesOnEachItem": False}
    }
    assert shipping["type"] == "free_shipping"
    assert shipping["destination"] == {"all": True}
    assert "customerGets" not in shipping
    assert (amount.kind, amount.amount, amount.percent) == ("amount", Decimal("50.00"), None)
    assert free.kind == "free_shipping"
    assert free.url is not None and free.code in free.url
    for created in (basic, shipping):
        assert created["usageLimit"] == 1
        assert created["endsAt"]


def test_the_shopify_fake_refuses_what_shopify_refuses():
    with FakeShopify(throttle=False) as fake:
        base = {"code": "X", "title": "t", "startsAt": "2026-01-01T00:00:00Z"}
        both = {"percentage": 0.1, "discountAmount": {"amount": "5"}}
        answer = fake.create_discount(
            {**base, "customerGets": {"value": both}, "customerSelection": {"all": True}}
        )
        assert answer["userErrors"][0]["code"] == "INVALID"
        zero = {"discountAmount": {"amount": "0"}}
        answer = fake.create_discount(
            {**base, "customerGets": {"value": zero}, "customerSelection": {"all": True}}
        )
        assert answer["userErrors"][0]["code"] == "GREATER_THAN"
        answer = fake.create_discount(base, argument="freeShippingCodeDiscount")
        assert answer["userErrors"][0]["field"] == ["freeShippingCodeDiscount", "context"]
        assert fake.discounts == []


def test_woocommerce_fixed_cart_and_free_shipping_coupons():
    checkout = make_checkout("1")
    with FakeWooCommerce() as shop:
        woo = WooCommerceConnector(
            shop.base_url, shop.consumer_key, shop.consumer_secret, consent=["email"]
        )
        amount = woo.create_discount(checkout, AMOUNT)
        free = woo.create_discount(checkout, FREE)
        fixed, shipping = shop.coupons
    assert (fixed["discount_type"], fixed["amount"], fixed["free_shipping"]) == (
        "fixed_cart",
        "50.00",
        False,
    )
    assert (shipping["discount_type"], shipping["amount"], shipping["free_shipping"]) == (
        "fixed_cart",
        "0.00",
        True,
    )
    assert fixed["usage_limit"] == shipping["usage_limit"] == 1
    assert fixed["date_expires_gmt"]
    assert (amount.kind, free.kind) == ("amount", "free_shipping")


NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SHOP = ShopInfo(name="Nordlys", locale="en", timezone="Europe/Oslo")


def context(discount: Discount | None, locale: str = "en") -> MessageContext:
    checkout = make_checkout(locale=locale)
    return MessageContext(
        checkout=checkout,
        shop=SHOP,
        locale=locale,
        link="https://s.no/Ab3dE9x",
        discount=discount,
    )


def code(offer: DiscountOffer) -> Discount:
    return Discount.of(offer, "BACK-7QX2", NOW + timedelta(days=2))


@pytest.mark.parametrize("locale", ["en", "nb", "fi", "hu", "pt-BR", "ar"])
def test_package_emails_word_every_kind(locale):
    renderer = TemplateRenderer()
    texts = {
        offer.kind: renderer.render("email", 3, context(code(offer), locale)).text
        for offer in (PERCENT, AMOUNT, FREE)
    }
    assert len(set(texts.values())) == 3
    for text in texts.values():
        assert "BACK-7QX2" in text
        assert "None" not in text
    assert "50" in texts[IncentiveKind.AMOUNT]


@pytest.mark.parametrize("channel", ["sms", "whatsapp"])
def test_package_sms_and_whatsapp_word_every_kind(channel):
    renderer = TemplateRenderer()
    texts = {
        offer.kind: renderer.render(channel, 3, context(code(offer))).text
        for offer in (PERCENT, AMOUNT, FREE)
    }
    assert len(set(texts.values())) == 3
    assert all("BACK-7QX2" in text for text in texts.values())


def test_own_templates_get_the_incentive(tmp_path: Path):
    (tmp_path / "sms").mkdir()
    (tmp_path / "sms" / "3.en.j2").write_text(
        "{{ incentive.kind }} {{ incentive.amount }} {{ incentive.code }} {{ link }}"
    )
    renderer = TemplateRenderer([tmp_path])
    text = renderer.render("sms", 3, context(code(AMOUNT))).text
    assert text.startswith("amount NOK50.00 BACK-7QX2")
    text = renderer.render("sms", 3, context(code(FREE))).text
    assert text.startswith("free_shipping None BACK-7QX2")


def test_demo_connector_and_dry_run_codes_keep_the_kind():
    from cartrescue.demo import DemoConnector

    made = DemoConnector().create_discount(make_checkout(), FREE)
    assert made.kind == "free_shipping" and made.code.startswith("BACKSHIP-")
    assert replace(made, code="x").free_shipping
