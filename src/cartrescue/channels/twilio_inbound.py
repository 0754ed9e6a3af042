"""Twilio's incoming-message webhook, beside the Twilio channel.

``POST /twilio/sms``: the ``X-Twilio-Signature`` header is checked (HMAC-SHA1, keyed with the
auth token, over the full public URL followed by every POST parameter name and value sorted by
name, base64 — twilio.com/docs/usage/security). A body of one STOP-family keyword opts the
sender out of SMS, a START-family keyword opts them back in; a digit "1"–"5" answers why the
buyer left (:data:`~cartrescue.conversations.REASONS`); any other text is a reply
handed to :class:`~cartrescue.conversations.Conversations` (recorded, the checkout paused,
forwarded to the shop). The answer is empty TwiML (Twilio sends its own confirmation). A
message whose ``MessageSid`` was taken before (Twilio retries) changes nothing.

``POST /twilio/status``: the status callbacks of the messages sent with ``status_callback``
set to this URL, signed the same way. ``MessageStatus`` ``sent``, ``delivered``, ``read``
(WhatsApp), ``undelivered`` and ``failed`` are recorded as engagement signals on the message
``MessageSid`` names (:func:`~cartrescue.inbound.record_signal`); ``queued``, ``sending``
and the other interim statuses are not signals.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Iterable
from urllib.parse import parse_qsl

from ..clock import Clock, utc_now
from ..conversations import Conversations, take_sms
from ..inbound import (
    FORBIDDEN,
    InboundRequest,
    InboundResponse,
    record_signal,
    secret_matches,
)
from ..models import normalize_phone
from ..store.base import Signal, Store

__all__ = ["TWILIO_SIGNALS", "TwilioInbound", "TwilioStatus", "twilio_signature"]

log = logging.getLogger("cartrescue.web")

TWIML_EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
TWILIO_SIGNALS = {
    "sent": Signal.SENT,
    "delivered": Signal.DELIVERED,
    "read": Signal.READ,
    "undelivered": Signal.FAILED,
    "failed": Signal.FAILED,
}
"""``MessageStatus`` → engagement signal."""


def _verified(auth_token: str, request: InboundRequest) -> dict[str, str] | InboundResponse:
    """The form Twilio posted, or the answer refusing it (not form data, bad signature)."""
    try:
        params = parse_qsl(
            request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False
        )
    except UnicodeDecodeError:
        return InboundResponse.text(400, "not form data\n")
    expected = twilio_signature(auth_token, request.url, params)
    if not secret_matches(expected, request.headers.get("X-Twilio-Signature", "")):
        log.warning("web: Twilio request with an invalid signature refused")
        return FORBIDDEN
    return dict(params)


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The ``X-Twilio-Signature`` Twilio computes for a POST of ``params`` to ``url``."""
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    data = url + "".join(
        name + value for name in sorted(grouped) for value in sorted(grouped[name])
    )
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class TwilioInbound:
    """The :class:`~cartrescue.inbound.InboundHandler` for Twilio's incoming messages."""

    route = "/twilio/sms"
    methods = ("POST",)

    def __init__(
        self,
        store: Store,
        auth_token: str,
        *,
        clock: Clock = utc_now,
        conversations: Conversations | None = None,
    ) -> None:
        self.store = store
        self.auth_token = auth_token
        self.clock = clock
        self.conversations = conversations

    def handle(self, request: InboundRequest) -> InboundResponse:
        fields = _verified(self.auth_token, request)
        if isinstance(fields, InboundResponse):
            return fields
        sid = fields.get("MessageSid") or fields.get("SmsSid")
        if sid and not self.store.record_delivery("twilio", sid[:200], self.clock()):
            log.info("web: Twilio message delivered again, ignored")
            return InboundResponse(200, TWIML_EMPTY, "text/xml; charset=utf-8")
        try:
            phone = normalize_phone(fields.get("From"))
        except ValueError:
            phone = None
        text = fields.get("Body", "")
        if not take_sms(self.store, self.clock, self.conversations, "twilio", phone, text, sid):
            return InboundResponse.text(400, "From is not a phone number\n")
        return InboundResponse(200, TWIML_EMPTY, "text/xml; charset=utf-8")


class TwilioStatus:
    """The :class:`~cartrescue.inbound.InboundHandler` for Twilio's status callbacks."""

    route = "/twilio/status"
    methods = ("POST",)

    def __init__(self, store: Store, auth_token: str, *, clock: Clock = utc_now) -> None:
        self.store = store
        self.auth_token = auth_token
        self.clock = clock

    def handle(self, request: InboundRequest) -> InboundResponse:
        fields = _verified(self.auth_token, request)
        if isinstance(fields, InboundResponse):
            return fields
        status = fields.get("MessageStatus") or fields.get("SmsStatus") or ""
        sid = fields.get("MessageSid") or fields.get("SmsSid")
        record_signal(self.store, self.clock, "twilio", sid, TWILIO_SIGNALS.get(status))
        return InboundResponse(200, TWIML_EMPTY, "text/xml; charset=utf-8")
