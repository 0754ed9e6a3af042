"""A fake Shopify Admin API on a loopback port, for tests, benchmarks and the demo.

``FakeShopify`` is a real HTTP server (``http.server.ThreadingHTTPServer`` on port 0) that
answers like Shopify, as its documentation describes it:

- ``POST /admin/api/{version}/graphql.json``: a subset of the Admin schema, parsed and
  validated with graphql-core, so a field that does not exist in that version (say
  ``Customer.defaultEmailAddress`` before 2025-04) is an error as it would be. Queries:
  ``abandonedCheckouts`` (``query`` filter ``updated_at``/``created_at``/``status``/``id``,
  cursor pagination, ``first`` ≤ 250), ``abandonmentByAbandonedCheckoutId``, ``orders``,
  ``shop``, ``currentAppInstallation``, ``nodes(ids:)`` (customers by global id, with
  ``numberOfOrders``, ``amountSpent`` and ``lastOrder``; at most 250 ids, as Shopify caps
  every input array, else ``MAX_INPUT_SIZE_EXCEEDED``; an id that is not a global id is an
  error, one of no customer is ``null``); mutation ``discountCodeBasicCreate``. Every answer
  carries ``extensions.cost``: the requested cost computed before running (object 1,
  connection 2 + ``first`` × node, scalar 0, mutation 10, an interface the most expensive
  of its possible selections, ``nodes`` that once per id), the actual cost of what was
  returned, and the state of a leaky bucket whose size and restore rate are parameters. A
  query that does not fit the bucket gets ``THROTTLED`` (HTTP 200 by default; 429 with
  ``throttled_status=429``); one over ``max_query_cost`` gets ``MAX_COST_EXCEEDED``.
  A field the token's scopes do not cover gets ``ACCESS_DENIED``.
- ``GET /admin/api/{version}/checkouts.json``: REST abandoned checkouts with
  ``updated_at_min/max``, ``created_at_min/max``, ``since_id``, ``status``, ``limit``
  (default 50, max 250); pages linked by ``Link: <…page_info=…>; rel="next"``, where a
  ``page_info`` request may add only ``limit`` and ``fields`` (else 400);
  ``X-Shopify-Shop-Api-Call-Limit`` from a request bucket, 429 with ``Retry-After`` when it
  is full.
- A wrong or missing ``X-Shopify-Access-Token`` is answered 401 like Shopify does.

Seed it with REST-shaped checkout records, or from cartrescue objects with
:meth:`FakeShopify.from_checkouts`. Use it as a context manager::

    with FakeShopify.from_checkouts(checkouts, restore_rate=1000) as shop:
        connector = ShopifyConnector(shop.shop, shop.token, base_url=shop.base_url)

``points_spent`` adds up the actual cost of every query run; ``stats`` counts what was
answered (``graphql``, ``rest``, ``throttled``, ``rest_429``,
``max_cost``, ``unauthorized``, ``injected``); :meth:`fail_next` makes the next requests
fail with a status, to test retries.
"""

from __future__ import annotations

import base64
import bisect
import json
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

import phonenumbers
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    execute_sync,
    get_named_type,
    is_leaf_type,
    parse,
    validate,
)
from graphql.execution.values import (
    VariableValues,
    get_argument_values,
    get_directive_values,
    get_variable_values,
)
from graphql.type import GraphQLIncludeDirective, GraphQLSkipDirective

from cartrescue.models import BadCheckout, Checkout

from .loopback import LoopbackServer

__all__ = ["FakeShopify", "SimulatedTime"]

_UNAUTHORIZED = "[API] Invalid API key or access token (unrecognized login or wrong password)"
_ORDERS_SCOPE = (
    "`read_orders` access scope. Also: The user must have manage_abandoned_checkouts permission."
)
_GID = "gid://shopify/{}/{}"


class SimulatedTime:
    """A clock that moves only when slept on: hand ``now`` to :class:`FakeShopify` and
    ``sleep``/``now`` to the connector, and cost pacing is tested without waiting."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self.slept = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, seconds)
            self.slept += max(0.0, seconds)


_SDL = """
schema { query: QueryRoot mutation: Mutation }
scalar DateTime
scalar URL
scalar Decimal
scalar UnsignedInt64
type QueryRoot {
  @LISTING
  abandonmentByAbandonedCheckoutId(abandonedCheckoutId: ID!): Abandonment
  orders(first: Int, after: String, query: String, reverse: Boolean = false,
         sortKey: OrderSortKeys = ID): OrderConnection!
  shop: Shop!
  currentAppInstallation: AppInstallation!
  nodes(ids: [ID!]!): [Node]!
}
interface Node { id: ID! }
type Mutation {
  discountCodeBasicCreate(basicCodeDiscount: DiscountCodeBasicInput!):
    DiscountCodeBasicCreatePayload
  discountCodeFreeShippingCreate(freeShippingCodeDiscount: DiscountCodeFreeShippingInput!):
    DiscountCodeFreeShippingCreatePayload
}
enum AbandonedCheckoutSortKeys {
  CHECKOUT_ID CREATED_AT CUSTOMER_NAME ID RELEVANCE TOTAL_PRICE
}
enum OrderSortKeys { CREATED_AT ID PROCESSED_AT TOTAL_PRICE UPDATED_AT }
type PageInfo {
  hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String
}
type AbandonedCheckoutConnection {
  nodes: [AbandonedCheckout!]! edges: [AbandonedCheckoutEdge!]! pageInfo: PageInfo!
}
type AbandonedCheckoutEdge { cursor: String! node: AbandonedCheckout! }
type AbandonedCheckout {
  id: ID! name: String! note: String! createdAt: DateTime! updatedAt: DateTime!
  completedAt: DateTime abandonedCheckoutUrl: URL! discountCodes: [String!]!
  taxesIncluded: Boolean! totalPriceSet: MoneyBag! subtotalPriceSet: MoneyBag!
  billingAddress: MailingAddress shippingAddress: MailingAddress customer: Customer
  lineItems(first: Int, after: String): AbandonedCheckoutLineItemConnection!
}
type AbandonedCheckoutLineItemConnection {
  nodes: [AbandonedCheckoutLineItem!]! pageInfo: PageInfo!
}
type AbandonedCheckoutLineItem {
  id: ID! title: String variantTitle: String quantity: Int! sku: String
  originalUnitPriceSet: MoneyBag! discountedUnitPriceSet: MoneyBag!
  variant: ProductVariant
}
type ProductVariant { id: ID! availableForSale: Boolean! }
type MoneyBag { shopMoney: MoneyV2! presentmentMoney: MoneyV2! }
type MoneyV2 { amount: Decimal! currencyCode: String! }
type MailingAddress { countryCodeV2: String country: String city: String zip: String }
type Customer implements Node {
  id: ID! firstName: String lastName: String displayName: String! locale: String!
  email: String phone: String numberOfOrders: UnsignedInt64!
  amountSpent: MoneyV2! lastOrder: Order
  emailMarketingConsent: CustomerEmailMarketingConsentState
  smsMarketingConsent: CustomerSmsMarketingConsentState
  @DEFAULT_CONTACTS
}
enum CustomerEmailMarketingState {
  INVALID NOT_SUBSCRIBED PENDING REDACTED SUBSCRIBED UNSUBSCRIBED
}
enum CustomerSmsMarketingState { NOT_SUBSCRIBED PENDING REDACTED SUBSCRIBED UNSUBSCRIBED }
enum CustomerEmailAddressMarketingState {
  INVALID NOT_SUBSCRIBED PENDING SUBSCRIBED UNSUBSCRIBED
}
type CustomerEmailMarketingConsentState { marketingState: CustomerEmailMarketingState! }
type CustomerSmsMarketingConsentState { marketingState: CustomerSmsMarketingState! }
type CustomerEmailAddress {
  emailAddress: String! marketingState: CustomerEmailAddressMarketingState!
}
type CustomerPhoneNumber { phoneNumber: String! marketingState: CustomerSmsMarketingState! }
type Abandonment { id: ID! createdAt: DateTime! customerHasNoOrderSinceAbandonment: Boolean! }
type OrderConnection { nodes: [Order!]! pageInfo: PageInfo! }
type Order { id: ID! name: String! email: String createdAt: DateTime! totalPriceSet: MoneyBag! }
type Shop {
  name: String! email: String! myshopifyDomain: String! ianaTimezone: String!
  currencyCode: String!
}
type AppInstallation { accessScopes: [AccessScope!]! }
type AccessScope { handle: String! description: String! }
input DiscountCodeBasicInput {
  title: String code: String startsAt: DateTime endsAt: DateTime usageLimit: Int
  appliesOncePerCustomer: Boolean customerGets: DiscountCustomerGetsInput
  customerSelection: DiscountCustomerSelectionInput
  minimumRequirement: DiscountMinimumRequirementInput
  @CONTEXT
}
input DiscountMinimumRequirementInput {
  quantity: DiscountMinimumQuantityInput subtotal: DiscountMinimumSubtotalInput
}
input DiscountMinimumQuantityInput { greaterThanOrEqualToQuantity: UnsignedInt64 }
input DiscountMinimumSubtotalInput { greaterThanOrEqualToSubtotal: Decimal }
input DiscountCustomerGetsInput {
  value: DiscountCustomerGetsValueInput items: DiscountItemsInput
}
input DiscountCustomerGetsValueInput { percentage: Float discountAmount: DiscountAmountInput }
input DiscountAmountInput { amount: Decimal appliesOnEachItem: Boolean }
input DiscountCodeFreeShippingInput {
  title: String code: String startsAt: DateTime endsAt: DateTime usageLimit: Int
  appliesOncePerCustomer: Boolean customerSelection: DiscountCustomerSelectionInput
  minimumRequirement: DiscountMinimumRequirementInput
  destination: DiscountShippingDestinationSelectionInput maximumShippingPrice: Decimal
  @CONTEXT
}
input DiscountShippingDestinationSelectionInput { all: Boolean }
type DiscountCodeFreeShippingCreatePayload {
  codeDiscountNode: DiscountCodeNode userErrors: [DiscountUserError!]!
}
input DiscountItemsInput { all: Boolean }
input DiscountCustomerSelectionInput { all: Boolean }
input DiscountContextInput { all: DiscountBuyerSelection }
enum DiscountBuyerSelection { ALL }
type DiscountCodeBasicCreatePayload {
  codeDiscountNode: DiscountCodeNode userErrors: [DiscountUserError!]!
}
type DiscountCodeNode { id: ID! }
type DiscountUserError { field: [String!] code: String message: String! }
"""

_LISTING = """abandonedCheckouts(first: Int, after: String, last: Int, before: String,
    query: String, reverse: Boolean = false, sortKey: AbandonedCheckoutSortKeys = ID):
    AbandonedCheckoutConnection!"""


def _schema_sdl(version: str) -> str:
    """The fake's schema for ``version``: what exists when, per Shopify's changelog."""

    def since(floor: str) -> bool:
        return version == "unstable" or version >= floor

    return (
        _SDL.replace("@LISTING", _LISTING if since("2024-10") else "")
        .replace(
            "@DEFAULT_CONTACTS",
            "defaultEmailAddress: CustomerEmailAddress defaultPhoneNumber: CustomerPhoneNumber"
            if since("2025-04")
            else "",
        )
        .replace("@CONTEXT", "context: DiscountContextInput" if since("2025-10") else "")
    )


# -- search syntax ------------------------------------------------------------------------
_TERM = re.compile(r"""(\w+):(>=|<=|>|<)?('[^']*'|"(?:[^"\\]|\\.)*"|[^\s()]+)""")


@dataclass(frozen=True, slots=True)
class _Term:
    field: str
    op: str
    value: str


def _parse_search(text: str | None) -> list[_Term]:
    terms = []
    for match in _TERM.finditer(text or ""):
        raw = match.group(3)
        if raw[:1] in "'\"" and raw[-1:] == raw[:1]:
            raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        terms.append(_Term(match.group(1).lower(), match.group(2) or "=", raw))
    return terms


def _parse_groups(text: str | None) -> list[list[_Term]]:
    """Shopify's search syntax with ``OR`` between groups of terms (``AND``, or a space,
    within a group): ``id:1 OR id:2``."""
    return [_parse_search(part) for part in re.split(r"\s+OR\s+", text or "")]


def _ids_only(groups: list[list[_Term]]) -> list[int] | None:
    """The ids asked for when every group is one ``id:N`` term (looked up by key, as
    Shopify does, instead of scanning the shop); else None."""
    ids = []
    for group in groups:
        if len(group) != 1 or group[0].field != "id" or group[0].op != "=":
            return None
        try:
            ids.append(int(group[0].value))
        except ValueError:
            return None
    return ids


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    return bool(left == right)


def _when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _utc(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- cost ---------------------------------------------------------------------------------
class _Cost:
    """Shopify's calculated query cost over a parsed operation."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        variables: VariableValues,
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def _fields(
        self, selection_set: SelectionSetNode | None, on: GraphQLObjectType | None = None
    ) -> Iterable[FieldNode]:
        """The fields selected, with fragments that apply to ``on`` (all when None)."""
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                skip = get_directive_values(GraphQLSkipDirective, selection, self.variables)
                include = get_directive_values(GraphQLIncludeDirective, selection, self.variables)
                if (skip and skip["if"]) or (include and not include["if"]):
                    continue
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                if self._applies(selection.type_condition, on):
                    yield from self._fields(selection.selection_set, on)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments[selection.name.value]
                if self._applies(fragment.type_condition, on):
                    yield from self._fields(fragment.selection_set, on)

    @staticmethod
    def _applies(condition: Any, on: GraphQLObjectType | None) -> bool:
        if condition is None or on is None:
            return True
        name = condition.name.value
        return name == on.name or any(i.name == name for i in on.interfaces)

    def _interface(
        self,
        interface: GraphQLInterfaceType,
        selection_set: SelectionSetNode | None,
        measure: Callable[[GraphQLObjectType, SelectionSetNode | None], int],
    ) -> int:
        """Shopify prices an interface at the most expensive of its possible selections."""
        return max(
            (1 + measure(t, selection_set) for t in self.schema.get_possible_types(interface)),
            default=1,
        )

    def _args(self, parent: GraphQLObjectType, field: FieldNode) -> dict[str, Any]:
        return get_argument_values(parent.fields[field.name.value], field, self.variables)

    def requested(self, parent: GraphQLObjectType, selection_set: SelectionSetNode | None) -> int:
        total = 0
        for field in self._fields(selection_set, parent):
            name = field.name.value
            if name.startswith("__"):
                continue
            named = get_named_type(parent.fields[name].type)
            if isinstance(named, GraphQLInterfaceType):
                ids = self._args(parent, field).get("ids")
                each = self._interface(named, field.selection_set, self.requested)
                total += each * (len(ids) if isinstance(ids, list) else 1)
                continue
            if is_leaf_type(named) or not isinstance(named, GraphQLObjectType):
                continue
            if parent is self.schema.mutation_type:
                total += 10
            elif named.name.endswith("Connection"):
                size = self._args(parent, field).get("first") or 0
                total += 2 + size * self._node_cost(named, field, self.requested)
            else:
                total += 1 + self.requested(named, field.selection_set)
        return total

    def _node_cost(
        self, connection: GraphQLObjectType, field: FieldNode, measure: Callable[..., int]
    ) -> int:
        cost = 0
        for part in self._fields(field.selection_set):
            if part.name.value == "nodes":
                node_type = get_named_type(connection.fields["nodes"].type)
                assert isinstance(node_type, GraphQLObjectType)
                cost = max(cost, 1 + measure(node_type, part.selection_set))
        return cost

    def _actual_of(
        self, data: Any, parent: GraphQLObjectType, selection_set: SelectionSetNode | None
    ) -> int:
        return self.actual(parent, selection_set, data)

    def actual(
        self, parent: GraphQLObjectType, selection_set: SelectionSetNode | None, data: Any
    ) -> int:
        if not isinstance(data, dict):
            return 0
        total = 0
        for field in self._fields(selection_set, parent):
            name = field.name.value
            key = field.alias.value if field.alias else name
            if name.startswith("__") or data.get(key) is None:
                continue
            named = get_named_type(parent.fields[name].type)
            value = data[key]
            if isinstance(named, GraphQLInterfaceType):
                for item in value if isinstance(value, list) else [value]:
                    if item is not None:
                        total += self._interface(
                            named, field.selection_set, partial(self._actual_of, item)
                        )
                continue
            if is_leaf_type(named) or not isinstance(named, GraphQLObjectType):
                continue
            if parent is self.schema.mutation_type:
                total += 10
            elif named.name.endswith("Connection"):
                total += 2
                node_type = get_named_type(named.fields["nodes"].type)
                assert isinstance(node_type, GraphQLObjectType)
                for part in self._fields(field.selection_set):
                    if part.name.value == "nodes":
                        part_key = part.alias.value if part.alias else "nodes"
                        for node in value.get(part_key) or ():
                            total += 1 + self.actual(node_type, part.selection_set, node)
            elif isinstance(value, list):
                total += sum(
                    1 + self.actual(named, field.selection_set, v) for v in value if v is not None
                )
            else:
                total += 1 + self.actual(named, field.selection_set, value)
        return total


# -- the server ---------------------------------------------------------------------------
class FakeShopify:
    """A loopback Shopify shop. See the module docstring for what it serves.

    ``checkouts`` are REST-shaped records (``id``, ``created_at``, ``updated_at``,
    ``abandoned_checkout_url``, ``total_price``, ``currency``, ``line_items``,
    ``customer`` …; a customer's ``orders_count``, ``total_spent`` and ``last_order_at``
    are its history, answered by ``nodes(ids:)``, which finds customers by id through an
    index). ``bucket_size``/``restore_rate`` shape the GraphQL cost bucket
    (Shopify's standard plan restores 100 points a second); ``throttle=False`` keeps it
    always full. ``rest_bucket_size``/``rest_leak_rate`` shape the REST call bucket (40 and
    2/s on the standard plan). ``now`` is the monotonic clock the buckets run on.
    """

    def __init__(
        self,
        checkouts: Iterable[Mapping[str, Any]] = (),
        *,
        token: str = "shpat_fake_token",  # noqa: S107 - a fake shop's token
        shop: str = "fake-shop.myshopify.com",
        shop_name: str = "Fake shop",
        timezone: str = "America/New_York",
        currency: str = "USD",
        locale: str = "en",
        bucket_size: float = 2000.0,
        restore_rate: float = 100.0,
        throttle: bool = True,
        throttled_status: int = 200,
        max_query_cost: int = 1000,
        rest_bucket_size: int = 40,
        rest_leak_rate: float = 2.0,
        scopes: Iterable[str] = ("read_orders", "read_customers", "write_discounts"),
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.shop = shop
        self.shop_name = shop_name
        self.timezone = timezone
        self.currency = currency
        self.locale = locale
        self.bucket_size = float(bucket_size)
        self.restore_rate = float(restore_rate)
        self.throttle = throttle
        self.throttled_status = throttled_status
        self.max_query_cost = max_query_cost
        self.rest_bucket_size = rest_bucket_size
        self.rest_leak_rate = rest_leak_rate
        self.scopes = set(scopes)
        self._now = now
        self._lock = threading.Lock()
        self._available = self.bucket_size
        self._bucket_at = now()
        self._rest_used = 0.0
        self._rest_at = now()
        self._failures: list[tuple[int, dict[str, str]]] = []
        self._schemas: dict[str, GraphQLSchema] = {}
        self._documents: dict[tuple[str, str], tuple[DocumentNode, list[GraphQLError]]] = {}
        self.checkouts: dict[int, dict[str, Any]] = {}
        self.orders: list[dict[str, Any]] = []
        self._sorted_ids: list[int] | None = None
        self._indexed_orders = 0
        self._by_email: dict[str, list[dict[str, Any]]] = {}
        self._by_phone: dict[str, list[dict[str, Any]]] = {}
        self._customers: dict[int, int] = {}
        """Customer id → the checkout record that last named the customer."""
        self.discounts: list[dict[str, Any]] = []
        self.stats: Counter[str] = Counter()
        self.points_spent = 0.0
        self.requests: list[tuple[str, str, int]] = []
        for record in checkouts:
            self.add_checkout(record)
        self._server: LoopbackServer | None = None

    # -- seeding --------------------------------------------------------------------------
    @classmethod
    def from_checkouts(
        cls, checkouts: Iterable[Checkout | BadCheckout], **options: Any
    ) -> FakeShopify:
        """A shop serving these cartrescue checkouts. A ``BadCheckout`` is served as a record
        whose price is not a number, so a connector reports it as bad again."""
        fake = cls(**options)
        for item in checkouts:
            fake.add_checkout(fake.record_from_checkout(item))
        return fake

    def record_from_checkout(self, item: Checkout | BadCheckout) -> dict[str, Any]:
        """The REST-shaped record this fake keeps for a cartrescue checkout."""
        if isinstance(item, BadCheckout):
            at = item.updated_at or datetime(2026, 1, 1, tzinfo=UTC)
            return {
                "id": int(item.id) if item.id.isdigit() else 900000 + len(self.checkouts),
                "created_at": _utc(at),
                "updated_at": _utc(at),
                "abandoned_checkout_url": f"https://{self.shop}/checkouts/bad/recover",
                "currency": self.currency,
                "total_price": "not a number",
                "line_items": [],
                "customer": None,
            }
        customer = item.customer
        record: dict[str, Any] = {
            "id": int(item.id) if item.id.isdigit() else 800000 + len(self.checkouts),
            "name": item.name or f"#{item.id}",
            "created_at": _utc(item.abandoned_at),
            "updated_at": _utc(item.updated_at),
            "completed_at": _utc(item.completed_at),
            "abandoned_checkout_url": item.recovery_url,
            "currency": item.currency,
            "presentment_currency": item.currency,
            "total_price": str(item.total),
            "line_items": [
                {
                    "title": line.title,
                    "variant_title": line.variant,
                    "quantity": line.quantity,
                    "price": str(line.price),
                    "sku": line.sku,
                    "available": line.in_stock is not False,
                }
                for line in item.line_items
            ],
            "customer": None,
        }
        if customer is not None:
            country = item.country
            if country is None and customer.phone:
                country = phonenumbers.region_code_for_number(phonenumbers.parse(customer.phone))
            record.update(
                email=customer.email,
                phone=customer.phone,
                customer_locale=customer.locale,
                buyer_accepts_marketing=customer.email_consent,
                buyer_accepts_sms_marketing=customer.sms_consent,
                sms_marketing_phone=customer.phone if customer.sms_consent else None,
                billing_address={"country_code": country} if country else None,
                customer={
                    "id": int(customer.id)
                    if customer.id and customer.id.isdigit()
                    else 500000 + len(self.checkouts),
                    "first_name": customer.first_name,
                    "last_name": customer.last_name,
                    "orders_count": customer.orders_count or 0,
                    "total_spent": str(customer.amount_spent or "0.00"),
                    "last_order_at": _utc(customer.last_order_at),
                    "email": customer.email,
                    "phone": customer.phone,
                    "email_marketing_consent": {
                        "state": "subscribed" if customer.email_consent else "not_subscribed"
                    },
                    "sms_marketing_consent": {
                        "state": "subscribed" if customer.sms_consent else "not_subscribed"
                    }
                    if customer.phone
                    else None,
                },
            )
        return record

    def add_checkout(self, record: Mapping[str, Any]) -> None:
        """Add or replace a REST-shaped checkout record."""
        data = dict(record)
        with self._lock:
            if data.get("customer") is not None and not data.get("customer_locale"):
                data["customer_locale"] = self.locale
            if int(data["id"]) not in self.checkouts:
                self._sorted_ids = None
            self.checkouts[int(data["id"])] = data
            customer = data.get("customer")
            if isinstance(customer, Mapping) and customer.get("id") is not None:
                self._customers[int(customer["id"])] = int(data["id"])

    def add_order(
        self,
        *,
        email: str | None,
        created_at: datetime,
        total: Decimal | str = "0.00",
        currency: str | None = None,
        phone: str | None = None,
    ) -> dict[str, Any]:
        """Record an order (for ``orders`` queries and ``Abandonment``)."""
        with self._lock:
            number = 1001 + len(self.orders)
            order = {
                "id": 7000000 + number,
                "name": f"#{number}",
                "email": email,
                "phone": phone,
                "created_at": _utc(created_at),
                "total_price": str(total),
                "currency": currency or self.currency,
            }
            self.orders.append(order)
            return order

    def complete_checkout(self, checkout_id: str | int, at: datetime) -> None:
        """Mark a checkout paid at ``at`` and record its order."""
        with self._lock:
            record = self.checkouts[int(checkout_id)]
            record["completed_at"] = _utc(at)
            record["updated_at"] = _utc(at)
        self.add_order(
            email=record.get("email"),
            created_at=at,
            total=record.get("total_price", "0"),
            currency=record.get("presentment_currency") or record.get("currency"),
        )

    def count(self, what: str) -> None:
        """Add one to ``stats[what]`` (handlers run on several threads)."""
        with self._lock:
            self.stats[what] += 1

    def fail_next(
        self, status: int, *, times: int = 1, headers: Mapping[str, str] | None = None
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (and ``headers``)."""
        with self._lock:
            self._failures.extend([(status, dict(headers or {}))] * times)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> FakeShopify:
        fake = self

        class Handler(_Handler):
            shop = fake

        self._server = LoopbackServer(Handler, poll_interval=0.05)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> FakeShopify:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: pass it as the connector's ``base_url``."""
        if self._server is None:
            raise RuntimeError("FakeShopify is not running; use it as a context manager")
        return self._server.url

    @property
    def failed(self) -> int:
        """Requests answered with an error status or ``THROTTLED``."""
        return sum(1 for _, _, status in self.requests if status >= 400) + self.stats["throttled"]

    # -- views of a record ----------------------------------------------------------------
    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _rest_time(self, value: str | None) -> str | None:
        if value is None:
            return None
        return _when(value).astimezone(self._zone()).isoformat(timespec="seconds")

    def rest_view(self, record: Mapping[str, Any]) -> dict[str, Any]:
        view = dict(record)
        view.setdefault("token", f"{int(record['id']):032x}")
        view.setdefault("name", f"#{record['id']}")
        for key in ("created_at", "updated_at", "completed_at", "closed_at"):
            view[key] = self._rest_time(record.get(key))
        customer = record.get("customer")
        if isinstance(customer, Mapping):
            view["customer"] = {
                "orders_count": 0,
                **customer,
                "admin_graphql_api_id": _GID.format("Customer", customer.get("id")),
            }
        return view

    def _last_order(self, customer: Mapping[str, Any]) -> Any:
        at = customer.get("last_order_at")
        if not at:
            return None
        if "read_orders" not in self.scopes:
            return _denied(self, "lastOrder", _ORDERS_SCOPE)
        number = int(customer.get("id") or 0)
        return {
            "id": _GID.format("Order", 9000000 + number),
            "name": f"#C{number}",
            "email": customer.get("email"),
            "createdAt": at,
            "totalPriceSet": self._money("0.00", self.currency),
        }

    def customer_node(self, gid: str) -> dict[str, Any] | None:
        """The ``Customer`` a global id names, looked up by key as Shopify does, or None."""
        match = re.fullmatch(r"gid://shopify/(\w+)/(\d+)", gid)
        if match is None:
            raise GraphQLError(
                f"Invalid global id '{gid}'",
                extensions={"code": "argumentLiteralsIncompatible", "typeName": "CoercionError"},
            )
        if match.group(1) != "Customer":
            return None
        with self._lock:
            record_id = self._customers.get(int(match.group(2)))
            record = dict(self.checkouts[record_id]) if record_id is not None else None
        if record is None:
            return None
        node = self.graphql_view(record, "unstable")["customer"]
        return None if node is None else {**node, "__typename": "Customer"}

    def _money(self, amount: object, currency: str) -> dict[str, Any]:
        money = {"amount": str(amount), "currencyCode": currency}
        return {"presentmentMoney": money, "shopMoney": money}

    def graphql_view(self, record: Mapping[str, Any], version: str) -> dict[str, Any]:
        currency = str(record.get("presentment_currency") or record.get("currency"))
        customer = record.get("customer")
        gql_customer = None
        if isinstance(customer, Mapping):
            email_state = str(_state(customer.get("email_marketing_consent"))).upper()
            sms_state = _state(customer.get("sms_marketing_consent"))
            email = customer.get("email") or record.get("email")
            phone = customer.get("phone") or record.get("phone")
            gql_customer = {
                "id": _GID.format("Customer", customer.get("id")),
                "firstName": customer.get("first_name"),
                "lastName": customer.get("last_name"),
                "displayName": " ".join(
                    str(p) for p in (customer.get("first_name"), customer.get("last_name")) if p
                )
                or (email or ""),
                "locale": record.get("customer_locale") or self.locale,
                "numberOfOrders": str(customer.get("orders_count") or 0),
                "amountSpent": {
                    "amount": str(customer.get("total_spent") or "0.00"),
                    "currencyCode": self.currency,
                },
                "lastOrder": self._last_order(customer),
                "email": email,
                "phone": phone,
                "emailMarketingConsent": {"marketingState": email_state} if email else None,
                "smsMarketingConsent": {"marketingState": str(sms_state).upper()}
                if phone and sms_state
                else None,
                "defaultEmailAddress": {
                    "emailAddress": email,
                    "marketingState": email_state if email_state != "REDACTED" else "INVALID",
                }
                if email
                else None,
                "defaultPhoneNumber": {
                    "phoneNumber": phone,
                    "marketingState": str(sms_state or "not_subscribed").upper(),
                }
                if phone
                else None,
            }

        def address(raw: object) -> dict[str, Any] | None:
            if not isinstance(raw, Mapping):
                return None
            return {
                "countryCodeV2": raw.get("country_code"),
                "country": raw.get("country"),
                "city": raw.get("city"),
                "zip": raw.get("zip"),
            }

        lines = [
            {
                "id": _GID.format("AbandonedCheckoutLineItem", f"{record['id']}{i}"),
                "title": line.get("title"),
                "variantTitle": line.get("variant_title"),
                "quantity": line.get("quantity"),
                "sku": line.get("sku"),
                "originalUnitPriceSet": self._money(line.get("price"), currency),
                "discountedUnitPriceSet": self._money(line.get("price"), currency),
                "variant": {
                    "id": _GID.format("ProductVariant", f"{record['id']}{i}"),
                    "availableForSale": bool(line.get("available", True)),
                },
            }
            for i, line in enumerate(record.get("line_items") or ())
        ]
        return {
            "id": _GID.format("AbandonedCheckout", record["id"]),
            "name": record.get("name") or f"#{record['id']}",
            "note": record.get("note") or "",
            "createdAt": record.get("created_at"),
            "updatedAt": record.get("updated_at"),
            "completedAt": record.get("completed_at"),
            "abandonedCheckoutUrl": record.get("abandoned_checkout_url"),
            "discountCodes": [],
            "taxesIncluded": False,
            "totalPriceSet": self._money(record.get("total_price"), currency),
            "subtotalPriceSet": self._money(
                record.get("subtotal_price", record.get("total_price")), currency
            ),
            "billingAddress": address(record.get("billing_address")),
            "shippingAddress": address(record.get("shipping_address")),
            "customer": gql_customer,
            "lineItems": lambda info, first=None, after=None: {
                "nodes": lines[: first or 0],
                "pageInfo": _page_info(len(lines) > (first or 0), None),
            },
        }

    # -- filtering ------------------------------------------------------------------------
    def _matches(self, record: Mapping[str, Any], terms: list[_Term]) -> bool:
        for term in terms:
            if term.field in ("updated_at", "created_at"):
                value = record.get(term.field)
                if value is None or not _compare(_when(value), term.op, _when(term.value)):
                    return False
            elif term.field == "status":
                closed = bool(record.get("closed_at"))
                if (term.value == "closed") != closed:
                    return False
            elif term.field == "id" and not _compare(int(record["id"]), term.op, int(term.value)):
                return False
        return True

    def _select_checkouts(
        self, groups: list[list[_Term]], after_id: int, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Checkouts after ``after_id`` matching any of ``groups`` of terms, at most
        ``limit``, and whether there are more. Ids alone are looked up by key."""
        with self._lock:
            wanted = _ids_only(groups)
            if wanted is not None:
                ids = sorted({i for i in wanted if i in self.checkouts})
            else:
                if self._sorted_ids is None:
                    self._sorted_ids = sorted(self.checkouts)
                ids = self._sorted_ids[bisect.bisect_right(self._sorted_ids, after_id) :]
            chosen: list[dict[str, Any]] = []
            for checkout_id in ids:
                if checkout_id <= after_id:
                    continue
                record = self.checkouts[checkout_id]
                if any(self._matches(record, group) for group in groups):
                    if len(chosen) == limit:
                        return chosen, True
                    chosen.append(dict(record))
            return chosen, False

    def _orders_of(self, email: str | None, phone: str | None) -> list[dict[str, Any]]:
        """Orders placed with this email (any case) or phone, from an index, as Shopify's
        search looks them up."""
        with self._lock:
            if self._indexed_orders != len(self.orders):
                self._by_email, self._by_phone = {}, {}
                for order in self.orders:
                    if order.get("email"):
                        self._by_email.setdefault(order["email"].lower(), []).append(order)
                    if order.get("phone"):
                        self._by_phone.setdefault(order["phone"], []).append(order)
                self._indexed_orders = len(self.orders)
            found = list(self._by_email.get(email.lower(), [])) if email else []
            for order in self._by_phone.get(phone, []) if phone else []:
                if order not in found:
                    found.append(order)
            return found

    # -- bucket ---------------------------------------------------------------------------
    def _take(self, requested: int) -> tuple[bool, float]:
        with self._lock:
            now = self._now()
            elapsed = max(0.0, now - self._bucket_at)
            self._available = min(self.bucket_size, self._available + elapsed * self.restore_rate)
            self._bucket_at = now
            if not self.throttle:
                self._available = self.bucket_size
                return True, self._available
            if requested > self._available:
                return False, self._available
            self._available -= requested
            return True, self._available

    def _refund(self, points: float) -> float:
        with self._lock:
            self._available = min(self.bucket_size, self._available + max(0.0, points))
            return self._available

    def _cost_extension(self, requested: int, actual: int | None, available: float) -> Any:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": {
                    "maximumAvailable": self.bucket_size,
                    "currentlyAvailable": int(available),
                    "restoreRate": self.restore_rate,
                },
            }
        }

    def _rest_take(self) -> float | None:
        """Add one call to the REST bucket; the seconds to wait when it is full."""
        with self._lock:
            now = self._now()
            self._rest_used = max(
                0.0, self._rest_used - (now - self._rest_at) * self.rest_leak_rate
            )
            self._rest_at = now
            if self._rest_used + 1 > self.rest_bucket_size:
                return (self._rest_used + 1 - self.rest_bucket_size) / self.rest_leak_rate
            self._rest_used += 1
            return None

    # -- GraphQL --------------------------------------------------------------------------
    def _schema(self, version: str) -> GraphQLSchema:
        if version not in self._schemas:
            self._schemas[version] = build_schema(_schema_sdl(version))
        return self._schemas[version]

    def _document(self, version: str, text: str) -> tuple[DocumentNode, list[GraphQLError]]:
        key = (version, text)
        if key not in self._documents:
            try:
                document = parse(text)
            except GraphQLError as err:
                self._documents[key] = (DocumentNode(definitions=()), [err])
            else:
                self._documents[key] = (document, validate(self._schema(version), document))
        return self._documents[key]

    def graphql(self, version: str, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """Answer one GraphQL request body: (HTTP status, JSON body)."""
        query = body.get("query")
        variables = body.get("variables") or {}
        if not isinstance(query, str) or not isinstance(variables, dict):
            return 400, {"errors": {"query": "Required parameter missing or invalid"}}
        schema = self._schema(version)
        document, problems = self._document(version, query)
        if problems:
            return 200, {"errors": [e.formatted for e in problems]}
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        name = body.get("operationName")
        operation = next(
            (o for o in operations if name is None or (o.name and o.name.value == name)), None
        )
        if operation is None:
            return 200, {"errors": [{"message": "No operation named in the document"}]}
        root = (
            schema.mutation_type if operation.operation.value == "mutation" else schema.query_type
        )
        assert root is not None
        coerced = get_variable_values(schema, operation.variable_definitions or (), variables)
        if isinstance(coerced, list):
            return 200, {"errors": [e.formatted for e in coerced]}
        try:
            _check_input_sizes(coerced.coerced)
            cost = _Cost(schema, document, coerced)
            requested = cost.requested(root, operation.selection_set)
        except GraphQLError as err:
            return 200, {"errors": [err.formatted]}
        if requested > self.max_query_cost:
            self.count("max_cost")
            return 200, {
                "errors": [
                    {
                        "message": f"Query cost is {requested}, which exceeds the single query "
                        f"max cost limit ({self.max_query_cost}).\n\nSee "
                        "https://shopify.dev/concepts/about-apis/rate-limits for more "
                        "information on how the\ncost of a query is calculated.\n",
                        "extensions": {
                            "code": "MAX_COST_EXCEEDED",
                            "cost": requested,
                            "maxCost": self.max_query_cost,
                        },
                    }
                ]
            }
        allowed, available = self._take(requested)
        if not allowed:
            self.count("throttled")
            return self.throttled_status, {
                "errors": [
                    {
                        "message": "Throttled",
                        "extensions": {
                            "code": "THROTTLED",
                            "documentation": "https://shopify.dev/api/usage/rate-limits",
                        },
                    }
                ],
                "extensions": self._cost_extension(requested, None, available),
            }
        result = execute_sync(
            schema,
            document,
            root_value=_Root(self, version),
            variable_values=variables,
            operation_name=name,
        )
        data = result.data
        actual = cost.actual(root, operation.selection_set, data)
        available = self._refund(requested - actual)
        with self._lock:
            self.points_spent += actual
        answer: dict[str, Any] = {"data": data}
        if result.errors:
            answer["errors"] = [e.formatted for e in result.errors]
        answer["extensions"] = self._cost_extension(requested, actual, available)
        return 200, answer

    # -- REST -----------------------------------------------------------------------------
    def rest_checkouts(
        self, version: str, query: Mapping[str, list[str]]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Answer one ``checkouts.json`` request: (status, body, headers)."""
        params = {k: v[-1] for k, v in query.items()}
        state: dict[str, Any]
        if "page_info" in params:
            extra = set(params) - {"page_info", "limit", "fields"}
            if extra:
                return (
                    400,
                    {"errors": {"page_info": "Invalid value. Only limit and fields are allowed."}},
                    {},
                )
            try:
                state = json.loads(base64.urlsafe_b64decode(params["page_info"].encode()))
            except (ValueError, TypeError):
                return 400, {"errors": {"page_info": "Invalid value."}}, {}
        else:
            state = {k: v for k, v in params.items() if k not in ("limit", "fields")}
            state["after"] = int(state.pop("since_id", 0) or 0)
        try:
            limit = min(250, max(1, int(params.get("limit", 50))))
        except ValueError:
            return 400, {"errors": {"limit": "Invalid value."}}, {}
        terms = [_Term("status", "=", str(state.get("status", "open")))]
        for key, field, op in (
            ("updated_at_min", "updated_at", ">="),
            ("updated_at_max", "updated_at", "<="),
            ("created_at_min", "created_at", ">="),
            ("created_at_max", "created_at", "<="),
        ):
            if state.get(key):
                try:
                    _when(str(state[key]))
                except ValueError:
                    return 400, {"errors": {key: "Invalid value."}}, {}
                terms.append(_Term(field, op, str(state[key])))
        chosen, more = self._select_checkouts([terms], int(state.get("after", 0)), limit)
        views = [self.rest_view(c) for c in chosen]
        if "fields" in params:
            wanted = {f.strip() for f in params["fields"].split(",")}
            views = [{k: v for k, v in view.items() if k in wanted} for view in views]
        headers = {}
        links = []
        base = f"{self.base_url}/admin/api/{version}/checkouts.json"
        if state.get("previous_from") is not None:
            back = dict(state, after=state["previous_from"], previous_from=None)
            links.append(f'<{base}?{_page_query(limit, back)}>; rel="previous"')
        if more and chosen:
            forward = dict(state, after=chosen[-1]["id"], previous_from=int(state.get("after", 0)))
            links.append(f'<{base}?{_page_query(limit, forward)}>; rel="next"')
        if links:
            headers["Link"] = ", ".join(links)
        return 200, {"checkouts": views}, headers

    # -- resolvers used by _Root ----------------------------------------------------------
    def access_denied(self, field: str, scope: str) -> GraphQLError:
        return GraphQLError(
            f"Access denied for {field} field. Required access: {scope}",
            extensions={
                "code": "ACCESS_DENIED",
                "documentation": "https://shopify.dev/api/usage/access-scopes",
                "requiredAccess": scope,
            },
        )

    def create_discount(
        self, data: Mapping[str, Any], *, argument: str = "basicCodeDiscount"
    ) -> dict[str, Any]:
        """Create a code discount (``basicCodeDiscount``: a percentage or an amount off;
        ``freeShippingCodeDiscount``: free shipping), refusing what Shopify refuses."""
        errors = []
        basic = argument == "basicCodeDiscount"
        required = (
            ("code", "title", "startsAt", "customerGets")
            if basic
            else ("code", "title", "startsAt")
        )
        for key in required:
            if not data.get(key):
                errors.append(
                    {
                        "field": [argument, key],
                        "code": "BLANK",
                        "message": f"{key} can't be blank",
                    }
                )
        if not data.get("context") and not data.get("customerSelection"):
            errors.append(
                {
                    "field": [argument, "context"],
                    "code": "BLANK",
                    "message": "Context can't be blank",
                }
            )
        value = ((data.get("customerGets") or {}).get("value")) or {}
        if basic and data.get("customerGets") and len(value) != 1:
            errors.append(
                {
                    "field": [argument, "customerGets", "value"],
                    "code": "INVALID",
                    "message": "Value must have exactly one of percentage, discountAmount "
                    "or discountOnQuantity",
                }
            )
        amount = (value.get("discountAmount") or {}).get("amount")
        if amount is not None and not Decimal(str(amount)) > 0:
            errors.append(
                {
                    "field": [argument, "customerGets", "value", "discountAmount", "amount"],
                    "code": "GREATER_THAN",
                    "message": "Value must be greater than 0",
                }
            )
        percentage = value.get("percentage")
        if percentage is not None and not 0 <= percentage <= 1:
            errors.append(
                {
                    "field": ["basicCodeDiscount", "customerGets", "value", "percentage"],
                    "code": "VALUE_OUTSIDE_RANGE",
                    "message": "Value must be between 0.0 and 1.0",
                }
            )
        with self._lock:
            if any(d["code"].lower() == str(data.get("code", "")).lower() for d in self.discounts):
                errors.append(
                    {
                        "field": [argument, "code"],
                        "code": "TAKEN",
                        "message": "Code must be unique. Please try a different code.",
                    }
                )
            if errors:
                return {"codeDiscountNode": None, "userErrors": errors}
            node_id = _GID.format("DiscountCodeNode", 1000 + len(self.discounts))
            kind = "basic" if basic else "free_shipping"
            self.discounts.append({"id": node_id, "type": kind, **data})
        return {"codeDiscountNode": {"id": node_id}, "userErrors": []}


def _state(consent: object) -> str | None:
    if isinstance(consent, Mapping) and isinstance(consent.get("state"), str):
        return str(consent["state"])
    return None


def _page_info(more: bool, end: str | None) -> dict[str, Any]:
    return {"hasNextPage": more, "hasPreviousPage": False, "startCursor": None, "endCursor": end}


def _cursor(checkout_id: int) -> str:
    return base64.b64encode(json.dumps({"last_id": checkout_id}).encode()).decode()


def _page_query(limit: int, state: Mapping[str, Any]) -> str:
    token = base64.urlsafe_b64encode(json.dumps(state, sort_keys=True).encode()).decode()
    return urlencode({"limit": limit, "page_info": token})


class _Root:
    """Root resolvers of the fake schema (graphql-core calls attributes of the root value)."""

    def __init__(self, fake: FakeShopify, version: str) -> None:
        self.fake = fake
        self.version = version

    def _require(self, scope: str, field: str, detail: str | None = None) -> None:
        if (
            scope not in self.fake.scopes
            and scope.replace("read_", "write_") not in self.fake.scopes
        ):
            raise self.fake.access_denied(field, detail or f"`{scope}` access scope.")

    def abandonedCheckouts(self, info: GraphQLResolveInfo[Any], **args: Any) -> dict[str, Any]:
        self._require("read_orders", "abandonedCheckouts", _ORDERS_SCOPE)
        first = args.get("first")
        if first is None:
            raise GraphQLError("you must provide one of first or last")
        if not 0 <= first <= 250:
            raise GraphQLError("The first argument must be between 0 and 250")
        after_id = 0
        if args.get("after"):
            try:
                after_id = int(json.loads(base64.b64decode(args["after"]))["last_id"])
            except (ValueError, KeyError, TypeError):
                raise GraphQLError("Invalid cursor for current pagination sort.") from None
        chosen, more = self.fake._select_checkouts(
            _parse_groups(args.get("query")), after_id, first
        )
        customers = "read_customers" in self.fake.scopes
        nodes = []
        for record in chosen:
            node = self.fake.graphql_view(record, self.version)
            if not customers and node["customer"] is not None:
                node["customer"] = _denied_customer(self.fake)
            nodes.append(node)
        edges = [
            {"cursor": _cursor(int(r["id"])), "node": n} for r, n in zip(chosen, nodes, strict=True)
        ]
        end = _cursor(int(chosen[-1]["id"])) if chosen else None
        return {"nodes": nodes, "edges": edges, "pageInfo": _page_info(more, end)}

    def abandonmentByAbandonedCheckoutId(
        self,
        info: GraphQLResolveInfo[Any],
        abandonedCheckoutId: str,
    ) -> dict[str, Any] | None:
        self._require("read_orders", "abandonmentByAbandonedCheckoutId", _ORDERS_SCOPE)
        try:
            record = self.fake.checkouts[int(abandonedCheckoutId.rsplit("/", 1)[-1])]
        except (KeyError, ValueError):
            return None
        customer = record.get("customer")
        if not isinstance(customer, Mapping):
            return None
        email = customer.get("email") or record.get("email")
        phone = customer.get("phone") or record.get("phone")
        since = _when(record["created_at"])
        ordered = any(
            _when(order["created_at"]) > since
            and ((email and order.get("email") == email) or (phone and order.get("phone") == phone))
            for order in self.fake._orders_of(email, phone)
        )
        return {
            "id": _GID.format("Abandonment", record["id"]),
            "createdAt": record["created_at"],
            "customerHasNoOrderSinceAbandonment": not ordered,
        }

    def orders(self, info: GraphQLResolveInfo[Any], **args: Any) -> dict[str, Any]:
        self._require("read_orders", "orders")
        groups = _parse_groups(args.get("query"))
        first = args.get("first") or 0
        emails = [[t.value for t in group if t.field == "email"] for group in groups]
        if all(emails):  # looked up by email, as Shopify's search index does
            chosen = {id(o): o for e in emails for o in self.fake._orders_of(e[0], None)}
            candidates = sorted(chosen.values(), key=lambda o: int(o["id"]))
        else:
            candidates = self.fake.orders
        found = []
        for order in candidates:
            for terms in groups:
                keep = True
                for term in terms:
                    if term.field == "email":
                        keep = keep and (order.get("email") or "").lower() == term.value.lower()
                    elif term.field == "created_at":
                        keep = keep and _compare(
                            _when(order["created_at"]), term.op, _when(term.value)
                        )
                if keep:
                    found.append(order)
                    break
        if args.get("sortKey") == "CREATED_AT":
            found.sort(key=lambda o: _when(o["created_at"]), reverse=bool(args.get("reverse")))
        nodes = [
            {
                "id": _GID.format("Order", o["id"]),
                "name": o["name"],
                "email": o.get("email"),
                "createdAt": o["created_at"],
                "totalPriceSet": self.fake._money(o["total_price"], o["currency"]),
            }
            for o in found[:first]
        ]
        return {"nodes": nodes, "pageInfo": _page_info(len(found) > first, None)}

    def nodes(self, info: GraphQLResolveInfo[Any], ids: list[str]) -> list[Any]:
        _check_input_sizes({"ids": ids})
        found = [self.fake.customer_node(gid) for gid in ids]
        if any(node is not None for node in found):
            self._require("read_customers", "nodes", "`read_customers` access scope.")
        return found

    def shop(self, info: GraphQLResolveInfo[Any]) -> dict[str, Any]:
        return {
            "name": self.fake.shop_name,
            "email": f"owner@{self.fake.shop}",
            "myshopifyDomain": self.fake.shop,
            "ianaTimezone": self.fake.timezone,
            "currencyCode": self.fake.currency,
        }

    def currentAppInstallation(self, info: GraphQLResolveInfo[Any]) -> dict[str, Any]:
        return {
            "accessScopes": [
                {"handle": s, "description": s.replace("_", " ")} for s in sorted(self.fake.scopes)
            ]
        }

    def discountCodeBasicCreate(
        self,
        info: GraphQLResolveInfo[Any],
        basicCodeDiscount: dict[str, Any],
    ) -> dict[str, Any]:
        self._require("write_discounts", "discountCodeBasicCreate")
        return self.fake.create_discount(basicCodeDiscount)

    def discountCodeFreeShippingCreate(
        self,
        info: GraphQLResolveInfo[Any],
        freeShippingCodeDiscount: dict[str, Any],
    ) -> dict[str, Any]:
        self._require("write_discounts", "discountCodeFreeShippingCreate")
        return self.fake.create_discount(
            freeShippingCodeDiscount, argument="freeShippingCodeDiscount"
        )


_MAX_INPUT = 250
"""Shopify's cap on the items of any input array."""


def _check_input_sizes(values: Mapping[str, Any]) -> None:
    for value in values.values():
        if isinstance(value, list) and len(value) > _MAX_INPUT:
            raise GraphQLError(
                f"The input array size of {len(value)} is greater than the maximum allowed "
                f"of {_MAX_INPUT}.",
                extensions={"code": "MAX_INPUT_SIZE_EXCEEDED"},
            )


def _denied(fake: FakeShopify, field: str, scope: str) -> Callable[..., None]:
    def resolve(info: GraphQLResolveInfo[Any], **_: Any) -> None:
        raise fake.access_denied(field, scope)

    return resolve


def _denied_customer(fake: FakeShopify) -> Callable[[GraphQLResolveInfo[Any]], None]:
    def resolve(info: GraphQLResolveInfo[Any]) -> None:
        raise fake.access_denied("customer", "`read_customers` access scope.")

    return resolve


class _Handler(BaseHTTPRequestHandler):
    shop: FakeShopify
    protocol_version = "HTTP/1.1"
    # headers and body leave in one write, without waiting on delayed ACKs
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    _PATH = re.compile(r"^/admin/api/(\d{4}-\d{2}|unstable)/(graphql|checkouts)\.json$")

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)
        with self.shop._lock:
            self.shop.requests.append((self.command, self.path.split("?")[0], status))

    def _gate(self) -> re.Match[str] | None:
        """Injected failures, routing and the token check; None when answered here."""
        length = int(self.headers.get("Content-Length") or 0)
        self._body = self.rfile.read(length) if length else b""
        with self.shop._lock:
            failure = self.shop._failures.pop(0) if self.shop._failures else None
        if failure is not None:
            self.shop.count("injected")
            self._send(failure[0], {"errors": "Injected failure"}, failure[1])
            return None
        match = self._PATH.match(urlsplit(self.path).path)
        if match is None:
            self._send(404, {"errors": "Not Found"})
            return None
        if self.headers.get("X-Shopify-Access-Token") != self.shop.token:
            self.shop.count("unauthorized")
            self._send(401, {"errors": _UNAUTHORIZED})
            return None
        return match

    def do_POST(self) -> None:
        match = self._gate()
        if match is None:
            return
        if match.group(2) != "graphql":
            self._send(404, {"errors": "Not Found"})
            return
        try:
            body = json.loads(self._body or b"{}")
        except ValueError:
            self._send(400, {"errors": {"query": "Required parameter missing or invalid"}})
            return
        self.shop.count("graphql")
        try:
            status, answer = self.shop.graphql(
                match.group(1), body if isinstance(body, dict) else {}
            )
        except Exception as err:  # a bug in the fake must show, not hang the client
            status, answer = 500, {"errors": f"Internal error in FakeShopify: {err!r}"}
        self._send(status, answer)

    def do_GET(self) -> None:
        match = self._gate()
        if match is None:
            return
        if match.group(2) != "checkouts":
            self._send(406, {"errors": "Not Acceptable"})
            return
        if "read_orders" not in self.shop.scopes:
            self._send(
                403,
                {"errors": "[API] This action requires merchant approval for read_orders scope."},
            )
            return
        wait = self.shop._rest_take()
        if wait is not None:
            self.shop.count("rest_429")
            self._send(
                429,
                {
                    "errors": "Exceeded 2 calls per second for api client. Reduce request "
                    "rates to resume uninterrupted service."
                },
                {"Retry-After": f"{max(wait, 0.001):.3f}"},
            )
            return
        self.shop.count("rest")
        status, body, headers = self.shop.rest_checkouts(
            match.group(1), parse_qs(urlsplit(self.path).query)
        )
        with self.shop._lock:
            used = math.ceil(self.shop._rest_used)
        headers["X-Shopify-Shop-Api-Call-Limit"] = f"{used}/{self.shop.rest_bucket_size}"
        self._send(status, body, headers)
