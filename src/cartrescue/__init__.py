"""cartrescue: win back abandoned checkouts by SMS, WhatsApp and email.

The public API is what this module exports; everything else is private.
"""

from __future__ import annotations

import importlib

from ._version import __version__

TYPE_CHECKING = False  # not from typing, whose import would cost more than the rest
if TYPE_CHECKING:
    from typing import Any

    from .channels.base import Channel
    from .channels.console import ConsoleChannel
    from .clock import Clock, FrozenClock, utc_now
    from .config import Config, load_config
    from .connectors.base import (
        Connector,
        DiscountCapable,
        PurchaseLookup,
        ShopTimezone,
        WebhookCapable,
    )
    from .doctor import Problem, SelfCheck
    from .engine import Recovery, RunReport
    from .errors import (
        BadPayloadError,
        CartRescueError,
        ConfigError,
        ConnectorAuthError,
        ConnectorError,
        MessageTooLong,
        PermanentSendError,
        PluginError,
        RenderError,
        SendError,
        SendOutcomeUnknown,
        StoreError,
        TemplateError,
        TransientSendError,
    )
    from .links import LinkShortener
    from .models import (
        BadCheckout,
        ChannelKind,
        Checkout,
        Content,
        Customer,
        Discount,
        DiscountOffer,
        LineItem,
        Message,
        Purchase,
        Receipt,
        ShopInfo,
        normalize_email,
        normalize_phone,
    )
    from .policy import Decision, History, Policy, SendWindow, SoldOutItems, Step, decide
    from .render import MessageContext, Renderer, TemplateRenderer
    from .store import SQLiteStore, Stats, Store

_WHERE: dict[str, str] = {
    "BadCheckout": ".models",
    "BadPayloadError": ".errors",
    "CartRescueError": ".errors",
    "Channel": ".channels.base",
    "ChannelKind": ".models",
    "Checkout": ".models",
    "Clock": ".clock",
    "Config": ".config",
    "ConfigError": ".errors",
    "Connector": ".connectors.base",
    "ConnectorAuthError": ".errors",
    "ConnectorError": ".errors",
    "ConsoleChannel": ".channels.console",
    "Content": ".models",
    "Customer": ".models",
    "Decision": ".policy",
    "Discount": ".models",
    "DiscountCapable": ".connectors.base",
    "DiscountOffer": ".models",
    "FrozenClock": ".clock",
    "History": ".policy",
    "LineItem": ".models",
    "LinkShortener": ".links",
    "Message": ".models",
    "MessageContext": ".render",
    "MessageTooLong": ".errors",
    "PermanentSendError": ".errors",
    "PluginError": ".errors",
    "Policy": ".policy",
    "Problem": ".doctor",
    "Purchase": ".models",
    "PurchaseLookup": ".connectors.base",
    "Receipt": ".models",
    "Recovery": ".engine",
    "RenderError": ".errors",
    "Renderer": ".render",
    "RunReport": ".engine",
    "SQLiteStore": ".store",
    "SelfCheck": ".doctor",
    "SendError": ".errors",
    "SendOutcomeUnknown": ".errors",
    "SendWindow": ".policy",
    "SoldOutItems": ".policy",
    "ShopInfo": ".models",
    "ShopTimezone": ".connectors.base",
    "Stats": ".store",
    "Step": ".policy",
    "Store": ".store",
    "StoreError": ".errors",
    "TemplateError": ".errors",
    "TemplateRenderer": ".render",
    "TransientSendError": ".errors",
    "WebhookCapable": ".connectors.base",
    "decide": ".policy",
    "load_config": ".config",
    "normalize_email": ".models",
    "normalize_phone": ".models",
    "utc_now": ".clock",
}
"""Where each public name lives. A name is imported on first use (PEP 562), so
``import cartrescue`` does not load Jinja2, Babel, pydantic, requests or the providers."""


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "BadCheckout",
    "BadPayloadError",
    "CartRescueError",
    "Channel",
    "ChannelKind",
    "Checkout",
    "Clock",
    "Config",
    "ConfigError",
    "Connector",
    "ConnectorAuthError",
    "ConnectorError",
    "ConsoleChannel",
    "Content",
    "Customer",
    "Decision",
    "Discount",
    "DiscountCapable",
    "DiscountOffer",
    "FrozenClock",
    "History",
    "LineItem",
    "LinkShortener",
    "Message",
    "MessageContext",
    "MessageTooLong",
    "PermanentSendError",
    "PluginError",
    "Policy",
    "Problem",
    "Purchase",
    "PurchaseLookup",
    "Receipt",
    "Recovery",
    "RenderError",
    "Renderer",
    "RunReport",
    "SQLiteStore",
    "SelfCheck",
    "SendError",
    "SendOutcomeUnknown",
    "SendWindow",
    "ShopInfo",
    "ShopTimezone",
    "SoldOutItems",
    "Stats",
    "Step",
    "Store",
    "StoreError",
    "TemplateError",
    "TemplateRenderer",
    "TransientSendError",
    "WebhookCapable",
    "__version__",
    "decide",
    "load_config",
    "normalize_email",
    "normalize_phone",
    "utc_now",
]
