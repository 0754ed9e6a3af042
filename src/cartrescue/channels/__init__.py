"""Channels: the Channel protocol, the HttpChannel base and the built-in providers.

A provider's module is imported when its name is first used here (PEP 562), so reading one
channel does not load every provider.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not from typing, which this module otherwise does not need
if TYPE_CHECKING:
    from typing import Any

    from ..errors import RetryableSendError
    from .base import BatchChannel, Channel, HttpChannel, HttpRequest
    from .console import ConsoleChannel
    from .email import SMTPEmail
    from .linkmobility import LinkMobilitySMS
    from .twilio import TwilioSMS
    from .vonage import VonageSMS
    from .webhook import WebhookChannel
    from .whatsapp import WhatsAppCloud

_WHERE: dict[str, str] = {
    "BatchChannel": ".base",
    "Channel": ".base",
    "ConsoleChannel": ".console",
    "HttpChannel": ".base",
    "HttpRequest": ".base",
    "LinkMobilitySMS": ".linkmobility",
    "RetryableSendError": "..errors",
    "SMTPEmail": ".email",
    "TwilioSMS": ".twilio",
    "VonageSMS": ".vonage",
    "WebhookChannel": ".webhook",
    "WhatsAppCloud": ".whatsapp",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "BatchChannel",
    "Channel",
    "ConsoleChannel",
    "HttpChannel",
    "HttpRequest",
    "LinkMobilitySMS",
    "RetryableSendError",
    "SMTPEmail",
    "TwilioSMS",
    "VonageSMS",
    "WebhookChannel",
    "WhatsAppCloud",
]
