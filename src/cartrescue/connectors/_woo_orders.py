"""WooCommerce orders as cartrescue checkouts: pure functions over the REST API v3 order JSON.

Shapes follow WooCommerce's ``WC_REST_Orders_V2_Controller::get_formatted_item_data`` and the
REST API docs: money is a string (``"29.35"``), ids are integers, ``*_gmt`` dates are UTC
without an offset (``"2017-03-22T19:28:02"``), line item ``price`` is a float computed as
``total / quantity`` (so the unit price is taken from the ``subtotal`` string instead),
``payment_url`` is the pay-for-order page (present in responses, absent from the docs).
Consent is not part of core WooCommerce: :class:`Consent` reads it from order meta or from a
store-level setting.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from ..errors import BadPayloadError, ConfigError
from ..models import (
    CHANNEL_KINDS,
    ChannelKind,
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

__all__ = [
    "DEFAULT_PAID_STATUSES",
    "ORDER_FIELDS",
    "PAYABLE_STATUSES",
    "Consent",
    "OrderMapper",
    "order_ref",
    "paid_at",
    "parse_consent",
]

PAYABLE_STATUSES = frozenset({"pending", "failed"})
"""Statuses the pay-for-order page accepts (``woocommerce_valid_order_statuses_for_payment``)."""
DEFAULT_PAID_STATUSES: tuple[str, ...] = ("processing", "completed")
TRUTHY = frozenset({"1", "yes", "true", "on", "y", "checked"})
"""Meta values that mean "ticked" when ``consent_meta_value`` is not set."""

ORDER_FIELDS = ",".join(
    (
        "id",
        "parent_id",
        "number",
        "order_key",
        "created_via",
        "status",
        "currency",
        "customer_id",
        "date_created_gmt",
        "date_modified",
        "date_modified_gmt",
        "date_paid_gmt",
        "date_completed_gmt",
        "total",
        "prices_include_tax",
        "billing",
        "shipping",
        "meta_data",
        "line_items",
        "payment_url",
    )
)
"""``_fields`` for order requests: WordPress trims the response to these (and WooCommerce
skips computing the others), a fraction of the full order."""

_TAGS = re.compile(r"<[^>]+>")
_REF_MAX = 100


def order_ref(order: object) -> str:
    """The order's id as text for error messages, ``"?"`` when there is none (or when what
    stands there is not an integer or a short text)."""
    raw = order.get("id") if isinstance(order, Mapping) else None
    if isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) < 10**_REF_MAX:
        return str(raw)
    text = payload_text(raw)
    return text if text is not None and len(text) <= _REF_MAX else "?"


def _text_or_empty(value: object) -> str:
    return payload_text(value) or ""


def _object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _plain(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    return payload_text(_TAGS.sub("", html.unescape(payload_text(value) or ""))) or ""


def paid_at(order: Mapping[str, Any], item: str) -> datetime | None:
    """When the order was paid: ``date_paid_gmt``, else ``date_completed_gmt``."""
    for name in ("date_paid_gmt", "date_completed_gmt"):
        if order.get(name):
            return parse_time(order[name], item=item, assume_utc=True)
    return None


@dataclass(frozen=True, slots=True)
class Consent:
    """Which channels an order allows.

    ``meta`` maps a channel to the order meta key a checkout opt-in saves (block checkout
    additional fields are saved as ``_wc_other/<namespace>/<id>``); ``values`` maps a channel
    to the meta values that mean yes (lower-cased); ``store_level`` lists the channels every
    order allows because the shop's checkout states that reminders are sent.
    """

    meta: Mapping[ChannelKind, str] = field(default_factory=dict)
    values: Mapping[ChannelKind, frozenset[str]] = field(default_factory=dict)
    store_level: frozenset[ChannelKind] = frozenset()

    @property
    def configured(self) -> bool:
        return bool(self.meta or self.store_level)

    def for_order(self, meta_data: object) -> dict[ChannelKind, bool]:
        found: dict[str, object] = {}
        if isinstance(meta_data, list):
            wanted = set(self.meta.values())
            for entry in meta_data:
                if isinstance(entry, Mapping) and entry.get("key") in wanted:
                    found[str(entry["key"])] = entry.get("value")
        allowed: dict[ChannelKind, bool] = {}
        for channel in CHANNEL_KINDS:
            key = self.meta.get(channel)
            by_meta = key is not None and key in found and self._yes(channel, found[key])
            allowed[channel] = channel in self.store_level or by_meta
        return allowed

    def _yes(self, channel: ChannelKind, value: object) -> bool:
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float | str):
            text = str(value).strip().lower()
        else:
            return False
        return text in self.values.get(channel, TRUTHY)


def _channel(name: object, key: str) -> ChannelKind:
    if name not in CHANNEL_KINDS:
        raise ConfigError(f"expected one of {', '.join(CHANNEL_KINDS)}, got {name!r}", key=key)
    return name


def _value_set(raw: object, key: str) -> frozenset[str]:
    values = [raw] if isinstance(raw, str | int | bool) else raw
    if not isinstance(values, list) or not values:
        raise ConfigError("expected a value such as 'yes' or a list of values", key=key)
    out = set()
    for value in values:
        if isinstance(value, bool):
            out.add("true" if value else "false")
        elif isinstance(value, int | str) and str(value).strip():
            out.add(str(value).strip().lower())
        else:
            raise ConfigError(f"{value!r} is not a text or number value", key=key)
    return frozenset(out)


def parse_consent(consent_meta: object, consent_meta_value: object, consent: object) -> Consent:
    """Check and read the three consent settings; raises ``ConfigError`` naming the key.

    ``consent_meta`` is ``{channel: meta key}``; ``consent_meta_value`` is a value, a list of
    values, or ``{channel: value(s)}`` (default: ``1``, ``yes``, ``true``, ``on``, ``y``,
    ``checked``); ``consent`` lists channels every order allows.
    """
    meta: dict[ChannelKind, str] = {}
    if consent_meta is not None:
        if not isinstance(consent_meta, Mapping):
            raise ConfigError(
                'expected a table such as { sms = "_wc_other/acme/sms-optin" }',
                key="consent_meta",
            )
        for name, meta_key in consent_meta.items():
            channel = _channel(name, f"consent_meta.{name}")
            if not isinstance(meta_key, str) or not meta_key.strip():
                raise ConfigError("expected an order meta key", key=f"consent_meta.{name}")
            meta[channel] = meta_key.strip()
    values: dict[ChannelKind, frozenset[str]] = {}
    if consent_meta_value is not None:
        if not meta:
            raise ConfigError(
                "set consent_meta too: which meta key to read", key="consent_meta_value"
            )
        if isinstance(consent_meta_value, Mapping):
            for name, raw in consent_meta_value.items():
                channel = _channel(name, f"consent_meta_value.{name}")
                values[channel] = _value_set(raw, f"consent_meta_value.{name}")
        else:
            accepted = _value_set(consent_meta_value, "consent_meta_value")
            values = dict.fromkeys(meta, accepted)
    store_level: set[ChannelKind] = set()
    if consent is not None:
        names = [consent] if isinstance(consent, str) else consent
        if not isinstance(names, list | tuple):
            raise ConfigError('expected a list such as ["email"]', key="consent")
        store_level = {_channel(name, "consent") for name in names}
    return Consent(meta=meta, values=values, store_level=frozenset(store_level))


def _variant(meta_data: object, title: str) -> str | None:
    """Visible item meta (variation attributes, add-on choices) not already in the title."""
    if not isinstance(meta_data, list):
        return None
    parts: list[str] = []
    for entry in meta_data:
        if not isinstance(entry, Mapping) or str(entry.get("key", "")).startswith("_"):
            continue
        value = entry.get("display_value", entry.get("value"))
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            continue
        text = _plain(value)
        if text and text.lower() not in title.lower() and text not in parts:
            parts.append(text)
    return ", ".join(parts) or None


def _lines(order: Mapping[str, Any], item: str) -> list[Any]:
    lines = order.get("line_items")
    if lines is None:
        return []
    if not isinstance(lines, list):
        raise BadPayloadError("line_items is not a list", item=item)
    return lines


def _line_item(raw: object, item: str, with_tax: bool) -> LineItem:
    if not isinstance(raw, Mapping):
        raise BadPayloadError("a line item is not an object", item=item)
    quantity = parse_quantity(raw.get("quantity", 1), item=item)
    title = _plain(raw.get("name") or "") or "Item"
    if raw.get("subtotal") not in (None, "") and quantity > 0:
        subtotal = parse_money(raw["subtotal"], item=item)
        if with_tax and raw.get("subtotal_tax") not in (None, ""):
            subtotal += parse_money(raw["subtotal_tax"], item=item)
        exponent = subtotal.as_tuple().exponent
        places = min(exponent, 0) if isinstance(exponent, int) else -2
        price = (subtotal / quantity).quantize(Decimal(1).scaleb(places))
    else:
        price = parse_money(raw.get("price", 0), item=item)
    return LineItem(
        title=title,
        quantity=quantity,
        price=price,
        variant=_variant(raw.get("meta_data"), title),
        sku=_text_or_empty(raw.get("sku")) or None,
    )


@dataclass(frozen=True, slots=True)
class OrderMapper:
    """Maps one order to a :class:`~cartrescue.models.Checkout`.

    ``shop_url`` is the store's home URL without a trailing slash; it builds the pay link when
    an order has no ``payment_url`` and is the link for orders that can no longer be paid.
    """

    shop_url: str
    consent: Consent
    created_via: frozenset[str]
    paid_statuses: frozenset[str] = frozenset(DEFAULT_PAID_STATUSES)

    def skip_reason(self, order: Mapping[str, Any]) -> str | None:
        """Why this order is not a shopper's checkout (admin or API created), else None."""
        via = order.get("created_via")
        if not isinstance(via, str) or via not in self.created_via:
            shown = _shown(via) if isinstance(via, str | None) else f"a {type(via).__name__}"
            return f"created via {shown}, not a shopper checkout"
        return None

    def is_paid(self, order: Mapping[str, Any]) -> bool:
        status = order.get("status")
        return isinstance(status, str) and status in self.paid_statuses

    def checkout(self, order: object) -> Checkout:
        """Raises :class:`~cartrescue.errors.BadPayloadError` naming the order."""
        item = order_ref(order)
        if not isinstance(order, Mapping):
            raise BadPayloadError("an order is not a JSON object", item=item)
        try:
            return self._checkout(order, item)
        except BadPayloadError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as err:
            raise BadPayloadError(f"malformed order: {_shown(err, 120)}", item=item) from err

    def _checkout(self, order: Mapping[str, Any], item: str) -> Checkout:
        order_id = order.get("id")
        if not isinstance(order_id, int) or isinstance(order_id, bool) or order_id <= 0:
            raise BadPayloadError(
                f"order id {_shown(order_id)} is not a positive integer", item=item
            )
        status = _text_or_empty(order.get("status"))
        created = parse_time(order.get("date_created_gmt"), item=item, assume_utc=True)
        modified_raw = order.get("date_modified_gmt") or order.get("date_created_gmt")
        modified = parse_time(modified_raw, item=item, assume_utc=True)
        problems: list[str] = []
        with_tax = order.get("prices_include_tax") is True
        completed = None
        if self.is_paid(order):
            completed = paid_at(order, item) or modified
        return Checkout(
            id=str(order_id),
            abandoned_at=created,
            updated_at=max(modified, created),
            recovery_url=self._recovery_url(order, order_id, status, problems),
            currency=parse_currency(order.get("currency"), item=item),
            total=parse_money(order.get("total"), item=item),
            line_items=tuple(_line_item(li, item, with_tax) for li in _lines(order, item)),
            customer=self._customer(order, problems),
            completed_at=completed,
            name=f"#{_text_or_empty(str(order.get('number') or order_id))}",
            problems=tuple(problems),
            country=_country(order),
        )

    def _customer(self, order: Mapping[str, Any], problems: list[str]) -> Customer:
        billing = _object(order.get("billing"))
        shipping = _object(order.get("shipping"))
        country = (
            _text_or_empty(billing.get("country"))
            or _text_or_empty(shipping.get("country"))
            or None
        )
        phone = None
        try:
            phone = normalize_phone(
                _text_or_empty(billing.get("phone"))
                or _text_or_empty(shipping.get("phone"))
                or None,
                country,
            )
        except ValueError:
            where = f" in {country}" if country else " (and the order has no country)"
            problems.append(f"the billing phone is not a valid number{where}")
        email = None
        try:
            email = normalize_email(_text_or_empty(billing.get("email")) or None)
        except ValueError:
            problems.append("the billing email is not an email address")
        allowed = self.consent.for_order(order.get("meta_data"))
        account = order.get("customer_id")
        return Customer(
            id=str(account)
            if isinstance(account, int) and not isinstance(account, bool) and account > 0
            else None,
            first_name=_text_or_empty(billing.get("first_name"))
            or _text_or_empty(shipping.get("first_name"))
            or None,
            last_name=_text_or_empty(billing.get("last_name"))
            or _text_or_empty(shipping.get("last_name"))
            or None,
            email=email,
            phone=phone,
            email_consent=allowed["email"],
            sms_consent=allowed["sms"],
            whatsapp_consent=allowed["whatsapp"],
        )

    def _recovery_url(
        self, order: Mapping[str, Any], order_id: int, status: str, problems: list[str]
    ) -> str:
        if status in PAYABLE_STATUSES:
            url = _text_or_empty(order.get("payment_url"))
            if url:
                return url
            key = _text_or_empty(order.get("order_key"))
            if key:
                return (
                    f"{self.shop_url}/checkout/order-pay/{order_id}/"
                    f"?pay_for_order=true&key={quote(key, safe='')}"
                )
            problems.append("the order has no payment_url or order_key: the link is the shop")
        elif status not in self.paid_statuses:
            problems.append(
                f"a {status[:40] or 'status-less'} order cannot be paid: the link is the shop"
            )
        return f"{self.shop_url}/"


def distinct_meta_keys(orders: Iterable[object], limit: int = 8) -> list[str]:
    """Order meta keys seen on ``orders`` (for ``doctor``: which keys a checkout saves)."""
    keys: list[str] = []
    for order in orders:
        for entry in _object(order).get("meta_data") or ():
            key = entry.get("key") if isinstance(entry, Mapping) else None
            if isinstance(key, str) and key not in keys:
                keys.append(key)
                if len(keys) >= limit:
                    return keys
    return keys


def _country(order: Mapping[str, Any]) -> str | None:
    """The billing country, else the shipping country, when it is an ISO 3166-1 code."""
    for name in ("billing", "shipping"):
        country = _text_or_empty(_object(order.get(name)).get("country")).upper()
        if len(country) == 2 and country.isalpha():
            return country
    return None
