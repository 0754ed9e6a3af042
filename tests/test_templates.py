"""The default templates: every channel, step and locale renders, and every SMS fits one
segment with worst-case data and a 20-character short link."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources

import pytest
import regex

from cartrescue.models import Discount, ShopInfo
from cartrescue.preview import SAMPLE_RECOVERY_URL, SAMPLE_SHORT_LINK, sample_checkout
from cartrescue.render import MessageContext, TemplateRenderer
from cartrescue.sms import measure

LOCALES = ["en", "nb", "fi", "hu", "pt-BR", "ar"]
STEPS = [1, 2, 3]
NOW = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
SHOP = ShopInfo(name="Nordlys Design", locale="en", timezone="Europe/Oslo")
OPT_OUT = {
    "en": "STOP to opt out",
    "nb": "STOP",
    "fi": "STOP",
    "hu": "Leiratkozni: STOP",
    "pt-BR": "STOP",
    "ar": "STOP",
}
RENDERER = TemplateRenderer()


def _discount(code: str, *, in_link: bool) -> Discount:
    return Discount(
        code=code,
        percent=Decimal(10),
        expires_at=NOW + timedelta(hours=48),
        url=SAMPLE_RECOVERY_URL + f"&discount={code}" if in_link else None,
    )


def _context(locale: str, *, worst: bool, discount: Discount | None, link: str) -> MessageContext:
    return MessageContext(
        checkout=sample_checkout(locale, worst=worst, now=NOW),
        shop=SHOP,
        locale=locale,
        link=link,
        discount=discount,
        unsubscribe_url="https://nordlys-design.example/u/abc" if discount is None else None,
    )


def test_short_link_and_raw_url_lengths() -> None:
    assert len(SAMPLE_SHORT_LINK) == 20
    assert len(SAMPLE_RECOVERY_URL) == 120


@pytest.mark.parametrize("locale", LOCALES)
def test_worst_case_data_is_as_long_as_promised(locale: str) -> None:
    checkout = sample_checkout(locale, worst=True, now=NOW)
    assert checkout.customer is not None
    assert checkout.customer.first_name is not None
    graphemes = regex.compile(r"\X")
    assert len(graphemes.findall(checkout.customer.first_name)) == 30
    assert len(graphemes.findall(checkout.line_items[0].title)) == 60
    assert len(checkout.line_items) == 3


@pytest.mark.parametrize("channel", ["sms", "whatsapp", "email"])
@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("locale", LOCALES)
def test_each_locale_has_its_own_template(channel: str, step: int, locale: str) -> None:
    assert RENDERER.resolve(channel, step, locale, "en") == f"{channel}/{step}.{locale}.j2"  # type: ignore[arg-type]


DISCOUNTS = {
    "no discount": None,
    "code in message": _discount("COMEBACK-7QX2", in_link=False),
    "code applied by link": _discount("COMEBACK-7QX2", in_link=True),
}


@pytest.mark.parametrize("offer", list(DISCOUNTS))
@pytest.mark.parametrize("worst", [False, True], ids=["typical", "worst case"])
@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("locale", LOCALES)
def test_every_sms_fits_one_segment(locale: str, step: int, worst: bool, offer: str) -> None:
    discount = DISCOUNTS[offer]
    content = RENDERER.render(
        "sms", step, _context(locale, worst=worst, discount=discount, link=SAMPLE_SHORT_LINK)
    )
    length = measure(content.text)
    assert length.segments == 1, (content.text, length)
    assert SAMPLE_SHORT_LINK in content.text
    assert content.text.startswith("Nordlys Design: ")
    assert OPT_OUT[locale] in content.text
    if discount is not None and discount.url is None:
        assert discount.code in content.text
    if discount is None:
        assert "COMEBACK" not in content.text


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("locale", LOCALES)
def test_sms_with_a_raw_shopify_url_does_not_fit(locale: str, step: int) -> None:
    from cartrescue.errors import MessageTooLong

    with pytest.raises(MessageTooLong) as caught:
        RENDERER.render(
            "sms", step, _context(locale, worst=True, discount=None, link=SAMPLE_RECOVERY_URL)
        )
    assert caught.value.template == f"sms/{step}.{locale}.j2"


@pytest.mark.parametrize("locale", ["hu", "pt-BR"])
def test_latin_locales_fall_back_to_a_gsm_variant(locale: str) -> None:
    """The template words avoid letters outside GSM-7, so the variant without the
    customer's name and product title stays at 160 units."""
    content = RENDERER.render(
        "sms", 1, _context(locale, worst=True, discount=None, link=SAMPLE_SHORT_LINK)
    )
    assert measure(content.text).encoding == "GSM-7"


@pytest.mark.parametrize("offer", list(DISCOUNTS))
@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("locale", LOCALES)
def test_every_whatsapp_template(locale: str, step: int, offer: str) -> None:
    discount = DISCOUNTS[offer]
    content = RENDERER.render(
        "whatsapp", step, _context(locale, worst=True, discount=discount, link=SAMPLE_SHORT_LINK)
    )
    expected_language = {"pt-BR": "pt_BR"}.get(locale, locale)
    assert content.language == expected_language
    expected_template = "cart_reminder_discount" if discount else f"cart_reminder_{step}"
    assert content.template == expected_template
    assert content.button_parameter == "Ab3dE9x"
    assert all(p and "\n" not in p for p in content.parameters)
    assert "Nordlys Design" in content.parameters
    body = content.text.rsplit("\n[", 1)[0]
    assert "{{" not in body
    assert len(body) <= 1024
    assert "STOP" in body
    if discount is not None:
        assert discount.code in content.parameters
    first_name = _context(locale, worst=True, discount=None, link="").checkout.customer
    assert first_name is not None
    assert content.parameters[0] == first_name.first_name


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("locale", LOCALES)
def test_whatsapp_without_a_name_has_no_empty_parameter(locale: str, step: int) -> None:
    ctx = _context(locale, worst=False, discount=None, link=SAMPLE_SHORT_LINK)
    assert ctx.checkout.customer is not None
    nameless = MessageContext(
        checkout=ctx.checkout.__class__(
            **{
                **{f: getattr(ctx.checkout, f) for f in ctx.checkout.__dataclass_fields__},
                "customer": None,
            }
        ),
        shop=SHOP,
        locale=locale,
        link=SAMPLE_SHORT_LINK,
    )
    content = RENDERER.render("whatsapp", step, nameless)
    assert all(content.parameters)


@pytest.mark.parametrize("offer", list(DISCOUNTS))
@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("locale", LOCALES)
def test_every_email(locale: str, step: int, offer: str) -> None:
    discount = DISCOUNTS[offer]
    ctx = _context(locale, worst=True, discount=discount, link=SAMPLE_RECOVERY_URL)
    content = RENDERER.render("email", step, ctx)
    assert content.subject
    assert "\n" not in content.subject
    assert content.html is not None
    direction = "rtl" if locale == "ar" else "ltr"
    assert f'<html lang="{locale.split("-")[0]}" dir="{direction}">' in content.html
    assert f'href="{SAMPLE_RECOVERY_URL.replace("&", "&amp;")}"' in content.html
    assert SAMPLE_RECOVERY_URL in content.text
    for item in ctx.checkout.line_items:
        assert item.title in content.text
    if discount is not None:
        assert discount.code in content.text
        assert discount.code in content.html
    if ctx.unsubscribe_url:
        assert ctx.unsubscribe_url in content.text
    assert not re.search(r"\n{3,}", content.text)


def test_template_files_are_shipped() -> None:
    root = resources.files("cartrescue").joinpath("templates")
    names = {f"{c.name}/{t.name}" for c in root.iterdir() if c.is_dir() for t in c.iterdir()}
    for channel in ("sms", "whatsapp", "email"):
        for step in STEPS:
            for locale in LOCALES:
                assert f"{channel}/{step}.{locale}.j2" in names
    assert "email/base.j2" in names
