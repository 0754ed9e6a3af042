"""The WhatsApp Cloud API webhook, beside the WhatsApp channel.

``GET /whatsapp`` answers the ``hub.challenge`` verification handshake when
``hub.verify_token`` matches. ``POST /whatsapp`` takes notifications checked with
``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed with the app secret>``.
Every ``statuses`` item (``sent``, ``delivered``, ``read``, ``failed``) is an engagement
signal on the message its ``id`` names (:func:`~cartrescue.inbound.record_signal`). Failed
statuses are also recorded (131050 "user stopped marketing messages" is an opt-out; a failed
message is marked failed in the outbox); STOP replies, the template's "Stop promotions" button
and ``user_preferences`` stop/resume change the store's opt-outs. For
:class:`~cartrescue.conversations.Conversations`: the "Not interested" quick reply ends the
checkout's sequence, "I have a question" and other text are replies (recorded, paused,
forwarded), an interactive list reply or a digit "1"–"5" is why the buyer left. A message
id (or a status of a message id) taken before — Meta retries a notification until it is
answered 200 — changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from ..clock import Clock, utc_now
from ..conversations import NOT_INTERESTED, QUESTION, Conversations, Reply, quick_reply, reason_of
from ..inbound import (
    FORBIDDEN,
    InboundRequest,
    InboundResponse,
    keyword,
    record_opt,
    record_signal,
    secret_matches,
)
from ..logmask import mask_contact, mask_text
from ..models import OutboxKey, normalize_phone
from ..store.base import Signal, Store
from .whatsapp import whatsapp_error

__all__ = ["WhatsAppInbound", "whatsapp_signature"]

log = logging.getLogger("cartrescue.web")


def whatsapp_signature(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` Meta sends with ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class WhatsAppInbound:
    """The :class:`~cartrescue.inbound.InboundHandler` for WhatsApp Cloud API webhooks."""

    route = "/whatsapp"
    methods = ("GET", "POST")

    def __init__(
        self,
        store: Store,
        app_secret: str,
        verify_token: str | None = None,
        *,
        clock: Clock = utc_now,
        conversations: Conversations | None = None,
    ) -> None:
        self.store = store
        self.app_secret = app_secret
        self.verify_token = verify_token
        self.clock = clock
        self.conversations = conversations

    def handle(self, request: InboundRequest) -> InboundResponse:
        if request.method == "GET":
            return self._verify(request)
        expected = whatsapp_signature(self.app_secret, request.body)
        if not secret_matches(expected, request.headers.get("X-Hub-Signature-256", "")):
            log.warning("web: WhatsApp notification with an invalid signature refused")
            return FORBIDDEN
        try:
            payload = json.loads(request.body)
        except (ValueError, RecursionError):
            return InboundResponse.text(400, "not JSON\n")
        for value in _changes(payload):
            for kind, items in (
                ("statuses", self._status),
                ("messages", self._message),
                ("user_preferences", self._preference),
            ):
                for item in _list(value.get(kind)):
                    try:
                        items(item)
                    except (
                        KeyError,
                        TypeError,
                        ValueError,
                        AttributeError,
                        ArithmeticError,
                    ) as err:
                        log.warning("web: WhatsApp %s item skipped: %s", kind, mask_text(str(err)))
        return InboundResponse.text(200, "ok\n")

    def _verify(self, request: InboundRequest) -> InboundResponse:
        query = dict(parse_qsl(request.query))
        token = query.get("hub.verify_token", "")
        if (
            query.get("hub.mode") == "subscribe"
            and self.verify_token
            and secret_matches(self.verify_token, token)
        ):
            return InboundResponse.text(200, query.get("hub.challenge", ""))
        return InboundResponse.text(403, "verification failed\n")

    def _contact(self, wa_id: object) -> str | None:
        try:
            return normalize_phone("+" + str(wa_id).lstrip("+"))
        except ValueError:
            log.warning("web: WhatsApp id %s is not a phone number", mask_contact(str(wa_id)))
            return None

    def _opt(self, contact: str, word: str) -> None:
        record_opt(self.store, self.clock, contact, "whatsapp", word, "whatsapp")

    def _first(self, delivery: object) -> bool:
        """Whether this is the first time the id ``delivery`` is seen (no id: yes)."""
        if not isinstance(delivery, str) or not delivery:
            return True
        return self.store.record_delivery("whatsapp", delivery[:300], self.clock())

    def _status(self, status: Mapping[str, Any]) -> None:
        try:
            signal = Signal(str(status.get("status")))
        except ValueError:
            signal = None  # "deleted", "warning" and the like
        record_signal(self.store, self.clock, "whatsapp", status.get("id"), signal)
        if signal is not Signal.FAILED:
            return
        if not self._first(f"{status.get('id')}:failed" if status.get("id") else None):
            return
        key = status.get("biz_opaque_callback_data")
        checkout_id, step = _key_parts(key)
        for error in status.get("errors") or ():
            code = int(error["code"])
            _, flags = whatsapp_error(code)
            detail = mask_text(f"{code} {error.get('title') or error.get('message') or ''}")
            self.store.record_event(
                "whatsapp_failed",
                self.clock(),
                checkout_id=checkout_id,
                step=step,
                channel="whatsapp",
                detail=detail,
            )
            if checkout_id is not None and step is not None and str(key).endswith(":whatsapp"):
                # Accepted, then not delivered: the outbox says so, which frees the step for
                # another channel on the next pass (or skips it, for a per-user cap).
                self.store.finish(str(key), "failed", self.clock(), error=f"WhatsApp {detail}")
                if flags.get("skip_step"):
                    self.store.skip_step(checkout_id, step, f"WhatsApp {detail}", self.clock())
            if flags.get("opted_out"):
                contact = self._contact(status.get("recipient_id"))
                if contact:
                    self._opt(contact, "stop")

    def _message(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        button = reason = None
        if kind == "text":
            text = message["text"]["body"]
        elif kind == "button":  # a template's quick-reply button
            text = message["button"].get("text") or message["button"].get("payload", "")
            button = quick_reply(str(message["button"].get("payload") or text))
        elif kind == "interactive":
            interactive = message["interactive"]
            choice = interactive.get("button_reply") or interactive.get("list_reply") or {}
            text = choice.get("title", "")
            button = quick_reply(str(choice.get("id") or text))
            if interactive.get("list_reply"):
                reason = reason_of(str(choice.get("id", "")))
        else:
            return
        if not self._first(message.get("id")):
            return
        word = keyword(str(text))
        contact = self._contact(message["from"])
        if contact is None:
            return
        if word is not None:
            self._opt(contact, word)
            return
        text = str(text).strip()
        if self.conversations is None or not text:
            return
        message_id = message.get("id")
        reply = Reply(
            "whatsapp",
            "whatsapp",
            contact,
            text,
            message_id[:300] if isinstance(message_id, str) else None,
            _sent_at(message.get("timestamp")),
        )
        if button == NOT_INTERESTED:
            self.conversations.not_interested(reply)
        elif reason is not None or (kind == "text" and (reason := reason_of(text))):
            self.conversations.reason(reply, reason)
        elif kind == "text" or button == QUESTION:
            self.conversations.reply(reply)

    def _preference(self, preference: Mapping[str, Any]) -> None:
        if preference.get("category") != "marketing_messages":
            return
        value = preference.get("value")
        if value in ("stop", "resume"):
            contact = self._contact(preference["wa_id"])
            if contact:
                self._opt(contact, "stop" if value == "stop" else "start")


def _changes(payload: object) -> Iterable[Mapping[str, Any]]:
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        return
    for entry in _list(payload.get("entry")):
        for change in _list(entry.get("changes") if isinstance(entry, dict) else None):
            value = change.get("value") if isinstance(change, dict) else None
            if isinstance(value, dict):
                yield value


def _sent_at(timestamp: object) -> datetime | None:
    """When the buyer sent a message: its ``timestamp``, Unix seconds as a string."""
    try:
        return datetime.fromtimestamp(int(str(timestamp)), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _key_parts(key: object) -> tuple[str | None, int | None]:
    """``(checkout id, step)`` from an :class:`~cartrescue.models.OutboxKey`'s text."""
    try:
        parsed = OutboxKey.parse(key) if isinstance(key, str) else None
    except ValueError:
        parsed = None
    return (parsed.checkout_id, parsed.step) if parsed else (None, None)
