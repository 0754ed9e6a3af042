"""cartrescue: win back abandoned checkouts by SMS, WhatsApp and email.

The public API is what this module exports; everything else is private.
"""

from __future__ import annotations

from ._version import __version__
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
from .policy import Decision, History, Policy, SendWindow, Step, decide
from .render import MessageContext, Renderer, TemplateRenderer
from .store import SQLiteStore, Stats, Store

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
