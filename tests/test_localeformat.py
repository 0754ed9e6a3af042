"""The cached money, number and date formatting says exactly what Babel says."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from babel import Locale
from babel.dates import format_skeleton
from babel.numbers import format_currency, format_decimal
from hypothesis import given, settings
from hypothesis import strategies as st

from cartrescue._localeformat import (
    MoneyFormat,
    format_date_skeleton,
    format_money,
    format_number,
)
from cartrescue.render import _babel_locale

LOCALES = ["en", "nb", "fi", "hu", "pt-BR", "ar", "ar-EG", "fa", "hi-IN", "de-CH", "fr-CH", "ja"]
CURRENCIES = ["NOK", "EUR", "HUF", "BRL", "SAR", "USD", "JPY", "KWD", "INR", "CHF", "XYZ"]
AMOUNTS = st.decimals(
    min_value=Decimal("-1e12"), max_value=Decimal("1e12"), allow_nan=False, places=4
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(LOCALES), st.sampled_from(CURRENCIES), AMOUNTS)
def test_money_is_babels_text(locale: str, currency: str, amount: Decimal) -> None:
    babel_locale = _babel_locale(locale)
    assert format_money(amount, currency, babel_locale) == format_currency(
        amount, currency, locale=babel_locale
    )


@pytest.mark.parametrize("locale", ["en", "nb", "ar", "hi-IN", "pt-BR"])
def test_plain_patterns_are_formatted_without_babel(locale: str) -> None:
    # The point of the cache: a plain locale is not handed back to Babel on every call.
    assert MoneyFormat(_babel_locale(locale), "EUR").fast


def test_a_pattern_babel_treats_specially_is_left_to_babel() -> None:
    # de-CH groups with an ASCII apostrophe, which Babel's quote handling rewrites.
    swiss = MoneyFormat(Locale.parse("de_CH"), "CHF")
    assert not swiss.fast
    assert swiss(Decimal("1234567.891")) == format_currency(
        Decimal("1234567.891"), "CHF", locale="de_CH"
    )


def test_money_keeps_the_locales_decimal_sign_and_the_currencys_digits() -> None:
    locale = _babel_locale("nb")
    text = format_money(Decimal("1234.5"), "NOK", locale)
    assert text.count(locale.number_symbols["latn"]["decimal"]) == 1
    assert format_money(Decimal("1234.567"), "KWD", _babel_locale("en")).endswith(".567")
    assert format_money(Decimal("1234.567"), "JPY", _babel_locale("en")).endswith("1,235")


def test_infinite_amounts_go_to_babel() -> None:
    locale = _babel_locale("en")
    assert format_money(Decimal("Infinity"), "USD", locale) == format_currency(
        Decimal("Infinity"), "USD", locale=locale
    )


@pytest.mark.parametrize("value", ["10", "12.5", "10.00", "7.25"])
@pytest.mark.parametrize("locale", ["nb", "ar", "pt-BR"])
def test_number_is_babels_text(value: str, locale: str) -> None:
    babel_locale = _babel_locale(locale)
    assert format_number(Decimal(value), babel_locale) == format_decimal(
        Decimal(value).normalize(), locale=babel_locale
    )


@pytest.mark.parametrize("locale", LOCALES)
def test_date_skeleton_is_babels_text(locale: str) -> None:
    babel_locale = _babel_locale(locale)
    when = datetime(2026, 12, 24, 22, 30, tzinfo=UTC)
    zone = ZoneInfo("Europe/Oslo")
    assert format_date_skeleton("MMMMd", when, zone, babel_locale) == format_skeleton(
        "MMMMd", when, tzinfo=zone, locale=babel_locale
    )
