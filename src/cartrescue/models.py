"""The data cartrescue works on: checkouts as connectors report them, and messages as channels
send them. Everything here is a frozen dataclass: plain data, safe to share and to compare."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import phonenumbers

from .errors import BadPayloadError

__all__ = [
    "CHANNEL_KINDS",
    "BadCheckout",
    "ChannelKind",
    "Checkout",
    "Content",
    "Customer",
    "CustomerHistory",
    "Discount",
    "DiscountOffer",
    "IncentiveKind",
    "LineItem",
    "Message",
    "OutboxKey",
    "Purchase",
    "Receipt",
    "ShopInfo",
    "clean_text",
    "image_url",
    "normalize_email",
    "normalize_phone",
    "parse_currency",
    "parse_money",
    "parse_quantity",
    "parse_time",
    "payload_text",
]

ChannelKind = Literal["sms", "whatsapp", "email"]
"""The kinds of message a channel sends: the one list of them; everything else derives from it."""
CHANNEL_KINDS: tuple[ChannelKind, ...] = get_args(ChannelKind)
"""Every channel kind, in the order commands list them."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_EMAIL_MAX = 254  # RFC 5321's limit for a whole address
_PHONE_MAX = 64
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_BREAKS = re.compile("\r\n|[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")
_TABS_AND_BREAKS = re.compile("(?:\r\n|[\t\r\n\v\f\x1c-\x1e\x85\u2028\u2029])+")
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(value: str, *, multiline: bool = False) -> str:
    """``value`` made safe to store, render, encode and send.

    Lone surrogates (text no encoder accepts, such as ``"Kari\\ud83d"`` from valid JSON: half
    an emoji cut short), NUL, the other C0 and C1 controls and the bidi embeddings and
    overrides (U+202A–U+202E, U+2066–U+2069, which can make a message read backwards) are
    dropped, so the name reads "Kari", not "Kari\ufffd".
    Line breaks and tabs: a single-line field gets one space for each run of them; with
    ``multiline`` line breaks become ``\\n`` and tabs stay. Every text field of the models
    passes through this when the model is built, so connectors need not call it.
    """
    if value.isascii() and value.isprintable():
        return value
    value = _BREAKS.sub("\n", value) if multiline else _TABS_AND_BREAKS.sub(" ", value)
    return _SURROGATE.sub("", _INVISIBLE.sub("", value))


def _clean_fields(obj: object, names: tuple[str, ...], *, multiline: bool = False) -> None:
    """Run :func:`clean_text` over the named text fields of a frozen dataclass."""
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, str):
            cleaned = clean_text(value, multiline=multiline)
            if cleaned != value:
                object.__setattr__(obj, name, cleaned)


_MONEY_DIGITS = 15  # a total of 10^15 or more in any currency is a malformed payload
_MONEY_DECIMALS = 12
_QUANTITY_MAX = 1_000_000
_YEARS = (1970, 2999)
_SHOWN = 40


def _shown(raw: object, limit: int = _SHOWN) -> str:
    """``raw`` for an error message, cut short (a payload may hold 100 KB): its repr, or
    for an exception its type and text."""
    try:
        text = f"{type(raw).__name__}: {raw}" if isinstance(raw, BaseException) else repr(raw)
    except ValueError:  # an int too long to print
        return f"<{type(raw).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def payload_text(raw: object) -> str | None:
    """Text from a payload, or ``None``: ``None`` unless ``raw`` is a string; otherwise
    :func:`clean_text` (one line) and stripped, ``None`` when nothing is left."""
    if not isinstance(raw, str):
        return None
    return clean_text(raw).strip() or None


_IMAGE_URL_MAX = 2048


def image_url(raw: object) -> str | None:
    """``raw`` when it is an absolute ``https://`` URL with a host (and no spaces or
    quotes), else None: a picture in an email or a WhatsApp header must come over HTTPS
    (mail clients block mixed content and Meta fetches only public HTTPS links)."""
    text = payload_text(raw)
    if text is None or len(text) > _IMAGE_URL_MAX or not text.lower().startswith("https://"):
        return None
    if any(c.isspace() or c in "\"'<>\\" for c in text):
        return None
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    return text if host else None


def normalize_phone(raw: str | None, region: str | None = None) -> str | None:
    """Return ``raw`` as an E.164 number (``+4791234567``), or ``None`` when it is empty.

    ``region`` (ISO 3166 alpha-2, e.g. ``"NO"``) is used for numbers written without a
    country code. Raises ``ValueError`` when the number is not a valid phone number.
    """
    if raw is None or not raw.strip():
        return None
    if len(raw) > _PHONE_MAX:
        raise ValueError("not a phone number (too long)")
    try:
        number = phonenumbers.parse(raw, (region or "").upper() or None)
    except phonenumbers.NumberParseException as err:
        raise ValueError(f"not a phone number ({err})") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str | None) -> str | None:
    """Return ``raw`` trimmed with its domain lower-cased, or ``None`` when empty.

    Raises ``ValueError`` when it is not shaped like an address.
    """
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if len(value) > _EMAIL_MAX or not _EMAIL.match(value):
        raise ValueError("not an email address")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def parse_money(raw: object, *, item: str | None = None) -> Decimal:
    """Parse a price given as a string or number into a ``Decimal``; never through float.

    Raises :class:`~cartrescue.errors.BadPayloadError` for anything that is not a finite
    number, and for amounts no shop charges (10^15 or more, or more than 12 decimals), so
    that arithmetic and formatting downstream cannot overflow.
    """
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise BadPayloadError(f"price {_shown(raw)} is not a number", item=item)
    try:
        value = Decimal(raw.strip() if isinstance(raw, str) else str(raw))
    except (ArithmeticError, ValueError):
        raise BadPayloadError(f"price {_shown(raw)} is not a number", item=item) from None
    if not value.is_finite():
        raise BadPayloadError(f"price {_shown(raw)} is not a number", item=item)
    exponent = value.as_tuple().exponent
    if value and (
        value.adjusted() >= _MONEY_DIGITS
        or (isinstance(exponent, int) and exponent < -_MONEY_DECIMALS)
    ):
        raise BadPayloadError(f"price {_shown(raw)} is out of range", item=item)
    return value


def parse_quantity(raw: object, *, item: str | None = None) -> int:
    """Parse a line item quantity: a whole number from 0 to 1 000 000, given as a number or
    a string. Raises :class:`~cartrescue.errors.BadPayloadError` otherwise."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise BadPayloadError(f"line item quantity {_shown(raw)} is not a number", item=item)
    try:
        value = Decimal(raw.strip() if isinstance(raw, str) else str(raw))
    except (ArithmeticError, ValueError):
        raise BadPayloadError(
            f"line item quantity {_shown(raw)} is not a number", item=item
        ) from None
    if not value.is_finite() or value != value.to_integral_value():
        raise BadPayloadError(f"line item quantity {_shown(raw)} is not a whole number", item=item)
    if not 0 <= value <= _QUANTITY_MAX:
        raise BadPayloadError(f"line item quantity {_shown(raw)} is out of range", item=item)
    return int(value)


def parse_currency(raw: object, *, item: str | None = None) -> str:
    """An ISO 4217 code (``"NOK"``; lower case is accepted and upper-cased). Raises
    :class:`~cartrescue.errors.BadPayloadError` otherwise."""
    text = payload_text(raw)
    code = text.upper() if text is not None and len(text) == 3 else None
    if code is None or not _CURRENCY.match(code):
        raise BadPayloadError(f"currency {_shown(raw)} is not ISO 4217", item=item)
    return code


def parse_time(raw: object, *, item: str | None = None, assume_utc: bool = False) -> datetime:
    """Parse an ISO 8601 time into an aware ``datetime`` in UTC.

    A time without an offset is refused unless ``assume_utc`` (for fields the platform
    documents as UTC, such as WooCommerce's ``*_gmt``). Times before 1970 or after 2999 are
    refused too: they are malformed payloads, and date arithmetic on them would overflow.
    """
    if not isinstance(raw, str) or not raw:
        raise BadPayloadError(f"time {_shown(raw)} is not an ISO 8601 string", item=item)
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadPayloadError(f"time {_shown(raw)} is not an ISO 8601 string", item=item) from None
    if value.tzinfo is None:
        if not assume_utc:
            raise BadPayloadError(f"time {_shown(raw)} has no UTC offset", item=item)
        value = value.replace(tzinfo=UTC)
    if not _YEARS[0] <= value.year <= _YEARS[1]:  # checked first: astimezone may overflow
        raise BadPayloadError(
            f"time {_shown(raw)} is out of range ({_YEARS[0]}–{_YEARS[1]})", item=item
        )
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class LineItem:
    """One line of a cart."""

    title: str
    quantity: int
    price: Decimal
    variant: str | None = None
    sku: str | None = None
    in_stock: bool | None = None
    """Whether the item can be bought now; None when the platform did not say."""
    image_url: str | None = None
    """The item's picture, an ``https://`` URL (see :func:`image_url`); None when there is
    none."""
    product_tags: tuple[str, ...] | None = None
    """The product's tags; None when the platform did not say (not read, or the product is
    gone), ``()`` when it has none."""
    collections: tuple[str, ...] | None = None
    """Handles and titles of the collections (WooCommerce: the categories' slugs and
    names) the product is in; None when the platform did not say."""

    def __post_init__(self) -> None:
        _clean_fields(self, ("title", "variant", "sku", "image_url"))
        if self.image_url is not None and image_url(self.image_url) != self.image_url:
            raise ValueError(
                f"line {self.title!r}: image_url must be an https:// URL (use image_url()), "
                f"got {_shown(self.image_url)}"
            )
        for name in ("product_tags", "collections"):
            names = getattr(self, name)
            if names is not None:
                cleaned = tuple(
                    dict.fromkeys(t for raw in names if (t := payload_text(raw)) is not None)
                )
                if cleaned != names:
                    object.__setattr__(self, name, cleaned)


@dataclass(frozen=True, slots=True)
class Customer:
    """The person behind a checkout.

    ``email`` is normalised, ``phone`` is E.164 (use :func:`normalize_phone`). Each consent
    flag means that person gave marketing consent for that channel; without it nothing is
    sent there. ``timezone`` is an IANA name when the platform knows it.
    """

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    locale: str | None = None
    email_consent: bool = False
    sms_consent: bool = False
    whatsapp_consent: bool = False
    timezone: str | None = None
    orders_count: int | None = None
    """Paid orders this person placed before, when the platform says (0: a new customer)."""
    id: str | None = None
    """The platform's id of this customer account (Shopify's numeric customer id, a
    WooCommerce customer id), None for a guest; customer history is looked up by it."""
    amount_spent: Decimal | None = None
    """What this person spent on paid orders so far (shop currency), when history was read."""
    last_order_at: datetime | None = None
    """When this person last ordered, when history was read (None: never, or unknown)."""
    rfm_group: str | None = None
    """The RFM group (:mod:`cartrescue.rfm`) the engine put this person in from their
    history, None when it is unknown."""

    def __post_init__(self) -> None:
        _clean_fields(
            self, ("first_name", "last_name", "email", "phone", "locale", "timezone", "id")
        )
        if self.last_order_at is not None and self.last_order_at.tzinfo is None:
            raise ValueError("last_order_at must be timezone-aware")
        if self.phone is not None and not re.fullmatch(r"\+[1-9]\d{6,14}", self.phone):
            raise ValueError(f"phone must be E.164 (use normalize_phone), got {self.phone!r}")


@dataclass(frozen=True, slots=True)
class Checkout:
    """A started, unpaid checkout, normalised from any platform.

    ``id`` is unique within one connector. ``abandoned_at`` is when the buyer left (the
    platform's creation time of the checkout or unpaid order); the schedule counts from it.
    ``completed_at`` is set when the platform reports it paid. ``problems`` lists what the
    connector could not map but did not make the checkout useless (an invalid phone number,
    say); the engine records them.
    """

    id: str
    abandoned_at: datetime
    updated_at: datetime
    recovery_url: str
    currency: str
    total: Decimal
    line_items: tuple[LineItem, ...] = ()
    customer: Customer | None = None
    completed_at: datetime | None = None
    name: str | None = None
    problems: tuple[str, ...] = ()
    country: str | None = None
    """ISO 3166-1 alpha-2 code of the billing (else shipping) address, when known."""

    def __post_init__(self) -> None:
        _clean_fields(self, ("id", "recovery_url", "currency", "name", "country"))
        problems = tuple(
            clean_text(p, multiline=True) if isinstance(p, str) else p for p in self.problems
        )
        if problems != self.problems:
            object.__setattr__(self, "problems", problems)
        if not self.id:
            raise ValueError("checkout id must not be empty")
        for label, value in (("abandoned_at", self.abandoned_at), ("updated_at", self.updated_at)):
            if value.tzinfo is None:
                raise ValueError(f"checkout {self.id}: {label} must be timezone-aware")
        if not _CURRENCY.match(self.currency):
            raise ValueError(f"checkout {self.id}: currency {self.currency!r} is not ISO 4217")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; :meth:`from_dict` reads it back."""
        customer = self.customer
        return {
            "id": self.id,
            "abandoned_at": self.abandoned_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "recovery_url": self.recovery_url,
            "currency": self.currency,
            "total": str(self.total),
            "line_items": [
                {
                    "title": li.title,
                    "quantity": li.quantity,
                    "price": str(li.price),
                    "variant": li.variant,
                    "sku": li.sku,
                    "in_stock": li.in_stock,
                    "image_url": li.image_url,
                    "product_tags": None if li.product_tags is None else list(li.product_tags),
                    "collections": None if li.collections is None else list(li.collections),
                }
                for li in self.line_items
            ],
            "customer": None
            if customer is None
            else {
                "first_name": customer.first_name,
                "last_name": customer.last_name,
                "email": customer.email,
                "phone": customer.phone,
                "locale": customer.locale,
                "email_consent": customer.email_consent,
                "sms_consent": customer.sms_consent,
                "whatsapp_consent": customer.whatsapp_consent,
                "timezone": customer.timezone,
                "orders_count": customer.orders_count,
                "id": customer.id,
                "amount_spent": None
                if customer.amount_spent is None
                else str(customer.amount_spent),
                "last_order_at": None
                if customer.last_order_at is None
                else customer.last_order_at.isoformat(),
                "rfm_group": customer.rfm_group,
            },
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "name": self.name,
            "problems": list(self.problems),
            "country": self.country,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkout:
        item = str(data.get("id", "?"))
        try:
            customer = data.get("customer")
            return cls(
                id=str(data["id"]),
                abandoned_at=parse_time(data["abandoned_at"], item=item),
                updated_at=parse_time(data["updated_at"], item=item),
                recovery_url=str(data["recovery_url"]),
                currency=str(data["currency"]),
                total=parse_money(data["total"], item=item),
                line_items=tuple(
                    LineItem(
                        title=str(li["title"]),
                        quantity=int(li["quantity"]),
                        price=parse_money(li["price"], item=item),
                        variant=li.get("variant"),
                        sku=li.get("sku"),
                        in_stock=li.get("in_stock"),
                        image_url=image_url(li.get("image_url")),
                        product_tags=_names(li.get("product_tags")),
                        collections=_names(li.get("collections")),
                    )
                    for li in data.get("line_items", ())
                ),
                customer=None if customer is None else _customer_from_dict(customer, item),
                completed_at=parse_time(data["completed_at"], item=item)
                if data.get("completed_at")
                else None,
                name=data.get("name"),
                problems=tuple(data.get("problems", ())),
                country=data.get("country"),
            )
        except BadPayloadError:
            raise
        except (KeyError, TypeError, ValueError) as err:
            raise BadPayloadError(f"cannot read checkout: {err}", item=item) from err


def _names(raw: object) -> tuple[str, ...] | None:
    if not isinstance(raw, list | tuple):
        return None
    return tuple(str(n) for n in raw)


def _customer_from_dict(data: Mapping[str, Any], item: str) -> Customer:
    fields = dict(data)
    if fields.get("amount_spent") is not None:
        fields["amount_spent"] = parse_money(fields["amount_spent"], item=item)
    if fields.get("last_order_at") is not None:
        fields["last_order_at"] = parse_time(fields["last_order_at"], item=item)
    return Customer(**fields)


@dataclass(frozen=True, slots=True)
class BadCheckout:
    """Yielded by a connector in place of a checkout it could not map.

    A connector never raises for one bad item: it yields this, the engine records ``reason``
    against ``id`` and the pass goes on.
    """

    id: str
    reason: str
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _clean_fields(self, ("id",))
        _clean_fields(self, ("reason",), multiline=True)


@dataclass(frozen=True, slots=True)
class ShopInfo:
    """What messages and policy need to know about the shop itself."""

    name: str
    locale: str = "en"
    timezone: str | None = None
    home_url: str | None = None
    free_shipping_threshold: Decimal | None = None
    """Carts of at least this much ship free; templates see how far a cart is from it."""
    free_shipping_currency: str | None = None
    """The currency of the threshold; carts in another currency are not compared with it
    (None: every cart is, for shops that sell in one currency)."""

    def __post_init__(self) -> None:
        _clean_fields(self, ("name", "locale", "timezone", "home_url", "free_shipping_currency"))
        if self.free_shipping_threshold is not None and self.free_shipping_threshold <= 0:
            raise ValueError("free_shipping_threshold must be positive")

    def free_shipping_remaining(self, checkout: Checkout) -> Decimal | None:
        """How much more ``checkout`` needs to ship free, or None (no threshold, another
        currency, or already there)."""
        threshold = self.free_shipping_threshold
        if threshold is None:
            return None
        if self.free_shipping_currency not in (None, checkout.currency):
            return None
        remaining = threshold - checkout.total
        return remaining if remaining > 0 else None


class IncentiveKind(StrEnum):
    """What a code gives: a percentage off, an amount off the cart, or free shipping."""

    PERCENT = "percent"
    AMOUNT = "amount"
    FREE_SHIPPING = "free_shipping"


@dataclass(frozen=True, slots=True)
class DiscountOffer:
    """What a step offers: ``percent`` off, or ``amount`` off the cart (shop currency), or
    ``free_shipping`` — exactly one — valid for ``valid_for`` seconds.

    ``min_subtotal`` (shop currency): the code works only on carts of at least this much,
    and carts below it are offered no code. ``first_time_only``: offered only to people the
    platform knows never ordered (an unknown order history gets no code)."""

    percent: Decimal | None
    valid_for_seconds: int
    min_subtotal: Decimal | None = None
    first_time_only: bool = False
    amount: Decimal | None = None
    free_shipping: bool = False

    def __post_init__(self) -> None:
        given = (self.percent is not None) + (self.amount is not None) + self.free_shipping
        if given != 1:
            raise ValueError("an offer gives exactly one of percent, amount or free_shipping")
        if self.percent is not None and not Decimal(0) < self.percent <= Decimal(100):
            raise ValueError(f"discount percent must be in (0, 100], got {self.percent}")
        if self.amount is not None and self.amount <= 0:
            raise ValueError(f"discount amount must be positive, got {self.amount}")
        if self.valid_for_seconds <= 0:
            raise ValueError("discount validity must be positive")
        if self.min_subtotal is not None and self.min_subtotal <= 0:
            raise ValueError("discount min_subtotal must be positive")

    @property
    def kind(self) -> IncentiveKind:
        return _kind(self.percent, self.amount)


@dataclass(frozen=True, slots=True)
class Discount:
    """A code a connector created. ``url`` is the recovery link that applies it, when the
    platform has one (Shopify: ``&discount=CODE``); else ``None`` and the message shows the
    code."""

    code: str
    percent: Decimal | None
    expires_at: datetime
    url: str | None = None
    amount: Decimal | None = None
    """For an amount-off code: how much, in the shop's currency."""
    free_shipping: bool = False

    def __post_init__(self) -> None:
        _clean_fields(self, ("code", "url"))

    @property
    def kind(self) -> IncentiveKind:
        return _kind(self.percent, self.amount)

    @classmethod
    def of(
        cls, offer: DiscountOffer, code: str, expires_at: datetime, url: str | None = None
    ) -> Discount:
        """The code ``offer`` was created as."""
        return cls(
            code=code,
            percent=offer.percent,
            expires_at=expires_at,
            url=url,
            amount=offer.amount,
            free_shipping=offer.free_shipping,
        )


def _kind(percent: Decimal | None, amount: Decimal | None) -> IncentiveKind:
    if percent is not None:
        return IncentiveKind.PERCENT
    return IncentiveKind.AMOUNT if amount is not None else IncentiveKind.FREE_SHIPPING


@dataclass(frozen=True, slots=True)
class Purchase:
    """An order found after an abandonment: ``same_checkout`` when the abandoned checkout
    itself was paid, else the contact bought through another checkout."""

    order_id: str
    placed_at: datetime
    total: Decimal | None = None
    currency: str | None = None
    same_checkout: bool = False

    def __post_init__(self) -> None:
        _clean_fields(self, ("order_id", "currency"))


@dataclass(frozen=True, slots=True)
class CustomerHistory:
    """What a shop knows of one person's past orders: how many paid orders, what they spent
    (shop currency; None when the platform does not say) and when they last ordered."""

    orders_count: int
    amount_spent: Decimal | None = None
    last_order_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.orders_count < 0:
            raise ValueError("orders_count must not be negative")
        if self.last_order_at is not None and self.last_order_at.tzinfo is None:
            raise ValueError("last_order_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class Content:
    """What the renderer produces for one channel.

    SMS: ``text``. Email: ``subject``, ``text`` and ``html``. WhatsApp: the approved
    ``template`` name and ``language``, the body ``parameters``, the URL-button
    ``button_parameter`` and the image header's ``header_image``; ``text`` is a readable
    rendering for logs and previews. ``free_form``: WhatsApp sends ``text`` as a free-form
    text message instead of a template, which Meta allows only inside the 24-hour
    customer-service window a buyer's message opened (an acknowledgement of a reply; never a
    reminder).
    """

    text: str
    subject: str | None = None
    html: str | None = None
    template: str | None = None
    language: str | None = None
    parameters: tuple[str, ...] = ()
    button_parameter: str | None = None
    header_image: str | None = None
    """WhatsApp: the ``https://`` link of the template's image header, when it has one."""
    free_form: bool = False


@dataclass(frozen=True, slots=True)
class OutboxKey:
    """The idempotency key of one message: one checkout's step on one channel.

    Its text form (:meth:`format`, read back by :meth:`parse`) is ``checkout id:step:channel``;
    a checkout id may itself contain ``:``. The store keys the outbox by it, providers that
    accept an idempotency key get it, and WhatsApp echoes it back in delivery statuses.
    """

    checkout_id: str
    step: int
    channel: ChannelKind

    def format(self) -> str:
        return f"{self.checkout_id}:{self.step}:{self.channel}"

    def __str__(self) -> str:
        return self.format()

    @classmethod
    def parse(cls, text: str) -> OutboxKey:
        """Read a key written by :meth:`format`; ``ValueError`` when ``text`` is not one."""
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not parts[0]:
            raise ValueError(f"not an outbox key (checkout id:step:channel): {text!r}")
        checkout_id, step, channel = parts
        if not (step.isascii() and step.isdigit()):
            raise ValueError(f"outbox key {text!r}: step {step!r} is not a number")
        for kind in CHANNEL_KINDS:
            if channel == kind:
                return cls(checkout_id, int(step), kind)
        raise ValueError(f"outbox key {text!r}: unknown channel {channel!r}")


@dataclass(frozen=True, slots=True)
class Message:
    """One message to one recipient, ready for a channel.

    ``key`` is the idempotency key (an :class:`OutboxKey`'s text); providers that accept one
    should pass it on. ``to`` is an E.164 number for SMS and WhatsApp, an address for email.
    """

    key: str
    channel: ChannelKind
    to: str
    checkout_id: str
    step: int
    locale: str
    content: Content
    unsubscribe_url: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.content.text


@dataclass(frozen=True, slots=True)
class Receipt:
    """A provider accepted a message. ``provider_id`` is its id for the message, if any."""

    provider: str
    provider_id: str | None = None
    accepted_at: datetime | None = None
    detail: str | None = None
