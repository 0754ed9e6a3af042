"""Shop connectors: the Connector protocol and the built-in platforms."""

from .base import (
    BulkPurchaseLookup,
    Connector,
    DiscountCapable,
    PurchaseCheck,
    PurchaseLookup,
    ShopTimezone,
    WebhookCapable,
    find_purchases,
)

__all__ = [
    "BulkPurchaseLookup",
    "Connector",
    "DiscountCapable",
    "PurchaseCheck",
    "PurchaseLookup",
    "ShopTimezone",
    "WebhookCapable",
    "find_purchases",
]
