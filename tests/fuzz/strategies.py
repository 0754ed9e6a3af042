"""Hypothesis strategies for every payload cartrescue reads, and the mutations that break them.

Each ``*_payload`` strategy builds a document of the documented shape (Shopify GraphQL
``abandonedCheckouts`` nodes, REST ``checkouts.json`` items and ``checkouts/*`` webhook bodies,
WooCommerce REST v3 orders, Twilio inbound form posts, WhatsApp Cloud API notifications) with
realistic values. :func:`mutated` then changes a few places of such a document: a value
replaced by a hostile one (:func:`hostile`), a key removed, a type swapped. With no mutation
the document is a valid one, so a property can also say that good input maps.

Use them from any test::

    from tests.fuzz.strategies import mutated, shopify_graphql_node

    @given(mutated(shopify_graphql_node()))
    def test_it(node): ...
"""

from __future__ import annotations

import contextlib
import json
import string
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

__all__ = [
    "HOSTILE_DATES",
    "HOSTILE_NUMBERS",
    "HOSTILE_TEXTS",
    "MISSING",
    "any_text",
    "form_body",
    "garbage_body",
    "hostile",
    "mutated",
    "shopify_graphql_node",
    "shopify_rest_checkout",
    "twilio_form",
    "whatsapp_notification",
    "woo_order",
]

FIXTURES = Path(__file__).parent.parent / "fixtures"
MISSING = object()
"""Stands for "this key is absent" in a mutation."""

BIG = 100_000  # a 100 KB string

HOSTILE_DATES: tuple[str, ...] = (
    "0001-01-01T00:30:00+01:00",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59",
    "1969-12-31T23:59:59Z",
    "2026-13-45T25:61:61Z",
    "2026-02-30T10:00:00Z",
    "2026-03-11T12:00:00",
    "2026-03-11",
    "2026-03-11T12:00:00+25:00",
    "yesterday",
    "0000-00-00 00:00:00",
    "T",
    "Z",
)
HOSTILE_NUMBERS: tuple[object, ...] = (
    "1e999999",
    "-1e999999",
    "1e-999999",
    "NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "-0",
    "12,50 kr",
    "1_000",
    " 12.5 ",
    "0x10",
    "9" * 5000,
    0,
    -1,
    2**63,
    10**30,
    -(10**30),
    1.5,
    -0.0,
    1e308,
    float("nan"),
    float("inf"),
    float("-inf"),
)
HOSTILE_TEXTS: tuple[str, ...] = (
    "",
    " ",
    "\x00",
    "Kari\x00Nordmann",
    "Kari\ud83d",
    "\ud800",
    "\udfff\ud800",
    "Go to evil.example/refund",
    "\u202eevil\u202c",
    "\u2066Kari\u2069",
    "\x07\x1b[31mred\x1b[0m\x85\x9b",
    "line\nbreak\r\n\ttab",
    "\u2028\u2029",
    "<script>alert(1)</script>",
    "&ndash;&#0;&#xD800;",
    "gid://shopify/AbandonedCheckout/",
    "gid://",
    "@",
    "a@b",
    "kari@" + "." * 5000 + "@",
    "+",
    "+" + "9" * 40,
    "nok",
    "NOK ",
    "A" * BIG,
    "1" * BIG,
    "\ud83d" * 1000,
)


def any_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Any Python text, lone surrogates and controls included (JSON can carry them all)."""
    return st.text(st.characters(exclude_categories=()), max_size=max_size)


def hostile() -> st.SearchStrategy[Any]:
    """A value a payload should not hold: wrong types, nulls, extreme dates and numbers,
    unencodable and invisible characters, 100 KB strings."""
    scalars = st.one_of(
        st.sampled_from(HOSTILE_TEXTS),
        st.sampled_from(HOSTILE_DATES),
        st.sampled_from(HOSTILE_NUMBERS),
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        any_text(),
    )
    return st.one_of(
        scalars,
        st.lists(scalars, max_size=3),
        st.dictionaries(any_text(5), scalars, max_size=3),
    )


# -- documented shapes ----------------------------------------------------------------------
_ids = st.integers(min_value=1, max_value=2**53)
_moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
_offsets = st.sampled_from([0, 60, 120, -300, 330, 600, -720])
_currencies = st.sampled_from(["NOK", "EUR", "USD", "HUF", "BRL", "SAR", "JPY"])
_countries = st.sampled_from(["NO", "FI", "HU", "BR", "SA", "US", "GB", "DE"])
_states = st.sampled_from(["SUBSCRIBED", "NOT_SUBSCRIBED", "UNSUBSCRIBED", "PENDING", "REDACTED"])
_names = st.one_of(
    st.sampled_from(["Kari", "Ola", "Anikó", "João", "محمد", "Ødegård", "O'Brien", "Mary-Jane"]),
    st.text(string.ascii_letters + "åæøéíőüçã -'", min_size=1, max_size=20),
)
_phones = st.sampled_from(["+4791234567", "912 34 567", "+36 20 123 4567", "+1 415 555 2671", ""])
_emails = st.builds(
    "{}@{}.{}".format,
    st.text(string.ascii_letters + string.digits + "._+-", min_size=1, max_size=20).filter(
        lambda s: s.strip(".") == s
    ),
    st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12),
    st.sampled_from(["no", "com", "example", "com.br"]),
)
_money = st.decimals(min_value=0, max_value=10**7, places=2).map(str)
_quantities = st.integers(min_value=1, max_value=50)
_hex = st.text("0123456789abcdef", min_size=32, max_size=32)


def _iso(at: datetime, minutes: int, *, z: bool = True) -> str:
    local = at.astimezone(timezone(timedelta(minutes=minutes)))
    text = local.isoformat(timespec="seconds")
    return text.replace("+00:00", "Z") if z else text


@st.composite
def _times(draw: st.DrawFn) -> tuple[str, str]:
    created = draw(_moments)
    updated = created + timedelta(seconds=draw(st.integers(0, 10**6)))
    offset = draw(_offsets)
    return _iso(created, offset), _iso(updated, offset)


def _money_set(amount: str, currency: str) -> dict[str, Any]:
    return {"presentmentMoney": {"amount": amount, "currencyCode": currency}}


@st.composite
def shopify_graphql_node(draw: st.DrawFn) -> dict[str, Any]:
    """One ``AbandonedCheckout`` node as ``abandonedCheckouts`` returns it."""
    number = draw(_ids)
    created, updated = draw(_times())
    currency = draw(_currencies)
    country = draw(_countries)
    customer: dict[str, Any] | None = None
    if draw(st.booleans()):
        customer = {"firstName": draw(_names), "lastName": draw(_names), "locale": "nb"}
        if draw(st.booleans()):
            customer["defaultEmailAddress"] = {
                "emailAddress": draw(_emails),
                "marketingState": draw(_states),
            }
            customer["defaultPhoneNumber"] = {
                "phoneNumber": draw(_phones),
                "marketingState": draw(_states),
            }
        else:
            customer.update(
                email=draw(_emails),
                phone=draw(_phones),
                emailMarketingConsent={"marketingState": draw(_states)},
                smsMarketingConsent={"marketingState": draw(_states)},
            )
    lines = [
        {
            "title": draw(_names),
            "variantTitle": draw(st.none() | _names),
            "quantity": draw(_quantities),
            "sku": draw(st.none() | st.text(string.ascii_uppercase + "-", max_size=8)),
            "originalUnitPriceSet": _money_set(draw(_money), currency),
        }
        for _ in range(draw(st.integers(0, 3)))
    ]
    return {
        "id": f"gid://shopify/AbandonedCheckout/{number}",
        "name": f"#{number}",
        "createdAt": created,
        "updatedAt": updated,
        "completedAt": draw(st.none() | st.just(updated)),
        "abandonedCheckoutUrl": (
            f"https://nordlys.myshopify.com/548380009/checkouts/ac/{draw(_hex)}/recover?key=k"
        ),
        "totalPriceSet": _money_set(draw(_money), currency),
        "billingAddress": draw(st.none() | st.just({"countryCodeV2": country})),
        "shippingAddress": {"countryCodeV2": country},
        "customer": customer,
        "lineItems": {"nodes": lines},
    }


@st.composite
def shopify_rest_checkout(draw: st.DrawFn) -> dict[str, Any]:
    """One REST ``checkouts.json`` item; also the body of a ``checkouts/create|update``
    webhook."""
    number = draw(_ids)
    created, updated = draw(_times())
    currency = draw(_currencies)
    country = draw(_countries)
    email = draw(_emails)
    address = {"first_name": draw(_names), "country_code": country, "phone": None}
    return {
        "id": number,
        "token": draw(_hex),
        "email": email,
        "buyer_accepts_marketing": draw(st.booleans()),
        "buyer_accepts_sms_marketing": draw(st.booleans()),
        "sms_marketing_phone": draw(st.none() | _phones),
        "created_at": created,
        "updated_at": updated,
        "completed_at": draw(st.none() | st.just(updated)),
        "currency": currency,
        "presentment_currency": currency,
        "phone": draw(st.none() | _phones),
        "customer_locale": draw(st.sampled_from(["nb", "en", "pt-BR", "ar", None])),
        "line_items": [
            {
                "title": draw(_names),
                "variant_title": draw(st.none() | _names),
                "quantity": draw(_quantities),
                "sku": None,
                "price": draw(_money),
            }
            for _ in range(draw(st.integers(0, 3)))
        ],
        "name": f"#{number}",
        "abandoned_checkout_url": (
            f"https://nordlys.myshopify.com/548380009/checkouts/ac/{draw(_hex)}/recover?key=k"
        ),
        "total_price": draw(_money),
        "billing_address": address,
        "shipping_address": address,
        "customer": draw(
            st.none()
            | st.fixed_dictionaries(
                {
                    "id": _ids,
                    "email": st.just(email),
                    "first_name": _names,
                    "last_name": _names,
                    "phone": st.none() | _phones,
                    "email_marketing_consent": st.none()
                    | st.fixed_dictionaries({"state": _states.map(str.lower)}),
                    "sms_marketing_consent": st.none()
                    | st.fixed_dictionaries({"state": _states.map(str.lower)}),
                }
            )
        ),
    }


@st.composite
def woo_order(draw: st.DrawFn) -> dict[str, Any]:
    """One order as WooCommerce's REST API v3 returns it (``*_gmt`` dates without offset)."""
    number = draw(st.integers(1, 10**9))
    created = draw(_moments)
    modified = created + timedelta(seconds=draw(st.integers(0, 10**6)))
    status = draw(st.sampled_from(["pending", "failed", "cancelled", "processing", "on-hold"]))
    paid = modified.isoformat(timespec="seconds")[:19] if status == "processing" else None
    country = draw(_countries)
    lines = []
    for position in range(draw(st.integers(0, 3))):
        quantity = draw(_quantities)
        subtotal = draw(_money)
        lines.append(
            {
                "id": position + 1,
                "name": draw(_names) + draw(st.sampled_from(["", " &ndash; Blue", " <b>XL</b>"])),
                "quantity": quantity,
                "subtotal": subtotal,
                "subtotal_tax": draw(st.sampled_from(["0.00", "12.50", ""])),
                "total": subtotal,
                "price": draw(st.floats(0, 10**6, allow_nan=False)),
                "sku": draw(st.sampled_from(["", "WB-1"])),
                "meta_data": [
                    {"id": 1, "key": "pa_colour", "value": "blue", "display_value": "Blue"}
                ],
            }
        )
    return {
        "id": number,
        "parent_id": 0,
        "number": str(number),
        "order_key": f"wc_order_{draw(_hex)[:13]}",
        "created_via": draw(st.sampled_from(["checkout", "store-api", "admin", "rest-api"])),
        "status": status,
        "currency": draw(_currencies),
        "customer_id": 0,
        "date_created_gmt": created.isoformat(timespec="seconds")[:19],
        "date_modified": modified.isoformat(timespec="seconds")[:19],
        "date_modified_gmt": modified.isoformat(timespec="seconds")[:19],
        "date_paid_gmt": paid,
        "date_completed_gmt": None,
        "total": draw(_money),
        "prices_include_tax": draw(st.booleans()),
        "billing": {
            "first_name": draw(_names),
            "last_name": draw(_names),
            "country": country,
            "email": draw(_emails),
            "phone": draw(_phones),
        },
        "shipping": {"first_name": "", "last_name": "", "country": country, "phone": ""},
        "meta_data": [{"id": 1, "key": "_wc_other/acme/sms-optin", "value": draw(_yes)}],
        "line_items": lines,
        "payment_url": draw(
            st.sampled_from([f"https://shop.example/checkout/order-pay/{number}/?key=k", ""])
        ),
    }


_yes = st.sampled_from(["1", "yes", "0", "", True, 1])


@st.composite
def twilio_form(draw: st.DrawFn) -> dict[str, Any]:
    """The fields of a Twilio inbound SMS webhook; :func:`form_body` encodes them."""
    body = draw(
        st.sampled_from(["STOP", "stop", " Stop ", "START", "UNSUBSCRIBE", "hei", "STOPP", ""])
        | any_text()
    )
    return {
        "ToCountry": "US",
        "SmsMessageSid": "SM" + draw(_hex),
        "NumMedia": "0",
        "SmsStatus": "received",
        "Body": body,
        "FromCountry": draw(_countries),
        "To": "+14155552671",
        "MessageSid": "SM" + draw(_hex),
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": draw(_phones | any_text(20)),
        "ApiVersion": "2010-04-01",
    }


def whatsapp_notification() -> st.SearchStrategy[Any]:
    """A WhatsApp Cloud API notification: one of the recorded ones (statuses, inbound
    messages and button replies, user preferences), to be mutated."""
    names = (
        "whatsapp_inbound.json",
        "whatsapp_status_failed.json",
        "whatsapp_user_preferences.json",
    )
    documents = [json.loads((FIXTURES / "web" / name).read_text("utf-8")) for name in names]
    return st.sampled_from(documents)


def garbage_body() -> st.SearchStrategy[bytes]:
    """Bodies that are not what the endpoint expects: random bytes, broken UTF-8, JSON
    scalars, deep nesting, a ping with a 5 000-digit id."""
    return st.one_of(
        st.binary(max_size=200),
        st.sampled_from(
            [
                b"",
                b"\xff\xfe\x00",
                b"null",
                b"[]",
                b'"x"',
                b"1e999999",
                b"NaN",
                b"[" * 5000 + b"]" * 5000,
                b"webhook_id=" + b"9" * 5000,
                b'{"id": ' + b"9" * 5000 + b"}",
                b'{"id": 1}',
                b'{"a": "\\ud800"}',
            ]
        ),
    )


# -- mutations ------------------------------------------------------------------------------
def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _swap(value: Any) -> st.SearchStrategy[Any]:
    """The same content in another JSON type."""
    options: list[Any] = [[value], {"value": value}]
    if isinstance(value, str):
        options += [len(value), value.encode("utf-8", "surrogatepass").hex()[:20] or None]
        with contextlib.suppress(ValueError):
            options.append(json.loads(value))
    elif isinstance(value, bool | int | float):
        options += [str(value), not value]
    elif isinstance(value, dict):
        options += [list(value.values()), json.dumps(value, default=str)[:50]]
    elif isinstance(value, list):
        options += [dict(enumerate(value)), len(value)]
    return st.sampled_from(options)


def _set(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if new is MISSING:
        if isinstance(parent, dict):
            del parent[last]
        else:
            parent[last] = None
    else:
        parent[last] = new
    return document


@st.composite
def _mutate(draw: st.DrawFn, base: st.SearchStrategy[Any], least: int, most: int) -> Any:
    document = json.loads(json.dumps(draw(base)))  # a private copy
    for _ in range(draw(st.integers(least, most))):
        paths = _paths(document)
        path = draw(st.sampled_from(paths))
        current: Any = document
        for step in path:
            current = current[step]
        how = draw(st.sampled_from(["hostile", "hostile", "missing", "swap", "null"]))
        if how == "hostile":
            new = draw(hostile())
        elif how == "missing":
            new = MISSING if path else {}
        elif how == "swap":
            new = draw(_swap(current))
        else:
            new = None
        document = _set(document, path, new)
    return document


def mutated(
    base: st.SearchStrategy[Any], max_mutations: int = 4, *, min_mutations: int = 0
) -> st.SearchStrategy[Any]:
    """``base``'s documents with ``min_mutations`` to ``max_mutations`` places changed (none:
    the document stays valid)."""
    return _mutate(base, min_mutations, max_mutations)


def form_body(fields: Any) -> bytes:
    """URL-encode form fields as a provider would (a mutated field is sent as its text),
    keeping unencodable text as its bytes."""
    pairs = fields.items() if isinstance(fields, dict) else []
    return "&".join(
        f"{quote(str(k).encode('utf-8', 'surrogatepass'), safe='')}="
        f"{quote(str(v).encode('utf-8', 'surrogatepass'), safe='')}"
        for k, v in pairs
    ).encode("ascii")
