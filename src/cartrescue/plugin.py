"""The one module a connector or channel from another package imports.

Everything an integrator builds on is here: the protocols and their optional capabilities,
the HTTP base classes with their options, the error hierarchy, the data models, and the
self-check types ``doctor`` prints::

    from cartrescue.plugin import HttpChannel, HttpRequest, Message, Receipt, PermanentSendError

A connector is any class with ``name`` and ``abandoned_checkouts(since)`` (see
:class:`Connector`); a channel is any class with ``kind``, ``send(message)`` and ``close()``
(see :class:`Channel`). The base classes are conveniences, not requirements. Register the class
under the entry-point group ``cartrescue.connectors`` or ``cartrescue.channels``.

Names not exported here are private to cartrescue and may change in any release.
"""

from __future__ import annotations

from .channels.base import (
    BatchChannel,
    Channel,
    HttpChannel,
    HttpOptions,
    HttpRequest,
    SendResult,
    is_gsm7,
)
from .clock import Clock, utc_now
from .connectors.base import (
    BulkPurchaseLookup,
    Connector,
    CustomerHistoryLookup,
    DiscountCapable,
    HistoryCheck,
    PurchaseCheck,
    PurchaseLookup,
    ShopTimezone,
    WebhookCapable,
    find_purchases,
)
from .doctor import Problem, SelfCheck
from .errors import (
    BadPayloadError,
    CartRescueError,
    ConfigError,
    ConnectorAuthError,
    ConnectorError,
    PermanentSendError,
    RetryableSendError,
    SendError,
    SendOutcomeUnknown,
    TransientSendError,
)
from .http import HttpClient
from .models import (
    BadCheckout,
    ChannelKind,
    Checkout,
    Content,
    Customer,
    CustomerHistory,
    Discount,
    DiscountOffer,
    LineItem,
    Message,
    Purchase,
    Receipt,
    ShopInfo,
    normalize_email,
    normalize_phone,
    parse_money,
    parse_time,
)
from .settings import Duration, HttpSettings, PluginSettings, Secret, SecretFromEnv, invalid

__all__ = [
    "BadCheckout",
    "BadPayloadError",
    "BatchChannel",
    "BulkPurchaseLookup",
    "CartRescueError",
    "Channel",
    "ChannelKind",
    "Checkout",
    "Clock",
    "ConfigError",
    "Connector",
    "ConnectorAuthError",
    "ConnectorError",
    "Content",
    "Customer",
    "CustomerHistory",
    "CustomerHistoryLookup",
    "Discount",
    "DiscountCapable",
    "DiscountOffer",
    "Duration",
    "HistoryCheck",
    "HttpChannel",
    "HttpClient",
    "HttpOptions",
    "HttpRequest",
    "HttpSettings",
    "LineItem",
    "Message",
    "PermanentSendError",
    "PluginSettings",
    "Problem",
    "Purchase",
    "PurchaseCheck",
    "PurchaseLookup",
    "Receipt",
    "RetryableSendError",
    "Secret",
    "SecretFromEnv",
    "SelfCheck",
    "SendError",
    "SendOutcomeUnknown",
    "SendResult",
    "ShopInfo",
    "ShopTimezone",
    "TransientSendError",
    "WebhookCapable",
    "find_purchases",
    "invalid",
    "is_gsm7",
    "normalize_email",
    "normalize_phone",
    "parse_money",
    "parse_time",
    "utc_now",
]
