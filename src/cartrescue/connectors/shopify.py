"""The Shopify connector: abandoned checkouts from the Admin API, within Shopify's limits.

Configured in ``cartrescue.toml``::

    [connector]
    type = "shopify"
    shop = "nordlys.myshopify.com"
    token_env = "SHOPIFY_ADMIN_TOKEN"
    # api = "graphql"            # or "rest" (checkouts.json, Shopify's legacy API)
    # api_version = "2026-10"
    # webhook_secret_env = "SHOPIFY_WEBHOOK_SECRET"

GraphQL is the default: ``abandonedCheckouts`` (API 2024-10 and later) filtered
``updated_at:>'WATERMARK' AND status:open``, page by page with cursors, each page as large
as Shopify's cost cap allows (see :mod:`.shopify_queries`) and paced by the cost bucket so
it never runs dry (see :mod:`.shopify_api`). With ``api = "rest"`` the same checkouts come
from ``checkouts.json``; both give equal :class:`~cartrescue.models.Checkout` objects.
Needed scopes: ``read_orders`` (checkouts, orders; the staff account also needs the
"manage abandoned checkouts" permission), ``read_customers`` (contact and consent) and
``write_discounts`` (only for discount steps).

The ShopifyAPI package normalises the shop domain and builds the versioned URL
(``shopify.Session``); requests go through the connector's own ``requests.Session``, since
the package's GraphQL client has no timeout and keeps its session in global state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import shopify

from ..clock import Clock, utc_now
from ..doctor import Problem
from ..errors import (
    BadPayloadError,
    ConfigError,
    ConnectorAuthError,
    ConnectorError,
    explain_connector_error,
)
from ..http import CursorPaginator, HttpClient
from ..models import (
    BadCheckout,
    Checkout,
    CustomerHistory,
    Discount,
    DiscountOffer,
    Purchase,
    parse_money,
    parse_time,
)
from ..settings.base import PluginSettings
from ..settings.providers import ShopifySettings
from .base import HistoryCheck, PurchaseCheck, webhook_object
from .shopify_api import CallLimitThrottle, CostThrottle, GraphQLClient, QueryTooCostly, rest_pages
from .shopify_map import from_graphql, from_rest, numeric_id
from .shopify_queries import (
    CHECK_QUERY,
    CONNECTION_COST,
    DISCOUNT_MUTATION,
    FREE_SHIPPING_MUTATION,
    HISTORY_CHUNK,
    HISTORY_QUERY,
    MAX_QUERY_COST,
    PURCHASE_QUERY,
    PURCHASES_CHUNK,
    SHOP_QUERY,
    checkouts_query,
    has_discount_context,
    history_cost,
    node_cost,
    purchases_cost,
    purchases_query,
)

__all__ = ["DEFAULT_API_VERSION", "REQUIRED_SCOPES", "ShopifyConnector", "discount_url"]

DEFAULT_API_VERSION = "2026-10"
"""The Admin API version used unless ``api_version`` says otherwise (a stable release)."""

REQUIRED_SCOPES: dict[str, str] = {
    "read_orders": "read abandoned checkouts and orders",
    "read_customers": "read buyers' contact details and marketing consent",
    "write_discounts": "create single-use discount codes for discount steps",
}
_OPTIONAL_SCOPES = {"write_discounts"}
_VERSION = re.compile(r"^(\d{4})-(01|04|07|10)$")
_SHOP = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
_HMAC_HEADER = "x-shopify-hmac-sha256"
_REST_PAGE = 250
_GRAPHQL_PAGE_MAX = 250


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _search_value(value: str) -> str:
    """Quote a value for Shopify's search syntax."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def discount_url(recovery_url: str, code: str) -> str:
    """``recovery_url`` with ``discount=CODE`` (URL-encoded) added to its query string."""
    parts = urlsplit(recovery_url)
    extra = f"discount={quote(code, safe='')}"
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _normalise_shop(shop: object) -> str:
    if not isinstance(shop, str) or not shop.strip():
        raise ConfigError("expected the shop's myshopify.com domain", key="shop")
    raw = shop.strip().lower()
    host = urlsplit(raw if "://" in raw else f"https://{raw}").hostname or ""
    if "." in host and not host.endswith(".myshopify.com"):
        raise ConfigError(
            f"{shop!r} looks like a custom domain; use the shop's *.myshopify.com domain "
            "(Shopify admin → Settings → Domains)",
            key="shop",
        )
    domain = shopify.Session(raw, DEFAULT_API_VERSION).url
    if not isinstance(domain, str) or not _SHOP.match(domain):
        raise ConfigError(
            f"{shop!r} is not a shop domain such as 'nordlys.myshopify.com'", key="shop"
        )
    return domain


def _check_version(version: object, api: str) -> str:
    if not isinstance(version, str) or not (version == "unstable" or _VERSION.match(version)):
        raise ConfigError(
            f"expected a Shopify API version such as {DEFAULT_API_VERSION!r}, got {version!r}",
            key="api_version",
        )
    if api == "graphql" and version != "unstable" and version < "2024-10":
        raise ConfigError(
            "abandonedCheckouts exists from API version 2024-10; use a later version or "
            "api = 'rest'",
            key="api_version",
        )
    return version


def _positive(value: object, key: str, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"expected a positive number, got {value!r}", key=key)
    if integer and not isinstance(value, int):
        raise ConfigError(f"expected a whole number, got {value!r}", key=key)
    return float(value)


class ShopifyConnector:
    """Reads abandoned checkouts from one Shopify shop.

    ``shop`` is the ``*.myshopify.com`` domain (``"nordlys"`` is accepted too), ``token``
    an Admin API access token. ``api`` is ``"graphql"`` (default) or ``"rest"``.
    ``base_url`` replaces ``https://{shop}`` (a proxy, or a fake shop in tests); ``session``
    is the ``requests.Session`` every call goes through; ``timeout`` is the read timeout in
    seconds. ``webhook_secret`` is the app's client secret that signs webhooks.
    ``line_items`` is how many lines of each cart are read (it sets the query cost);
    ``max_page_size`` caps the page size the cost would allow. ``check_stock`` (GraphQL only)
    also reads whether each line's variant can still be bought (one more cost point a
    line), so sold-out carts can be left alone. ``images`` (GraphQL, default on) reads each
    line's image (one more point a line). ``product_details`` (GraphQL; needs the
    ``read_products`` scope) reads each line's product ``tags`` and its first
    ``collections_per_product`` collections (3 + that many points a line), for segments on
    product tags and collections. ``sleep``, ``monotonic``
    and ``clock`` are injectable so tests do not wait.

    Implements :class:`~cartrescue.connectors.Connector` and the optional
    ``PurchaseLookup``, ``DiscountCapable``, ``ShopTimezone``, ``WebhookCapable`` and
    ``SelfCheck`` capabilities.
    """

    settings_model: ClassVar[type[PluginSettings]] = ShopifySettings

    name = "shopify"
    read_ahead = True  # the next page is fetched while the pass works on the last

    def __init__(
        self,
        shop: str,
        token: str,
        *,
        api_version: str = DEFAULT_API_VERSION,
        api: Literal["graphql", "rest"] = "graphql",
        session: requests.Session | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        webhook_secret: str | None = None,
        line_items: int = 10,
        max_page_size: int = _GRAPHQL_PAGE_MAX,
        rest_leak_rate: float = 2.0,
        discount_prefix: str = "BACK",
        check_stock: bool = False,
        images: bool = True,
        product_details: bool = False,
        collections_per_product: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Clock = utc_now,
    ) -> None:
        if api not in ("graphql", "rest"):
            raise ConfigError(f"expected 'graphql' or 'rest', got {api!r}", key="api")
        if not isinstance(token, str) or not token.strip():
            raise ConfigError("the Admin API access token is empty", key="token")
        self.shop = _normalise_shop(shop)
        self.api: Literal["graphql", "rest"] = api
        self.api_version = _check_version(api_version, api)
        self.line_items = int(_positive(line_items, "line_items", integer=True))
        if self.line_items > _GRAPHQL_PAGE_MAX:
            raise ConfigError(
                f"Shopify returns at most {_GRAPHQL_PAGE_MAX} lines a checkout", key="line_items"
            )
        self.max_page_size = int(_positive(max_page_size, "max_page_size", integer=True))
        if base_url is not None and (
            not isinstance(base_url, str) or not base_url.startswith(("http://", "https://"))
        ):
            raise ConfigError(f"expected an http(s) URL, got {base_url!r}", key="base_url")
        if webhook_secret is not None and not isinstance(webhook_secret, str):
            raise ConfigError("expected a string", key="webhook_secret")
        if not isinstance(discount_prefix, str) or not re.fullmatch(
            r"[A-Z0-9]{0,12}", discount_prefix
        ):
            raise ConfigError("expected up to 12 capital letters or digits", key="discount_prefix")
        read_timeout = _positive(timeout, "timeout")
        for key, value in (("sleep", sleep), ("monotonic", monotonic), ("clock", clock)):
            if not callable(value):
                raise ConfigError("expected a function (set it from Python only)", key=key)
        self._token = token.strip()
        self._webhook_secret = webhook_secret
        self._discount_prefix = discount_prefix
        self._clock = clock
        site = shopify.Session(self.shop, self.api_version).site
        root = f"{base_url.rstrip('/')}{urlsplit(site).path}" if base_url else site
        self.http = HttpClient(
            "shopify",
            root,
            session=session,
            timeout=(min(5.0, read_timeout), read_timeout),
            auth_hint=(
                f"check the Admin API access token for {self.shop} (connector.token_env) and "
                "that the app is installed with the scopes read_orders and read_customers"
            ),
            secrets=(self._token,),
            sleep=sleep,
        )
        self._headers = {"X-Shopify-Access-Token": self._token}
        self.throttle = CostThrottle(monotonic=monotonic, sleep=sleep)
        self.graphql = GraphQLClient(
            self.http, shop=self.shop, throttle=self.throttle, headers=self._headers, sleep=sleep
        )
        self.rest_throttle = CallLimitThrottle(
            leak_rate=_positive(rest_leak_rate, "rest_leak_rate"), monotonic=monotonic, sleep=sleep
        )
        self.check_stock = bool(check_stock)
        self.images = bool(images)
        self.product_details = bool(product_details)
        if self.product_details and api == "rest":
            raise ConfigError(
                "REST checkouts carry no product tags or collections; use api = 'graphql'",
                key="product_details",
            )
        per_product = int(
            _positive(collections_per_product, "collections_per_product", integer=True)
        )
        if per_product > _GRAPHQL_PAGE_MAX:
            raise ConfigError(
                f"expected at most {_GRAPHQL_PAGE_MAX}", key="collections_per_product"
            )
        parts: dict[str, Any] = {
            "stock": self.check_stock,
            "images": self.images,
            "collections": per_product if self.product_details else 0,
        }
        self._query = checkouts_query(self.api_version, self.line_items, **parts)
        self._node_cost = float(node_cost(self.line_items, **parts))
        self._shop_info: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return (
            f"ShopifyConnector(shop={self.shop!r}, api={self.api!r}, version={self.api_version!r})"
        )

    # -- polling --------------------------------------------------------------------------
    def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout | BadCheckout]:
        """Every open abandoned checkout updated after ``since``, page by page."""
        if self.api == "rest":
            return self._rest_checkouts(since)
        return self._graphql_checkouts(since)

    def page_size(self) -> int:
        """Checkouts per GraphQL page: as many as fit under Shopify's cost cap and the
        bucket's size, at the node cost measured so far."""
        budget = float(MAX_QUERY_COST)
        if self.throttle.maximum is not None:
            budget = min(budget, self.throttle.maximum)
        fits = int((budget - CONNECTION_COST) // self._node_cost)
        return max(1, min(self.max_page_size, _GRAPHQL_PAGE_MAX, fits))

    def _graphql_checkouts(self, since: datetime | None) -> Iterator[Checkout | BadCheckout]:
        search = "status:open" if since is None else f"updated_at:>'{_iso(since)}' AND status:open"
        pages = CursorPaginator(what=f"shopify: {self.shop}", connector="shopify")
        while pages.has_next_page:
            first = self.page_size()
            maximum = self.throttle.maximum
            if first == 1 and maximum is not None and self._node_cost + CONNECTION_COST > maximum:
                raise ConnectorError(
                    f"shopify: one checkout costs {self._node_cost + CONNECTION_COST:.0f} points "
                    f"but the cost bucket of {self.shop} holds {maximum:.0f}: lower "
                    "connector.line_items",
                    connector="shopify",
                )
            try:
                data = self.graphql.execute(
                    self._query,
                    {"first": first, "after": pages.cursor, "query": search},
                    expected_cost=first * self._node_cost + CONNECTION_COST,
                )
            except QueryTooCostly as err:
                if first == 1:
                    raise
                measured = (err.cost - CONNECTION_COST) / first if err.cost else 0.0
                self._node_cost = max(self._node_cost * 1.25, measured)
                continue
            requested = self.graphql.last_cost.requested
            if requested:
                self._node_cost = max(1.0, (requested - CONNECTION_COST) / first)
            connection = data.get("abandonedCheckouts")
            if not isinstance(connection, dict) or not isinstance(connection.get("nodes"), list):
                raise ConnectorError(
                    f"shopify: {self.shop} answered without abandonedCheckouts.nodes",
                    connector="shopify",
                )
            for position, node in enumerate(connection["nodes"]):
                yield self._map(node, from_graphql, position)
            pages.update_state(connection, {})

    def _rest_checkouts(self, since: datetime | None) -> Iterator[Checkout | BadCheckout]:
        params: dict[str, Any] = {"limit": _REST_PAGE, "status": "open"}
        if since is not None:
            params["updated_at_min"] = _iso(since)
        pages = rest_pages(
            self.http,
            "checkouts.json",
            params,
            key="checkouts",
            throttle=self.rest_throttle,
            headers=self._headers,
        )
        for items in pages:
            for position, raw in enumerate(items):
                yield self._map(raw, self._from_rest, position)

    def _from_rest(self, raw: Mapping[str, Any]) -> Checkout:
        currency = None
        if not raw.get("presentment_currency") and not raw.get("currency"):
            currency = self._shop().get("currencyCode")
        return from_rest(raw, shop_currency=currency if isinstance(currency, str) else None)

    def _map(
        self, raw: object, mapper: Callable[[Mapping[str, Any]], Checkout], position: int
    ) -> Checkout | BadCheckout:
        if not isinstance(raw, Mapping):
            return BadCheckout(id=f"#{position}", reason="checkout is not an object")
        item = numeric_id(raw.get("id")) or f"#{position}"
        try:
            return mapper(raw)
        except BadPayloadError as err:
            reason = err.detail
        except Exception as err:  # whatever one checkout holds, the others are read
            reason = f"malformed checkout: {err}"
        updated = raw.get("updatedAt", raw.get("updated_at"))
        try:
            updated_at = parse_time(updated, item=item) if updated else None
        except BadPayloadError:
            updated_at = None
        return BadCheckout(id=item, reason=reason, updated_at=updated_at)

    # -- the shop -------------------------------------------------------------------------
    def _shop(self) -> dict[str, Any]:
        if self._shop_info is None:
            data = self.graphql.execute(SHOP_QUERY)
            shop = data.get("shop")
            self._shop_info = dict(shop) if isinstance(shop, dict) else {}
        return self._shop_info

    def shop_timezone(self) -> str | None:
        """The shop's IANA time zone (``shop { ianaTimezone }``)."""
        value = self._shop().get("ianaTimezone")
        return value if isinstance(value, str) and value else None

    # -- bought since? --------------------------------------------------------------------
    def find_purchase(self, checkout: Checkout) -> Purchase | None:
        """Whether this checkout was completed, or its buyer ordered since abandoning it.

        One query asks three things: the checkout's own ``completedAt``; an order by the
        same email created after the abandonment; and
        ``Abandonment.customerHasNoOrderSinceAbandonment``, which also covers buyers known
        only by phone (its order is then unknown, and ``placed_at`` is now).
        """
        email = checkout.customer.email if checkout.customer else None
        variables = {
            "checkout": f"id:{checkout.id}",
            "abandonedCheckoutId": f"gid://shopify/AbandonedCheckout/{checkout.id}",
            "orders": (
                f"email:{_search_value(email)} AND created_at:>'{_iso(checkout.abandoned_at)}'"
                if email
                else ""
            ),
            "byEmail": email is not None,
        }
        data = self.graphql.execute(PURCHASE_QUERY, variables)
        try:
            return self._purchase_from(data, checkout)
        except BadPayloadError as err:
            raise ConnectorError(
                f"shopify: {self.shop} answered the purchase check for checkout {checkout.id} "
                f"with something unreadable: {err.detail}",
                connector="shopify",
            ) from err

    def find_purchases(self, checkouts: Sequence[Checkout]) -> dict[str, PurchaseCheck]:
        """:meth:`find_purchase` for many checkouts, one query per 50: their ``completedAt``,
        their abandonments, and the orders since by their buyers' emails in one search
        (oldest first, so each buyer's first is the one ``find_purchase`` finds). A buyer
        the search's page may have cut off is asked about alone."""
        answers: dict[str, PurchaseCheck] = {}
        for start in range(0, len(checkouts), PURCHASES_CHUNK):
            chunk = checkouts[start : start + PURCHASES_CHUNK]
            emails = {c.id: c.customer.email for c in chunk if c.customer and c.customer.email}
            variables: dict[str, Any] = {
                "ids": " OR ".join(f"id:{checkout.id}" for checkout in chunk),
                "orders": " OR ".join(
                    f"(email:{_search_value(email)} AND "
                    f"created_at:>'{_iso(checkout.abandoned_at)}')"
                    for checkout in chunk
                    if (email := emails.get(checkout.id))
                ),
                "byEmail": bool(emails),
            }
            for i, checkout in enumerate(chunk):
                variables[f"a{i}"] = f"gid://shopify/AbandonedCheckout/{checkout.id}"
            data = self.graphql.execute(
                purchases_query(len(chunk)), variables, expected_cost=purchases_cost(len(chunk))
            )
            completed: dict[str, list[dict[str, Any]]] = {}
            for node in _nodes(data.get("checkouts")):
                completed.setdefault(numeric_id(node.get("id")) or "", []).append(node)
            orders = _nodes(data.get("orders"))
            page = data.get("orders")
            cut = isinstance(page, dict) and bool((page.get("pageInfo") or {}).get("hasNextPage"))
            for i, checkout in enumerate(chunk):
                try:
                    email = emails.get(checkout.id)
                    first = self._first_order(orders, email, checkout) if email else None
                    if email and first is None and cut:
                        answers[checkout.id] = self.find_purchase(checkout)
                        continue
                    one = {
                        "abandonedCheckouts": {"nodes": completed.get(checkout.id, [])},
                        "abandonmentByAbandonedCheckoutId": data.get(f"a{i}"),
                        "orders": {"nodes": [first] if first else []},
                    }
                    answers[checkout.id] = self._purchase_from(one, checkout)
                except BadPayloadError as err:
                    answers[checkout.id] = ConnectorError(
                        f"shopify: {self.shop} answered the purchase check for checkout "
                        f"{checkout.id} with something unreadable: {err.detail}",
                        connector="shopify",
                    )
                except ConnectorError as err:
                    answers[checkout.id] = err
        return answers

    def customer_histories(self, checkouts: Sequence[Checkout]) -> dict[str, HistoryCheck]:
        """Each buyer's order count, amount spent and last order date, by customer id: one
        ``nodes(ids:)`` query per 100 customers, paced by the query cost like every other.
        A checkout without a customer account answers None."""
        answers: dict[str, HistoryCheck] = {}
        ids: dict[str, list[str]] = {}
        for checkout in checkouts:
            customer_id = checkout.customer.id if checkout.customer else None
            if customer_id and customer_id.isdigit():
                ids.setdefault(customer_id, []).append(checkout.id)
            else:
                answers[checkout.id] = None
        wanted = list(ids)
        for start in range(0, len(wanted), HISTORY_CHUNK):
            chunk = wanted[start : start + HISTORY_CHUNK]
            gids = [f"gid://shopify/Customer/{customer_id}" for customer_id in chunk]
            data = self.graphql.execute(
                HISTORY_QUERY, {"ids": gids}, expected_cost=history_cost(len(chunk))
            )
            nodes = data.get("nodes")
            found = {
                numeric_id(node.get("id")): node
                for node in (nodes if isinstance(nodes, list) else [])
                if isinstance(node, dict)
            }
            for customer_id in chunk:
                answer = self._history_from(found.get(customer_id), customer_id)
                for checkout_id in ids[customer_id]:
                    answers[checkout_id] = answer
        return answers

    def _history_from(self, node: Mapping[str, Any] | None, customer_id: str) -> HistoryCheck:
        if node is None:
            return ConnectorError(
                f"shopify: {self.shop} has no customer {customer_id} (deleted?)",
                connector="shopify",
            )
        item = f"customer {customer_id}"
        try:
            count = int(str(node.get("numberOfOrders")))
            spent = node.get("amountSpent")
            last = node.get("lastOrder")
            return CustomerHistory(
                orders_count=count,
                amount_spent=parse_money(spent.get("amount"), item=item)
                if isinstance(spent, dict)
                else None,
                last_order_at=parse_time(last.get("createdAt"), item=item)
                if isinstance(last, dict)
                else None,
            )
        except (BadPayloadError, ValueError) as err:
            return ConnectorError(
                f"shopify: {self.shop} answered the history of {item} with something "
                f"unreadable: {err}",
                connector="shopify",
            )

    @staticmethod
    def _first_order(
        orders: Sequence[Mapping[str, Any]], email: str, checkout: Checkout
    ) -> Mapping[str, Any] | None:
        """The first of ``orders`` (oldest first) by ``email`` created after the checkout
        was abandoned (in whole seconds, as the search compares)."""
        after = parse_time(_iso(checkout.abandoned_at), item=checkout.id)
        wanted = email.lower()
        for order in orders:
            if str(order.get("email") or "").lower() != wanted:
                continue
            if parse_time(order.get("createdAt"), item=checkout.id) > after:
                return order
        return None

    def _purchase_from(self, data: Mapping[str, Any], checkout: Checkout) -> Purchase | None:
        item = checkout.id
        for node in _nodes(data.get("abandonedCheckouts")):
            if node.get("completedAt"):
                total, currency = _money(node.get("totalPriceSet"), item)
                return Purchase(
                    order_id=checkout.id,
                    placed_at=parse_time(node["completedAt"], item=item),
                    total=total,
                    currency=currency,
                    same_checkout=True,
                )
        for order in _nodes(data.get("orders")):
            total, currency = _money(order.get("totalPriceSet"), item)
            return Purchase(
                order_id=str(order.get("name") or numeric_id(order.get("id"))),
                placed_at=parse_time(order.get("createdAt"), item=item),
                total=total,
                currency=currency,
            )
        abandonment = data.get("abandonmentByAbandonedCheckoutId")
        if (
            isinstance(abandonment, dict)
            and abandonment.get("customerHasNoOrderSinceAbandonment") is False
        ):
            return Purchase(order_id="unknown (ordered since abandoning)", placed_at=self._clock())
        return None

    # -- discounts ------------------------------------------------------------------------
    def create_discount(self, checkout: Checkout, offer: DiscountOffer) -> Discount:
        """Create a unique single-use code — percentage or amount off
        (``discountCodeBasicCreate``), or free shipping (``discountCodeFreeShippingCreate``)
        — and return it with the recovery URL that applies it."""
        now = self._clock()
        ends = now + timedelta(seconds=offer.valid_for_seconds)
        if offer.percent is not None:
            label, mutation, field = (
                str(int(offer.percent)),
                DISCOUNT_MUTATION,
                "discountCodeBasicCreate",
            )
            gets: dict[str, Any] = {"percentage": float(offer.percent / 100)}
        elif offer.amount is not None:
            label, mutation, field = (
                f"{int(offer.amount)}OFF",
                DISCOUNT_MUTATION,
                "discountCodeBasicCreate",
            )
            gets = {"discountAmount": {"amount": str(offer.amount), "appliesOnEachItem": False}}
        else:
            label, mutation, field = (
                "SHIP",
                FREE_SHIPPING_MUTATION,
                "discountCodeFreeShippingCreate",
            )
            gets = {}
        for _ in range(3):
            code = f"{self._discount_prefix}{label}-{secrets.token_hex(4).upper()}"
            discount: dict[str, Any] = {
                "title": f"cartrescue {code} (checkout {checkout.id})",
                "code": code,
                "startsAt": _iso(now),
                "endsAt": _iso(ends),
                "usageLimit": 1,
                "appliesOncePerCustomer": True,
            }
            if gets:
                discount["customerGets"] = {"value": gets, "items": {"all": True}}
            else:
                discount["destination"] = {"all": True}
            if offer.min_subtotal is not None:
                discount["minimumRequirement"] = {
                    "subtotal": {"greaterThanOrEqualToSubtotal": str(offer.min_subtotal)}
                }
            if has_discount_context(self.api_version):
                discount["context"] = {"all": "ALL"}
            else:
                discount["customerSelection"] = {"all": True}
            data = self.graphql.execute(mutation, {"input": discount}, mutation=True)
            payload = data.get(field)
            errors = payload.get("userErrors") if isinstance(payload, dict) else None
            if isinstance(errors, list) and errors:
                if any(isinstance(e, dict) and e.get("code") == "TAKEN" for e in errors):
                    continue
                detail = "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict))
                raise ConnectorError(
                    f"shopify: {self.shop} refused the discount code for checkout "
                    f"{checkout.id}: {detail}",
                    connector="shopify",
                )
            if not isinstance(payload, dict) or not payload.get("codeDiscountNode"):
                raise ConnectorError(
                    f"shopify: {self.shop} created no discount for checkout {checkout.id}",
                    connector="shopify",
                )
            return Discount.of(offer, code, ends, discount_url(checkout.recovery_url, code))
        raise ConnectorError(
            f"shopify: {self.shop}: every discount code tried was taken", connector="shopify"
        )

    # -- webhooks -------------------------------------------------------------------------
    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Check ``X-Shopify-Hmac-Sha256`` (base64 HMAC-SHA256 of the raw body with the app's
        secret) in constant time."""
        if not self._webhook_secret:
            raise ConfigError(
                "set webhook_secret_env to the app's client secret to verify webhooks",
                key="connector.webhook_secret_env",
            )
        received = next((v for k, v in headers.items() if k.lower() == _HMAC_HEADER), None)
        if not received:
            return False
        digest = hmac.new(self._webhook_secret.encode(), body, hashlib.sha256).digest()
        expected = base64.b64encode(digest).decode()
        return hmac.compare_digest(expected.encode(), received.strip().encode())

    def checkout_from_webhook(self, body: bytes) -> Checkout:
        """Map a verified ``checkouts/create`` or ``checkouts/update`` body (REST shape)."""
        raw = webhook_object(body)
        item = numeric_id(raw.get("id")) or "?"
        try:
            return self._from_rest(raw)
        except BadPayloadError:
            raise
        except (TypeError, ValueError, KeyError) as err:
            raise BadPayloadError(f"malformed checkout: {err}", item=item) from err

    # -- doctor ---------------------------------------------------------------------------
    def check(self) -> list[Problem]:
        """Read-only: the token works, the scopes are granted, checkouts can be read."""
        area = "connector"
        try:
            data = self.graphql.execute(CHECK_QUERY)
        except ConnectorAuthError as err:
            return [
                Problem(
                    area,
                    f"Shopify refused the access token for {self.shop} (HTTP {err.status})",
                    "create an Admin API access token for the app on this shop and put it in "
                    "the environment variable named by connector.token_env",
                )
            ]
        except ConnectorError as err:
            return [
                Problem(
                    area,
                    f"cannot reach the Shopify Admin API of {self.shop}: {err}"
                    if err.status is not None
                    else explain_connector_error(err, shop=self.shop, connector=self.name),
                    "check connector.shop, connector.api_version and the network",
                )
            ]
        problems: list[Problem] = []
        installation = data.get("currentAppInstallation")
        scopes = {
            str(s.get("handle"))
            for s in (installation or {}).get("accessScopes") or ()
            if isinstance(s, dict)
        }
        granted = scopes | {"read_" + s[len("write_") :] for s in scopes if s.startswith("write_")}
        required = dict(REQUIRED_SCOPES)
        if self.product_details:
            required["read_products"] = (
                "read product tags and collections for segments (product_details)"
            )
        for scope, why in required.items():
            if scope not in granted:
                problems.append(
                    Problem(
                        area,
                        f"the app lacks the access scope {scope} on {self.shop} (needed to {why})",
                        f"add {scope} to the app's Admin API access scopes and approve the "
                        "update on the shop",
                        "warning" if scope in _OPTIONAL_SCOPES else "error",
                    )
                )
        if "read_orders" in granted:
            try:
                self._probe()
            except ConnectorAuthError:
                problems.append(
                    Problem(
                        area,
                        f"abandoned checkouts of {self.shop} cannot be read",
                        "give the app's staff account the 'manage abandoned checkouts' permission",
                    )
                )
        return problems

    def _probe(self) -> None:
        """Read one checkout the way polling does."""
        if self.api == "rest":
            self.http.request("GET", "checkouts.json", params={"limit": 1}, headers=self._headers)
        else:
            self.graphql.execute(checkouts_query(self.api_version, 1), {"first": 1})


def _nodes(connection: object) -> list[dict[str, Any]]:
    if not isinstance(connection, dict) or not isinstance(connection.get("nodes"), list):
        return []
    return [n for n in connection["nodes"] if isinstance(n, dict)]


def _money(raw: object, item: str) -> tuple[Decimal | None, str | None]:
    money = raw.get("presentmentMoney") if isinstance(raw, dict) else None
    if not isinstance(money, dict):
        return None, None
    currency = money.get("currencyCode")
    return parse_money(money.get("amount"), item=item), (
        currency if isinstance(currency, str) else None
    )
