"""The seam between the web endpoint and what answers a request: a small request and
response type and the :class:`InboundHandler` protocol.

:mod:`cartrescue.web` only routes: it reads the request, finds the handler whose ``route``
matches the path, and writes the handler's response. Each provider's handler lives beside
its channel (:mod:`cartrescue.channels.twilio_inbound`,
:mod:`cartrescue.channels.whatsapp_inbound`), as django-anymail keeps its tracking webhooks
beside its backends; unsubscribe and the shop's checkout webhooks have their own. Also here:
the STOP/START keywords and the opt-out bookkeeping those handlers share.
"""

from __future__ import annotations

import hmac
import html
import logging
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from .clock import Clock
from .logmask import mask_contact
from .store.base import Signal, SignalOutcome, SignalStore, Store

__all__ = [
    "LOCALE_START_WORDS",
    "LOCALE_STOP_WORDS",
    "START_WORDS",
    "STOP_WORDS",
    "InboundHandler",
    "InboundRequest",
    "InboundResponse",
    "fold",
    "keyword",
    "record_opt",
    "record_signal",
    "secret_matches",
]

log = logging.getLogger("cartrescue.web")

STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
"""Twilio's opt-out keywords (the defaults and the Advanced Opt-Out additions)."""
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
"""Twilio's opt-in keywords."""
WHATSAPP_STOP = frozenset({"STOP PROMOTIONS"})
"""The text of the marketing-template opt-out quick-reply button."""

LOCALE_STOP_WORDS: Mapping[str, frozenset[str]] = {
    "en": frozenset({"STOP ALL", "OPT OUT", "OPT-OUT", "REMOVE"}),
    "nb": frozenset({"STOPP", "AVSLUTT", "AVMELD", "MELD AV", "AVMELDING", "SLUTT"}),
    "fi": frozenset({"LOPETA", "LOPETUS", "PERU", "POISTU", "EI KIITOS"}),
    "hu": frozenset({"STOPP", "LEIRATKOZAS", "LEIRATKOZOM", "ALLJ", "LEMONDOM"}),
    "ar": frozenset({"توقف", "قف", "الغاء", "الغاء الاشتراك", "ايقاف"}),
    "pt-BR": frozenset({"PARAR", "PARE", "SAIR", "CANCELAR", "DESCADASTRAR", "DESINSCREVER"}),
}
"""The opt-out words a buyer writes in each shipped locale, beyond the English keywords (written
without accents: :func:`keyword` folds them away, so ``LEIRATKOZÁS`` and ``إلغاء`` match)."""
LOCALE_START_WORDS: Mapping[str, frozenset[str]] = {
    "nb": frozenset({"STARTE"}),
    "fi": frozenset({"ALOITA"}),
    "hu": frozenset({"INDITAS", "FELIRATKOZAS"}),
    "ar": frozenset({"ابدا", "اشتراك"}),
    "pt-BR": frozenset({"INICIAR", "VOLTAR", "RECOMECAR"}),
}
"""Opt-in words per locale. A local "yes" (``JA``, ``SIM``, ``IGEN``, ``نعم``) is not one:
it is more often the answer to a question than a request for more messages."""


def fold(text: str) -> str:
    """Upper case without accents, Arabic short vowels or hamza seats, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", " ".join(text.split()).upper())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c) and c != "\u0640")
    return unicodedata.normalize("NFC", bare)


_STOP = frozenset(
    fold(word)
    for word in STOP_WORDS | WHATSAPP_STOP | frozenset().union(*LOCALE_STOP_WORDS.values())
)
_START = frozenset(
    fold(word) for word in START_WORDS | frozenset().union(*LOCALE_START_WORDS.values())
)


@dataclass(frozen=True, slots=True)
class InboundRequest:
    """One request, as a handler sees it.

    ``path`` is relative to the app's root (``/twilio/sms``); ``url`` is the public URL the
    caller used (``public_url`` + path + ``?query``), which some providers sign; ``headers``
    have HTTP's canonical capitalisation (``X-Twilio-Signature``).
    """

    method: str
    path: str
    url: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class InboundResponse:
    """What a handler answers: an HTTP status code, a body and its content type."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    """Further response headers (``WWW-Authenticate`` on a 401)."""

    @classmethod
    def text(cls, status: int, text: str) -> InboundResponse:
        return cls(status, text.encode())

    @classmethod
    def page(
        cls, status: int, title: str, body: str, *, lang: str = "en", direction: str = "ltr"
    ) -> InboundResponse:
        """A small HTML page in language ``lang``, written ``direction`` (``ltr`` or
        ``rtl``); ``body`` is HTML already escaped by the caller."""
        document = (
            f'<!doctype html><html lang="{html.escape(lang)}" dir="{html.escape(direction)}">'
            "<meta charset=utf-8>"
            '<meta name=viewport content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title>"
            '<body style="font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em">'
            f"<h1>{html.escape(title)}</h1>{body}</body></html>"
        )
        return cls(status, document.encode(), "text/html; charset=utf-8")


FORBIDDEN = InboundResponse.text(403, "invalid signature\n")


@runtime_checkable
class InboundHandler(Protocol):
    """Answers the requests under one route.

    ``route`` is a path relative to the app's root (``/twilio/sms``); one that ends in ``/``
    (``/unsubscribe/``) also takes every path below it. ``methods`` are the HTTP methods it
    takes (others are answered 405). ``handle(request)`` returns the response; it must check
    the caller's signature itself and answer 403 (and change nothing) when it does not
    match. An exception it raises is answered 500 and logged.
    """

    @property
    def route(self) -> str: ...

    @property
    def methods(self) -> tuple[str, ...]: ...

    def handle(self, request: InboundRequest) -> InboundResponse: ...


def secret_matches(expected: str, given: str) -> bool:
    """Whether ``given`` (a signature or token from the caller) equals ``expected``, compared
    as bytes in constant time. Text that is not ASCII never matches, and is never an error:
    what an unauthenticated caller sends must not be able to cause a 500."""
    if not given.isascii():
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("ascii"))


def keyword(body: str) -> str | None:
    """``"stop"``, ``"start"`` or ``None`` for an inbound message body: the whole body, trimmed
    of spaces and final punctuation, in any case and with or without accents, must be one
    keyword of :data:`STOP_WORDS`, :data:`START_WORDS` or a shipped locale's words
    (:data:`LOCALE_STOP_WORDS`, :data:`LOCALE_START_WORDS`), whatever the buyer's locale."""
    word = fold(body).strip(".!¡؟?。 ")
    if word in _STOP:
        return "stop"
    if word in _START:
        return "start"
    return None


def record_opt(
    store: Store, clock: Clock, contact: str, channel: str, word: str, source: str
) -> None:
    """Opt ``contact`` out of ``channel`` (``word == "stop"``) or back in, and record it."""
    now = clock()
    if word == "stop":
        store.add_optout(contact, channel, source, now)
        store.record_event("opt_out", now, channel=channel, detail=source)
    else:
        store.remove_optout(contact, channel)
        store.record_event("opt_in", now, channel=channel, detail=source)
    log.info("web: %s %s %s via %s", mask_contact(contact), word, channel, source)


def record_signal(
    store: Store, clock: Clock, provider: str, provider_id: object, signal: Signal | None
) -> None:
    """Record a status callback's ``signal`` on the message ``provider`` accepted as
    ``provider_id`` (:class:`~cartrescue.store.base.SignalStore`); a status that is not an
    engagement signal (``None``), a store that keeps none, a repeat or a late status change
    nothing, and a message id no outbox entry has is ignored with a log line."""
    if signal is None or not isinstance(store, SignalStore):
        return
    if not isinstance(provider_id, str) or not provider_id:
        log.info("web: %s status %s without a message id ignored", provider, signal.value)
        return
    outcome = store.record_signal(provider_id[:200], signal, clock())
    if outcome is SignalOutcome.UNKNOWN:
        log.info(
            "web: %s status %s for unknown message %s ignored",
            provider,
            signal.value,
            provider_id[:64],
        )
