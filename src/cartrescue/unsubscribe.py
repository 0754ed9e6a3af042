"""One-click unsubscribe links: opaque, expiring, strict tokens, with key rotation.

A token is ``base64url(version ‖ nonce ‖ AES-256-GCM(issued ‖ channel ‖ recipient ‖ locale))``:
the recipient is encrypted, so the link in a proxy's or a mail gateway's log names nobody; the
message's locale (optional) lets the page answer in the recipient's language; the issue time is
inside the authenticated plaintext, so a token is refused once it is older than
``ttl`` (a year by default: long enough for a mail archive); any change to any character, and
any extra character, makes the token invalid. Secrets are given newest first: the newest
encrypts, every one decrypts, so a secret can be rotated without breaking links already sent.

Nothing is stored: a token carries what it needs, and ``forget`` has no token rows to erase.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from .channels.base import KINDS
from .clock import Clock, utc_now
from .errors import ConfigError
from .inbound import InboundRequest, InboundResponse, record_opt
from .logmask import mask_contact
from .store.base import Store
from .unsubscribe_pages import page_locale, unsubscribe_page

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["DEFAULT_TTL", "UnsubscribeHandler", "UnsubscribeLink", "UnsubscribeLinks"]

DEFAULT_TTL = timedelta(days=365)
"""How long an unsubscribe link works after the message was sent."""

_VERSION = b"\x01"
_NONCE = 12
_ISSUED = struct.Struct(">I")  # seconds since the epoch, until 2106
_TOKEN = re.compile(r"[A-Za-z0-9_-]{40,700}")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8}){0,2}")


@dataclass(frozen=True, slots=True)
class UnsubscribeLink:
    """What a token says: who, on which channel (``*``: every channel), and the locale of the
    message that carried it (None in tokens made without one)."""

    recipient: str
    channel: str
    locale: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _key(secret: str) -> AESGCM:
    # Imported here: cryptography costs ~20 ms, paid only when links are configured.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    material = HKDF(
        algorithm=SHA256(), length=32, salt=None, info=b"cartrescue unsubscribe token v1"
    ).derive(secret.encode("utf-8"))
    return AESGCM(material)


class UnsubscribeLinks:
    """Unsubscribe links: ``links(recipient, channel_kind) -> url``; ``read(token)`` back.

    Give it to ``Recovery(unsubscribe=...)``: each message then carries its link (email puts
    it in ``List-Unsubscribe``); :func:`cartrescue.web.make_app` serves it under ``base_url``.
    ``secret`` is one secret or several, newest first (each at least 16 characters): the
    first makes new tokens, all are accepted. ``ttl`` is how long a token stays valid.
    """

    def __init__(
        self,
        base_url: str,
        secret: str | Sequence[str],
        *,
        ttl: timedelta = DEFAULT_TTL,
        clock: Clock = utc_now,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ConfigError(
                "expected the https:// URL where cartrescue serve is reached", key="web.public_url"
            )
        secrets = [secret] if isinstance(secret, str) else list(secret)
        if not secrets:
            raise ConfigError("expected at least one secret", key="web.unsubscribe_secret")
        for value in secrets:
            if len(value) < 16:
                raise ConfigError("use at least 16 random characters", key="web.unsubscribe_secret")
        if ttl <= timedelta(0):
            raise ConfigError("expected a positive number of days", key="web.unsubscribe_ttl_days")
        self.base_url = base_url.rstrip("/")
        self.ttl = ttl
        self._keys = [_key(value) for value in secrets]
        self._clock = clock

    def token(self, recipient: str, channel: str, locale: str | None = None) -> str:
        """An opaque token for ``recipient`` on ``channel`` (or ``"*"``: every channel);
        ``locale`` is the message's, so the page can answer in it."""
        issued = int(self._clock().timestamp())
        text = f"{channel}\n{recipient.lower()}"
        if locale and _LOCALE.fullmatch(locale):
            text += f"\n{locale}"
        plaintext = _ISSUED.pack(issued) + text.encode()
        nonce = os.urandom(_NONCE)
        sealed = self._keys[0].encrypt(nonce, plaintext, _VERSION)
        return _b64(_VERSION + nonce + sealed)

    def __call__(self, recipient: str, channel: str, locale: str | None = None) -> str:
        token = self.token(recipient, channel, locale)
        return f"{self.base_url}/unsubscribe/{quote(token)}"

    def read(self, token: str) -> tuple[str, str] | None:
        """``(recipient, channel)`` from a token one of the secrets made and that has not
        expired; ``None`` for anything else, including a valid token with extra characters."""
        link = self.read_link(token)
        return None if link is None else (link.recipient, link.channel)

    def read_link(self, token: str) -> UnsubscribeLink | None:
        """What :meth:`read` reads, with the message's locale."""
        if not _TOKEN.fullmatch(token):
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        if _b64(raw) != token or raw[:1] != _VERSION:
            return None  # not the canonical encoding: a changed or extra character
        from cryptography.exceptions import InvalidTag

        nonce, sealed = raw[1 : 1 + _NONCE], raw[1 + _NONCE :]
        for key in self._keys:
            try:
                plaintext = key.decrypt(nonce, sealed, _VERSION)
            except InvalidTag:
                continue
            return self._parse(plaintext)
        return None

    def _parse(self, plaintext: bytes) -> UnsubscribeLink | None:
        if len(plaintext) <= _ISSUED.size:
            return None
        (seconds,) = _ISSUED.unpack_from(plaintext)
        issued = datetime.fromtimestamp(seconds, UTC)
        now = self._clock()
        if now - issued > self.ttl:
            return None
        try:
            channel, recipient, *rest = plaintext[_ISSUED.size :].decode("utf-8").split("\n")
        except (UnicodeDecodeError, ValueError):
            return None
        if channel not in (*KINDS, "*") or not recipient or len(rest) > 1:
            return None
        return UnsubscribeLink(recipient, channel, rest[0] if rest else None)


class UnsubscribeHandler:
    """The :class:`~cartrescue.inbound.InboundHandler` for ``/unsubscribe/<token>``.

    ``GET`` shows a page with a button that POSTs (it changes nothing: link scanners follow
    links); ``POST`` — what mail clients send for RFC 8058 ``List-Unsubscribe=One-Click`` —
    opts the recipient out. An invalid or expired token is answered 403 and changes nothing.
    The page names ``shop_name`` and speaks the locale of the message the link came in
    (else ``shop_locale``; a link that cannot be read: the browser's language, else
    ``shop_locale``); texts are in :mod:`cartrescue.unsubscribe_pages`.
    """

    route = "/unsubscribe/"
    methods = ("GET", "POST")

    def __init__(
        self,
        links: UnsubscribeLinks,
        store: Store,
        *,
        clock: Clock = utc_now,
        shop_name: str | None = None,
        shop_locale: str | None = None,
    ) -> None:
        self.links = links
        self.store = store
        self.clock = clock
        self.shop_name = shop_name or urlsplit(links.base_url).hostname or ""
        self.shop_locale = shop_locale

    def handle(self, request: InboundRequest) -> InboundResponse:
        found = self.links.read_link(request.path[len(self.route) :])
        if found is None:
            browser = request.headers.get("Accept-Language", "").split(",")[0].split(";")[0]
            locale = page_locale(browser, self.shop_locale)
            return unsubscribe_page(403, locale, "invalid")
        locale = page_locale(found.locale, self.shop_locale)
        texts = {"shop": self.shop_name, "who": mask_contact(found.recipient)}
        if request.method == "POST":
            record_opt(
                self.store, self.clock, found.recipient, found.channel, "stop", "unsubscribe link"
            )
            return unsubscribe_page(200, locale, "done", **texts)
        if {found.channel, "*"} & self.store.optouts_for([found.recipient]):
            return unsubscribe_page(200, locale, "done", **texts)
        return unsubscribe_page(200, locale, "ask", **texts)
