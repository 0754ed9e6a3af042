"""No payload makes a connector mapper raise anything but ``BadPayloadError`` naming the item,
and whatever a mapper returns can be stored, read back and sent."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cartrescue.connectors._woo_orders import OrderMapper, order_ref, parse_consent
from cartrescue.connectors.shopify_map import from_graphql, from_rest
from cartrescue.errors import BadPayloadError
from cartrescue.models import BadCheckout, Checkout

from .properties import FUZZ, TALLY, assert_names_the_problem, assert_usable
from .strategies import (
    hostile,
    mutated,
    shopify_graphql_node,
    shopify_rest_checkout,
    woo_order,
)

WOO = OrderMapper(
    shop_url="https://shop.example",
    consent=parse_consent({"sms": "_wc_other/acme/sms-optin"}, None, ["email"]),
    created_via=frozenset({"checkout", "store-api"}),
)


def _map(mapper: Any, payload: Any) -> Checkout | None:
    try:
        checkout = mapper(payload)
    except BadPayloadError as err:
        assert_names_the_problem(err)
        return None
    assert isinstance(checkout, Checkout)
    assert_usable(checkout)
    return checkout


@FUZZ
@given(mutated(shopify_graphql_node()) | hostile())
@example({"id": "gid://shopify/AbandonedCheckout/1", "createdAt": "0001-01-01T00:30:00+01:00"})
def test_shopify_graphql_mapper(node: Any) -> None:
    TALLY["shopify graphql"] += 1
    if not isinstance(node, dict):  # the connector reports non-objects by position
        return
    _map(from_graphql, node)


@FUZZ
@given(mutated(shopify_rest_checkout()) | hostile(), st.sampled_from([None, "NOK", "nok", "x"]))
def test_shopify_rest_mapper(raw: Any, shop_currency: str | None) -> None:
    TALLY["shopify rest"] += 1
    if not isinstance(raw, dict):
        return
    _map(lambda r: from_rest(r, shop_currency=shop_currency), raw)


@FUZZ
@given(mutated(woo_order()) | hostile())
@example({"id": 1, "created_via": ["checkout"], "status": ["pending"]})
@example({"id": 2, "created_via": "checkout", "date_modified_gmt": "0001-01-01T00:30:00"})
def test_woocommerce_order_mapper(order: Any) -> None:
    TALLY["woocommerce order"] += 1
    assert isinstance(order_ref(order), str)
    if isinstance(order, dict):
        reason = WOO.skip_reason(order)
        assert reason is None or isinstance(reason, str)
        assert isinstance(WOO.is_paid(order), bool)
    checkout = _map(WOO.checkout, order)
    if checkout is not None:
        assert checkout.id == order_ref(order)


@FUZZ
@given(shopify_graphql_node())
def test_good_shopify_graphql_nodes_map(node: dict[str, Any]) -> None:
    TALLY["shopify graphql (valid)"] += 1
    assert _map(from_graphql, node) is not None


@FUZZ
@given(shopify_rest_checkout())
def test_good_shopify_rest_checkouts_map(raw: dict[str, Any]) -> None:
    TALLY["shopify rest (valid)"] += 1
    assert _map(from_rest, raw) is not None


@FUZZ
@given(woo_order())
def test_good_woocommerce_orders_map(order: dict[str, Any]) -> None:
    TALLY["woocommerce order (valid)"] += 1
    assert _map(WOO.checkout, order) is not None


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("createdAt", "0001-01-01T00:30:00+01:00", "out of range"),
        ("createdAt", "9999-12-31T23:59:59-01:00", "out of range"),
        (
            "totalPriceSet",
            {"presentmentMoney": {"amount": "1e999999", "currencyCode": "NOK"}},
            "out of range",
        ),
        (
            "totalPriceSet",
            {"presentmentMoney": {"amount": "1", "currencyCode": "nokk"}},
            "ISO 4217",
        ),
        ("lineItems", {"nodes": "abc"}, "line items are not a list"),
        ("abandonedCheckoutUrl", "\x00", "abandonedCheckoutUrl is missing"),
    ],
)
def test_a_bad_field_is_named(field: str, value: object, expected: str) -> None:
    node = {
        "id": "gid://shopify/AbandonedCheckout/7",
        "createdAt": "2026-03-11T12:00:00Z",
        "updatedAt": "2026-03-11T12:00:00Z",
        "abandonedCheckoutUrl": "https://shop.example/r",
        "totalPriceSet": {"presentmentMoney": {"amount": "10.00", "currencyCode": "NOK"}},
        field: value,
    }
    with pytest.raises(BadPayloadError, match=expected) as caught:
        from_graphql(node)
    assert caught.value.item == "7"
    assert len(str(caught.value)) < 200


def test_unsafe_text_is_cleaned_not_refused() -> None:
    node = {
        "id": "gid://shopify/AbandonedCheckout/8",
        "createdAt": "2026-03-11T12:00:00Z",
        "updatedAt": "2026-03-11T12:00:00Z",
        "abandonedCheckoutUrl": "https://shop.example/r",
        "totalPriceSet": {"presentmentMoney": {"amount": "10.00", "currencyCode": "NOK"}},
        "customer": {
            "firstName": "\u202eKari\ud83d\x00",
            "email": "kari\x07@example.no",
            "emailMarketingConsent": {"marketingState": "SUBSCRIBED"},
        },
    }
    checkout = from_graphql(node)
    assert checkout.customer is not None
    assert checkout.customer.first_name == "Kari"
    assert checkout.customer.email == "kari@example.no"
    assert_usable(checkout)


def test_bad_checkout_carries_the_reason() -> None:
    # The connectors turn the mapper's error into a BadCheckout with the same reason.
    with pytest.raises(BadPayloadError) as caught:
        WOO.checkout(
            {"id": 5, "created_via": "checkout", "date_created_gmt": "9999-12-31T23:59:59"}
        )
    bad = BadCheckout(id=order_ref({"id": 5}), reason=caught.value.detail)
    assert bad.id == "5"
    assert "out of range" in bad.reason
