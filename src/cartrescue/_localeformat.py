"""Money, numbers and dates formatted the way Babel does, with the per-locale work done once.

Babel's ``format_currency`` parses the locale, looks up the pattern, the symbols and the
currency's digits on every call; that was about 40 % of rendering a message. A
:class:`MoneyFormat` looks them up once per (locale, currency) and then only rounds and groups
digits. It checks itself against Babel on a set of probe amounts when it is built and, where
the locale's pattern is anything but a plain ``#,##0.00``-style one (scientific, significant
digits, the currency's long name) or a probe differs, it hands every amount to Babel. Either
way the text is Babel's: the locale's symbol and decimal sign, the currency's CLDR digits.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from babel import Locale

__all__ = ["format_date_skeleton", "format_money", "format_number"]

_PROBES = tuple(
    Decimal(v)
    for v in (
        "0",
        "0.005",
        "0.5",
        "1",
        "7.125",
        "12.345",
        "999.995",
        "1234.5",
        "98765.4321",
        "1234567.891",
        "100000000",
        "-1234.5",
        "-0.01",
    )
)


Affixes = tuple[tuple[str, str], tuple[str, str]]
"""(prefix, suffix) for a positive amount, then for a negative one, symbols filled in."""


class MoneyFormat:
    """One locale's standard currency format for one currency; call it with an amount."""

    def __init__(self, locale: Locale, currency: str) -> None:
        from babel.numbers import (
            format_currency,
            get_currency_precision,
            get_currency_symbol,
            get_decimal_symbol,
            get_group_symbol,
        )

        self._locale = locale
        self._currency = currency
        self._format_currency = format_currency
        pattern = locale.currency_formats["standard"]
        self._digits = get_currency_precision(currency)
        self._quantum = Decimal(1).scaleb(-self._digits)
        self._decimal = get_decimal_symbol(locale)
        self._group = get_group_symbol(locale)
        self._grouping = pattern.grouping
        self._min_int = pattern.int_prec[0]
        self._affixes: Affixes | None = None
        texts = [*pattern.prefix, *pattern.suffix]
        plain = (
            not pattern.exp_prec
            and "@" not in pattern.pattern
            and pattern.scale == 0
            and pattern.number_pattern
            and not any("¤¤¤" in t or "'" in t for t in texts)
        )
        if plain:
            symbol = get_currency_symbol(currency, locale)

            def fill(text: str) -> str:
                return text.replace("¤¤", currency.upper()).replace("¤", symbol)

            self._affixes = (
                (fill(pattern.prefix[0]), fill(pattern.suffix[0])),
                (fill(pattern.prefix[1]), fill(pattern.suffix[1])),
            )
            if any(self._fast(p, self._affixes) != self._babel(p) for p in _PROBES):
                self._affixes = None

    @property
    def fast(self) -> bool:
        """Whether amounts are formatted here rather than by Babel."""
        return self._affixes is not None

    def _babel(self, amount: Decimal) -> str:
        return str(self._format_currency(amount, self._currency, locale=self._locale))

    def _fast(self, amount: Decimal, affixes: Affixes) -> str:
        negative = amount.is_signed()
        rounded = abs(amount).normalize().quantize(self._quantum)
        whole, _, fraction = f"{rounded:f}".partition(".")
        if len(whole) < self._min_int:
            whole = "0" * (self._min_int - len(whole)) + whole
        size, grouped = self._grouping[0], ""
        while len(whole) > size:
            grouped = self._group + whole[-size:] + grouped
            whole = whole[:-size]
            size = self._grouping[1]
        number = whole + grouped
        if self._digits:
            number += self._decimal + fraction.ljust(self._digits, "0")
        prefix, suffix = affixes[1 if negative else 0]
        return prefix + number + suffix

    def __call__(self, amount: Decimal) -> str:
        if self._affixes is None or not amount.is_finite():
            return self._babel(amount)
        return self._fast(amount, self._affixes)


@lru_cache(maxsize=512)
def money_format(locale: Locale, currency: str) -> MoneyFormat:
    """The formatter for ``currency`` in ``locale``, built once."""
    return MoneyFormat(locale, currency)


def format_money(amount: Decimal, currency: str, locale: Locale) -> str:
    """``format_currency(amount, currency, locale=locale)``, faster."""
    return money_format(locale, currency)(amount)


@lru_cache(maxsize=1024)
def format_number(value: Decimal, locale: Locale) -> str:
    """``format_decimal(value.normalize(), locale=locale)``: a discount's percent is one of a
    few values, so the answers are kept."""
    from babel.numbers import format_decimal

    return str(format_decimal(value.normalize(), locale=locale))


@lru_cache(maxsize=256)
def _skeleton_pattern(skeleton: str, locale: Locale) -> Any:
    from babel.dates import match_skeleton

    skeletons = locale.datetime_skeletons
    if skeleton not in skeletons:
        skeleton = match_skeleton(skeleton, skeletons) or skeleton
    return skeletons[skeleton]  # a parsed DateTimePattern, which format_datetime takes as is


def format_date_skeleton(skeleton: str, when: datetime, zone: tzinfo, locale: Locale) -> str:
    """``format_skeleton(skeleton, when, tzinfo=zone, locale=locale)`` with the skeleton
    matched once per locale."""
    from babel.dates import format_datetime

    return str(format_datetime(when, _skeleton_pattern(skeleton, locale), zone, locale))
