"""Shop connectors: the Connector protocol and the built-in platforms."""

from .base import (
    Connector,
    DiscountCapable,
    PurchaseLookup,
    ShopTimezone,
    WebhookCapable,
)

__all__ = ["Connector", "DiscountCapable", "PurchaseLookup", "ShopTimezone", "WebhookCapable"]
