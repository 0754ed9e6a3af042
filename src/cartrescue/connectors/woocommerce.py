"""WooCommerce: unpaid orders as abandoned checkouts, over the REST API v3.

WooCommerce has no cart endpoint. An order is created when the shopper submits the checkout;
until it is paid it stays ``pending`` (or ``failed`` when the payment failed), and core cancels
unpaid ``checkout`` orders after ``woocommerce_hold_stock_minutes`` when stock is managed. So
the connector polls ``GET /wp-json/wc/v3/orders`` for those statuses, keeps only orders a
shopper made (``created_via`` ``checkout`` or ``store-api``), and maps each to a
:class:`~cartrescue.models.Checkout` whose recovery link is the order's pay-for-order page.

Configuration (``cartrescue.toml``)::

    [connector]
    type = "woocommerce"
    url = "https://shop.example"
    consumer_key_env = "WC_CONSUMER_KEY"
    consumer_secret_env = "WC_CONSUMER_SECRET"
    consent_meta = { sms = "_wc_other/acme/sms-optin" }
    consent = ["email"]

Facts relied on, from WooCommerce's source (``WC_REST_Orders_V2_Controller``,
``WC_REST_CRUD_Controller``, ``WC_REST_Authentication``, ``WC_REST_Coupons_V2_Controller``,
``WC_Webhook``) and WordPress's (``WP_REST_Server::get_index``, ``WP_Date_Query``): the
parameters and limits of the order list (``per_page`` at most 100; ``X-WP-Total`` and
``X-WP-TotalPages``; ``modified_after`` compared ``>`` against ``post_modified_gmt`` when
``dates_are_gmt`` is true), the authentication rules described in ``_woo_client``, coupon codes
stored lower-cased and unique (400 ``woocommerce_rest_coupon_code_already_exists``), webhook
signatures (base64 HMAC-SHA256 of the raw body) and the unsigned ``webhook_id=N`` ping, and the
site's ``timezone_string``/``gmt_offset`` in the public REST index.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from ..clock import Clock, utc_now
from ..doctor import Problem
from ..errors import (
    BadPayloadError,
    ConfigError,
    ConnectorAuthError,
    ConnectorError,
    explain_connector_error,
)
from ..http import DEFAULT_TIMEOUT, PageNumberPaginator, PageRequest, header_map, paginate
from ..models import (
    BadCheckout,
    Checkout,
    CustomerHistory,
    Discount,
    DiscountOffer,
    Purchase,
    normalize_email,
    parse_money,
    parse_time,
    payload_text,
)
from ..settings.base import PluginSettings
from ..settings.providers import WooCommerceSettings
from ._woo_client import WooClient, wp_error
from ._woo_orders import (
    DEFAULT_PAID_STATUSES,
    ORDER_FIELDS,
    OrderMapper,
    distinct_meta_keys,
    order_ref,
    paid_at,
)
from ._woo_pages import gmt_param, walk_orders
from ._woo_settings import DEFAULT_CREATED_VIA, DEFAULT_STATUSES, parse_settings
from .base import HistoryCheck, PurchaseCheck, webhook_object

_PURCHASE_FIELDS = (
    "id,status,customer_id,billing,date_created_gmt,date_modified_gmt,date_paid_gmt,"
    "date_completed_gmt,total,currency"
)
"""What telling a later purchase needs of an order: a fraction of ``ORDER_FIELDS``."""
_HISTORY_FIELDS = "id,customer_id,billing,date_created_gmt,total"
"""What a customer's history needs of each paid order."""


@dataclass
class _LaterOrders:
    """Orders created since a time, oldest first, by lower-cased billing email and by
    customer id (the two searches :meth:`WooCommerceConnector.find_purchase` makes)."""

    by_email: dict[str, list[tuple[datetime, Mapping[str, Any]]]] = field(default_factory=dict)
    by_customer: dict[int, list[tuple[datetime, Mapping[str, Any]]]] = field(default_factory=dict)


__all__ = ["WooCommerceConnector"]

log = logging.getLogger("cartrescue.connectors.woocommerce")

RECENT = timedelta(days=30)
"""How far back ``abandoned_checkouts(None)`` looks."""
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_PING = re.compile(rb"^webhook_id=(\d{1,19})$")  # a 64-bit id: longer is not a ping
_NO_CONSENT = "no consent configured: nothing will be sent"


def _shop_zone_name(index: object) -> str | None:
    """An IANA zone from the REST index: ``timezone_string``, else a whole-hour ``gmt_offset``
    (a site set to a manual offset such as UTC+2 has an empty ``timezone_string``)."""
    if not isinstance(index, Mapping):
        return None
    name = index.get("timezone_string")
    if isinstance(name, str) and name.strip():
        try:
            ZoneInfo(name.strip())
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("the shop's timezone_string %r is not an IANA zone", name)
            return None
        return name.strip()
    try:
        offset = float(index.get("gmt_offset") or 0)
    except (TypeError, ValueError):
        return None
    if offset == 0:
        return "UTC"
    if offset.is_integer() and -14 <= offset <= 12:
        return f"Etc/GMT{-int(offset):+d}"  # POSIX signs: Etc/GMT-2 is UTC+2
    return None


class WooCommerceConnector:
    """Reads unpaid WooCommerce orders as abandoned checkouts (the ``woocommerce`` connector).

    ``url`` is the shop's address (``https://shop.example``); ``consumer_key`` and
    ``consumer_secret`` a REST API key (Read to poll; Read/Write for discount codes). Over
    HTTPS the key goes in HTTP Basic auth, or in the query string with
    ``query_string_auth=True`` for servers that drop the ``Authorization`` header; over plain
    HTTP requests are signed with OAuth 1.0a, as WooCommerce requires.

    ``statuses`` are the order statuses that count as abandoned (``pending``, ``failed``;
    ``cancelled``, ``on-hold`` and ``checkout-draft`` may be added); ``created_via`` the
    origins that are a shopper's checkout; ``paid_statuses`` the statuses that mean paid.

    Consent (core WooCommerce records none): ``consent_meta`` maps a channel to the order meta
    key of a checkout opt-in, ``consent_meta_value`` gives the value(s) that mean yes, and
    ``consent`` lists channels every order allows because the checkout says reminders are
    sent. With none of them nothing is sent, and ``check()`` says so.

    ``base_url`` replaces the WordPress REST root (default ``{url}/wp-json``; use
    ``{url}/?rest_route=`` on a site with plain permalinks, or a proxy). ``session``,
    ``clock`` and ``sleep`` are injectable for tests. ``check_stock`` also reads each line's
    ``stock_status`` (products and variations, each looked up once a pass).
    ``product_details`` also reads each line's product ``tags`` and ``categories`` (names
    and slugs; WooCommerce has no collections, so its categories stand in for them), in the
    same ``products`` requests, each product once a pass.
    """

    settings_model: ClassVar[type[PluginSettings]] = WooCommerceSettings

    name = "woocommerce"
    read_ahead = True  # the next page is fetched while the pass works on the last

    def __init__(
        self,
        url: str,
        consumer_key: str,
        consumer_secret: str,
        *,
        statuses: Sequence[str] = DEFAULT_STATUSES,
        created_via: Sequence[str] = DEFAULT_CREATED_VIA,
        paid_statuses: Sequence[str] = DEFAULT_PAID_STATUSES,
        consent_meta: Mapping[str, str] | None = None,
        consent_meta_value: object = None,
        consent: Sequence[str] | None = None,
        query_string_auth: bool = False,
        webhook_secret: str | None = None,
        coupon_prefix: str = "BACK",
        per_page: int = 100,
        timeout: float | Sequence[float] = DEFAULT_TIMEOUT,
        attempts: int = 5,
        verify_ssl: bool = True,
        session: requests.Session | None = None,
        base_url: str | None = None,
        clock: Clock = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        check_stock: bool = False,
        product_details: bool = False,
    ) -> None:
        self.check_stock = bool(check_stock)
        self.product_details = bool(product_details)
        self._stock: dict[int, bool] = {}
        self._details: dict[int, tuple[tuple[str, ...], tuple[str, ...]] | None] = {}
        settings = parse_settings(
            url,
            consumer_key,
            consumer_secret,
            statuses=statuses,
            created_via=created_via,
            paid_statuses=paid_statuses,
            consent_meta=consent_meta,
            consent_meta_value=consent_meta_value,
            consent=consent,
            query_string_auth=query_string_auth,
            webhook_secret=webhook_secret,
            coupon_prefix=coupon_prefix,
            per_page=per_page,
            timeout=timeout,
            attempts=attempts,
            verify_ssl=verify_ssl,
            base_url=base_url,
        )
        self.settings = settings
        self.url = settings.url
        self.statuses = settings.statuses
        self.consent = settings.consent
        self.per_page = settings.per_page
        self.coupon_prefix = settings.coupon_prefix
        self.webhook_secret = settings.webhook_secret
        self.clock = clock
        self.mapper = OrderMapper(
            shop_url=settings.url,
            consent=settings.consent,
            created_via=settings.created_via,
            paid_statuses=settings.paid_statuses,
        )
        self.client = WooClient(
            settings.rest_root,
            settings.consumer_key,
            settings.consumer_secret,
            mode=settings.auth_mode,
            session=session,
            timeout=settings.timeout,
            attempts=settings.attempts,
            sleep=sleep,
            verify=settings.verify_ssl,
            home=settings.url,
            clock=clock,
        )
        self._timezone: tuple[str | None] | None = None

    # -- polling ------------------------------------------------------------------------
    def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout | BadCheckout]:
        """Unpaid shopper orders modified after ``since`` (``None``: the last 30 days), page
        by page. Raises ``ConnectorError`` when the shop cannot be read."""
        if not self.consent.configured:
            log.warning("%s (set consent_meta or consent)", _NO_CONSENT)
        lower = since if since is not None else self.clock() - RECENT
        self._stock = {}
        self._details = {}
        query = {
            "status": ",".join(self.statuses),
            "dates_are_gmt": "true",
            "_fields": ORDER_FIELDS,
        }
        for order in walk_orders(self._orders_page, query, lower, self.per_page):
            try:
                if isinstance(order, Mapping):
                    if order.get("status") not in self.statuses:
                        continue
                    reason = self.mapper.skip_reason(order)
                    if reason is not None:
                        log.debug("order=%s skipped: %s", order_ref(order), reason)
                        continue
                checkout = self.mapper.checkout(order)
                if self.check_stock or self.product_details:
                    checkout = self._with_products(order, checkout)
            except BadPayloadError as err:
                yield BadCheckout(id=order_ref(order), reason=err.detail)
            except Exception as err:  # whatever one order holds, the others are read
                yield BadCheckout(id=order_ref(order), reason=f"malformed order: {err}")
            else:
                yield checkout

    def _with_products(self, order: Mapping[str, Any], checkout: Checkout) -> Checkout:
        """``checkout`` with what the shop says about each line's product: its stock with
        ``check_stock`` (a product or variation since deleted is not buyable), its tags and
        categories with ``product_details`` (a variation has its parent's); unchanged when
        the shop cannot say."""
        lines = order.get("line_items")
        if not isinstance(lines, list) or len(lines) != len(checkout.line_items):
            return checkout
        keys: list[tuple[int, int]] = []  # (product id, variation id or 0)
        for line in lines:
            product = _int(line.get("product_id")) if isinstance(line, Mapping) else 0
            variation = _int(line.get("variation_id")) if isinstance(line, Mapping) else 0
            keys.append((product, variation))
        try:
            self._look_up_products(keys)
        except ConnectorAuthError:
            raise
        except ConnectorError as err:
            log.warning("order=%s products unknown: %s", checkout.id, err)
            return checkout
        items = []
        for li, (product, variation) in zip(checkout.line_items, keys, strict=True):
            changes: dict[str, Any] = {}
            if self.check_stock:
                changes["in_stock"] = self._stock.get(variation or product)
            found = self._details.get(product) if self.product_details else None
            if found is not None:
                changes["product_tags"], changes["collections"] = found
            items.append(replace(li, **changes))
        return replace(checkout, line_items=tuple(items))

    def _look_up_products(self, keys: Sequence[tuple[int, int]]) -> None:
        """Ask for the products and variations not seen yet this pass, 100 at a time: one
        ``products`` request for products (stock and, with ``product_details``, tags and
        categories in the same answer), one ``products/{id}/variations`` per parent for
        variations' stock."""
        products: set[int] = set()
        variations: dict[int, set[int]] = {}
        for product, variation in keys:
            if self.check_stock:
                if variation and product and variation not in self._stock:
                    variations.setdefault(product, set()).add(variation)
                elif not variation and product and product not in self._stock:
                    products.add(product)
            if self.product_details and product and product not in self._details:
                products.add(product)
        fields = ["id"]
        if self.check_stock:
            fields.append("stock_status")
        if self.product_details:
            fields += ["tags", "categories"]
        if products:
            self._ask_products("wc/v3/products", sorted(products), ",".join(fields))
        for parent, items in sorted(variations.items()):
            self._ask_products(
                f"wc/v3/products/{parent}/variations", sorted(items), "id,stock_status"
            )

    def _ask_products(self, path: str, ids: Sequence[int], fields: str) -> None:
        variations = path.endswith("/variations")
        for start in range(0, len(ids), 100):
            chunk = ids[start : start + 100]
            data, _ = self.client.request(
                "GET",
                path,
                params={"include": ",".join(map(str, chunk)), "per_page": 100, "_fields": fields},
            )
            for item in chunk:  # not listed: deleted, cannot be bought, nothing known
                if self.check_stock:
                    self._stock[item] = False
                if self.product_details and not variations:
                    self._details[item] = None
            for product in data if isinstance(data, list) else ():
                if not isinstance(product, Mapping) or _int(product.get("id")) not in chunk:
                    continue
                found = _int(product.get("id"))
                if self.check_stock:
                    self._stock[found] = product.get("stock_status") != "outofstock"
                if self.product_details and not variations:
                    self._details[found] = (
                        _terms(product.get("tags")),
                        _terms(product.get("categories")),
                    )

    def _orders_page(self, query: Mapping[str, Any]) -> tuple[Any, Any]:
        data, headers = self.client.request("GET", "wc/v3/orders", params=query)
        if (self.check_stock or self.product_details) and isinstance(data, list):
            self._prefetch_products(data)
        return data, headers

    def _prefetch_products(self, orders: Sequence[Any]) -> None:
        """Look up the products of a whole page of orders at once (one ``products`` request
        per 100 new products, one per parent for variations), so each order then finds
        them cached; an order whose products this could not read asks again alone."""
        keys = [
            (_int(line.get("product_id")), _int(line.get("variation_id")))
            for order in orders
            if isinstance(order, Mapping)
            and order.get("status") in self.statuses
            and self.mapper.skip_reason(order) is None
            and isinstance(order.get("line_items"), list)
            for line in order["line_items"]
            if isinstance(line, Mapping)
        ]
        try:
            self._look_up_products(keys)
        except ConnectorAuthError:
            raise
        except ConnectorError as err:
            log.warning("products of a page of orders unknown: %s", err)

    # -- bought since? -------------------------------------------------------------------
    def find_purchase(self, checkout: Checkout) -> Purchase | None:
        """The order itself paid (``same_checkout``), or a later paid order with the same
        billing email or customer account. Raises ``ConnectorError`` when the shop cannot be
        asked or the order no longer exists, so the engine holds the message."""
        try:
            order_id = int(checkout.id)
        except ValueError:
            return None
        try:
            order, _ = self.client.request(
                "GET", f"wc/v3/orders/{order_id}", params={"_fields": ORDER_FIELDS}
            )
        except ConnectorError as err:
            if err.status == 404 and wp_error(err)[0] == "woocommerce_rest_shop_order_invalid_id":
                raise ConnectorError(
                    f"woocommerce: order {order_id} no longer exists in the shop",
                    connector=self.name,
                    status=404,
                ) from err
            raise
        if not isinstance(order, Mapping):
            raise ConnectorError(
                f"woocommerce: order {order_id} is not a JSON object", connector=self.name
            )
        item = str(order_id)
        if self.mapper.is_paid(order):
            return self._purchase(order, item, same=True)
        email = self._email(order) or (checkout.customer.email if checkout.customer else None)
        searches: list[dict[str, Any]] = []
        if email:
            searches.append({"search": email})
        customer_id = order.get("customer_id")
        if isinstance(customer_id, int) and not isinstance(customer_id, bool) and customer_id > 0:
            searches.append({"customer": customer_id})
        after = gmt_param(checkout.abandoned_at - timedelta(seconds=1))
        for search in searches:
            query = {
                **search,
                "status": "any",
                "after": after,
                "dates_are_gmt": "true",
                "orderby": "date",
                "order": "asc",
                "per_page": 100,
                "_fields": ORDER_FIELDS,
            }
            for other in self._pages(query):
                if not isinstance(other, Mapping) or other.get("id") == order_id:
                    continue
                same_buyer = "customer" in search or (
                    email is not None and (self._email(other) or "").lower() == email.lower()
                )
                if same_buyer and (self.mapper.is_paid(other) or other.get("date_paid_gmt")):
                    return self._purchase(other, order_ref(other), same=False)
        return None

    def find_purchases(self, checkouts: Sequence[Checkout]) -> dict[str, PurchaseCheck]:
        """:meth:`find_purchase` for many checkouts: one request per 100 for the orders
        themselves (``include``), and one search (paged) for the orders created since the
        earliest of them was abandoned, matched to each buyer by billing email or customer
        account here, instead of two or three requests per checkout. (That search reads every
        order of the span, so pass a page of checkouts abandoned close together.) An order the first
        request does not return (a status ``any`` leaves out) is asked about alone."""
        answers: dict[str, PurchaseCheck] = {}
        numbered: list[tuple[Checkout, int]] = []
        for checkout in checkouts:
            try:
                numbered.append((checkout, int(checkout.id)))
            except ValueError:
                answers[checkout.id] = None
        unpaid: list[tuple[Checkout, int, Mapping[str, Any]]] = []
        for start in range(0, len(numbered), 100):
            chunk = numbered[start : start + 100]
            query = {
                "include": ",".join(str(order_id) for _, order_id in chunk),
                "status": "any",
                "per_page": 100,
                "_fields": ORDER_FIELDS,
            }
            current = {
                o["id"]: o
                for o in self._pages(query)
                if isinstance(o, Mapping) and isinstance(o.get("id"), int)
            }
            for checkout, order_id in chunk:
                order = current.get(order_id)
                if order is None:
                    try:
                        answers[checkout.id] = self.find_purchase(checkout)
                    except ConnectorError as err:
                        answers[checkout.id] = err
                elif self.mapper.is_paid(order):
                    answers[checkout.id] = self._answer(
                        partial(self._purchase, order, str(order_id), same=True)
                    )
                else:
                    unpaid.append((checkout, order_id, order))
        if unpaid:
            earliest = min(checkout.abandoned_at for checkout, _, _ in unpaid)
            later = self._orders_since(earliest - timedelta(seconds=1))
            for checkout, order_id, order in unpaid:
                answers[checkout.id] = self._answer(
                    partial(self._later_purchase, checkout, order_id, order, later)
                )
        return answers

    @staticmethod
    def _answer(work: Callable[[], Purchase | None]) -> PurchaseCheck:
        try:
            return work()
        except ConnectorError as err:
            return err

    def _orders_since(self, after: datetime) -> _LaterOrders:
        """Every order created after ``after`` (any status, oldest first) with its creation
        time, by billing email and by customer account."""
        query = {
            "status": "any",
            "after": gmt_param(after),
            "dates_are_gmt": "true",
            "orderby": "date",
            "order": "asc",
            "per_page": 100,
            "_fields": _PURCHASE_FIELDS,
        }
        found = _LaterOrders()
        for other in self._pages(query):
            if not isinstance(other, Mapping):
                continue
            try:
                created = parse_time(
                    other.get("date_created_gmt"), item=order_ref(other), assume_utc=True
                )
            except BadPayloadError:
                continue
            email = self._email(other)
            if email:
                found.by_email.setdefault(email.lower(), []).append((created, other))
            customer_id = other.get("customer_id")
            if isinstance(customer_id, int) and not isinstance(customer_id, bool):
                found.by_customer.setdefault(customer_id, []).append((created, other))
        return found

    def _later_purchase(
        self,
        checkout: Checkout,
        order_id: int,
        order: Mapping[str, Any],
        later: _LaterOrders,
    ) -> Purchase | None:
        """What :meth:`find_purchase`'s searches would find among ``later``: the first paid
        order by the same billing email, else by the same customer account."""
        email = self._email(order) or (checkout.customer.email if checkout.customer else None)
        customer_id = order.get("customer_id")
        if not (isinstance(customer_id, int) and not isinstance(customer_id, bool)):
            customer_id = None
        # the bound as the search would have sent it (whole seconds)
        after = parse_time(
            gmt_param(checkout.abandoned_at - timedelta(seconds=1)), item="after", assume_utc=True
        )
        searches: list[list[tuple[datetime, Mapping[str, Any]]]] = []
        if email:
            searches.append(later.by_email.get(email.lower(), []))
        if customer_id is not None and customer_id > 0:
            searches.append(later.by_customer.get(customer_id, []))
        for found in searches:
            for created, other in found:
                if created <= after or other.get("id") == order_id:
                    continue
                if self.mapper.is_paid(other) or other.get("date_paid_gmt"):
                    return self._purchase(other, order_ref(other), same=False)
        return None

    # -- customer history -----------------------------------------------------------------
    def customer_histories(self, checkouts: Sequence[Checkout]) -> dict[str, HistoryCheck]:
        """Each buyer's paid orders (the ``paid_statuses``): how many, their sum and the
        last one's date. A buyer with an account is looked up by ``customer``, a guest by
        ``search`` on the billing email (kept only where the billing email is the same),
        each in one request per 100 orders. A buyer with neither answers None."""
        answers: dict[str, HistoryCheck] = {}
        for checkout in checkouts:
            customer = checkout.customer
            search: dict[str, Any]
            if customer is not None and customer.id and customer.id.isdigit():
                search = {"customer": int(customer.id)}
            elif customer is not None and customer.email:
                search = {"search": customer.email}
            else:
                answers[checkout.id] = None
                continue
            try:
                answers[checkout.id] = self._history(search)
            except ConnectorError as err:
                answers[checkout.id] = err
        return answers

    def _history(self, search: Mapping[str, Any]) -> CustomerHistory:
        query = {
            **search,
            "status": ",".join(sorted(self.mapper.paid_statuses)),
            "orderby": "date",
            "order": "desc",
            "per_page": 100,
            "_fields": _HISTORY_FIELDS,
        }
        email = search.get("search")
        count, spent, last = 0, Decimal(0), None
        for order in self._pages(query):
            if not isinstance(order, Mapping):
                continue
            if email is not None and (self._email(order) or "").lower() != email.lower():
                continue  # ``search`` matches any part of any field
            item = order_ref(order)
            try:
                created = parse_time(order.get("date_created_gmt"), item=item, assume_utc=True)
                total = parse_money(order.get("total"), item=item)
            except BadPayloadError as err:
                raise ConnectorError(
                    f"woocommerce: order {item}: {err.detail}", connector=self.name
                ) from err
            count += 1
            spent += total
            last = created if last is None else max(last, created)
        return CustomerHistory(orders_count=count, amount_spent=spent, last_order_at=last)

    def _pages(self, query: Mapping[str, Any]) -> Iterator[Any]:
        pager = PageNumberPaginator(int(query.get("per_page", 10)))
        fetch = partial(self._fetch, "GET")
        for data in paginate(fetch, pager, PageRequest("wc/v3/orders", query)):
            if not isinstance(data, list):
                return
            yield from data

    def _fetch(self, method: str, request: PageRequest) -> tuple[Any, Mapping[str, str]]:
        return self.client.request(method, request.path, params=request.params)

    @staticmethod
    def _email(order: Mapping[str, Any]) -> str | None:
        billing = order.get("billing")
        raw = billing.get("email") if isinstance(billing, Mapping) else None
        try:
            return normalize_email(raw if isinstance(raw, str) else None)
        except ValueError:
            return None

    def _purchase(self, order: Mapping[str, Any], item: str, *, same: bool) -> Purchase:
        try:
            placed = paid_at(order, item) or parse_time(
                order.get("date_modified_gmt") or order.get("date_created_gmt"),
                item=item,
                assume_utc=True,
            )
            total = parse_money(order.get("total"), item=item) if order.get("total") else None
        except BadPayloadError as err:
            raise ConnectorError(
                f"woocommerce: order {item}: {err.detail}", connector=self.name
            ) from err
        currency = order.get("currency")
        return Purchase(
            order_id=item,
            placed_at=placed,
            total=total,
            currency=currency if isinstance(currency, str) and currency else None,
            same_checkout=same,
        )

    # -- discount codes ------------------------------------------------------------------
    def create_discount(self, checkout: Checkout, offer: DiscountOffer) -> Discount:
        """Create a single-use coupon (``percent``, ``fixed_cart``, or one granting
        ``free_shipping``) for this checkout's buyer (restricted to the
        billing email when there is one) and return its code. WooCommerce has no link that
        applies a coupon, so ``url`` is None and the message shows the code. Needs a
        Read/Write key; raises ``ConnectorError`` on failure."""
        expires = (self.clock() + timedelta(seconds=offer.valid_for_seconds)).replace(microsecond=0)
        email = checkout.customer.email if checkout.customer else None
        kind, value = "percent", offer.percent
        if offer.percent is None:
            # an amount off the cart; free shipping: 0 off, with free_shipping set below
            kind, value = "fixed_cart", offer.amount
        amount = format(value.normalize(), "f") if value is not None else "0"
        for _ in range(3):
            code = "-".join(
                p
                for p in (
                    self.coupon_prefix,
                    "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8)),
                )
                if p
            )
            payload: dict[str, Any] = {
                "code": code,
                "discount_type": kind,
                "amount": amount,
                "individual_use": True,
                "usage_limit": 1,
                "usage_limit_per_user": 1,
                "date_expires_gmt": gmt_param(expires),
                "description": f"cartrescue: abandoned order #{checkout.id}",
            }
            if email:
                payload["email_restrictions"] = [email]
            if offer.free_shipping:
                payload["free_shipping"] = True
            if offer.min_subtotal is not None:
                payload["minimum_amount"] = format(offer.min_subtotal, "f")
            try:
                self.client.request("POST", "wc/v3/coupons", payload=payload)
            except ConnectorAuthError:
                raise
            except ConnectorError as err:
                if wp_error(err)[0] == "woocommerce_rest_coupon_code_already_exists":
                    continue
                # After a 5xx or a lost connection the POST may still have reached the shop;
                # a code this random exists only if it did.
                if (err.status is None or err.status >= 500) and self._coupon_exists(code):
                    return Discount.of(offer, code, expires)
                raise
            return Discount.of(offer, code, expires)
        raise ConnectorError(
            "woocommerce: three random coupon codes already existed", connector=self.name
        )

    def _coupon_exists(self, code: str) -> bool:
        try:
            found, _ = self.client.request("GET", "wc/v3/coupons", params={"code": code})
        except ConnectorError:
            return False
        return isinstance(found, list) and any(
            isinstance(c, Mapping) and str(c.get("code", "")).lower() == code.lower() for c in found
        )

    # -- shop time zone ------------------------------------------------------------------
    def shop_timezone(self) -> str | None:
        """The site's time zone from the public WordPress REST index (``timezone_string``,
        or a whole-hour ``gmt_offset`` as ``Etc/GMT±N``); None for a fractional offset."""
        if self._timezone is None:
            index, _ = self.client.request(
                "GET", "", params={"_fields": "timezone_string,gmt_offset"}, signed=False
            )
            self._timezone = (_shop_zone_name(index),)
        return self._timezone[0]

    # -- webhooks ------------------------------------------------------------------------
    def _webhook_secret(self) -> str:
        if self.webhook_secret is None:
            raise ConfigError(
                "set webhook_secret (the secret of the WooCommerce webhook) to take webhooks",
                key="connector.webhook_secret",
            )
        return self.webhook_secret

    @staticmethod
    def webhook_ping(headers: Mapping[str, str], body: bytes) -> int | None:
        """The webhook id when this is WooCommerce's ping (an unsigned form post
        ``webhook_id=N`` sent when a webhook is saved; answer it with HTTP 200), else None."""
        match = _PING.match(body.strip())
        if match is None or "x-wc-webhook-signature" in header_map(headers):
            return None
        return int(match.group(1))

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Whether ``X-WC-Webhook-Signature`` is base64(HMAC-SHA256(secret, raw body)),
        compared in constant time. The unsigned ping is valid too (it carries no data)."""
        secret = self._webhook_secret()
        if self.webhook_ping(headers, body) is not None:
            return True
        given = header_map(headers).get("x-wc-webhook-signature", "")
        expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
        return hmac.compare_digest(given.strip().encode(), expected)

    def checkout_from_webhook(self, body: bytes) -> Checkout:
        """Map a verified ``order.created``/``order.updated`` payload (the order as the REST
        API shows it). Raises ``BadPayloadError`` for a ping, a deleted order, or an order
        that is not a shopper's checkout."""
        ping = _PING.match(body.strip())
        if ping:
            raise BadPayloadError(
                f"a webhook ping (webhook {ping.group(1).decode()[:20]}), not an order: "
                "answer it with 200"
            )
        order = webhook_object(body, "an order")
        item = order_ref(order)
        if set(order) == {"id"}:
            raise BadPayloadError(
                "the order was deleted (order.deleted carries only its id)", item=item
            )
        reason = self.mapper.skip_reason(order)
        if reason is not None:
            raise BadPayloadError(reason, item=item)
        return self.mapper.checkout(order)

    # -- doctor --------------------------------------------------------------------------
    def check(self) -> list[Problem]:
        """Read-only checks for ``cartrescue doctor``: consent settings, the address, that
        the key can read orders (explaining the ``query_string_auth`` fix), and that the
        consent meta keys appear on recent orders."""
        problems: list[Problem] = []
        if not self.consent.configured:
            problems.append(
                Problem(
                    "connector",
                    f"{_NO_CONSENT}: core WooCommerce records no marketing consent",
                    'add consent_meta = { sms = "<order meta key of your opt-in checkbox>" } '
                    '(and consent_meta_value), or consent = ["email"] if your checkout says '
                    "that reminders are sent",
                )
            )
        if self.client.mode == "oauth1":
            problems.append(
                Problem(
                    "connector.url",
                    f"{self.url} is plain HTTP: WooCommerce then accepts only OAuth 1.0a "
                    "signatures and the traffic is readable on the way",
                    "use the shop's https:// address",
                    "warning",
                )
            )
        try:
            recent, _ = self.client.request(
                "GET",
                "wc/v3/orders",
                params={
                    "per_page": 20,
                    "orderby": "date",
                    "order": "desc",
                    "_fields": "id,created_via,meta_data",
                },
            )
        except ConnectorAuthError as err:
            problems.append(Problem("connector", str(err), "see the message"))
            return problems
        except ConnectorError as err:
            fix = "check url"
            if err.status == 404:
                fix = (
                    f"check url; is WooCommerce active? On a site with plain permalinks set "
                    f'base_url = "{self.url}/?rest_route="'
                )
            if err.status is None:  # unreachable: say so in words
                why = explain_connector_error(err, shop=self.url, connector=self.name)
                problems.append(Problem("connector", why, fix))
            else:
                problems.append(Problem("connector", f"cannot read orders: {err}", fix))
            return problems
        problems += self._check_consent_keys(recent if isinstance(recent, list) else [])
        return problems

    def _check_consent_keys(self, recent: list[Any]) -> list[Problem]:
        shopper = [
            o for o in recent if isinstance(o, Mapping) and self.mapper.skip_reason(o) is None
        ]
        if not self.consent.meta or not shopper:
            return []
        seen = set()
        for order in shopper:
            for entry in order.get("meta_data") or ():
                if isinstance(entry, Mapping):
                    seen.add(entry.get("key"))
        missing = sorted(k for k in set(self.consent.meta.values()) if k not in seen)
        if not missing:
            return []
        keys = distinct_meta_keys(shopper)
        return [
            Problem(
                "connector.consent_meta",
                f"none of the {len(shopper)} latest checkout orders has the meta key(s) "
                f"{', '.join(missing)}; keys seen: {', '.join(keys) or 'none'}",
                "check the key your opt-in checkbox saves (block checkout fields are saved as "
                "_wc_other/<namespace>/<field id>)",
                "warning",
            )
        ]


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _terms(raw: object) -> tuple[str, ...]:
    """The names and slugs of a product's ``tags`` or ``categories`` (``[{id, name,
    slug}]``), as the shop shows them."""
    names: list[str] = []
    for term in raw if isinstance(raw, list) else ():
        if isinstance(term, Mapping):
            for key in ("name", "slug"):
                # WordPress answers term names HTML-escaped ("Tea &amp; coffee")
                text = payload_text(html.unescape(v) if isinstance(v := term.get(key), str) else v)
                if text and text not in names:
                    names.append(text)
    return tuple(names)
