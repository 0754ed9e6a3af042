"""The GraphQL documents the Shopify connector sends, and what they cost.

Shopify prices a query before running it (shopify.dev, "GraphQL Admin API rate limits"):
a scalar or enum costs 0, an object 1, a connection 2 plus ``first`` times the cost of one
node, a mutation 10; a query whose *requested* cost exceeds 1,000 points is refused with
``MAX_COST_EXCEEDED``. The checkout node below asks for ``lineItems(first: N)``, so one
checkout costs ``NODE_BASE_COST + 3 * N`` and the page size follows from that, never from the
largest ``first`` allowed.

Fields that depend on the API version:

- ``Customer.defaultEmailAddress`` / ``defaultPhoneNumber`` exist from 2025-04 (changelog
  "Adding defaultEmailAddress field to Customer"); older versions read ``email``, ``phone``,
  ``emailMarketingConsent`` and ``smsMarketingConsent``, deprecated since.
- ``DiscountCodeBasicInput.context`` replaces ``customerSelection`` from 2025-10 (changelog
  "Introducing the new context field to specify discount eligibility").
"""

from __future__ import annotations

__all__ = [
    "CHECK_QUERY",
    "CONNECTION_COST",
    "DISCOUNT_MUTATION",
    "FREE_SHIPPING_MUTATION",
    "HISTORY_CHUNK",
    "HISTORY_QUERY",
    "MAX_QUERY_COST",
    "NODE_BASE_COST",
    "PURCHASE_QUERY",
    "SHOP_QUERY",
    "checkouts_query",
    "has_default_contact_fields",
    "has_discount_context",
    "history_cost",
    "node_cost",
]

MAX_QUERY_COST = 1000
"""Shopify's cap on the requested cost of one query, whatever the plan."""
CONNECTION_COST = 2
NODE_BASE_COST = 10
"""Objects in one checkout node apart from its line items: the checkout, ``totalPriceSet``
and its ``presentmentMoney``, both addresses, the customer and its two contact objects,
plus the ``lineItems`` connection's own 2."""

_MONEY = "presentmentMoney { amount currencyCode }"

_CUSTOMER_2025_04 = """
        id
        firstName
        lastName
        locale
        numberOfOrders
        defaultEmailAddress { emailAddress marketingState }
        defaultPhoneNumber { phoneNumber marketingState }"""

_CUSTOMER_LEGACY = """
        id
        firstName
        lastName
        locale
        numberOfOrders
        email
        phone
        emailMarketingConsent { marketingState }
        smsMarketingConsent { marketingState }"""


def _version_at_least(version: str, floor: str) -> bool:
    return version == "unstable" or version >= floor


def has_default_contact_fields(version: str) -> bool:
    """Whether ``Customer.defaultEmailAddress``/``defaultPhoneNumber`` exist in ``version``."""
    return _version_at_least(version, "2025-04")


def has_discount_context(version: str) -> bool:
    """Whether ``DiscountCodeBasicInput.context`` exists in ``version``."""
    return _version_at_least(version, "2025-10")


def node_cost(line_items: int, *, stock: bool = False) -> int:
    """Requested cost of one checkout node of :func:`checkouts_query` (each line's
    ``variant`` object adds 1 with ``stock``)."""
    return NODE_BASE_COST + (4 if stock else 3) * line_items


def checkouts_query(version: str, line_items: int, *, stock: bool = False) -> str:
    """The ``abandonedCheckouts`` page query for ``version``, with ``line_items`` per cart
    (and, with ``stock``, whether each line's variant can be bought)."""
    customer = _CUSTOMER_2025_04 if has_default_contact_fields(version) else _CUSTOMER_LEGACY
    variant = "\n          variant { availableForSale }" if stock else ""
    return f"""query AbandonedCheckouts($first: Int!, $after: String, $query: String) {{
  abandonedCheckouts(first: $first, after: $after, query: $query) {{
    nodes {{
      id
      name
      createdAt
      updatedAt
      completedAt
      abandonedCheckoutUrl
      totalPriceSet {{ {_MONEY} }}
      billingAddress {{ countryCodeV2 }}
      shippingAddress {{ countryCodeV2 }}
      customer {{{customer}
      }}
      lineItems(first: {line_items}) {{
        nodes {{
          title
          variantTitle
          quantity
          sku
          originalUnitPriceSet {{ {_MONEY} }}{variant}
        }}
      }}
    }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""


SHOP_QUERY = """query Shop {
  shop { name ianaTimezone currencyCode }
}"""

CHECK_QUERY = """query Check {
  shop { name ianaTimezone currencyCode }
  currentAppInstallation { accessScopes { handle } }
}"""

PURCHASE_QUERY = f"""query Purchase(
  $checkout: String!, $abandonedCheckoutId: ID!, $orders: String!, $byEmail: Boolean!
) {{
  abandonedCheckouts(first: 1, query: $checkout) {{
    nodes {{ id completedAt totalPriceSet {{ {_MONEY} }} }}
  }}
  abandonmentByAbandonedCheckoutId(abandonedCheckoutId: $abandonedCheckoutId) {{
    customerHasNoOrderSinceAbandonment
  }}
  orders(first: 1, sortKey: CREATED_AT, query: $orders) @include(if: $byEmail) {{
    nodes {{ id name createdAt totalPriceSet {{ {_MONEY} }} }}
  }}
}}"""

DISCOUNT_MUTATION = """mutation DiscountCreate($input: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $input) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}"""

FREE_SHIPPING_MUTATION = """mutation FreeShippingCreate($input: DiscountCodeFreeShippingInput!) {
  discountCodeFreeShippingCreate(freeShippingCodeDiscount: $input) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}"""

PURCHASES_CHUNK = 50
"""Checkouts asked about in one bulk purchase query."""

PURCHASES_ORDERS = 100
"""Orders one bulk purchase query reads (the earliest, for all its buyers together)."""


def purchases_query(count: int) -> str:
    """One query asking what :data:`PURCHASE_QUERY` asks, for ``count`` checkouts at once:
    ``abandonedCheckouts`` by ``id:… OR id:…`` for their ``completedAt``; the orders since
    each abandonment by each buyer's email, in one search (``(email:… AND created_at:>…) OR
    …``, oldest first); and per checkout (alias ``a{i}``) its abandonment. Every value is a
    variable, so the text depends only on ``count``."""
    declared = ["$ids: String!", "$orders: String!", "$byEmail: Boolean!"]
    declared += [f"$a{i}: ID!" for i in range(count)]
    fields = [
        f"checkouts: abandonedCheckouts(first: {count}, query: $ids) {{\n"
        f"    nodes {{ id completedAt totalPriceSet {{ {_MONEY} }} }}\n  }}",
        f"orders(first: {PURCHASES_ORDERS}, sortKey: CREATED_AT, query: $orders)"
        f" @include(if: $byEmail) {{\n"
        f"    nodes {{ id name email createdAt totalPriceSet {{ {_MONEY} }} }}\n"
        f"    pageInfo {{ hasNextPage }}\n  }}",
    ]
    fields += [
        f"a{i}: abandonmentByAbandonedCheckoutId(abandonedCheckoutId: $a{i}) {{\n"
        f"    customerHasNoOrderSinceAbandonment\n  }}"
        for i in range(count)
    ]
    head = "query Purchases(\n  " + ",\n  ".join(declared) + "\n)"
    return head + " {\n  " + "\n  ".join(fields) + "\n}"


def purchases_cost(count: int) -> int:
    """The requested cost of :func:`purchases_query`: 2 + 3 a checkout node, 2 + 3 an order
    node, 1 an abandonment (504 for 50 checkouts, under ``MAX_QUERY_COST``)."""
    node = 1 + 2  # the node, totalPriceSet, presentmentMoney
    return (CONNECTION_COST + count * node) + (CONNECTION_COST + PURCHASES_ORDERS * node) + count


HISTORY_CHUNK = 100
"""Customers asked about in one history query (Shopify takes at most 250 ids)."""

HISTORY_QUERY = """query Histories($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on Customer {
      id
      numberOfOrders
      amountSpent { amount currencyCode }
      lastOrder { createdAt }
    }
  }
}"""
"""Customers by id: paid orders (``numberOfOrders``), lifetime ``amountSpent`` and the
``lastOrder``'s creation time (``read_customers``; ``lastOrder`` also ``read_orders``)."""


def history_cost(count: int) -> int:
    """The requested cost of :data:`HISTORY_QUERY` for ``count`` ids: ``nodes`` returns an
    interface, priced at its most expensive selection (a customer: itself, ``amountSpent``
    and ``lastOrder``, 3), once per id."""
    return 3 * count
