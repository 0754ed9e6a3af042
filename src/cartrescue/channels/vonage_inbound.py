"""Vonage's inbound-SMS webhook, beside the Vonage channel.

``GET`` or ``POST /vonage/sms`` (query string, form or JSON, as the account's webhook
setting says). Signed webhooks carry ``sig``, ``timestamp`` and ``nonce``: the signature is
over every other parameter sorted by name, each as ``&name=value`` with ``&`` and ``=`` in
values replaced by ``_``; with the default method (``md5hash``) it is the hex MD5 of that
text followed by the signature secret, with the HMAC methods (``md5``, ``sha1``, ``sha256``,
``sha512``) the hex HMAC of the text keyed with the secret
(developer.vonage.com/getting-started/concepts/signing-messages). A request whose
``timestamp`` is more than five minutes away is refused as a replay. A STOP-family keyword
opts the sender (``msisdn``) out of SMS, a START-family keyword back in, "1"–"5" answers why
they left, other text is a reply for :class:`~cartrescue.conversations.Conversations`. A
``messageId`` taken before (Vonage resends until it gets 200) changes nothing.

``GET`` or ``POST /vonage/dlr``: the SMS API's delivery receipts, signed and checked the same
way (set the account's delivery receipt webhook, or the channel's ``status_callback``, to
this URL). ``status`` ``delivered`` is an engagement signal, ``accepted`` and ``buffered``
mean sent, ``expired``, ``failed`` and ``rejected`` mean failed
(:func:`~cartrescue.inbound.record_signal`, on the message ``messageId`` names).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from datetime import timedelta
from urllib.parse import parse_qsl

from ..clock import Clock, utc_now
from ..conversations import Conversations, take_sms
from ..errors import ConfigError
from ..inbound import (
    FORBIDDEN,
    InboundRequest,
    InboundResponse,
    record_signal,
)
from ..models import normalize_phone
from ..store.base import Signal, Store

__all__ = [
    "SIGNATURE_METHODS",
    "VONAGE_SIGNALS",
    "VonageInbound",
    "VonageReceipts",
    "vonage_signature",
]

log = logging.getLogger("cartrescue.web")

SIGNATURE_METHODS = ("md5hash", "md5", "sha1", "sha256", "sha512")
"""The signature methods a Vonage account can choose (``md5hash`` is Vonage's default)."""
MAX_SKEW = timedelta(minutes=5)
VONAGE_SIGNALS = {
    "accepted": Signal.SENT,
    "buffered": Signal.SENT,
    "delivered": Signal.DELIVERED,
    "expired": Signal.FAILED,
    "failed": Signal.FAILED,
    "rejected": Signal.FAILED,
}
"""A delivery receipt's ``status`` → engagement signal (``unknown`` is none)."""


def vonage_signature(secret: str, params: Mapping[str, str], method: str = "md5hash") -> str:
    """The ``sig`` Vonage sends with ``params`` (``sig`` itself is left out), lower-case hex."""
    text = "".join(
        f"&{name}={params[name].replace('&', '_').replace('=', '_')}"
        for name in sorted(params)
        if name != "sig"
    ).encode()
    if method == "md5hash":
        return hashlib.md5(text + secret.encode(), usedforsecurity=False).hexdigest()
    if method not in SIGNATURE_METHODS:
        raise ValueError(f"unknown Vonage signature method {method!r}")
    return hmac.new(secret.encode(), text, method).hexdigest()


class VonageInbound:
    """The :class:`~cartrescue.inbound.InboundHandler` for Vonage's inbound SMS."""

    route = "/vonage/sms"
    methods = ("GET", "POST")

    def __init__(
        self,
        store: Store,
        signature_secret: str,
        *,
        method: str = "md5hash",
        clock: Clock = utc_now,
        conversations: Conversations | None = None,
    ) -> None:
        if method not in SIGNATURE_METHODS:
            raise ConfigError(
                f"expected one of {', '.join(SIGNATURE_METHODS)}, got {method!r}",
                key="web.vonage_signature_method",
            )
        self.store = store
        self.secret = signature_secret
        self.method = method
        self.clock = clock
        self.conversations = conversations

    def handle(self, request: InboundRequest) -> InboundResponse:
        params = _verified(request, self.secret, self.method, self.clock)
        if isinstance(params, InboundResponse):
            return params
        ok = InboundResponse.text(200, "ok\n")
        message_id = params.get("messageId")
        if message_id and not self.store.record_delivery("vonage", message_id[:200], self.clock()):
            log.info("web: Vonage message delivered again, ignored")
            return ok
        try:
            phone = normalize_phone("+" + params.get("msisdn", "").lstrip("+"))
        except ValueError:
            phone = None
        text = params.get("text", "")
        if not take_sms(
            self.store, self.clock, self.conversations, "vonage", phone, text, message_id
        ):
            return InboundResponse.text(400, "msisdn is not a number\n")
        return ok


class VonageReceipts(VonageInbound):
    """The :class:`~cartrescue.inbound.InboundHandler` for Vonage's SMS delivery receipts."""

    route = "/vonage/dlr"

    def handle(self, request: InboundRequest) -> InboundResponse:
        params = _verified(request, self.secret, self.method, self.clock)
        if isinstance(params, InboundResponse):
            return params
        signal = VONAGE_SIGNALS.get(params.get("status", ""))
        record_signal(self.store, self.clock, "vonage", params.get("messageId"), signal)
        return InboundResponse.text(200, "ok\n")


def _verified(
    request: InboundRequest, secret: str, method: str, clock: Clock
) -> dict[str, str] | InboundResponse:
    """The signed parameters Vonage sent, or the answer refusing them (unreadable, a bad
    signature, a timestamp more than :data:`MAX_SKEW` away)."""
    params = _params(request)
    if params is None:
        return InboundResponse.text(400, "not form data or JSON\n")
    given = params.get("sig", "")
    expected = vonage_signature(secret, params, method)
    if not given.isascii() or not hmac.compare_digest(expected, given.lower()):
        log.warning("web: Vonage request with an invalid signature refused")
        return FORBIDDEN
    try:
        sent = int(params.get("timestamp", ""))
    except ValueError:
        return FORBIDDEN
    if abs(clock().timestamp() - sent) > MAX_SKEW.total_seconds():
        log.warning("web: Vonage request with a stale timestamp refused")
        return FORBIDDEN
    return params


def _params(request: InboundRequest) -> dict[str, str] | None:
    if request.method == "GET":
        return dict(parse_qsl(request.query, keep_blank_values=True))
    body = request.body.strip()
    try:
        if body.startswith(b"{"):
            data = json.loads(body)
            if not isinstance(data, dict):
                return None
            params = {str(k): "" if v is None else str(v) for k, v in data.items()}
            "".join(f"{k}{v}" for k, v in params.items()).encode("utf-8")  # no lone surrogates
            return params
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeError, ValueError, RecursionError):
        return None
