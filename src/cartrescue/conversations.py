"""Conversations: a reply that is not a keyword is recorded on its checkout, pauses that
checkout's remaining reminders, and is forwarded to the shop; optionally the buyer gets one
short acknowledgement in their language.

The inbound handlers (:mod:`cartrescue.channels.twilio_inbound`,
:mod:`cartrescue.channels.whatsapp_inbound`) hand each verified, first-seen reply to
:meth:`Conversations.reply`. The checkout is the sender's latest open one; the reply is kept
in the store (:class:`~cartrescue.store.base.ConversationStore`), the checkout is paused for
``pause`` (``None``: until someone resumes it), and each :class:`Forwarder` gets a
:class:`Forward`: :class:`WebhookForwarder` POSTs it as JSON signed in the Standard Webhooks
style, :class:`EmailForwarder` mails it to a support address through the email channel.

With ``acknowledge`` channels, the first reply of a pause is answered once with
:data:`ACKNOWLEDGEMENTS` in the buyer's locale: by SMS, or on WhatsApp as free-form text
inside the 24-hour customer-service window the reply opened (outside it Meta takes only
templates, so none is sent). Never to a contact who opted out of the channel.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import requests

from .channels.base import Channel
from .clock import Clock, utc_now
from .errors import CartRescueError, ConfigError
from .http import HttpClient
from .inbound import fold, keyword, record_opt
from .logmask import mask_contact, mask_text
from .models import ChannelKind, Checkout, Content, Message, Receipt
from .reasons import REASONS, reason_of
from .store.base import ConversationEntry, ConversationStore, Store

__all__ = [
    "ACKNOWLEDGEMENTS",
    "DEFAULT_PAUSE",
    "NEVER",
    "NOT_INTERESTED",
    "QUESTION",
    "REASONS",
    "WHATSAPP_WINDOW",
    "Conversations",
    "EmailForwarder",
    "Forward",
    "Forwarder",
    "Reply",
    "WebhookForwarder",
    "acknowledgement",
    "quick_reply",
    "reason_of",
    "standard_webhook_signature",
    "take_sms",
]

log = logging.getLogger("cartrescue.conversations")

DEFAULT_PAUSE = timedelta(hours=72)
"""How long a reply holds the checkout's remaining reminders by default."""
NEVER = datetime.max.replace(tzinfo=UTC)
"""The end of a pause that never ends by itself."""

WHATSAPP_WINDOW = timedelta(hours=24)
"""How long after a buyer's WhatsApp message a business may answer with free-form text (the
customer-service window); after it only templates."""

ACKNOWLEDGEMENTS: Mapping[str, str] = {
    "en": "Thanks, we'll get back to you shortly.",
    "nb": "Takk, vi svarer deg snart.",
    "fi": "Kiitos, vastaamme sinulle pian.",
    "hu": "Köszönjük, hamarosan válaszolunk.",
    "ar": "شكرًا، سنرد عليك قريبًا.",
    "pt-BR": "Obrigado, responderemos em breve.",
}
"""The acknowledgement of a reply in each shipped locale; each fits one SMS segment."""
_LANGUAGE_ALIASES = {"no": "nb", "nn": "nb", "pt": "pt-BR"}


def acknowledgement(locale: str | None, default: str = "en") -> tuple[str, str]:
    """``(locale, text)`` of the acknowledgement for a buyer of ``locale``: that locale, else
    its language (``nb-NO`` → ``nb``, ``pt-PT`` → ``pt-BR``), else ``default``'s, else
    English."""
    by_lower = {key.lower(): key for key in ACKNOWLEDGEMENTS}
    for candidate in (locale, default):
        tag = (candidate or "").strip().replace("_", "-").lower()
        language = tag.split("-")[0]
        found = by_lower.get(tag) or by_lower.get(language) or _LANGUAGE_ALIASES.get(language)
        if found:
            return found, ACKNOWLEDGEMENTS[found]
    return "en", ACKNOWLEDGEMENTS["en"]


NOT_INTERESTED = "not_interested"
"""The quick reply that ends the sequence for the checkout (it is not an opt-out)."""
QUESTION = "question"
"""The quick reply that is forwarded to the shop and pauses the sequence, like a reply."""
_QUICK_REPLIES: Mapping[str, frozenset[str]] = {
    NOT_INTERESTED: frozenset(
        {
            "NOT_INTERESTED",
            "NOT INTERESTED",
            "IKKE INTERESSERT",
            "EI KIINNOSTA",
            "NEM ERDEKEL",
            "غير مهتم",
            "NAO TENHO INTERESSE",
            "SEM INTERESSE",
        }
    ),
    QUESTION: frozenset(
        {
            "QUESTION",
            "I HAVE A QUESTION",
            "JEG HAR ET SPORSMAL",
            "MINULLA ON KYSYMYS",
            "KERDESEM VAN",
            "لدي سؤال",
            "TENHO UMA PERGUNTA",
        }
    ),
}
"""A quick-reply button's payload (``NOT_INTERESTED``, ``QUESTION``) or its title in a
shipped language, folded as :func:`~cartrescue.inbound.keyword` folds words."""


def quick_reply(payload: str) -> str | None:
    """:data:`NOT_INTERESTED`, :data:`QUESTION` or None for a button's payload or title."""
    folded = fold(payload).strip(".!?")
    for kind, words in _QUICK_REPLIES.items():
        if folded in {fold(w) for w in words}:
            return kind
    return None


@dataclass(frozen=True, slots=True)
class Reply:
    """A verified reply as an inbound handler hands it over: ``source`` is the provider
    (``twilio``), ``contact`` the sender in E.164 (or a lower-case email), ``message_id`` the
    provider's id, which makes a second delivery change nothing, ``sent_at`` when the buyer
    sent it, if the provider says (WhatsApp's customer-service window runs from then)."""

    source: str
    channel: ChannelKind
    contact: str
    text: str
    message_id: str | None = None
    sent_at: datetime | None = None

    def __post_init__(self) -> None:
        # Text from a JSON body may hold lone surrogates, which no store or email can carry.
        for name in ("text", "message_id"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, value.encode("utf-8", "replace").decode("utf-8"))


@dataclass(frozen=True, slots=True)
class Forward:
    """What the shop gets for one reply: the reply, its checkout and the conversation so far
    (the reply last)."""

    id: str
    reply: Reply
    checkout: Checkout
    conversation: tuple[ConversationEntry, ...]
    at: datetime

    def payload(self) -> dict[str, Any]:
        """The JSON document a webhook receives (Standard Webhooks' ``type``, ``timestamp``,
        ``data``)."""
        customer = self.checkout.customer
        return {
            "type": "conversation.reply",
            "timestamp": self.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "data": {
                "checkout_id": self.checkout.id,
                "channel": self.reply.channel,
                "reply": self.reply.text,
                "first_name": customer.first_name if customer else None,
                "contact": mask_contact(self.reply.contact),
                "items": [
                    {"title": item.title, "quantity": item.quantity, "price": str(item.price)}
                    for item in self.checkout.line_items
                ],
                "total": str(self.checkout.total),
                "currency": self.checkout.currency,
                "recovery_url": self.checkout.recovery_url,
                "conversation": [
                    {
                        "at": entry.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                        "direction": entry.direction,
                        "channel": entry.channel,
                        "text": entry.text,
                    }
                    for entry in self.conversation
                ],
            },
        }

    def text(self) -> str:
        """The forward as a plain-text email body."""
        data = self.payload()["data"]
        lines = [
            f"{data['first_name'] or 'A buyer'} ({data['contact']}) replied by {data['channel']}:",
            "",
            f"  {self.reply.text}",
            "",
            f"Checkout {data['checkout_id']}, {data['total']} {data['currency']}:",
            *(f"  {i['quantity']} × {i['title']} ({i['price']})" for i in data["items"]),
            f"Recovery link: {data['recovery_url']}",
            "",
            "The conversation so far:",
            *(
                f"  {e['at']} {'buyer' if e['direction'] == 'in' else 'shop'} ({e['channel']}): "
                f"{e['text']}"
                for e in data["conversation"]
            ),
            "",
            "The reminders for this checkout are paused. Answer the buyer from your own tools.",
        ]
        return "\n".join(lines) + "\n"


@runtime_checkable
class Forwarder(Protocol):
    """Delivers a :class:`Forward` to the shop. ``forward`` raises
    :class:`~cartrescue.errors.CartRescueError` when it could not; the reply stays recorded
    and the failure is logged and counted (event ``forward_failed``)."""

    def forward(self, forward: Forward) -> None: ...


def _secret_key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError) as err:
        raise ConfigError(
            "expected a Standard Webhooks secret: whsec_ followed by base64",
            key="conversations.webhook_secret_env",
        ) from err


def standard_webhook_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature`` for ``body``: ``v1,`` and the base64 HMAC-SHA256, keyed with the
    base64-decoded part of ``secret`` after ``whsec_``, of ``"<id>.<timestamp>.<body>"``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookForwarder:
    """POSTs each forward to ``url`` as JSON with ``webhook-id``, ``webhook-timestamp`` and
    ``webhook-signature`` (Standard Webhooks), so a receiver can verify it with a ready-made
    library. A retry carries the same ``webhook-id``."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        attempts: int = 3,
        clock: Clock = utc_now,
    ) -> None:
        if len(_secret_key(secret)) < 16:
            raise ConfigError(
                "the webhook secret is too short: use at least 16 random bytes",
                key="conversations.webhook_secret_env",
            )
        self.secret = secret
        self.clock = clock
        self.client = HttpClient(
            "conversation webhook",
            url,
            session=session,
            timeout=timeout,
            attempts=attempts,
            max_wait=5.0,
            secrets=(secret,),
            retry_statuses=(408, 429),
        )

    def forward(self, forward: Forward) -> None:
        body = json.dumps(forward.payload(), ensure_ascii=False, sort_keys=True).encode()
        timestamp = int(self.clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": forward.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": standard_webhook_signature(
                self.secret, forward.id, timestamp, body
            ),
        }
        self.client.request("POST", self.client.base_url, retry=True, data=body, headers=headers)


class EmailForwarder:
    """Mails each forward to ``to`` (the shop's support address) through ``channel``, the
    configured email channel."""

    def __init__(self, channel: Channel, to: str) -> None:
        if channel.kind != "email":
            raise ConfigError("forwarding by email needs the email channel", key="channels.email")
        if "@" not in to:
            raise ConfigError(
                f"expected an email address, got {to!r}", key="conversations.email_to"
            )
        self.channel = channel
        self.to = to

    def forward(self, forward: Forward) -> None:
        customer = forward.checkout.customer
        who = (customer.first_name if customer else None) or mask_contact(forward.reply.contact)
        message = Message(
            key=f"{forward.checkout.id}:reply:{forward.id}",
            channel="email",
            to=self.to,
            checkout_id=forward.checkout.id,
            step=0,
            locale="en",
            content=Content(
                text=forward.text(),
                subject=f"Reply from {who} about checkout {forward.checkout.id}",
            ),
        )
        self.channel.send(message)


class Conversations:
    """Records replies on their checkout, pauses it and forwards them (see the module)."""

    def __init__(
        self,
        store: Store,
        *,
        pause: timedelta | None = DEFAULT_PAUSE,
        forwarders: Sequence[Forwarder] = (),
        clock: Clock = utc_now,
        acknowledge: Mapping[ChannelKind, Channel] | None = None,
        locale: str = "en",
    ) -> None:
        """``acknowledge``: the channels that answer a reply with an acknowledgement (SMS,
        WhatsApp; none: no acknowledgements); ``locale`` the one used for a buyer whose own
        is not shipped."""
        if not isinstance(store, ConversationStore):
            raise ConfigError(
                f"{type(store).__name__} does not keep conversations",
                key="conversations",
                fix="use the SQLite or PostgreSQL store, or remove [conversations]",
            )
        if pause is not None and pause <= timedelta(0):
            raise ConfigError("expected a positive pause", key="conversations.pause")
        self.store = store
        self.conversations: ConversationStore = store
        self.pause = pause
        self.forwarders = tuple(forwarders)
        self.clock = clock
        self.acknowledge: dict[ChannelKind, Channel] = {}
        for kind, channel in (acknowledge or {}).items():
            if kind not in _ACKNOWLEDGING or channel.kind != kind:
                raise ConfigError(
                    f"replies are acknowledged by SMS or WhatsApp, not by {channel.kind}",
                    key="conversations.acknowledge",
                )
            self.acknowledge[kind] = channel
        self.locale = locale

    def _record(self, reply: Reply) -> Checkout | None:
        """The checkout ``reply`` is about, with the reply recorded on it; None when there is
        none or the reply was recorded before."""
        checkout = self.conversations.checkout_for_contact(reply.contact)
        who = mask_contact(reply.contact)
        if checkout is None:
            log.info("conversation: reply from %s on %s matches no checkout", who, reply.channel)
            return None
        entry = ConversationEntry(
            checkout.id, self.clock(), reply.channel, "in", reply.text, reply.source
        )
        if not self.conversations.add_conversation_entry(entry, reply.message_id):
            log.info("conversation: reply from %s delivered again, ignored", who)
            return None
        return checkout

    def not_interested(self, reply: Reply) -> bool:
        """End the sequence of the checkout ``reply`` is about (the buyer pressed "Not
        interested"); the contact is not opted out and a later purchase still counts."""
        checkout = self._record(reply)
        if checkout is None:
            return False
        now = self.clock()
        self.store.close_checkout(checkout.id, "done", "not interested", now)
        self.store.record_event(
            "not_interested", now, checkout_id=checkout.id, channel=reply.channel
        )
        log.info("conversation: checkout=%s not interested, sequence ended", checkout.id)
        return True

    def reason(self, reply: Reply, reason: str) -> bool:
        """Record ``reason`` (a :data:`REASONS` id) as why the buyer left the checkout
        ``reply`` is about."""
        if reason not in REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        checkout = self._record(reply)
        if checkout is None:
            return False
        now = self.clock()
        self.conversations.record_reason(checkout.id, reason, now)
        self.store.record_event(
            "reason", now, checkout_id=checkout.id, channel=reply.channel, detail=reason
        )
        log.info("conversation: checkout=%s left because of %s", checkout.id, REASONS[reason])
        return True

    def reply(self, reply: Reply) -> bool:
        """Record ``reply``, pause its checkout and forward it; False when there is no
        checkout for its sender or the same message was recorded before."""
        checkout = self._record(reply)
        if checkout is None:
            return False
        now = self.clock()
        who = mask_contact(reply.contact)
        until = None if self.pause is None else min(now + self.pause, NEVER)
        paused = self.conversations.paused_until(checkout.id)
        self.conversations.pause_checkout(checkout.id, until, now)
        self.store.record_event("reply", now, checkout_id=checkout.id, channel=reply.channel)
        log.info(
            "conversation: checkout=%s reply from %s on %s (%d characters), paused %s",
            checkout.id,
            who,
            reply.channel,
            len(reply.text),
            "for good" if until is None else f"until {until.isoformat()}",
        )
        if self.acknowledge:
            self._acknowledge(reply, checkout, paused, now)
        forward = Forward(
            id=_forward_id(reply, checkout.id, now),
            reply=reply,
            checkout=checkout,
            conversation=tuple(self.conversations.conversation(checkout.id)),
            at=now,
        )
        for forwarder in self.forwarders:
            name = type(forwarder).__name__
            try:
                forwarder.forward(forward)
            except CartRescueError as err:
                log.error(
                    "conversation: checkout=%s %s failed: %s",
                    checkout.id,
                    name,
                    mask_text(str(err)),
                )
                self.store.record_event("forward_failed", now, checkout_id=checkout.id, detail=name)
            else:
                self.store.record_event("forwarded", now, checkout_id=checkout.id, detail=name)
        return True

    def _acknowledge(
        self, reply: Reply, checkout: Checkout, paused: datetime | None, now: datetime
    ) -> None:
        """Answer ``reply`` once for the pause it began (``paused``: when the checkout's
        pause before it ended, if it had one)."""
        who = mask_contact(reply.contact)
        why = self._no_acknowledgement(reply, paused, now)
        # A claim per pause: two replies handled at once both see the checkout unpaused,
        # and only one of them answers.
        claim = f"{checkout.id}\0{'-' if paused is None else paused.isoformat()}"
        digest = hashlib.sha256(claim.encode()).hexdigest()
        if why is None and not self.store.record_delivery("acknowledgement", digest, now):
            why = "this pause was acknowledged already"
        if why is not None:
            log.info(
                "conversation: checkout=%s no acknowledgement to %s: %s", checkout.id, who, why
            )
            return
        customer = checkout.customer
        locale, text = acknowledgement(customer.locale if customer else None, self.locale)
        message = Message(
            key=f"{checkout.id}:acknowledgement:{digest[:16]}",
            channel=reply.channel,
            to=reply.contact,
            checkout_id=checkout.id,
            step=0,
            locale=locale,
            content=Content(text=text, language=locale, free_form=True),
        )
        try:
            receipt: Receipt = self.acknowledge[reply.channel].send(message)
        except CartRescueError as err:
            log.error(
                "conversation: checkout=%s acknowledgement to %s failed: %s",
                checkout.id,
                who,
                mask_text(str(err)),
            )
            self.store.record_event(
                "acknowledgement_failed", now, checkout_id=checkout.id, channel=reply.channel
            )
            return
        entry = ConversationEntry(checkout.id, now, reply.channel, "out", text, receipt.provider)
        self.conversations.add_conversation_entry(entry, receipt.provider_id)
        self.store.record_event("acknowledged", now, checkout_id=checkout.id, channel=reply.channel)
        log.info(
            "conversation: checkout=%s acknowledged to %s on %s in %s",
            checkout.id,
            who,
            reply.channel,
            locale,
        )

    def _no_acknowledgement(
        self, reply: Reply, paused: datetime | None, now: datetime
    ) -> str | None:
        """Why ``reply`` gets no acknowledgement, or None when it gets one."""
        if reply.channel not in self.acknowledge:
            return f"no {reply.channel} channel acknowledges replies"
        if paused is not None and paused > now:
            return "an earlier reply began this pause"
        if self.store.optouts_for([reply.contact]) & {reply.channel, "*"}:
            return f"the contact opted out of {reply.channel}"
        if reply.channel == "whatsapp":
            opened = min(reply.sent_at or now, now)
            if now - opened >= WHATSAPP_WINDOW:
                return (
                    "outside WhatsApp's 24-hour customer-service window, where only a "
                    "template may be sent"
                )
        return None


_ACKNOWLEDGING: frozenset[ChannelKind] = frozenset({"sms", "whatsapp"})


def _forward_id(reply: Reply, checkout_id: str, at: datetime) -> str:
    seed = reply.message_id or f"{checkout_id}\0{reply.contact}\0{at.isoformat()}"
    return "msg_" + hashlib.sha256(f"{reply.source}\0{seed}".encode()).hexdigest()[:32]


def paused_until(store: object, checkout_id: str) -> datetime | None:
    """When ``checkout_id``'s pause ends (:data:`NEVER` for good), None when it is not paused
    or ``store`` keeps no conversations."""
    if isinstance(store, ConversationStore):
        return store.paused_until(checkout_id)
    return None


def take_sms(
    store: Store,
    clock: Clock,
    conversations: Conversations | None,
    source: str,
    phone: str | None,
    text: str,
    message_id: str | None,
) -> bool:
    """What an inbound SMS from ``phone`` (E.164, or None when the sender is not a phone
    number) through provider ``source`` does: a STOP-family keyword opts it out of SMS, a
    START-family keyword back in, "1"–"5" answers why the buyer left, other text is a reply
    for ``conversations``. False when a keyword came from something that is not a phone
    number (the caller refuses the request); the caller has already verified and
    deduplicated it."""
    word = keyword(text)
    if word is None and (conversations is None or not text.strip() or phone is None):
        return True
    if phone is None:
        return False
    if word is not None:
        record_opt(store, clock, phone, "sms", word, source)
    elif conversations is not None:
        reply = Reply(source, "sms", phone, text.strip(), message_id)
        reason = reason_of(text)
        if reason is not None:
            conversations.reason(reply, reason)
        else:
            conversations.reply(reply)
    return True
