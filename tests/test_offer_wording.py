"""The package's wording of every offer kind: locale x kind x channel.

Each shipped locale words a percentage, an amount off (formatted in the shop's currency for
the buyer's locale), free shipping, and the free-shipping threshold line
(``free_shipping_remaining``) on every channel. An SMS fits one segment with typical and
worst-case data, a realistic shop name and a 20-character short link; a WhatsApp offer goes
out as the approved template of its kind, with parameters the Cloud API accepts.

The amounts are checked against the formatting the renderer is documented to use (Babel's
currency format for the locale) computed here, never against a CLDR release's text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import responses
from babel import Locale
from babel.numbers import format_currency, format_decimal

from cartrescue.channels.whatsapp import WhatsAppCloud
from cartrescue.config import build_plugin
from cartrescue.errors import ConfigError
from cartrescue.models import Checkout, Content, Discount, Message, ShopInfo
from cartrescue.preview import SAMPLE_SHORT_LINK, sample_checkout
from cartrescue.registry import CHANNELS
from cartrescue.render import MessageContext, TemplateRenderer
from cartrescue.sms import SINGLE, measure, to_gsm
from tests.conftest import load_fixture

NOW = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
RENDERER = TemplateRenderer()
STEPS = (1, 2, 3)
KINDS = ("percent", "amount", "free_shipping", "remaining")


@dataclass(frozen=True)
class Sample:
    shop: str
    amount: Decimal
    """A realistic amount off in the sample cart's currency."""
    gap: Decimal
    """How far the cart is from free shipping."""


LOCALES = {
    "en": Sample("Hearth & Home", Decimal("15"), Decimal("25")),
    "nb": Sample("Nordlys Design", Decimal("150"), Decimal("90")),
    "fi": Sample("Koivu Design", Decimal("15"), Decimal("12.50")),
    "hu": Sample("Pannon Porta", Decimal("5000"), Decimal("4500")),
    "pt-BR": Sample("Casa Tropical", Decimal("50"), Decimal("60")),
    "ar": Sample("دار العود", Decimal("50"), Decimal("90")),
}
TEMPLATE_NAMES = {
    "percent": "cart_reminder_discount",
    "amount": "cart_reminder_amount_off",
    "free_shipping": "cart_reminder_free_shipping",
}


def _babel(locale: str) -> Locale:
    return Locale.parse(locale.replace("-", "_"))


def money(amount: Decimal, checkout: Checkout, locale: str) -> str:
    return str(format_currency(amount, checkout.currency, locale=_babel(locale)))


def context(
    locale: str,
    kind: str,
    *,
    worst: bool,
    in_link: bool = False,
    shop: ShopInfo | None = None,
) -> MessageContext:
    checkout = sample_checkout(locale, worst=worst, now=NOW)
    sample = LOCALES[locale]
    shop = shop or ShopInfo(name=sample.shop, locale="en", timezone="Europe/Oslo")
    code = "COMEBACK-7QX2" if worst else "BACK10"
    expires = NOW + timedelta(hours=48)
    discount = {
        "percent": Discount(code, Decimal(10), expires),
        "amount": Discount(code, None, expires, amount=sample.amount),
        "free_shipping": Discount(code, None, expires, free_shipping=True),
        "remaining": None,
    }[kind]
    if discount is not None and in_link:
        discount = replace(discount, url=f"{checkout.recovery_url}&discount={code}")
    if kind == "remaining":
        shop = replace(shop, free_shipping_threshold=checkout.total + sample.gap)
    return MessageContext(
        checkout=checkout, shop=shop, locale=locale, link=SAMPLE_SHORT_LINK, discount=discount
    )


def shows(text: str, value: str) -> bool:
    """``value`` is in ``text`` as written or as smart encoding wrote it in GSM-7."""
    return value in text or to_gsm(value) in text


def offer_value(ctx: MessageContext, kind: str) -> str | None:
    """What the message must show for the offer: the percentage, the amount, the gap."""
    locale = ctx.locale
    if kind == "percent":
        return str(format_decimal(Decimal(10), locale=_babel(locale)))
    if kind == "amount":
        assert ctx.discount is not None and ctx.discount.amount is not None
        return money(ctx.discount.amount, ctx.checkout, locale)
    if kind == "remaining":
        remaining = ctx.shop.free_shipping_remaining(ctx.checkout)
        assert remaining is not None
        return money(remaining, ctx.checkout, locale)
    return None


SMS_CASES = [
    pytest.param(
        locale,
        kind,
        step,
        worst,
        in_link,
        id=f"{locale}-{kind}-{step}-{'worst' if worst else 'typical'}{'-link' if in_link else ''}",
    )
    for locale in LOCALES
    for kind in KINDS
    for step in STEPS
    for worst in (False, True)
    for in_link in ((False,) if kind == "remaining" else (False, True))
]


@pytest.mark.parametrize(("locale", "kind", "step", "worst", "in_link"), SMS_CASES)
def test_sms_words_every_offer_kind_in_one_segment(
    locale: str, kind: str, step: int, worst: bool, in_link: bool
) -> None:
    ctx = context(locale, kind, worst=worst, in_link=in_link)
    text = RENDERER.render("sms", step, ctx).text
    length = measure(text)
    assert length.units <= SINGLE[length.encoding], (text, length)
    assert SAMPLE_SHORT_LINK in text
    assert "STOP" in text
    value = offer_value(ctx, kind)
    if value is not None:
        assert shows(text, value), (text, value)
    assert ("%" in text) == (kind == "percent"), text
    if ctx.discount is not None and not in_link:
        assert ctx.discount.code in text
    if kind == "remaining":
        assert "BACK10" not in text and "COMEBACK" not in text


@pytest.mark.parametrize("locale", list(LOCALES))
def test_free_shipping_and_amount_are_worded_apart(locale: str) -> None:
    """Each kind has its own words: the three offers of a step never read alike."""
    for step in STEPS:
        texts = {
            kind: RENDERER.render("sms", step, context(locale, kind, worst=False)).text
            for kind in ("percent", "amount", "free_shipping")
        }
        assert len(set(texts.values())) == 3, texts


@pytest.mark.parametrize("locale", list(LOCALES))
def test_the_threshold_line_is_left_out_with_a_code_or_above_it(locale: str) -> None:
    ctx = context(locale, "remaining", worst=False)
    gap = offer_value(ctx, "remaining")
    assert gap is not None
    with_code = replace(ctx, discount=context(locale, "percent", worst=False).discount)
    assert not shows(RENDERER.render("sms", 1, with_code).text, gap)
    above = replace(ctx.shop, free_shipping_threshold=ctx.checkout.total)
    assert not shows(RENDERER.render("sms", 1, replace(ctx, shop=above)).text, gap)


@pytest.mark.parametrize("locale", ["hu", "pt-BR"])
@pytest.mark.parametrize("kind", KINDS)
def test_latin_offers_stay_in_gsm7(locale: str, kind: str) -> None:
    """Hungarian and Portuguese offers avoid letters outside GSM-7 (a shop name and dates
    in GSM-7), so they keep 160 units rather than 70."""
    text = RENDERER.render("sms", 3, context(locale, kind, worst=True)).text
    assert measure(text).encoding == "GSM-7", text


@pytest.mark.parametrize("kind", KINDS)
def test_arabic_keeps_the_shop_name_when_there_is_room(kind: str) -> None:
    """Arabic drops the shop name (the sender id shows it) only when nothing else fits."""
    shop = ShopInfo(name="زهرة", locale="en")
    text = RENDERER.render("sms", 3, context("ar", kind, worst=False, shop=shop)).text
    assert text.startswith("زهرة: "), text


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("locale", list(LOCALES))
def test_whatsapp_sends_the_template_of_each_kind(locale: str, kind: str, step: int) -> None:
    ctx = context(locale, kind, worst=True)
    content = RENDERER.render("whatsapp", step, ctx)
    assert content.template == TEMPLATE_NAMES.get(kind, f"cart_reminder_{step}")
    body = content.text.rsplit("\n[", 1)[0]
    assert "{{" not in body and len(body) <= 1024
    assert all(p and "\n" not in p for p in content.parameters)
    assert LOCALES[locale].shop in content.parameters
    value = offer_value(ctx, kind)
    if kind in ("percent", "amount"):
        assert value is not None
        # a parameter's whitespace is collapsed to plain spaces, as Meta requires
        assert " ".join(value.split()) in content.parameters
    if ctx.discount is not None:
        assert ctx.discount.code in content.parameters
        assert "%" in body if kind == "percent" else "%" not in body


@pytest.mark.parametrize("kind", ["percent", "amount", "free_shipping"])
@pytest.mark.parametrize("locale", list(LOCALES))
def test_an_offer_template_reads_the_same_at_every_step(locale: str, kind: str) -> None:
    """Meta approves one body per template name and language: every step must send it."""
    contents = {RENDERER.render("whatsapp", s, context(locale, kind, worst=False)) for s in STEPS}
    assert len(contents) == 1


def _message(content: Content, locale: str) -> Message:
    return Message(
        key="ch_1001:3:whatsapp",
        channel="whatsapp",
        to="+4791234567",
        checkout_id="ch_1001",
        step=3,
        locale=locale,
        content=content,
    )


URL = "https://graph.facebook.com/v23.0/106540352242922/messages"


@pytest.mark.parametrize("kind", ["percent", "amount", "free_shipping"])
@pytest.mark.parametrize("locale", list(LOCALES))
@responses.activate
def test_whatsapp_offer_reaches_the_cloud_api(locale: str, kind: str) -> None:
    responses.post(URL, json=load_fixture("whatsapp/sent.json"))
    channel = WhatsAppCloud(
        phone_number_id="106540352242922", access_token="EAAG-token", rate_limit=0
    )
    ctx = context(locale, kind, worst=False)
    content = RENDERER.render("whatsapp", 3, ctx)
    channel.send(_message(content, locale))
    (call,) = responses.calls
    template = json.loads(call.request.body)["template"]
    assert template["name"] == TEMPLATE_NAMES[kind]
    assert template["language"] == {"code": locale.replace("-", "_")}
    body, button = template["components"]
    texts = [p["text"] for p in body["parameters"]]
    assert all(p["type"] == "text" for p in body["parameters"])
    assert texts == list(content.parameters)
    # percent and amount: name, value, shop, code, expiry; free shipping has no value
    assert len(texts) == (4 if kind == "free_shipping" else 5)
    assert texts[-2] == "BACK10"
    if kind == "amount":
        assert texts[1] == " ".join(str(offer_value(ctx, kind)).split())
    assert button == {
        "type": "button",
        "sub_type": "url",
        "index": "0",
        "parameters": [{"type": "text", "text": "Ab3dE9x"}],
    }


CONFIG = {
    "type": "whatsapp",
    "phone_number_id": "106540352242922",
    "access_token_env": "WA_TOKEN",
    "rate_limit": 0,
}


@responses.activate
def test_template_names_send_the_names_the_templates_were_approved_under() -> None:
    responses.post(URL, json=load_fixture("whatsapp/sent.json"))
    table = {
        **CONFIG,
        "template_names": {
            "cart_reminder_free_shipping": "fri_frakt_2026",
            "cart_reminder_amount_off": "kroner_av_2026",
        },
    }
    channel = build_plugin(CHANNELS, table, key="channels.whatsapp", env={"WA_TOKEN": "t"})
    for kind in ("free_shipping", "amount", "percent"):
        content = RENDERER.render("whatsapp", 3, context("nb", kind, worst=False))
        channel.send(_message(content, "nb"))
    names = [json.loads(c.request.body)["template"]["name"] for c in responses.calls]
    assert names == ["fri_frakt_2026", "kroner_av_2026", "cart_reminder_discount"]


@pytest.mark.parametrize(
    "names",
    [{"cart_reminder_free_shipping": "Fri Frakt"}, {"Cart-Reminder": "cart_reminder_1"}],
    ids=["approved name", "rendered name"],
)
def test_template_names_must_be_whatsapp_names(names: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        build_plugin(
            CHANNELS,
            {**CONFIG, "template_names": names},
            key="channels.whatsapp",
            env={"WA_TOKEN": "t"},
        )
    assert "channels.whatsapp.template_names" in str(caught.value)


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("kind", ["percent", "amount", "free_shipping"])
@pytest.mark.parametrize("locale", list(LOCALES))
def test_email_words_every_offer_kind(locale: str, kind: str, step: int) -> None:
    ctx = context(locale, kind, worst=True)
    content = RENDERER.render("email", step, ctx)
    assert ctx.discount is not None
    assert ctx.discount.code in content.text
    value = offer_value(ctx, kind)
    if value is not None:
        assert value in content.text
    assert ("%" in content.text) == (kind == "percent")
