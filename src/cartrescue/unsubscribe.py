"""One-click unsubscribe links: opaque, expiring, strict tokens, with key rotation.

A token is ``base64url(version ‖ nonce ‖ AES-256-GCM(issued ‖ channel ‖ recipient))``: the
recipient is encrypted, so the link in a proxy's or a mail gateway's log names nobody; the
issue time is inside the authenticated plaintext, so a token is refused once it is older than
``ttl`` (a year by default: long enough for a mail archive); any change to any character, and
any extra character, makes the token invalid. Secrets are given newest first: the newest
encrypts, every one decrypts, so a secret can be rotated without breaking links already sent.

Nothing is stored: a token carries what it needs, and ``forget`` has no token rows to erase.
"""

from __future__ import annotations

import base64
import binascii
import html
import os
import re
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from .channels.base import KINDS
from .clock import Clock, utc_now
from .errors import ConfigError
from .inbound import InboundRequest, InboundResponse, record_opt
from .logmask import mask_contact
from .store.base import Store

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["DEFAULT_TTL", "UnsubscribeHandler", "UnsubscribeLinks"]

DEFAULT_TTL = timedelta(days=365)
"""How long an unsubscribe link works after the message was sent."""

_VERSION = b"\x01"
_NONCE = 12
_ISSUED = struct.Struct(">I")  # seconds since the epoch, until 2106
_TOKEN = re.compile(r"[A-Za-z0-9_-]{40,700}")


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

    def token(self, recipient: str, channel: str) -> str:
        """An opaque token for ``recipient`` on ``channel`` (or ``"*"``: every channel)."""
        issued = int(self._clock().timestamp())
        plaintext = _ISSUED.pack(issued) + f"{channel}\n{recipient.lower()}".encode()
        nonce = os.urandom(_NONCE)
        sealed = self._keys[0].encrypt(nonce, plaintext, _VERSION)
        return _b64(_VERSION + nonce + sealed)

    def __call__(self, recipient: str, channel: str) -> str:
        return f"{self.base_url}/unsubscribe/{quote(self.token(recipient, channel))}"

    def read(self, token: str) -> tuple[str, str] | None:
        """``(recipient, channel)`` from a token one of the secrets made and that has not
        expired; ``None`` for anything else, including a valid token with extra characters."""
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

    def _parse(self, plaintext: bytes) -> tuple[str, str] | None:
        if len(plaintext) <= _ISSUED.size:
            return None
        (seconds,) = _ISSUED.unpack_from(plaintext)
        issued = datetime.fromtimestamp(seconds, UTC)
        now = self._clock()
        if now - issued > self.ttl:
            return None
        try:
            channel, _, recipient = plaintext[_ISSUED.size :].decode("utf-8").partition("\n")
        except UnicodeDecodeError:
            return None
        if channel not in (*KINDS, "*") or not recipient:
            return None
        return recipient, channel


class UnsubscribeHandler:
    """The :class:`~cartrescue.inbound.InboundHandler` for ``/unsubscribe/<token>``.

    ``GET`` shows a page with a button that POSTs (it changes nothing: link scanners follow
    links); ``POST`` — what mail clients send for RFC 8058 ``List-Unsubscribe=One-Click`` —
    opts the recipient out. An invalid or expired token is answered 403 and changes nothing.
    """

    route = "/unsubscribe/"
    methods = ("GET", "POST")

    def __init__(self, links: UnsubscribeLinks, store: Store, *, clock: Clock = utc_now) -> None:
        self.links = links
        self.store = store
        self.clock = clock

    def handle(self, request: InboundRequest) -> InboundResponse:
        found = self.links.read(request.path[len(self.route) :])
        if found is None:
            return InboundResponse.page(
                403, "This link is not valid", "<p>Nothing was changed.</p>"
            )
        recipient, channel = found
        who = html.escape(mask_contact(recipient))
        done = InboundResponse.page(
            200, "You are unsubscribed", f"<p>{who} gets no more reminders.</p>"
        )
        if request.method == "POST":
            record_opt(self.store, self.clock, recipient, channel, "stop", "unsubscribe link")
            return done
        if {channel, "*"} & self.store.optouts_for([recipient]):
            return done
        return InboundResponse.page(
            200,
            "Unsubscribe",
            f"<p>Stop cart reminders to {who}?</p>"
            '<form method=post><input type=hidden name="List-Unsubscribe" value="One-Click">'
            "<button type=submit>Unsubscribe</button></form>",
        )
