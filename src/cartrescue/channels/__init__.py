"""Channels: the Channel protocol, the HttpChannel base and the built-in providers."""

from ..errors import RetryableSendError
from .base import BatchChannel, Channel, HttpChannel, HttpRequest
from .console import ConsoleChannel
from .email import SMTPEmail
from .linkmobility import LinkMobilitySMS
from .twilio import TwilioSMS
from .vonage import VonageSMS
from .webhook import WebhookChannel
from .whatsapp import WhatsAppCloud

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
