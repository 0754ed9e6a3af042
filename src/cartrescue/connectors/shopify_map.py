"""Shopify payloads → :class:`~cartrescue.models.Checkout`: pure functions, no I/O.

Both shapes map to the same ``Checkout`` for the same checkout:

- GraphQL ``AbandonedCheckout`` (``abandonedCheckouts`` nodes): contact and consent come only
  from ``customer`` (the checkout has no email or phone field of its own);
- REST ``checkouts.json`` items and ``checkouts/create|update`` webhook bodies.

Amounts are the buyer's (presentment) currency: GraphQL ``presentmentMoney``; REST
``total_price``/``price`` with ``presentment_currency``, falling back to ``currency`` and
then the shop's currency, since Shopify deprecated both currency fields on the REST
resource in 2024-10. Only the ``SUBSCRIBED`` marketing state counts as consent. A phone or
email that does not parse is dropped and named in ``Checkout.problems``; anything that
makes the checkout unusable raises :class:`~cartrescue.errors.BadPayloadError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import wraps
from typing import Any, ParamSpec

from ..errors import BadPayloadError
from ..models import (
    Checkout,
    Customer,
    LineItem,
    _shown,
    normalize_email,
    normalize_phone,
    parse_currency,
    parse_money,
    parse_quantity,
    parse_time,
    payload_text,
)

__all__ = ["from_graphql", "from_rest", "numeric_id"]

_SUBSCRIBED = "SUBSCRIBED"
_ID_MAX = 100
_P = ParamSpec("_P")


def numeric_id(raw: object) -> str:
    """``gid://shopify/AbandonedCheckout/123`` or ``123`` → ``"123"`` (empty when absent or
    not an id: only an integer or a short string is one)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw) if abs(raw) < 10**_ID_MAX else ""
    text = payload_text(raw)
    if text is None or len(text) > _ID_MAX:
        return ""
    return text.rsplit("/", 1)[-1] if text.startswith("gid://") else text


def _mapper(function: Callable[_P, Checkout]) -> Callable[_P, Checkout]:
    """Whatever the payload holds, the mapper raises only ``BadPayloadError`` naming it."""

    @wraps(function)
    def mapped(*args: _P.args, **kwargs: _P.kwargs) -> Checkout:
        try:
            return function(*args, **kwargs)
        except BadPayloadError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError, ArithmeticError) as err:
            raw = args[0] if args else None
            item = numeric_id(raw.get("id")) if isinstance(raw, Mapping) else ""
            raise BadPayloadError(
                f"malformed checkout: {_shown(err, 120)}", item=item or "?"
            ) from err

    return mapped


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text_or_none(value: object) -> str | None:
    return payload_text(value)


def _items(value: object, item: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadPayloadError("line items are not a list", item=item)
    return value


def _subscribed(state: object) -> bool:
    return isinstance(state, str) and state.upper() == _SUBSCRIBED


def _contact(
    *,
    first_name: object,
    last_name: object,
    email: object,
    phone: object,
    region: str | None,
    locale: object,
    email_consent: bool,
    sms_consent: bool,
    problems: list[str],
    orders_count: object = None,
    customer_id: object = None,
) -> Customer:
    try:
        email_value = normalize_email(_text_or_none(email))
    except ValueError as err:
        problems.append(f"email address dropped: {err}")
        email_value = None
    try:
        phone_value = normalize_phone(_text_or_none(phone), region)
    except ValueError as err:
        problems.append(f"invalid phone number: {err}")
        phone_value = None
    return Customer(
        first_name=_text_or_none(first_name),
        last_name=_text_or_none(last_name),
        email=email_value,
        phone=phone_value,
        locale=_text_or_none(locale),
        email_consent=email_consent and email_value is not None,
        sms_consent=sms_consent and phone_value is not None,
        orders_count=_count(orders_count),
        id=numeric_id(customer_id) or None,
    )


def _count(value: object) -> int | None:
    """A non-negative count (GraphQL ``UnsignedInt64`` arrives as a string), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _money(raw: Mapping[str, Any], item: str) -> tuple[Decimal, str]:
    money = _obj(raw.get("presentmentMoney"))
    currency = money.get("currencyCode")
    if currency is None:
        raise BadPayloadError("price has no currency", item=item)
    return parse_money(money.get("amount"), item=item), parse_currency(currency, item=item)


def _line(
    *,
    title: object,
    variant: object,
    quantity: object,
    price: Decimal,
    sku: object,
    item: str,
    in_stock: bool | None = None,
) -> LineItem:
    return LineItem(
        title=_text_or_none(title) or _text_or_none(variant) or "Item",
        quantity=parse_quantity(quantity, item=item),
        price=price,
        variant=_text_or_none(variant),
        sku=_text_or_none(sku),
        in_stock=in_stock,
    )


def _available(line: Mapping[str, Any]) -> bool | None:
    """Whether the line's variant can be bought, when the query asked (a variant since
    deleted cannot); None when it did not."""
    if "variant" not in line:
        return None
    variant = line.get("variant")
    if variant is None:
        return False
    found = _obj(variant).get("availableForSale")
    return found if isinstance(found, bool) else None


def _region(raw: Mapping[str, Any], addresses: tuple[str, str], key: str) -> str | None:
    """The country of the billing address, else the shipping address (for national
    phone numbers)."""
    for name in addresses:
        found = _text_or_none(_obj(raw.get(name)).get(key))
        if found:
            return found
    return None


def _required_text(raw: Mapping[str, Any], key: str, item: str) -> str:
    value = _text_or_none(raw.get(key))
    if value is None:
        raise BadPayloadError(f"{key} is missing", item=item)
    return value


@_mapper
def from_graphql(node: Mapping[str, Any]) -> Checkout:
    """Map one ``AbandonedCheckout`` node of :func:`~.shopify_queries.checkouts_query`."""
    item = numeric_id(node.get("id")) or "?"
    if item == "?":
        raise BadPayloadError("checkout has no id", item=item)
    total, currency = _money(_obj(node.get("totalPriceSet")), item)
    lines = []
    for raw in _items(_obj(node.get("lineItems")).get("nodes"), item):
        raw = _obj(raw)
        price, _ = _money(_obj(raw.get("originalUnitPriceSet")), item)
        lines.append(
            _line(
                title=raw.get("title"),
                variant=raw.get("variantTitle"),
                quantity=raw.get("quantity"),
                price=price,
                sku=raw.get("sku"),
                item=item,
                in_stock=_available(raw),
            )
        )
    problems: list[str] = []
    customer = None
    raw_customer = node.get("customer")
    if isinstance(raw_customer, Mapping):
        region = _region(node, ("billingAddress", "shippingAddress"), "countryCodeV2")
        if "defaultEmailAddress" in raw_customer or "defaultPhoneNumber" in raw_customer:
            email_obj = _obj(raw_customer.get("defaultEmailAddress"))
            phone_obj = _obj(raw_customer.get("defaultPhoneNumber"))
            email, phone = email_obj.get("emailAddress"), phone_obj.get("phoneNumber")
            email_state, sms_state = (
                email_obj.get("marketingState"),
                phone_obj.get("marketingState"),
            )
        else:
            email, phone = raw_customer.get("email"), raw_customer.get("phone")
            email_state = _obj(raw_customer.get("emailMarketingConsent")).get("marketingState")
            sms_state = _obj(raw_customer.get("smsMarketingConsent")).get("marketingState")
        customer = _contact(
            first_name=raw_customer.get("firstName"),
            last_name=raw_customer.get("lastName"),
            email=email,
            phone=phone,
            region=region,
            locale=raw_customer.get("locale"),
            email_consent=_subscribed(email_state),
            sms_consent=_subscribed(sms_state),
            problems=problems,
            orders_count=raw_customer.get("numberOfOrders"),
            customer_id=raw_customer.get("id"),
        )
    completed = node.get("completedAt")
    return Checkout(
        id=item,
        abandoned_at=parse_time(node.get("createdAt"), item=item),
        updated_at=parse_time(node.get("updatedAt"), item=item),
        recovery_url=_required_text(node, "abandonedCheckoutUrl", item),
        currency=currency,
        total=total,
        line_items=tuple(lines),
        customer=customer,
        completed_at=parse_time(completed, item=item) if completed else None,
        name=_text_or_none(node.get("name")),
        problems=tuple(problems),
        country=_region(node, ("billingAddress", "shippingAddress"), "countryCodeV2"),
    )


def _rest_consent(customer_consent: object, checkout_flag: object) -> bool:
    """The customer's current marketing state wins (it records later unsubscribes); the
    checkout's own checkbox counts only when the customer record has no state."""
    state = _obj(customer_consent).get("state")
    if isinstance(state, str):
        return _subscribed(state)
    return checkout_flag is True


@_mapper
def from_rest(raw: Mapping[str, Any], *, shop_currency: str | None = None) -> Checkout:
    """Map one REST abandoned checkout (``checkouts.json`` item or webhook body)."""
    item = numeric_id(raw.get("id")) or "?"
    if item == "?":
        raise BadPayloadError("checkout has no id", item=item)
    currency = (
        _text_or_none(raw.get("presentment_currency"))
        or _text_or_none(raw.get("currency"))
        or shop_currency
    )
    if currency is None:
        raise BadPayloadError("checkout has no currency", item=item)
    lines = []
    for line in _items(raw.get("line_items"), item):
        line = _obj(line)
        lines.append(
            _line(
                title=line.get("title"),
                variant=line.get("variant_title"),
                quantity=line.get("quantity"),
                price=parse_money(line.get("price"), item=item),
                sku=line.get("sku"),
                item=item,
            )
        )
    problems: list[str] = []
    customer = None
    raw_customer = raw.get("customer")
    if isinstance(raw_customer, Mapping):
        region = _region(raw, ("billing_address", "shipping_address"), "country_code")
        sms_consent = _rest_consent(
            raw_customer.get("sms_marketing_consent"), raw.get("buyer_accepts_sms_marketing")
        )
        phone = raw_customer.get("phone") or raw.get("phone")
        if sms_consent and raw.get("sms_marketing_phone"):
            phone = raw.get("sms_marketing_phone")
        customer = _contact(
            first_name=raw_customer.get("first_name"),
            last_name=raw_customer.get("last_name"),
            email=raw_customer.get("email") or raw.get("email"),
            phone=phone,
            region=region,
            locale=raw.get("customer_locale"),
            email_consent=_rest_consent(
                raw_customer.get("email_marketing_consent"), raw.get("buyer_accepts_marketing")
            ),
            sms_consent=sms_consent,
            problems=problems,
            orders_count=raw_customer.get("orders_count"),
            customer_id=raw_customer.get("id"),
        )
    completed = raw.get("completed_at")
    return Checkout(
        id=item,
        abandoned_at=parse_time(raw.get("created_at"), item=item),
        updated_at=parse_time(raw.get("updated_at"), item=item),
        recovery_url=_required_text(raw, "abandoned_checkout_url", item),
        currency=parse_currency(currency, item=item),
        total=parse_money(raw.get("total_price"), item=item),
        line_items=tuple(lines),
        customer=customer,
        completed_at=parse_time(completed, item=item) if completed else None,
        name=_text_or_none(raw.get("name")),
        problems=tuple(problems),
        country=_region(raw, ("billing_address", "shipping_address"), "country_code"),
    )
