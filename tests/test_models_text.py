"""Every text field of the models is cleaned when the model is built: nothing that cannot be
encoded, no control characters, no bidi overrides reach the store, the renderer or a channel."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cartrescue.models import (
    BadCheckout,
    Checkout,
    Customer,
    Discount,
    LineItem,
    Purchase,
    ShopInfo,
    clean_text,
)
from cartrescue.render import NAME_LIMIT, printable_name

from .conftest import NOON, make_checkout


@pytest.mark.parametrize(
    ("raw", "single", "multi"),
    [
        ("Kari", "Kari", "Kari"),
        ("Kari\ud83d", "Kari", "Kari"),  # a lone surrogate: valid JSON, no encoding
        ("\udc80x\ud800", "x", "x"),
        ("Ka\x00ri", "Kari", "Kari"),
        ("Ka\x1bri\x7f", "Kari", "Kari"),
        ("Ka\x85ri", "Ka ri", "Ka\nri"),  # NEL, a C1 line break
        ("Ka\x9bri", "Kari", "Kari"),  # CSI, a C1 control
        ("\u202eevil\u202c", "evil", "evil"),
        ("a\u2066b\u2067c\u2068d\u2069", "abcd", "abcd"),
        ("Kari\r\nBcc: x", "Kari Bcc: x", "Kari\nBcc: x"),
        ("a\tb\n\nc", "a b c", "a\tb\n\nc"),
        ("a\u2028b", "a b", "a\nb"),
        ("José 李 محمد 😀 Åse", "José 李 محمد 😀 Åse", "José 李 محمد 😀 Åse"),
    ],
)
def test_clean_text(raw: str, single: str, multi: str) -> None:
    assert clean_text(raw) == single
    assert clean_text(raw, multiline=True) == multi
    single.encode("utf-8")


def test_every_text_field_is_cleaned_when_a_model_is_built() -> None:
    dirty = "Kari\ud83d\x00\u202e"
    clean = "Kari"
    customer = Customer(
        first_name=dirty, last_name=dirty, email=f"k{dirty}@example.no", locale="nb\x00"
    )
    assert (customer.first_name, customer.last_name) == (clean, clean)
    assert customer.email == f"k{clean}@example.no"
    assert customer.locale == "nb"
    item = LineItem(f"Ull\nteppe{dirty}", 1, Decimal("10"), variant=dirty, sku=dirty)
    assert (item.title, item.variant, item.sku) == (f"Ull teppe{clean}", clean, clean)
    checkout = Checkout(
        id=f"c1{dirty}",
        abandoned_at=NOON,
        updated_at=NOON,
        recovery_url=f"https://shop.example/r\x00{dirty}",
        currency="NOK",
        total=Decimal("10"),
        line_items=(item,),
        customer=customer,
        name=f"#1001{dirty}",
        problems=(f"phone:\n{dirty}",),
    )
    assert checkout.id == f"c1{clean}"
    assert checkout.recovery_url == f"https://shop.example/r{clean}"
    assert checkout.name == f"#1001{clean}"
    assert checkout.problems == (f"phone:\n{clean}",)
    assert ShopInfo(name=dirty, home_url=dirty).name == clean
    assert BadCheckout(id=dirty, reason=f"bad\n{dirty}").reason == f"bad\n{clean}"
    assert Discount(dirty, Decimal("10"), NOON, url=dirty).code == clean
    assert Purchase(dirty, NOON).order_id == clean


def test_a_cleaned_checkout_round_trips_and_encodes() -> None:
    checkout = make_checkout(first_name="Kari\ud83d\u202e")
    again = Checkout.from_dict(checkout.to_dict())
    assert again == checkout
    assert again.customer is not None
    assert again.customer.first_name == "Kari"
    str(again.to_dict()).encode("utf-8")


def test_clean_text_is_fast_on_a_large_field() -> None:
    # linear: a 1 MB field of controls and surrogates is cleaned at once, not in seconds
    value = ("a\x00\ud83d\u202e\r\n" * 200_000)[:1_000_000]
    assert len(clean_text(value)) < len(value)


_CONTROLS = {chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]}
_BIDI = {chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]}


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=())))
def test_cleaned_text_always_encodes_and_holds_no_control(raw: str) -> None:
    single = clean_text(raw)
    single.encode("utf-8")
    assert not (set(single) & (_CONTROLS | _BIDI))
    multi = clean_text(raw, multiline=True)
    multi.encode("utf-8")
    assert not (set(multi) & ((_CONTROLS - {"\t", "\n"}) | _BIDI))
    assert clean_text(single) == single
    assert clean_text(multi, multiline=True) == multi


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=80))
def test_printable_name_never_raises_and_never_prints_a_link(raw: str) -> None:
    name = printable_name(raw)
    assert len(name) <= NAME_LIMIT
    assert "@" not in name and "/" not in name and "://" not in name
