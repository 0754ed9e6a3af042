"""A channel that POSTs each message as signed JSON to a URL of yours, for integrations such
as automation platforms or an in-house sender.

The body is the message as JSON (see :func:`message_payload`). Headers:
``X-Cartrescue-Timestamp`` (Unix seconds), ``X-Cartrescue-Signature: sha256=<hex>`` — the
HMAC-SHA256, keyed with the shared secret, of ``"<timestamp>." + body`` — and
``Idempotency-Key`` (the message key). The receiver checks the signature with
:func:`verify_signature`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Unpack

import requests

from ..errors import ConfigError
from ..models import ChannelKind, Message, Receipt
from ..settings.base import PluginSettings
from ..settings.providers import WebhookSettings
from .base import KINDS, HttpChannel, HttpOptions, HttpRequest, require

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookChannel",
    "message_payload",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Cartrescue-Signature"
TIMESTAMP_HEADER = "X-Cartrescue-Timestamp"


def message_payload(message: Message) -> dict[str, Any]:
    """The JSON document a webhook receives for ``message``."""
    content = message.content
    return {
        "key": message.key,
        "channel": message.channel,
        "to": message.to,
        "checkout_id": message.checkout_id,
        "step": message.step,
        "locale": message.locale,
        "content": {
            "text": content.text,
            "subject": content.subject,
            "html": content.html,
            "template": content.template,
            "language": content.language,
            "parameters": list(content.parameters),
            "button_parameter": content.button_parameter,
            "header_image": content.header_image,
        },
        "unsubscribe_url": message.unsubscribe_url,
        "metadata": dict(message.metadata),
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Cartrescue-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = 300.0,
    now: Callable[[], float] = time.time,
) -> bool:
    """Whether ``body`` with these ``headers`` was signed with ``secret`` within
    ``tolerance`` seconds of ``now`` (to refuse replays). Header names are matched in any
    case; the comparison is constant-time."""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    try:
        age = abs(now() - float(timestamp))
    except ValueError:
        return False
    if age > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookChannel(HttpChannel):
    """POSTs each message, as signed JSON, to ``url``.

    Config (``[channels.sms] type = "webhook"``, or under ``whatsapp`` / ``email``): ``url``,
    ``secret_env`` (at least 16 characters, shared with the receiver), optional
    ``idempotent = true`` when the receiver deduplicates on ``Idempotency-Key`` (then a
    timeout or 5xx is retried instead of being recorded as an unknown outcome), plus the
    shared ``rate_limit``, ``concurrency``, ``timeout``, ``attempts``.

    A 2xx answer is success (a JSON ``{"id": ...}`` becomes the receipt's provider id); 429
    and 408 are retried; 401/403 are credential problems; other 4xx are permanent.
    """

    settings_model: ClassVar[type[PluginSettings]] = WebhookSettings

    provider: ClassVar[str] = "webhook"
    kinds: ClassVar[tuple[ChannelKind, ...]] = KINDS
    credentials_hint: ClassVar[str] = "check that both sides use the same secret"

    def __init__(
        self,
        kind: ChannelKind,
        *,
        url: str,
        secret: str,
        idempotent: bool = False,
        now: Callable[[], float] = time.time,
        **options: Unpack[HttpOptions],
    ) -> None:
        self.url = require(url, "url")
        if not self.url.startswith(("https://", "http://")):
            raise ConfigError("expected an http(s) URL", key="url")
        self._secret = require(secret, "secret")
        if len(self._secret) < 16:
            raise ConfigError("use at least 16 random characters", key="secret")
        if not isinstance(idempotent, bool):
            raise ConfigError("expected true or false", key="idempotent")
        self.idempotent = idempotent
        self._now = now
        options.setdefault("base_url", self.url)
        super().__init__(kind, secrets=(secret,), **options)

    def build_request(self, message: Message) -> HttpRequest:
        body = json.dumps(
            message_payload(message), ensure_ascii=False, separators=(",", ":")
        ).encode()
        timestamp = str(int(self._now()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        return HttpRequest(self.url, options={"data": body, "headers": headers})

    def parse_response(self, message: Message, response: requests.Response) -> Receipt:
        body = self.json_body(response)
        ident = body.get("id") if isinstance(body, dict) else None
        return Receipt(provider=self.provider, provider_id=None if ident is None else str(ident))
