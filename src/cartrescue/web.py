"""cartrescue's web endpoint: providers' inbound webhooks and one-click unsubscribe.

One WSGI application (:func:`make_app`) mounts, relative to ``public_url``:

``POST /twilio/sms``
    Twilio's incoming-message webhook. The ``X-Twilio-Signature`` header is checked
    (HMAC-SHA1, keyed with the auth token, over the full public URL followed by every POST
    parameter name and value sorted by name, base64 — twilio.com/docs/usage/security). A body
    of one STOP-family keyword opts the sender out of SMS, a START-family keyword opts them back
    in; the answer is empty TwiML (Twilio sends its own confirmation).
``GET /whatsapp``, ``POST /whatsapp``
    The WhatsApp Cloud API webhook: the ``hub.challenge`` verification handshake, then
    notifications checked with ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body,
    keyed with the app secret>``. Failed statuses are recorded (131050 "user stopped
    marketing messages" is an opt-out); STOP replies, the template's "Stop promotions" button
    and ``user_preferences`` stop/resume change the store's opt-outs.
``GET /unsubscribe/<token>``, ``POST /unsubscribe/<token>``
    One-click unsubscribe (RFC 8058): mail clients POST ``List-Unsubscribe=One-Click``;
    a person following the link gets a page with a button that POSTs. The token is signed
    (:class:`UnsubscribeLinks`), so nobody can unsubscribe someone else.
``POST /webhooks/checkouts``
    The shop's checkout webhooks (Shopify ``checkouts/create|update``, WooCommerce
    ``order.created|updated``), when the app is given the connector: the connector checks the
    platform's signature (401 when it does not match) and maps the body, and the checkout is
    stored for the next pass, so new checkouts are known without waiting for a poll. A
    payload that cannot be mapped is answered 200 and logged (the platform would only resend
    it); WooCommerce's unsigned ping is answered 200.
``GET /healthz``
    ``ok``.

An invalid signature or token is answered 403 and changes nothing. Other WSGI apps (short
links, say) can be mounted under a path prefix with ``mounts``. ``cartrescue serve`` runs it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qsl, quote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.simple_server import make_server as _make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from .channels.base import KINDS
from .channels.whatsapp import whatsapp_error
from .clock import Clock, utc_now
from .connectors.base import WebhookCapable
from .errors import BadPayloadError, ConfigError
from .logmask import mask_contact, mask_text
from .models import normalize_phone
from .store.base import Store

__all__ = [
    "START_WORDS",
    "STOP_WORDS",
    "UnsubscribeLinks",
    "WebSettings",
    "keyword",
    "make_app",
    "make_server",
    "serve",
    "twilio_signature",
    "web_settings",
    "whatsapp_signature",
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
MAX_BODY = 1_000_000
TWIML_EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

Keyword = str | None


def keyword(body: str) -> Keyword:
    """``"stop"``, ``"start"`` or ``None`` for an inbound message body: the whole body, trimmed
    of spaces and final punctuation and in any case, must be one keyword."""
    word = " ".join(body.split()).strip(".!").upper()
    if word in STOP_WORDS or word in WHATSAPP_STOP:
        return "stop"
    if word in START_WORDS:
        return "start"
    return None


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


def whatsapp_signature(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` Meta sends with ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UnsubscribeLinks:
    """Signed one-click unsubscribe links: ``links(recipient, channel_kind) -> url``.

    Give it to ``Recovery(unsubscribe=...)``: each message then carries its link (email puts
    it in ``List-Unsubscribe``). The token holds the channel and the recipient, signed with
    HMAC-SHA256 under ``secret``; :func:`make_app` serves it under ``base_url``.
    """

    def __init__(self, base_url: str, secret: str) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ConfigError(
                "expected the https:// URL where cartrescue serve is reached", key="web.public_url"
            )
        if len(secret) < 16:
            raise ConfigError("use at least 16 random characters", key="web.unsubscribe_secret")
        self.base_url = base_url.rstrip("/")
        self._key = secret.encode()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, b"unsubscribe\n" + payload, hashlib.sha256).digest()[:16]

    def token(self, recipient: str, channel: str) -> str:
        payload = f"{channel}\n{recipient.lower()}".encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def __call__(self, recipient: str, channel: str) -> str:
        return f"{self.base_url}/unsubscribe/{quote(self.token(recipient, channel))}"

    def read(self, token: str) -> tuple[str, str] | None:
        """``(recipient, channel)`` from a token this secret signed, else ``None``."""
        try:
            encoded, _, mac = token.partition(".")
            payload = _unb64(encoded)
            valid = hmac.compare_digest(_unb64(mac), self._mac(payload))
            channel, _, recipient = payload.decode().partition("\n")
        except (ValueError, UnicodeDecodeError):
            return None
        if not valid or channel not in (*KINDS, "*") or not recipient:
            return None
        return recipient, channel


@dataclass(frozen=True, slots=True)
class _Response:
    status: str
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


def _text(status: str, text: str) -> _Response:
    return _Response(status, text.encode())


def _page(status: str, title: str, body: str) -> _Response:
    document = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        '<body style="font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em">'
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return _Response(status, document.encode(), "text/html; charset=utf-8")


FORBIDDEN = _text("403 Forbidden", "invalid signature\n")


class _App:
    def __init__(
        self,
        store: Store,
        *,
        public_url: str,
        twilio_auth_token: str | None,
        whatsapp_app_secret: str | None,
        whatsapp_verify_token: str | None,
        unsubscribe_secret: str | None,
        mounts: Mapping[str, WSGIApplication],
        clock: Clock,
        connector: WebhookCapable | None = None,
    ) -> None:
        self.store = store
        self.connector = connector
        self.public_url = public_url.rstrip("/")
        self.twilio_auth_token = twilio_auth_token
        self.whatsapp_app_secret = whatsapp_app_secret
        self.whatsapp_verify_token = whatsapp_verify_token
        self.links = (
            UnsubscribeLinks(self.public_url, unsubscribe_secret) if unsubscribe_secret else None
        )
        self.mounts = sorted(
            ((prefix.rstrip("/"), app) for prefix, app in mounts.items()),
            key=lambda item: -len(item[0]),
        )
        for prefix, _ in self.mounts:
            if not prefix.startswith("/") or prefix == "":
                raise ConfigError(f"a mount prefix must start with '/', got {prefix!r}")
        self.clock = clock

    # -- WSGI -----------------------------------------------------------------------------
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        for prefix, app in self.mounts:
            if path == prefix or path.startswith(prefix + "/"):
                environ = dict(environ)
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
                environ["PATH_INFO"] = path[len(prefix) :]
                return app(environ, start_response)
        try:
            response = self._route(environ, path)
        except Exception:  # a bug must answer 500, never take the server down
            log.exception("web: %s %s failed", environ.get("REQUEST_METHOD"), path)
            response = _text("500 Internal Server Error", "internal error\n")
        start_response(
            response.status,
            [
                ("Content-Type", response.content_type),
                ("Content-Length", str(len(response.body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [response.body]

    def _route(self, environ: WSGIEnvironment, path: str) -> _Response:
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz":
            return _text("200 OK", "ok\n")
        if path == "/twilio/sms" and self.twilio_auth_token:
            return self._twilio(environ, path) if method == "POST" else _allow("POST")
        if path == "/whatsapp" and self.whatsapp_app_secret:
            if method == "GET":
                return self._whatsapp_verify(environ)
            return self._whatsapp(environ) if method == "POST" else _allow("GET, POST")
        if path == "/webhooks/checkouts" and self.connector is not None:
            return self._checkout_webhook(environ) if method == "POST" else _allow("POST")
        if path.startswith("/unsubscribe/") and self.links:
            token = path[len("/unsubscribe/") :]
            if method == "GET":
                return self._unsubscribe_page(token)
            return self._unsubscribe(environ, token) if method == "POST" else _allow("GET, POST")
        return _text("404 Not Found", "not found\n")

    # -- the shop's checkout webhooks ----------------------------------------------------
    def _checkout_webhook(self, environ: WSGIEnvironment) -> _Response:
        assert self.connector is not None
        body = _body(environ)
        if body is None:
            return _text("413 Payload Too Large", "too large\n")
        headers = {
            key[5:].replace("_", "-").title(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        try:
            valid = self.connector.verify_webhook(headers, body)
        except ConfigError as err:
            log.error("web: checkout webhook refused: %s", err)
            return _text("503 Service Unavailable", "webhook secret not configured\n")
        if not valid:
            log.warning("web: checkout webhook with an invalid signature")
            return _text("401 Unauthorized", "invalid signature\n")
        try:
            checkout = self.connector.checkout_from_webhook(body)
        except BadPayloadError as err:
            log.info("web: checkout webhook not stored: %s", mask_text(str(err)))
            return _text("200 OK", "ignored\n")
        self.store.upsert_checkout(checkout, self.clock())
        log.info("web: checkout %s stored from a webhook", checkout.id)
        return _text("200 OK", "stored\n")

    # -- Twilio ---------------------------------------------------------------------------
    def _twilio(self, environ: WSGIEnvironment, path: str) -> _Response:
        assert self.twilio_auth_token is not None
        body = _body(environ)
        if body is None:
            return _text("413 Content Too Large", "too large\n")
        try:
            params = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return _text("400 Bad Request", "not form data\n")
        url = self.public_url + path
        if environ.get("QUERY_STRING"):
            url += "?" + environ["QUERY_STRING"]
        expected = twilio_signature(self.twilio_auth_token, url, params)
        if not hmac.compare_digest(expected, environ.get("HTTP_X_TWILIO_SIGNATURE", "")):
            log.warning("web: Twilio request with an invalid signature refused")
            return FORBIDDEN
        fields = dict(params)
        word = keyword(fields.get("Body", ""))
        if word is not None:
            try:
                phone = normalize_phone(fields.get("From"))
            except ValueError:
                phone = None
            if phone is None:
                return _text("400 Bad Request", "From is not a phone number\n")
            self._opt(phone, "sms", word, "twilio")
        return _Response("200 OK", TWIML_EMPTY, "text/xml; charset=utf-8")

    # -- WhatsApp -------------------------------------------------------------------------
    def _whatsapp_verify(self, environ: WSGIEnvironment) -> _Response:
        query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        token = query.get("hub.verify_token", "")
        if (
            query.get("hub.mode") == "subscribe"
            and self.whatsapp_verify_token
            and hmac.compare_digest(token, self.whatsapp_verify_token)
        ):
            return _text("200 OK", query.get("hub.challenge", ""))
        return _text("403 Forbidden", "verification failed\n")

    def _whatsapp(self, environ: WSGIEnvironment) -> _Response:
        assert self.whatsapp_app_secret is not None
        body = _body(environ)
        if body is None:
            return _text("413 Content Too Large", "too large\n")
        expected = whatsapp_signature(self.whatsapp_app_secret, body)
        if not hmac.compare_digest(expected, environ.get("HTTP_X_HUB_SIGNATURE_256", "")):
            log.warning("web: WhatsApp notification with an invalid signature refused")
            return FORBIDDEN
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return _text("400 Bad Request", "not JSON\n")
        for value in _changes(payload):
            for kind, items in (
                ("statuses", self._wa_status),
                ("messages", self._wa_message),
                ("user_preferences", self._wa_preference),
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
        return _text("200 OK", "ok\n")

    def _wa_contact(self, wa_id: object) -> str | None:
        try:
            return normalize_phone("+" + str(wa_id).lstrip("+"))
        except ValueError:
            log.warning("web: WhatsApp id %s is not a phone number", mask_contact(str(wa_id)))
            return None

    def _wa_status(self, status: Mapping[str, Any]) -> None:
        if status.get("status") != "failed":
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
                contact = self._wa_contact(status.get("recipient_id"))
                if contact:
                    self._opt(contact, "whatsapp", "stop", "whatsapp")

    def _wa_message(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        if kind == "text":
            text = message["text"]["body"]
        elif kind == "button":
            text = message["button"].get("text") or message["button"].get("payload", "")
        elif kind == "interactive":
            reply = message["interactive"].get("button_reply") or {}
            text = reply.get("title", "")
        else:
            return
        word = keyword(str(text))
        if word is not None:
            contact = self._wa_contact(message["from"])
            if contact:
                self._opt(contact, "whatsapp", word, "whatsapp")

    def _wa_preference(self, preference: Mapping[str, Any]) -> None:
        if preference.get("category") != "marketing_messages":
            return
        value = preference.get("value")
        if value in ("stop", "resume"):
            contact = self._wa_contact(preference["wa_id"])
            if contact:
                self._opt(contact, "whatsapp", "stop" if value == "stop" else "start", "whatsapp")

    # -- unsubscribe ----------------------------------------------------------------------
    def _unsubscribe_page(self, token: str) -> _Response:
        assert self.links is not None
        found = self.links.read(token)
        if found is None:
            return _page("403 Forbidden", "This link is not valid", "<p>Nothing was changed.</p>")
        recipient, channel = found
        who = html.escape(mask_contact(recipient))
        if {channel, "*"} & self.store.optouts_for([recipient]):
            return _page("200 OK", "You are unsubscribed", f"<p>{who} gets no more reminders.</p>")
        return _page(
            "200 OK",
            "Unsubscribe",
            f"<p>Stop cart reminders to {who}?</p>"
            '<form method=post><input type=hidden name="List-Unsubscribe" value="One-Click">'
            "<button type=submit>Unsubscribe</button></form>",
        )

    def _unsubscribe(self, environ: WSGIEnvironment, token: str) -> _Response:
        assert self.links is not None
        if _body(environ) is None:
            return _text("413 Content Too Large", "too large\n")
        found = self.links.read(token)
        if found is None:
            return _page("403 Forbidden", "This link is not valid", "<p>Nothing was changed.</p>")
        recipient, channel = found
        self._opt(recipient, channel, "stop", "unsubscribe link")
        who = html.escape(mask_contact(recipient))
        return _page("200 OK", "You are unsubscribed", f"<p>{who} gets no more reminders.</p>")

    # -- the store ------------------------------------------------------------------------
    def _opt(self, contact: str, channel: str, word: str, source: str) -> None:
        now = self.clock()
        if word == "stop":
            self.store.add_optout(contact, channel, source, now)
            self.store.record_event("opt_out", now, channel=channel, detail=source)
        else:
            self.store.remove_optout(contact, channel)
            self.store.record_event("opt_in", now, channel=channel, detail=source)
        log.info("web: %s %s %s via %s", mask_contact(contact), word, channel, source)


def _allow(methods: str) -> _Response:
    return _text("405 Method Not Allowed", f"use {methods}\n")


def _body(environ: WSGIEnvironment) -> bytes | None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        return None
    return bytes(environ["wsgi.input"].read(length)) if length > 0 else b""


def _changes(payload: object) -> Iterable[Mapping[str, Any]]:
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        return
    for entry in _list(payload.get("entry")):
        for change in _list(entry.get("changes") if isinstance(entry, dict) else None):
            value = change.get("value") if isinstance(change, dict) else None
            if isinstance(value, dict):
                yield value


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _key_parts(key: object) -> tuple[str | None, int | None]:
    """``(checkout id, step)`` from an outbox key ``checkout:step:channel``."""
    if not isinstance(key, str) or key.count(":") < 2:
        return None, None
    checkout_id, step, _ = key.rsplit(":", 2)
    return checkout_id, int(step) if step.isdigit() else None


def make_app(
    store: Store,
    *,
    public_url: str,
    twilio_auth_token: str | None = None,
    whatsapp_app_secret: str | None = None,
    whatsapp_verify_token: str | None = None,
    unsubscribe_secret: str | None = None,
    mounts: Mapping[str, WSGIApplication] | None = None,
    clock: Clock = utc_now,
    connector: WebhookCapable | None = None,
) -> WSGIApplication:
    """The WSGI application described in this module's docstring.

    ``public_url`` is the URL the providers call, up to this app's root (``https://shop.
    example/cartrescue``): Twilio signs the full URL, and unsubscribe links are built from
    it. An endpoint whose secret is not given is not mounted (404). ``mounts`` maps a path
    prefix (``"/r"``) to another WSGI app, which sees the prefix in ``SCRIPT_NAME``.
    ``connector`` (one with the webhook capability) mounts ``/webhooks/checkouts``.
    """
    if not public_url.startswith(("https://", "http://")):
        raise ConfigError(f"expected an http(s) URL, got {public_url!r}", key="web.public_url")
    return _App(
        store,
        public_url=public_url,
        twilio_auth_token=twilio_auth_token,
        whatsapp_app_secret=whatsapp_app_secret,
        whatsapp_verify_token=whatsapp_verify_token,
        unsubscribe_secret=unsubscribe_secret,
        mounts=mounts or {},
        clock=clock,
        connector=connector,
    )


# -- configuration and serving ------------------------------------------------------------
_SECRETS = (
    "unsubscribe_secret",
    "twilio_auth_token",
    "whatsapp_app_secret",
    "whatsapp_verify_token",
)


@dataclass(frozen=True, slots=True)
class WebSettings:
    """The ``[web]`` table of ``cartrescue.toml``."""

    public_url: str
    unsubscribe_secret: str | None = None
    twilio_auth_token: str | None = None
    whatsapp_app_secret: str | None = None
    whatsapp_verify_token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080

    def unsubscribe_links(self) -> UnsubscribeLinks | None:
        if not self.unsubscribe_secret:
            return None
        return UnsubscribeLinks(self.public_url, self.unsubscribe_secret)

    def app(
        self,
        store: Store,
        *,
        mounts: Mapping[str, WSGIApplication] | None = None,
        connector: WebhookCapable | None = None,
    ) -> WSGIApplication:
        return make_app(
            store,
            public_url=self.public_url,
            twilio_auth_token=self.twilio_auth_token,
            whatsapp_app_secret=self.whatsapp_app_secret,
            whatsapp_verify_token=self.whatsapp_verify_token,
            unsubscribe_secret=self.unsubscribe_secret,
            mounts=mounts,
            connector=connector,
        )


def web_settings(data: Mapping[str, Any], env: Mapping[str, str]) -> WebSettings | None:
    """Read the ``[web]`` table of a parsed config; ``None`` when there is none.

    Keys: ``public_url``; ``host`` and ``port`` for ``cartrescue serve``; and, each from the
    environment variable it names, ``unsubscribe_secret_env``, ``twilio_auth_token_env``,
    ``whatsapp_app_secret_env``, ``whatsapp_verify_token_env``.
    """
    table = data.get("web")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError("expected a table", key="web")
    known = {"public_url", "host", "port", *(f"{name}_env" for name in _SECRETS)}
    for name in table:
        if name not in known:
            hint = f" (secrets come from the environment: {name}_env)" if name in _SECRETS else ""
            raise ConfigError(
                f"unknown key{hint}; expected one of: {', '.join(sorted(known))}",
                key=f"web.{name}",
            )
    url = table.get("public_url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise ConfigError(
            "expected the public https:// URL where 'cartrescue serve' is reached",
            key="web.public_url",
        )
    secrets: dict[str, str] = {}
    for name in _SECRETS:
        variable = table.get(f"{name}_env")
        if variable is None:
            continue
        if not isinstance(variable, str) or not variable:
            raise ConfigError("expected the name of an environment variable", key=f"web.{name}_env")
        if not env.get(variable):
            raise ConfigError(f"environment variable {variable} is not set", key=f"web.{name}_env")
        secrets[name] = env[variable]
    host = table.get("host", "127.0.0.1")
    port = table.get("port", 8080)
    if not isinstance(host, str) or not host:
        raise ConfigError("expected an address such as '127.0.0.1'", key="web.host")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
        raise ConfigError(f"expected a port number, got {port!r}", key="web.port")
    settings = WebSettings(public_url=url.rstrip("/"), host=host, port=port, **secrets)
    settings.unsubscribe_links()  # validates the secret's length now, not at the first send
    return settings


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """Logs requests through ``logging``, with the path cut before tokens and queries and
    without the client's address (with a link code it would name a person)."""

    def log_message(self, format: str, *args: Any) -> None:
        path = self.path.split("?")[0]
        if path.startswith("/unsubscribe/"):
            path = "/unsubscribe/…"
        log.info("web: %s %s %s", self.command, path, args[1] if len(args) > 1 else "")


def make_server(app: WSGIApplication, host: str = "127.0.0.1", port: int = 8080) -> WSGIServer:
    """The standard library's WSGI server, threaded, for ``app``; port 0 picks a free port
    (``server.server_port``). Call ``serve_forever()``, and ``shutdown()`` from another
    thread to stop."""
    return _make_server(host, port, app, server_class=_Server, handler_class=_QuietHandler)


def serve(
    app: WSGIApplication,
    host: str,
    port: int,
    *,
    ready: Callable[[WSGIServer], None] | None = None,
) -> None:
    """Serve ``app`` until interrupted. ``ready`` is called with the server once it listens
    (its ``server_port`` is the real port when ``port`` is 0)."""
    with make_server(app, host, port) as server:
        if ready is not None:
            ready(server)
        server.serve_forever()
