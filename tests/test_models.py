from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cartrescue.errors import BadPayloadError
from cartrescue.models import (
    CHANNEL_KINDS,
    Checkout,
    Customer,
    DiscountOffer,
    OutboxKey,
    normalize_email,
    normalize_phone,
    parse_money,
    parse_time,
)

from .conftest import make_checkout


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+47 912 34 567", None, "+4791234567"),
        ("912 34 567", "NO", "+4791234567"),
        ("(11) 98765-4321", "BR", "+5511987654321"),
        ("040 123 4567", "fi", "+358401234567"),
        ("", "NO", None),
        (None, None, None),
    ],
)
def test_normalize_phone(raw, region, expected):
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize("raw", ["+47 12", "not a number", "912 34 567"])
def test_invalid_phone_raises(raw):
    with pytest.raises(ValueError, match="phone"):
        normalize_phone(raw)


def test_normalize_email():
    assert normalize_email("  Kari@Example.NO ") == "Kari@example.no"
    with pytest.raises(ValueError, match="email"):
        normalize_email("kari at example")


@pytest.mark.parametrize("raw", ["12,50 kr", "", None, True, "NaN", "inf"])
def test_bad_money(raw):
    with pytest.raises(BadPayloadError, match="not a number"):
        parse_money(raw, item="c1")


def test_money_is_exact():
    assert parse_money("0.1") + parse_money(0.2) == Decimal("0.3")


def test_parse_time():
    assert parse_time("2026-03-11T12:00:00Z") == datetime(2026, 3, 11, 12, tzinfo=UTC)
    assert parse_time("2026-03-11T13:00:00+01:00") == datetime(2026, 3, 11, 12, tzinfo=UTC)
    with pytest.raises(BadPayloadError, match="no UTC offset"):
        parse_time("2026-03-11T12:00:00")
    assert parse_time("2026-03-11T12:00:00", assume_utc=True).tzinfo is UTC


def test_checkout_round_trips_through_dict():
    c = make_checkout(completed_at=datetime(2026, 3, 12, tzinfo=UTC), problems=("x",))
    assert Checkout.from_dict(c.to_dict()) == c


def test_customer_phone_must_be_e164():
    with pytest.raises(ValueError, match=r"E\.164"):
        Customer(phone="912 34 567")


def test_checkout_validates():
    with pytest.raises(ValueError, match="currency"):
        make_checkout().__class__(
            id="x",
            abandoned_at=datetime(2026, 1, 1, tzinfo=UTC),
            updated_at=datetime(2026, 1, 1, tzinfo=UTC),
            recovery_url="u",
            currency="kr",
            total=Decimal(1),
        )
    with pytest.raises(ValueError, match="percent"):
        DiscountOffer(Decimal(0), 10)


def test_channel_kinds_are_the_three_kinds_in_order() -> None:
    assert CHANNEL_KINDS == ("sms", "whatsapp", "email")


@pytest.mark.parametrize(
    ("key", "text"),
    [
        (OutboxKey("c1", 1, "sms"), "c1:1:sms"),
        (OutboxKey("gid:shop:42", 3, "whatsapp"), "gid:shop:42:3:whatsapp"),
    ],
)
def test_outbox_key_reads_back_what_it_writes(key: OutboxKey, text: str) -> None:
    assert key.format() == text
    assert str(key) == text
    assert OutboxKey.parse(text) == key


@pytest.mark.parametrize("text", ["", "c1", "c1:1", ":1:sms", "c1:one:sms", "c1:1:fax", "c1:²:sms"])
def test_text_that_is_not_an_outbox_key_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="outbox key"):
        OutboxKey.parse(text)
