"""A fake WooCommerce shop: a real HTTP server on loopback answering the parts of the WordPress
and WooCommerce REST API that cartrescue uses, the way they answer.

What it reproduces, from WordPress's and WooCommerce's source and the REST API docs:

* Authentication as ``WC_REST_Authentication`` does it. With ``is_ssl=True`` (WordPress
  believes the request came over HTTPS, as behind a TLS-terminating proxy) the consumer key and
  secret are read from the query string first, then from HTTP Basic auth; a wrong secret is
  401 ``woocommerce_rest_authentication_error`` "Consumer secret is invalid.". Otherwise, and
  as a fallback, OAuth 1.0a one-legged signatures (``check_oauth_signature``): parameters as
  PHP reads ``$_GET``/``$_POST`` (``rest_route`` included; ``a[]`` as ``a[0]``, ``a[1]``) plus
  those of an ``Authorization: OAuth`` header, each name and value rawurlencoded and each pair
  once more, joined with ``%26``; the URI rebuilt from the home URL (``http://host`` for the
  site root, no trailing slash); HMAC-SHA1 or HMAC-SHA256 keyed with ``consumer_secret&``; a
  timestamp within 15 minutes of ``clock``; a nonce never reused per key (remembered per
  timestamp). Refusals carry WooCommerce's codes and messages. A request with
  no usable credentials runs logged out and the endpoint refuses it: 401
  ``woocommerce_rest_cannot_view`` "Sorry, you cannot list resources.". ``drops_authorization``
  makes the server lose the ``Authorization`` header, as PHP over CGI/FastCGI does. Key
  permissions (``read``, ``write``, ``read_write``) are checked per method.
* ``GET /wp-json/wc/v3/orders``: ``status`` as a comma list or ``status[]`` array (``any``
  leaves out ``trash`` and ``checkout-draft``), ``after``/``before`` (created),
  ``modified_after``/``modified_before`` with ``dates_are_gmt`` (a value with an offset is
  first converted to the site's time zone, as ``WP_Date_Query`` does; comparisons are strict
  and to the second), ``search``, ``include``/``exclude``, ``customer``, ``offset``,
  ``orderby`` (``date``, ``id``, ``include``, ``title``, ``slug``, ``modified``; ``ID`` breaks
  ties; with posts storage dates sort by their *local* column), ``order``, ``per_page``
  (1–100; more is 400 ``rest_invalid_param``), ``page`` past the end (an empty list, not an
  error), ``_fields``, and the ``X-WP-Total``/``X-WP-TotalPages``/``Link`` headers. Parameters
  are validated before permissions, as WordPress does.
* ``GET /wp-json/wc/v3/orders/<id>`` (404 ``woocommerce_rest_shop_order_invalid_id``),
  ``POST``/``GET /wp-json/wc/v3/coupons`` (codes lower-cased and unique: 400
  ``woocommerce_rest_coupon_code_already_exists``; 201 with the documented coupon shape).
* The public REST index ``GET /wp-json/`` with ``timezone_string`` and ``gmt_offset``, and
  ``?rest_route=`` for sites with plain permalinks.
* Order JSON as ``WC_REST_Orders_V2_Controller`` formats it: string money, dates without an
  offset (``*_gmt`` in UTC, the others in the site's zone), line item ``price`` as a number,
  ``payment_url``; bodies encoded like ``wp_json_encode`` (``\\/`` for slashes).
* Webhook deliveries and the unsigned ``webhook_id=N`` ping as ``WC_Webhook`` sends them.

Seed it with :meth:`FakeWooCommerce.add_order` (dicts in the REST shape, with defaults for
what is left out) or :meth:`FakeWooCommerce.add_checkout` (cartrescue checkouts); change
orders with :meth:`~FakeWooCommerce.update_order` and :meth:`~FakeWooCommerce.pay_order`::

    with FakeWooCommerce() as shop:
        shop.add_order(billing={"email": "kari@example.no", "country": "NO"})
        connector = WooCommerceConnector(shop.base_url, shop.consumer_key, shop.consumer_secret)
"""

from __future__ import annotations

import base64
import bisect
import copy
import hashlib
import heapq
import hmac
import html
import itertools
import json
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, unquote, unquote_plus, urlencode, urlsplit
from zoneinfo import ZoneInfo

import phonenumbers

from cartrescue.clock import Clock, utc_now
from cartrescue.models import Checkout

from .loopback import LoopbackServer

__all__ = ["FakeWooCommerce", "RecordedRequest"]

WC_VERSION = "9.8.5"
WP_VERSION = "6.8.1"
ORDER_STATUSES = (
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
    "checkout-draft",
)
_ORDERBY = ("date", "id", "include", "title", "slug", "modified")
_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?$"
)
_BILLING = (
    "first_name",
    "last_name",
    "company",
    "address_1",
    "address_2",
    "city",
    "state",
    "postcode",
    "country",
    "email",
    "phone",
)
_SHIPPING = tuple(k for k in _BILLING if k != "email")
_PHP_NOTICE = (
    "<br />\n<b>Deprecated</b>:  Creation of dynamic property Acme_Gateway::$title is "
    "deprecated in <b>/var/www/html/wp-content/plugins/acme-gateway/acme.php</b> on line "
    "<b>42</b><br />\n"
)
_OAUTH = (
    "oauth_consumer_key",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
)


def _wp_json(value: object) -> bytes:
    """``wp_json_encode``: compact, ASCII-only, and slashes escaped as ``\\/``."""
    return json.dumps(value, separators=(",", ":")).replace("/", "\\/").encode()


def _money(value: object) -> str:
    return str(Decimal(str(value)).quantize(Decimal("0.01")))


def _rawurlencode(text: str) -> str:
    """PHP's ``rawurlencode`` (and ``wc_rest_urlencode_rfc3986``): RFC 3986, so ``/`` is
    ``%2F`` and a space ``%20``."""
    return quote(text, safe="-_.~")


# A value as PHP's parse_str leaves it: a string, or an array (``a[]=1``, ``a[k]=2``).
_PhpValue = str | dict[str, Any]


def _php_parse_str(query: str) -> dict[str, _PhpValue]:
    """``$_GET`` from a raw query string, as PHP's ``parse_str`` builds it: ``+`` and
    ``%XX`` decoded, the last of repeated plain names kept, ``name[]`` appended to an array
    (keys 0, 1, …), ``name[key]`` set in one; spaces and dots in a name become ``_``."""
    out: dict[str, _PhpValue] = {}
    for part in query.split("&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition("=")
        name, value = unquote_plus(raw_name), unquote_plus(raw_value)
        match = re.fullmatch(r"([^\[]+)\[([^\]]*)\](.*)", name)
        if match is None:
            out[name.replace(" ", "_").replace(".", "_")] = value
            continue
        top = match.group(1).replace(" ", "_").replace(".", "_")
        current = out.get(top)
        array = current if isinstance(current, dict) else {}
        out[top] = array
        sub = match.group(2)
        if sub == "":
            numeric = [int(k) for k in array if k.isdigit()]
            sub = str(max(numeric) + 1 if numeric else 0)
        array[sub] = value  # deeper levels (a[b][c]) are kept flat: nothing here sends them
    return out


def _php_empty(value: object) -> bool:
    """PHP's ``empty()`` for a request value: unset, ``""``, ``"0"`` or an empty array."""
    return value is None or value in ("", "0") or value == {}


def _scalar(value: _PhpValue) -> str:
    return value if isinstance(value, str) else ""


def _encode_values(value: _PhpValue) -> _PhpValue:
    """``wc_rest_urlencode_rfc3986`` of a value; an array's values are encoded, not its keys."""
    if isinstance(value, dict):
        return {k: _encode_values(v) for k, v in value.items()}
    return _rawurlencode(value)


def _join_with_equals_sign(params: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``join_with_equals_sign``: ``key=value`` encoded once more (``=`` → ``%3D``, ``%`` →
    ``%25``); an array's elements as ``key%5Bsub%5D=value``, in the array's own order."""
    out: list[str] = []
    for name, value in params.items():
        if prefix:
            name = f"{prefix}%5B{name}%5D"
        if isinstance(value, dict):
            out += _join_with_equals_sign(value, name)
        else:
            out.append(_rawurlencode(f"{name}={value}"))
    return out


def _as_utc(value: object, *, default: datetime) -> datetime:
    """A naive UTC datetime, whole seconds, from a datetime (naive means UTC) or a GMT ISO
    string."""
    if value is None:
        value = default
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise ValueError(f"expected a datetime or a GMT ISO string, got {value!r}")
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=0)


class _WPError(Exception):
    def __init__(self, status: int, code: str, message: str, **data: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "message": message, "data": {"status": status, **data}}


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received (``query`` as parsed: name → values)."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    raw_query: str = ""


@dataclass
class _Key:
    secret: str
    permissions: str
    nonces: dict[int, str] = field(default_factory=dict)


@dataclass
class _Index:
    """Parsed copies of an order's dates and search text, for filtering."""

    created_gmt: datetime
    modified_gmt: datetime
    created_local: datetime
    modified_local: datetime
    text: str


@dataclass
class _Fault:
    status: int
    body: bytes
    headers: dict[str, str]
    path: str | None


class FakeWooCommerce:
    """A loopback WooCommerce. Use as a context manager (or :meth:`start`/:meth:`stop`);
    ``base_url`` is the shop's address, ``rest_url`` its REST root.

    ``timezone`` is the site's time zone: an IANA name, or a manual offset such as ``"UTC+2"``
    (then ``timezone_string`` is empty, as in WordPress). ``clock`` gives "now" for order
    dates. ``php_notices`` prefixes every body with a PHP deprecation notice, as a site with
    ``WP_DEBUG_DISPLAY`` on does. ``before_request`` is called with each request before it is
    answered (to change the shop in the middle of a walk).
    """

    consumer_key: str
    consumer_secret: str

    def __init__(
        self,
        *,
        consumer_key: str = "ck_" + "0" * 40,
        consumer_secret: str = "cs_" + "1" * 40,
        permissions: str = "read_write",
        is_ssl: bool = False,
        drops_authorization: bool = False,
        timezone: str = "UTC",
        clock: Clock = utc_now,
        php_notices: bool = False,
        name: str = "Fake Woo shop",
    ) -> None:
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self._keys: dict[str, _Key] = {}
        self.add_key(consumer_key, consumer_secret, permissions)
        self.is_ssl = is_ssl
        self.drops_authorization = drops_authorization
        self.clock = clock
        self.php_notices = php_notices
        self.name = name
        self.timezone_string, self.gmt_offset, self._zone = self._parse_zone(timezone)
        self.requests: list[RecordedRequest] = []
        self.coupons: list[dict[str, Any]] = []
        self.products: dict[int, dict[str, Any]] = {}
        """Products and variations by id: ``id``, ``parent_id`` (0 for a product),
        ``type`` and ``stock_status``; see :meth:`add_product`."""
        self.before_request: Callable[[RecordedRequest], None] | None = None
        self._orders: dict[int, dict[str, Any]] = {}
        self._index: dict[int, _Index] = {}
        self._by_customer: dict[int, set[int]] = {}
        self._by_created: list[tuple[datetime, int]] | None = None
        self._ids = itertools.count(100)
        self._item_ids = itertools.count(1)
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._server: LoopbackServer | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> FakeWooCommerce:
        fake = self

        class Handler(_Handler):
            shop = fake

        self._server = LoopbackServer(Handler)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> FakeWooCommerce:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The shop's home URL (``http://127.0.0.1:<port>``)."""
        if self._server is None:
            raise RuntimeError("the fake shop is not running; use it as a context manager")
        return self._server.url

    @property
    def rest_url(self) -> str:
        return f"{self.base_url}/wp-json"

    def _home(self) -> str:
        return self.base_url if self._server is not None else "http://127.0.0.1"

    # -- set-up -------------------------------------------------------------------------
    def add_key(
        self, consumer_key: str, consumer_secret: str, permissions: str = "read_write"
    ) -> None:
        """Another REST API key (``read``, ``write`` or ``read_write``)."""
        if permissions not in ("read", "write", "read_write"):
            raise ValueError("permissions must be read, write or read_write")
        self._keys[consumer_key] = _Key(consumer_secret, permissions)

    def fail_next(
        self,
        status: int = 503,
        *,
        times: int = 1,
        body: str = "<html><body><h1>503 Service Unavailable</h1></body></html>",
        headers: Mapping[str, str] | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests (whose path contains ``path``, if given) with
        ``status`` and ``body``, as an overloaded host or a proxy in front of it would."""
        with self._lock:
            for _ in range(times):
                self._faults.append(_Fault(status, body.encode(), dict(headers or {}), path))

    @staticmethod
    def _parse_zone(value: str) -> tuple[str, float, Any]:
        manual = re.fullmatch(r"UTC([+-]\d+(?:\.\d+)?)?", value)
        if manual:
            offset = float(manual.group(1) or 0)
            return "", offset, timezone(timedelta(hours=offset))
        zone = ZoneInfo(value)
        offset = (datetime.now(zone).utcoffset() or timedelta(0)).total_seconds() / 3600
        return value, offset, zone

    def _local(self, gmt: datetime) -> datetime:
        return gmt.replace(tzinfo=UTC).astimezone(self._zone).replace(tzinfo=None)

    @staticmethod
    def _fmt(value: datetime | None) -> str | None:
        return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S")

    def _now(self) -> datetime:
        return _as_utc(self.clock(), default=self.clock())

    # -- orders -------------------------------------------------------------------------
    def add_order(self, **fields: Any) -> dict[str, Any]:
        """Add an order given in the REST API shape; what is left out gets WooCommerce's
        defaults (a ``pending`` ``checkout`` order created now). Dates may be aware datetimes
        or GMT strings (``date_created_gmt``, ``date_modified_gmt``, ``date_paid_gmt``);
        ``line_items`` entries need only ``name``, ``quantity`` and ``price``; ``total`` is
        their sum unless given. Returns a copy of the stored order."""
        with self._lock:
            order = self._build(fields)
            self._store(order)
            return copy.deepcopy(order)

    def add_product(
        self, product_id: int, stock_status: str = "instock", *, parent_id: int = 0
    ) -> None:
        """Add a product (or, with ``parent_id``, a variation of one) whose ``stock_status``
        is ``instock``, ``outofstock`` or ``onbackorder``."""
        if stock_status not in ("instock", "outofstock", "onbackorder"):
            raise ValueError(f"unknown stock_status {stock_status!r}")
        with self._lock:
            self.products[product_id] = {
                "id": product_id,
                "parent_id": parent_id,
                "type": "variation" if parent_id else "simple",
                "stock_status": stock_status,
            }

    def add_orders(self, orders: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [self.add_order(**dict(o)) for o in orders]

    def add_sample_orders(
        self,
        count: int,
        *,
        start: datetime,
        every: timedelta = timedelta(seconds=30),
        consent_meta_key: str = "_wc_other/acme/sms-optin",
    ) -> list[int]:
        """Add ``count`` made-up unpaid shopper orders, one created ``every`` apart from
        ``start`` and modified a few seconds later: ``pending`` (every ninth ``failed``),
        from the classic and the block checkout, buyers in Norway, Sweden, Germany and the
        US with national phone numbers, two line items (one with a variation), and an SMS
        opt-in under ``consent_meta_key`` for two buyers in three. Returns the order ids."""
        countries = (
            ("NO", "912 34 {:03d}"),
            ("SE", "070-123 4{:03d}"),
            ("DE", "0151 2345{:04d}"),
            ("US", "(415) 555-{:04d}"),
        )
        ids = []
        for i in range(count):
            country, phone = countries[i % len(countries)]
            created = start + every * i
            order = self.add_order(
                status="failed" if i % 9 == 0 else "pending",
                created_via="store-api" if i % 2 else "checkout",
                currency="EUR",
                date_created_gmt=created,
                date_modified_gmt=created + timedelta(seconds=4),
                billing={
                    "first_name": f"Buyer{i}",
                    "last_name": "Example",
                    "address_1": f"Street {i}",
                    "city": "Town",
                    "postcode": "0155",
                    "country": country,
                    "email": f"buyer{i}@example.com",
                    "phone": phone.format(i % 1000),
                },
                meta_data=[{"key": consent_meta_key, "value": "1" if i % 3 else "0"}],
                line_items=[
                    {
                        "name": "Wool blanket",
                        "quantity": 1,
                        "price": "129.00",
                        "meta_data": [
                            {
                                "key": "pa_colour",
                                "value": "fjord-blue",
                                "display_value": "Fjord blue",
                            }
                        ],
                    },
                    {"name": "Beeswax candles", "quantity": 2, "price": "12.40"},
                ],
            )
            ids.append(order["id"])
        return ids

    def add_checkout(
        self,
        checkout: Checkout,
        *,
        status: str | None = None,
        created_via: str = "checkout",
        consent_meta: Mapping[str, str] | None = None,
        country: str | None = None,
    ) -> dict[str, Any]:
        """Add a cartrescue checkout as the order WooCommerce would hold for it. The id is
        kept when it is numeric; ``consent_meta`` maps a channel to the meta key that records
        the customer's consent for it (``"1"`` or ``"0"``)."""
        customer = checkout.customer
        billing: dict[str, Any] = {}
        meta: list[dict[str, Any]] = []
        if customer is not None:
            region = country
            if region is None and customer.phone:
                region = phonenumbers.region_code_for_number(phonenumbers.parse(customer.phone))
            billing = {
                "first_name": customer.first_name or "",
                "last_name": customer.last_name or "",
                "email": customer.email or "",
                "phone": customer.phone or "",
                "country": region or "",
            }
            consents = {
                "sms": customer.sms_consent,
                "whatsapp": customer.whatsapp_consent,
                "email": customer.email_consent,
            }
            for channel, key in (consent_meta or {}).items():
                meta.append({"key": key, "value": "1" if consents[channel] else "0"})
        fields: dict[str, Any] = {
            "status": status or ("processing" if checkout.completed_at else "pending"),
            "created_via": created_via,
            "currency": checkout.currency,
            "total": str(checkout.total),
            "date_created_gmt": checkout.abandoned_at,
            "date_modified_gmt": checkout.updated_at,
            "date_paid_gmt": checkout.completed_at,
            "billing": billing,
            "shipping": {k: v for k, v in billing.items() if k != "email"},
            "meta_data": meta,
            "line_items": [
                {
                    "name": li.title + (f" - {li.variant}" if li.variant else ""),
                    "quantity": li.quantity,
                    "price": str(li.price),
                    "sku": li.sku or "",
                }
                for li in checkout.line_items
            ],
        }
        if checkout.id.isdigit():
            fields["id"] = int(checkout.id)
        if customer is not None and customer.id and customer.id.isdigit():
            fields["customer_id"] = int(customer.id)
        return self.add_order(**fields)

    def add_checkouts(self, checkouts: Iterable[object], **options: Any) -> list[dict[str, Any]]:
        """:meth:`add_checkout` for each ``Checkout`` (other items, such as ``BadCheckout``,
        are left out)."""
        return [self.add_checkout(c, **options) for c in checkouts if isinstance(c, Checkout)]

    def update_order(self, order_id: int, **changes: Any) -> dict[str, Any]:
        """Change an order (``billing``/``shipping`` are merged) and stamp it modified now."""
        with self._lock:
            order = self._orders[order_id]
            for key in ("billing", "shipping"):
                if key in changes:
                    changes[key] = {**order[key], **changes[key]}
            changes.setdefault("date_modified_gmt", self._now())
            merged = {**order, **changes}
            merged.pop("date_modified", None)
            rebuilt = self._build(merged, existing=True)
            self._store(rebuilt)
            return copy.deepcopy(rebuilt)

    def pay_order(
        self, order_id: int, *, status: str = "processing", at: datetime | None = None
    ) -> dict[str, Any]:
        """The shopper paid: the status becomes ``processing`` and ``date_paid`` is set."""
        when = _as_utc(at, default=self.clock())
        return self.update_order(
            order_id,
            status=status,
            date_paid_gmt=when,
            date_modified_gmt=when,
            transaction_id=f"txn_{secrets.token_hex(6)}",
        )

    def order(self, order_id: int) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._orders[order_id])

    @property
    def orders(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(o) for o in self._orders.values()]

    def _build(self, fields: Mapping[str, Any], *, existing: bool = False) -> dict[str, Any]:
        now = self._now()
        order_id = int(fields.get("id") or self._next_id())
        if not existing and order_id in self._orders:
            raise ValueError(f"order {order_id} already exists")
        created = _as_utc(fields.get("date_created_gmt"), default=now)
        modified = _as_utc(fields.get("date_modified_gmt"), default=created)
        paid = fields.get("date_paid_gmt")
        paid_at = None if paid is None else _as_utc(paid, default=now)
        completed = fields.get("date_completed_gmt")
        completed_at = None if completed is None else _as_utc(completed, default=now)
        status = fields.get("status", "pending")
        key = fields.get("order_key") or f"wc_order_{secrets.token_hex(7)[:13]}"
        items = [self._line_item(li) for li in fields.get("line_items", [])]
        total = fields.get("total")
        if total is None:
            total = sum((Decimal(li["total"]) for li in items), Decimal(0))
        home = self._home()
        order: dict[str, Any] = {
            "id": order_id,
            "parent_id": 0,
            "number": str(order_id),
            "order_key": key,
            "created_via": "checkout",
            "version": WC_VERSION,
            "status": status,
            "currency": "USD",
            "date_created": self._fmt(self._local(created)),
            "date_created_gmt": self._fmt(created),
            "date_modified": self._fmt(self._local(modified)),
            "date_modified_gmt": self._fmt(modified),
            "discount_total": "0.00",
            "discount_tax": "0.00",
            "shipping_total": "0.00",
            "shipping_tax": "0.00",
            "cart_tax": "0.00",
            "total": _money(total),
            "total_tax": "0.00",
            "prices_include_tax": False,
            "customer_id": 0,
            "customer_ip_address": "",
            "customer_user_agent": "",
            "customer_note": "",
            "payment_method": "",
            "payment_method_title": "",
            "transaction_id": "",
            "cart_hash": "",
            "tax_lines": [],
            "shipping_lines": [],
            "fee_lines": [],
            "coupon_lines": [],
            "refunds": [],
        }
        for name, value in fields.items():
            if name not in (
                "line_items",
                "meta_data",
                "billing",
                "shipping",
            ) and not name.startswith("date_"):
                order[name] = value
        order["id"], order["order_key"], order["total"] = order_id, key, _money(order["total"])
        order["billing"] = dict.fromkeys(_BILLING, "") | dict(fields.get("billing") or {})
        order["shipping"] = dict.fromkeys(_SHIPPING, "") | dict(fields.get("shipping") or {})
        order["date_paid"] = self._fmt(None if paid_at is None else self._local(paid_at))
        order["date_paid_gmt"] = self._fmt(paid_at)
        order["date_completed"] = self._fmt(
            None if completed_at is None else self._local(completed_at)
        )
        order["date_completed_gmt"] = self._fmt(completed_at)
        order["meta_data"] = [
            {"id": m.get("id") or next(self._item_ids), "key": m["key"], "value": m["value"]}
            for m in fields.get("meta_data", [])
        ]
        order["line_items"] = items
        order["payment_url"] = f"{home}/checkout/order-pay/{order_id}/?pay_for_order=true&key={key}"
        order["is_editable"] = status in ("pending", "on-hold", "auto-draft", "checkout-draft")
        order["needs_payment"] = status in ("pending", "failed") and Decimal(order["total"]) > 0
        order["needs_processing"] = True
        order["_links"] = {
            "self": [{"href": f"{home}/wp-json/wc/v3/orders/{order_id}"}],
            "collection": [{"href": f"{home}/wp-json/wc/v3/orders"}],
        }
        return order

    def _next_id(self) -> int:
        while True:
            candidate = next(self._ids)
            if candidate not in self._orders:
                return candidate

    def _line_item(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        if "subtotal" in raw and "id" in raw:
            return dict(raw)
        quantity = int(raw.get("quantity", 1))
        line = Decimal(str(raw.get("price", "0"))) * quantity
        price = float(line / quantity) if quantity else 0
        return {
            "id": next(self._item_ids),
            "name": raw.get("name", "Product"),
            "product_id": raw.get("product_id", 0),
            "variation_id": raw.get("variation_id", 0),
            "quantity": quantity,
            "tax_class": "",
            "subtotal": _money(line),
            "subtotal_tax": "0.00",
            "total": _money(line),
            "total_tax": "0.00",
            "taxes": [],
            "meta_data": [
                {
                    "id": next(self._item_ids),
                    "key": m["key"],
                    "value": m["value"],
                    "display_key": m.get("display_key", m["key"]),
                    "display_value": m.get("display_value", m["value"]),
                }
                for m in raw.get("meta_data", [])
            ],
            "sku": raw.get("sku", ""),
            "price": int(price) if float(price).is_integer() else price,
            "image": {"id": 0, "src": ""},
            "parent_name": None,
        }

    def _store(self, order: dict[str, Any]) -> None:
        created = _as_utc(order["date_created_gmt"], default=self._now())
        modified = _as_utc(order["date_modified_gmt"], default=created)
        text = " ".join(
            [str(v) for v in order["billing"].values()]
            + [str(v) for v in order["shipping"].values()]
            + [str(li.get("name", "")) for li in order["line_items"]]
        ).lower()
        previous = self._orders.get(order["id"])
        if previous is not None:
            self._by_customer.get(previous.get("customer_id") or 0, set()).discard(order["id"])
        self._by_customer.setdefault(order.get("customer_id") or 0, set()).add(order["id"])
        self._by_created = None
        self._orders[order["id"]] = order
        self._index[order["id"]] = _Index(
            created, modified, self._local(created), self._local(modified), text
        )

    # -- webhooks -----------------------------------------------------------------------
    def webhook_delivery(
        self, order_id: int, *, secret: str, topic: str = "order.updated", webhook_id: int = 1
    ) -> tuple[dict[str, str], bytes]:
        """The headers and body ``WC_Webhook::deliver`` posts for this order now."""
        with self._lock:
            body = _wp_json(self._orders[order_id])
        resource, _, event = topic.partition(".")
        signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"WooCommerce/{WC_VERSION} Hookshot (WordPress/{WP_VERSION})",
            "X-WC-Webhook-Source": f"{self._home()}/",
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event,
            "X-WC-Webhook-Signature": signature.decode(),
            "X-WC-Webhook-ID": str(webhook_id),
            "X-WC-Webhook-Delivery-ID": hashlib.md5(  # noqa: S324 - an id, as wp_hash makes
                f"{webhook_id}{time.time()}".encode()
            ).hexdigest(),
        }
        return headers, body

    @staticmethod
    def webhook_ping(webhook_id: int = 1) -> tuple[dict[str, str], bytes]:
        """What ``WC_Webhook::deliver_ping`` posts when a webhook is saved: unsigned."""
        headers = {"User-Agent": f"WooCommerce/{WC_VERSION} Hookshot (WordPress/{WP_VERSION})"}
        return headers, f"webhook_id={webhook_id}".encode()

    # -- the server side ----------------------------------------------------------------
    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def handle(self, request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        """Answer one request: (status, headers, body)."""
        self._record(request)
        if self.before_request is not None:
            self.before_request(request)
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.path is None or fault.path in request.path:
                    del self._faults[i]
                    return fault.status, {"Content-Type": "text/html", **fault.headers}, fault.body
            try:
                status, headers, payload = self._route(request)
            except _WPError as err:
                status, headers, payload = err.status, {}, err.body
            except Exception as err:  # as PHP's fatal error handler: a 500 page, not a hang
                message = f"There has been a critical error on this website. ({err!r})"
                return 500, {"Content-Type": "text/html; charset=UTF-8"}, message.encode()
        # Stored orders are never changed in place (update_order stores a new dict), so the
        # payload can be encoded outside the lock.
        body = _wp_json(payload)
        if self.php_notices:
            body = _PHP_NOTICE.encode() + body
        return status, {"Content-Type": "application/json; charset=UTF-8", **headers}, body

    def _route(self, request: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        path = request.path
        if path.startswith("/wp-json"):
            route = path[len("/wp-json") :] or "/"
        elif path in ("/", "/index.php") and "rest_route" in request.query:
            route = request.query["rest_route"][-1] or "/"
        else:
            raise _WPError(
                404, "rest_no_route", "No route was found matching the URL and request method."
            )
        route = "/" + route.strip("/")
        if route == "/":
            return 200, {}, self._index_response(request)
        if not route.startswith("/wc/"):
            raise _WPError(
                404, "rest_no_route", "No route was found matching the URL and request method."
            )
        key = self._authenticate(request, route)
        if key is not None:
            self._check_permissions(key, request.method)
        method = request.method
        if route == "/wc/v3/orders" and method == "GET":
            return self._list_orders(request, key)
        match = re.fullmatch(r"/wc/v3/orders/(\d+)", route)
        if match and method == "GET":
            return self._get_order(int(match.group(1)), request, key)
        if route == "/wc/v3/products" and method == "GET":
            return self._list_products(request, key, parent=None)
        match = re.fullmatch(r"/wc/v3/products/(\d+)/variations", route)
        if match and method == "GET":
            return self._list_products(request, key, parent=int(match.group(1)))
        if route == "/wc/v3/coupons" and method == "POST":
            return self._create_coupon(request, key)
        if route == "/wc/v3/coupons" and method == "GET":
            return self._list_coupons(request, key)
        raise _WPError(
            404, "rest_no_route", "No route was found matching the URL and request method."
        )

    def _index_response(self, request: RecordedRequest) -> dict[str, Any]:
        home = self._home()
        index: dict[str, Any] = {
            "name": self.name,
            "description": "",
            "url": home,
            "home": home,
            "gmt_offset": int(self.gmt_offset)
            if float(self.gmt_offset).is_integer()
            else self.gmt_offset,
            "timezone_string": self.timezone_string,
            "page_for_posts": 0,
            "page_on_front": 0,
            "show_on_front": "posts",
            "namespaces": ["oembed/1.0", "wc/store/v1", "wc/v1", "wc/v2", "wc/v3", "wp/v2"],
            "authentication": [],
            "routes": {"/": {"namespace": "", "methods": ["GET"]}},
            "site_logo": 0,
            "site_icon": 0,
            "site_icon_url": "",
        }
        return self._only_fields(index, request.query)

    # authentication, as WC_REST_Authentication ------------------------------------------
    def _authenticate(self, request: RecordedRequest, route: str) -> _Key | None:
        query = {k: v[-1] for k, v in request.query.items()}
        if self.is_ssl:
            key, secret = query.get("consumer_key", ""), query.get("consumer_secret", "")
            header = "" if self.drops_authorization else request.headers.get("authorization", "")
            if not (key and secret) and header.lower().startswith("basic "):
                try:
                    key, _, secret = base64.b64decode(header[6:]).decode().partition(":")
                except ValueError:
                    key, secret = "", ""
            if key and secret and key in self._keys:
                if hmac.compare_digest(self._keys[key].secret, secret):
                    return self._keys[key]
                raise _WPError(
                    401, "woocommerce_rest_authentication_error", "Consumer secret is invalid."
                )
        return self._oauth(request)

    def _oauth(self, request: RecordedRequest) -> _Key | None:
        """``perform_oauth_authentication``: the parameters, the key, the signature, then the
        timestamp and the nonce, each failure with WooCommerce's own code and message."""
        params = self._oauth_parameters(request)
        if not params:
            return None
        key = self._keys.get(_scalar(params["oauth_consumer_key"]))
        if key is None:
            raise _WPError(401, "woocommerce_rest_authentication_error", "Consumer key is invalid.")
        self._check_oauth_signature(request, key, params)
        self._check_timestamp_and_nonce(
            key, _scalar(params["oauth_timestamp"]), _scalar(params["oauth_nonce"])
        )
        return key

    def _oauth_parameters(self, request: RecordedRequest) -> dict[str, _PhpValue]:
        """``get_oauth_parameters``: ``$_GET`` merged with ``$_POST`` and with the ``oauth_*``
        parameters of an ``Authorization: OAuth`` header; {} when no OAuth parameter is
        there at all."""
        params = _php_parse_str(request.raw_query)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            params.update(_php_parse_str(request.body.decode("utf-8", "replace")))
        header = "" if self.drops_authorization else request.headers.get("authorization", "")
        header = header.strip()
        if header.startswith("OAuth "):
            for name, quoted, bare in re.findall(
                r'(oauth_[a-z_-]*)=(?::?"([^"]*)"|([^,]*))', header
            ):
                params[name] = unquote_plus(quoted or bare)
        missing = [n for n in _OAUTH if _php_empty(params.get(n))]
        if len(missing) == len(_OAUTH):
            return {}
        if missing:
            noun = "parameter" if len(missing) == 1 else "parameters"
            raise _WPError(
                401,
                "woocommerce_rest_authentication_missing_parameter",
                f"Missing OAuth {noun} {', '.join(missing)}",
            )
        return params

    def _signature_base_uri(self, request: RecordedRequest) -> str:
        """``get_home_url( null, $request_path, is_ssl() ? 'https' : 'http' )`` where the
        path is the request's, less the home path: ``http://host`` for the site root (plain
        permalinks), ``http://host/wp-json/wc/v3/orders`` otherwise. Host and path come from
        the home URL, never from the request's ``Host``."""
        home = urlsplit(self._home())
        home_path = home.path.rstrip("/")
        path = request.path
        wp_base = home_path + "/"
        if path.startswith(wp_base):
            path = path[len(wp_base) :]
        url = f"{'https' if self.is_ssl else 'http'}://{home.netloc}{home_path}"
        if path and path != "0":  # PHP: `if ( $path && is_string( $path ) )`
            url += "/" + path.lstrip("/")
        return url

    def _check_oauth_signature(
        self, request: RecordedRequest, key: _Key, params: dict[str, _PhpValue]
    ) -> None:
        base_uri = _rawurlencode(self._signature_base_uri(request))
        given = unquote(_scalar(params["oauth_signature"]).replace(" ", "+"))
        rest = {k: v for k, v in params.items() if k != "oauth_signature"}
        ordered = dict(sorted(rest.items(), key=lambda kv: kv[0].encode()))  # strcmp
        normalized = {_rawurlencode(k): _encode_values(v) for k, v in ordered.items()}
        pairs = "%26".join(_join_with_equals_sign(normalized))
        string_to_sign = f"{request.method.upper()}&{base_uri}&{pairs}"
        method = normalized.get("oauth_signature_method")
        if method not in ("HMAC-SHA1", "HMAC-SHA256"):
            raise _WPError(
                401,
                "woocommerce_rest_authentication_error",
                "Invalid signature - signature method is invalid.",
            )
        digest = hashlib.sha256 if method == "HMAC-SHA256" else hashlib.sha1
        expected = base64.b64encode(
            hmac.new(f"{key.secret}&".encode(), string_to_sign.encode(), digest).digest()
        ).decode()
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise _WPError(
                401,
                "woocommerce_rest_authentication_error",
                "Invalid signature - provided signature does not match.",
            )

    def _check_timestamp_and_nonce(self, key: _Key, timestamp: str, nonce: str) -> None:
        """A timestamp within 15 minutes of the shop's now (``clock``); a nonce not used with
        this key in the last 15 minutes (kept per timestamp, as WooCommerce keeps them)."""
        window = 15 * 60
        now = int(self._now().timestamp())
        try:
            stamp = float(timestamp.strip())
        except ValueError:
            stamp = math.nan
        if not now - window <= stamp <= now + window:
            raise _WPError(401, "woocommerce_rest_authentication_error", "Invalid timestamp.")
        if nonce in key.nonces.values():
            raise _WPError(
                401,
                "woocommerce_rest_authentication_error",
                "Invalid nonce - nonce has already been used.",
            )
        key.nonces[int(stamp)] = nonce
        key.nonces = {t: n for t, n in key.nonces.items() if t >= now - window}

    @staticmethod
    def _check_permissions(key: _Key, method: str) -> None:
        if method in ("GET", "HEAD") and key.permissions not in ("read", "read_write"):
            raise _WPError(
                401,
                "woocommerce_rest_authentication_error",
                "The API key provided does not have read permissions.",
            )
        if method in ("POST", "PUT", "PATCH", "DELETE") and key.permissions not in (
            "write",
            "read_write",
        ):
            raise _WPError(
                401,
                "woocommerce_rest_authentication_error",
                "The API key provided does not have write permissions.",
            )

    # parameters, as WP_REST_Request::has_valid_params -----------------------------------
    @staticmethod
    def _param(query: Mapping[str, list[str]], name: str) -> str | list[str] | None:
        if f"{name}[]" in query:
            return query[f"{name}[]"]
        if name in query:
            return query[name][-1]  # PHP keeps the last of repeated plain names
        return None

    def _validate(
        self, query: Mapping[str, list[str]], schema: Mapping[str, tuple[str, Any]]
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        invalid: dict[str, str] = {}
        details: dict[str, Any] = {}
        for name, (kind, rule) in schema.items():
            raw = self._param(query, name)
            if raw is None:
                continue
            problem, code = None, "rest_invalid_param"
            if kind == "int":
                text = raw[-1] if isinstance(raw, list) else raw
                if not re.fullmatch(r"-?\d+", text.strip()):
                    problem, code = f"{name} is not of type integer.", "rest_invalid_type"
                else:
                    value = int(text)
                    low, high = rule
                    if high is not None and not low <= value <= high:
                        problem, code = (
                            f"{name} must be between {low} (inclusive) and {high} (inclusive)",
                            "rest_out_of_bounds",
                        )
                    elif high is None and value < low:
                        problem, code = (
                            f"{name} must be greater than or equal to {low}",
                            "rest_out_of_bounds",
                        )
                    values[name] = value
            elif kind == "bool":
                text = (raw[-1] if isinstance(raw, list) else raw).lower()
                if text not in ("true", "false", "1", "0", ""):
                    problem, code = f"{name} is not of type boolean.", "rest_invalid_type"
                values[name] = text in ("true", "1")
            elif kind == "date":
                if not isinstance(raw, str) or not _DATE.match(raw):
                    problem, code = "Invalid date.", "rest_invalid_date"
                values[name] = raw
            elif kind == "enum":
                if raw not in rule:
                    problem = f"{name} is not one of {', '.join(rule)}."
                values[name] = raw
            elif kind == "list":
                items = [
                    p
                    for r in ([raw] if isinstance(raw, str) else raw)
                    for p in re.split(r"[\s,]+", r)
                    if p
                ]
                if rule is not None:
                    bad = [i for i, v in enumerate(items) if v not in rule]
                    if bad:
                        problem = f"{name}[{bad[0]}] is not one of {', '.join(rule)}."
                values[name] = items
            else:
                values[name] = raw if isinstance(raw, str) else raw[-1]
            if problem is not None:
                invalid[name] = problem
                details[name] = {"code": code, "message": problem, "data": None}
        if invalid:
            raise _WPError(
                400,
                "rest_invalid_param",
                f"Invalid parameter(s): {', '.join(invalid)}",
                params=invalid,
                details=details,
            )
        return values

    def _bound(self, value: str) -> datetime:
        """``WP_Date_Query::build_mysql_datetime`` for a full date-time: a value with an offset
        is converted to the site's time zone; the result is wall time, whole seconds."""
        parsed = datetime.fromisoformat(
            value.replace("Z", "+00:00").replace("z", "+00:00").replace(" ", "T")
        )
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(self._zone).replace(tzinfo=None)
        return parsed.replace(microsecond=0)

    def _only_fields(self, data: dict[str, Any], query: Mapping[str, list[str]]) -> dict[str, Any]:
        raw = self._param(query, "_fields")
        if not raw:
            return data
        wanted = [f for r in ([raw] if isinstance(raw, str) else raw) for f in r.split(",") if f]
        out: dict[str, Any] = {}
        for name in wanted:
            top, _, rest = name.partition(".")
            if top not in data:
                continue
            if rest and isinstance(data[top], dict):
                out.setdefault(top, {})
                if rest in data[top]:
                    out[top][rest] = data[top][rest]
            else:
                out[top] = data[top]
        return out

    # endpoints ------------------------------------------------------------------------
    def _list_orders(
        self, request: RecordedRequest, key: _Key | None
    ) -> tuple[int, dict[str, str], Any]:
        q = self._validate(
            request.query,
            {
                "context": ("enum", ("view", "edit")),
                "page": ("int", (1, None)),
                "per_page": ("int", (1, 100)),
                "search": ("str", None),
                "after": ("date", None),
                "before": ("date", None),
                "modified_after": ("date", None),
                "modified_before": ("date", None),
                "dates_are_gmt": ("bool", None),
                "exclude": ("list", None),
                "include": ("list", None),
                "offset": ("int", (0, None)),
                "order": ("enum", ("asc", "desc")),
                "orderby": ("enum", _ORDERBY),
                "status": ("list", ("any", "trash", *ORDER_STATUSES)),
                "customer": ("int", (0, None)),
            },
        )
        if key is None:
            raise _WPError(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        statuses = q.get("status") or ["any"]
        wanted = set(ORDER_STATUSES) - {"checkout-draft"} if "any" in statuses else set(statuses)
        gmt = q.get("dates_are_gmt", False)
        bounds = []
        for name, column, after in (
            ("after", "created", True),
            ("before", "created", False),
            ("modified_after", "modified", True),
            ("modified_before", "modified", False),
        ):
            if name in q:
                bounds.append(
                    (f"{column}_{'gmt' if gmt else 'local'}", self._bound(q[name]), after)
                )
        search = (q.get("search") or "").strip().lower()
        include = [int(i) for i in q.get("include", []) if i.isdigit()]
        exclude = {int(i) for i in q.get("exclude", []) if i.isdigit()}
        found = []
        for order_id in self._candidates(q, include, gmt):
            order = self._orders[order_id]
            index = self._index[order_id]
            if order["status"] not in wanted or order_id in exclude:
                continue
            if include and order_id not in include:
                continue
            if "customer" in q and order.get("customer_id") != q["customer"]:
                continue
            if search and search not in index.text and search != str(order_id):
                continue
            for column, bound, after in bounds:
                value = getattr(index, column)
                if (value <= bound) if after else (value >= bound):
                    break
            else:
                found.append(order_id)
        orderby = q.get("orderby", "date")
        sort_keys: dict[str, Callable[[int], Any]] = {
            "id": lambda i: i,
            "include": lambda i: include.index(i) if i in include else i,
            "modified": lambda i: (self._index[i].modified_local, i),
        }
        sort_key = sort_keys.get(orderby, lambda i: (self._index[i].created_local, i))
        per_page = q.get("per_page", 10)
        page = q.get("page", 1)
        start = q["offset"] if "offset" in q else (page - 1) * per_page
        pick = heapq.nlargest if q.get("order", "desc") == "desc" else heapq.nsmallest
        chunk = pick(start + per_page, found, key=sort_key)[start:]
        total, pages = len(found), math.ceil(len(found) / per_page)
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
        links = self._links(request, page, pages)
        if links:
            headers["Link"] = links
        return (
            200,
            headers,
            [self._only_fields(self._orders[i], request.query) for i in chunk],
        )

    def _candidates(self, q: Mapping[str, Any], include: list[int], gmt: bool) -> Iterable[int]:
        """The orders a listing has to look at, found the way the database finds them: by
        primary key (``include``), by the customer index (``customer``) or by the creation
        date index (``after`` in GMT); else every order. The filters still apply to them."""
        if include:
            return [i for i in dict.fromkeys(include) if i in self._orders]
        if "customer" in q:
            return sorted(self._by_customer.get(q["customer"], ()))
        if "after" in q and gmt:
            if self._by_created is None:
                self._by_created = sorted((self._index[i].created_gmt, i) for i in self._orders)
            bound = self._bound(q["after"])
            start = bisect.bisect_right(self._by_created, (bound, math.inf))
            return [i for _, i in self._by_created[start:]]
        return list(self._orders)

    def _links(self, request: RecordedRequest, page: int, pages: int) -> str:
        params = [(k, v) for k, vs in request.query.items() for v in vs if k != "page"]
        base = f"{self._home()}{request.path}"
        links = []
        if page > 1:
            links.append(
                f'<{base}?{urlencode([*params, ("page", min(page - 1, pages))])}>; rel="prev"'
            )
        if pages > page:
            links.append(f'<{base}?{urlencode([*params, ("page", page + 1)])}>; rel="next"')
        return ", ".join(links)

    def _get_order(
        self, order_id: int, request: RecordedRequest, key: _Key | None
    ) -> tuple[int, dict[str, str], Any]:
        if key is None:
            raise _WPError(
                401, "woocommerce_rest_cannot_view", "Sorry, you cannot view this resource."
            )
        if order_id not in self._orders:
            raise _WPError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        return 200, {}, self._only_fields(self._orders[order_id], request.query)

    def _create_coupon(
        self, request: RecordedRequest, key: _Key | None
    ) -> tuple[int, dict[str, str], Any]:
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            raise _WPError(400, "rest_invalid_json", "Invalid JSON body passed.") from None
        if not isinstance(data, dict):
            data = {}
        if "code" not in data:
            raise _WPError(
                400, "rest_missing_callback_param", "Missing parameter(s): code", params=["code"]
            )
        types = ("percent", "fixed_cart", "fixed_product")
        if data.get("discount_type", "fixed_cart") not in types:
            problem = f"discount_type is not one of {', '.join(types)}."
            raise _WPError(
                400,
                "rest_invalid_param",
                "Invalid parameter(s): discount_type",
                params={"discount_type": problem},
            )
        for name in ("date_expires", "date_expires_gmt"):
            value = data.get(name)
            if value is not None and (not isinstance(value, str) or not _DATE.match(value)):
                raise _WPError(
                    400,
                    "rest_invalid_param",
                    f"Invalid parameter(s): {name}",
                    params={name: "Invalid date."},
                )
        if key is None:
            raise _WPError(
                401,
                "woocommerce_rest_cannot_create",
                "Sorry, you are not allowed to create resources.",
            )
        code = html.unescape(str(data["code"])).strip().lower()
        if not code:
            raise _WPError(
                400, "woocommerce_rest_empty_coupon_code", "The coupon code cannot be empty."
            )
        if any(c["code"] == code for c in self.coupons):
            raise _WPError(
                400, "woocommerce_rest_coupon_code_already_exists", "The coupon code already exists"
            )
        now = self._now()
        expires = None
        if data.get("date_expires_gmt"):
            expires = _as_utc(data["date_expires_gmt"], default=now)
        elif data.get("date_expires"):
            expires = (
                self._bound(data["date_expires"])
                .replace(tzinfo=self._zone)
                .astimezone(UTC)
                .replace(tzinfo=None)
            )
        coupon_id = self._next_id()

        def number(name: str) -> int | None:
            value = data.get(name)
            return int(value) if value else None

        coupon = {
            "id": coupon_id,
            "code": code,
            "amount": _money(data.get("amount") or 0),
            "status": "publish",
            "date_created": self._fmt(self._local(now)),
            "date_created_gmt": self._fmt(now),
            "date_modified": self._fmt(self._local(now)),
            "date_modified_gmt": self._fmt(now),
            "discount_type": data.get("discount_type", "fixed_cart"),
            "description": str(data.get("description", "")),
            "date_expires": self._fmt(None if expires is None else self._local(expires)),
            "date_expires_gmt": self._fmt(expires),
            "usage_count": 0,
            "individual_use": bool(data.get("individual_use", False)),
            "product_ids": list(data.get("product_ids", [])),
            "excluded_product_ids": list(data.get("excluded_product_ids", [])),
            "usage_limit": number("usage_limit"),
            "usage_limit_per_user": number("usage_limit_per_user"),
            "limit_usage_to_x_items": number("limit_usage_to_x_items"),
            "free_shipping": bool(data.get("free_shipping", False)),
            "product_categories": list(data.get("product_categories", [])),
            "excluded_product_categories": list(data.get("excluded_product_categories", [])),
            "exclude_sale_items": bool(data.get("exclude_sale_items", False)),
            "minimum_amount": _money(data.get("minimum_amount") or 0),
            "maximum_amount": _money(data.get("maximum_amount") or 0),
            "email_restrictions": [
                str(e).strip().lower() for e in data.get("email_restrictions", []) if str(e).strip()
            ],
            "used_by": [],
            "meta_data": [],
            "_links": {
                "self": [{"href": f"{self._home()}/wp-json/wc/v3/coupons/{coupon_id}"}],
                "collection": [{"href": f"{self._home()}/wp-json/wc/v3/coupons"}],
            },
        }
        self.coupons.append(coupon)
        location = f"{self._home()}/wp-json/wc/v3/coupons/{coupon_id}"
        return 201, {"Location": location}, copy.deepcopy(coupon)

    def _list_products(
        self, request: RecordedRequest, key: _Key | None, *, parent: int | None
    ) -> tuple[int, dict[str, str], Any]:
        """``GET products`` lists products only (never variations, as ``post_type`` is
        ``product``); ``GET products/{id}/variations`` lists that product's variations."""
        q = self._validate(
            request.query,
            {"include": ("list", None), "per_page": ("int", (1, 100)), "page": ("int", (1, None))},
        )
        if key is None:
            raise _WPError(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        if parent is not None and self.products.get(parent, {}).get("parent_id", 1) != 0:
            raise _WPError(404, "woocommerce_rest_product_invalid_id", "Invalid ID.")
        include = {int(i) for i in q.get("include", []) if i.isdigit()}
        found = [
            p
            for p in sorted(self.products.values(), key=lambda p: -int(p["id"]))
            if (p["parent_id"] == parent if parent is not None else p["parent_id"] == 0)
            and (not include or p["id"] in include)
        ]
        per_page, page = q.get("per_page", 10), q.get("page", 1)
        headers = {
            "X-WP-Total": str(len(found)),
            "X-WP-TotalPages": str(math.ceil(len(found) / per_page)),
        }
        chunk = found[(page - 1) * per_page : page * per_page]
        return 200, headers, [self._only_fields(dict(p), request.query) for p in chunk]

    def _list_coupons(
        self, request: RecordedRequest, key: _Key | None
    ) -> tuple[int, dict[str, str], Any]:
        q = self._validate(
            request.query,
            {"code": ("str", None), "per_page": ("int", (1, 100)), "page": ("int", (1, None))},
        )
        if key is None:
            raise _WPError(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        code = html.unescape(q.get("code", "")).strip().lower()
        found = [c for c in reversed(self.coupons) if not code or c["code"] == code]
        per_page, page = q.get("per_page", 10), q.get("page", 1)
        headers = {
            "X-WP-Total": str(len(found)),
            "X-WP-TotalPages": str(math.ceil(len(found) / per_page)),
        }
        return 200, headers, copy.deepcopy(found[(page - 1) * per_page : page * per_page])


class _Handler(BaseHTTPRequestHandler):
    shop: FakeWooCommerce
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server_version = "Apache"
    sys_version = ""

    def _serve(self) -> None:
        parsed = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(
            method=self.command,
            path=parsed.path,
            query=parse_qs(parsed.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw_query=parsed.query,
        )
        status, headers, payload = self.shop.handle(request)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines carry credentials (query-string auth, OAuth signatures)."""
