"""cartrescue's web endpoint: routing only.

One WSGI application (:func:`make_app`) routes each request, relative to ``public_url``, to
the :class:`~cartrescue.inbound.InboundHandler` that owns the path:

``POST /twilio/sms``, ``POST /twilio/status``
    Twilio's incoming messages and status callbacks (:mod:`cartrescue.channels.twilio_inbound`).
``GET|POST /vonage/sms``, ``GET|POST /vonage/dlr``
    Vonage's inbound SMS and delivery receipts, signed
    (:mod:`cartrescue.channels.vonage_inbound`).
``GET /whatsapp``, ``POST /whatsapp``
    The WhatsApp Cloud API webhook, messages and statuses
    (:mod:`cartrescue.channels.whatsapp_inbound`).
``POST /linkmobility/sms``, ``POST /linkmobility/dlr``
    LINK Mobility's MO messages and delivery reports, with the gate's Basic auth
    (:mod:`cartrescue.channels.linkmobility_inbound`).
``GET /unsubscribe/<token>``, ``POST /unsubscribe/<token>``
    One-click unsubscribe, RFC 8058 (:mod:`cartrescue.unsubscribe`).
``POST /webhooks/checkouts``
    The shop's checkout webhooks, when the app is given the connector
    (:mod:`cartrescue.connectors.webhooks`).
``GET /healthz``
    ``ok``.

Paths are taken relative to ``public_url``'s path too (``/cartrescue/twilio/sms`` for
``https://shop.example/cartrescue``), so a reverse proxy may strip that prefix or pass it on.
An endpoint whose secret is not given is not mounted (404); a method the handler does not
take is answered 405, a bad ``Content-Length`` 400, a body over 1 MB 413, and an exception in
a handler 500 with a bare body (the log names the exception's type and where it was raised;
its message, which may hold a contact, only at DEBUG and masked). Other WSGI apps (short
links, say) can be mounted under a path prefix with ``mounts``. ``cartrescue serve`` runs it
(:mod:`cartrescue.web_server`); its ``[web]`` table is read by :mod:`cartrescue.web_settings`.

With ``[[shops]]``, :func:`make_shops_app` serves many shops from one process: each shop's
own application (its store, secrets, connector) under ``/shops/NAME/``, so a shop's Twilio
webhook is ``/shops/NAME/twilio/sms`` and its unsubscribe links
``/shops/NAME/unsubscribe/…``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from urllib.parse import urlsplit
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from .channels.linkmobility_inbound import LinkMobilityInbound, LinkMobilityReports
from .channels.twilio_inbound import TwilioInbound, TwilioStatus
from .channels.vonage_inbound import VonageInbound, VonageReceipts
from .channels.whatsapp_inbound import WhatsAppInbound
from .clock import Clock, utc_now
from .connectors.base import WebhookCapable
from .connectors.webhooks import CheckoutWebhooks
from .conversations import Conversations
from .errors import ConfigError
from .inbound import InboundHandler, InboundRequest, InboundResponse
from .logmask import mask_text
from .models import ShopInfo
from .store.base import ConversationStore, Store
from .unsubscribe import UnsubscribeHandler, UnsubscribeLinks
from .web_server import make_server, serve

__all__ = ["make_app", "make_server", "make_shops_app", "serve"]

log = logging.getLogger("cartrescue.web")

MAX_BODY = 1_000_000


class _App:
    def __init__(
        self,
        public_url: str,
        handlers: Sequence[InboundHandler],
        mounts: Mapping[str, WSGIApplication],
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.prefix = urlsplit(self.public_url).path.rstrip("/")
        self.handlers = list(handlers)
        self.mounts = sorted(
            ((prefix.rstrip("/"), app) for prefix, app in mounts.items()),
            key=lambda item: -len(item[0]),
        )
        for prefix, _ in self.mounts:
            if not prefix.startswith("/") or prefix == "":
                raise ConfigError(f"a mount prefix must start with '/', got {prefix!r}")

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if self.prefix and (path == self.prefix or path.startswith(self.prefix + "/")):
            # A reverse proxy that passes public_url's path on: answer under it all the same.
            environ = dict(environ)
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.prefix
            path = environ["PATH_INFO"] = path[len(self.prefix) :] or "/"
        for prefix, app in self.mounts:
            if path == prefix or path.startswith(prefix + "/"):
                environ = dict(environ)
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
                environ["PATH_INFO"] = path[len(prefix) :]
                return app(environ, start_response)
        try:
            response = self._route(environ, path)
        except Exception as err:  # a bug must answer 500, never take the server down
            where = _where(err)
            log.error(
                "web: %s %s failed: %s%s",
                environ.get("REQUEST_METHOD"),
                _log_path(path),
                type(err).__name__,
                f" at {where}" if where else "",
            )
            log.debug("web: the error was: %s", mask_text(str(err)))
            response = InboundResponse.text(500, "internal error\n")
        start_response(
            f"{response.status} {_phrase(response.status)}",
            [
                ("Content-Type", response.content_type),
                ("Content-Length", str(len(response.body))),
                ("Cache-Control", "no-store"),
                *response.headers,
            ],
        )
        return [response.body]

    def _route(self, environ: WSGIEnvironment, path: str) -> InboundResponse:
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz":
            return InboundResponse.text(200, "ok\n")
        handler = self._handler(path)
        if handler is None:
            return InboundResponse.text(404, "not found\n")
        if method not in handler.methods:
            return InboundResponse.text(405, f"use {', '.join(handler.methods)}\n")
        try:
            body = _body(environ) if method == "POST" else b""
        except ValueError:
            return InboundResponse.text(400, "bad Content-Length\n")
        if body is None:
            return InboundResponse.text(413, "too large\n")
        query = environ.get("QUERY_STRING", "")
        request = InboundRequest(
            method=method,
            path=path,
            url=self.public_url + path + (f"?{query}" if query else ""),
            query=query,
            headers={
                key[5:].replace("_", "-").title(): str(value)
                for key, value in environ.items()
                if key.startswith("HTTP_")
            },
            body=body,
        )
        return handler.handle(request)

    def _handler(self, path: str) -> InboundHandler | None:
        for handler in self.handlers:
            route = handler.route
            if path == route or (route.endswith("/") and path.startswith(route)):
                return handler
        return None


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _where(err: BaseException) -> str:
    """``module.py:line`` where ``err`` was raised: enough to find the bug, and no data."""
    trace = err.__traceback__
    while trace is not None and trace.tb_next is not None:
        trace = trace.tb_next
    if trace is None:
        return ""
    code = trace.tb_frame.f_code
    return f"{code.co_filename.rsplit('/', 1)[-1]}:{trace.tb_lineno} in {code.co_name}"


def _log_path(path: str) -> str:
    return "/unsubscribe/…" if path.startswith("/unsubscribe/") else path[:200]


def _body(environ: WSGIEnvironment) -> bytes | None:
    """The request body; None when it is over the limit; ValueError for a bad length."""
    raw = str(environ.get("CONTENT_LENGTH") or "0").strip()
    if not raw.isdigit() or not raw.isascii() or len(raw) > 12:
        raise ValueError("bad Content-Length")
    length = int(raw)
    if length > MAX_BODY:
        return None
    return bytes(environ["wsgi.input"].read(length)) if length > 0 else b""


def make_app(
    store: Store,
    *,
    public_url: str,
    twilio_auth_token: str | None = None,
    whatsapp_app_secret: str | None = None,
    whatsapp_verify_token: str | None = None,
    unsubscribe_secret: str | Sequence[str] | None = None,
    unsubscribe: UnsubscribeLinks | None = None,
    mounts: Mapping[str, WSGIApplication] | None = None,
    clock: Clock = utc_now,
    connector: WebhookCapable | None = None,
    handlers: Sequence[InboundHandler] = (),
    shop: ShopInfo | None = None,
    conversations: Conversations | None = None,
    vonage_signature_secret: str | None = None,
    vonage_signature_method: str = "md5hash",
    linkmobility_gate_username: str | None = None,
    linkmobility_gate_password: str | None = None,
) -> WSGIApplication:
    """The WSGI application described in this module's docstring.

    ``public_url`` is the URL the providers call, up to this app's root (``https://shop.
    example/cartrescue``): Twilio signs the full URL, and unsubscribe links are built from
    it. An endpoint whose secret is not given is not mounted (404). Unsubscribe links are
    read with ``unsubscribe`` or, from ``unsubscribe_secret`` (one secret, or several newest
    first), with default :class:`~cartrescue.unsubscribe.UnsubscribeLinks`. ``mounts`` maps a
    path prefix (``"/r"``) to another WSGI app, which sees the prefix in ``SCRIPT_NAME``.
    ``connector`` (one with the webhook capability) mounts ``/webhooks/checkouts``.
    ``handlers`` adds other :class:`~cartrescue.inbound.InboundHandler` s. ``shop`` names the
    shop on the unsubscribe page, and its locale is the page's language when the link does
    not carry one. ``conversations`` is what replies that are not keywords go to (recorded,
    paused, forwarded); by default, when ``store`` keeps conversations, they are recorded and
    pause their checkout for :data:`~cartrescue.conversations.DEFAULT_PAUSE`. LINK
    Mobility's routes need both ``linkmobility_gate_username`` and ``_password`` (the Basic
    auth credentials set on the gate).
    """
    if conversations is None and isinstance(store, ConversationStore):
        conversations = Conversations(store, clock=clock)
    if not public_url.startswith(("https://", "http://")):
        raise ConfigError(f"expected an http(s) URL, got {public_url!r}", key="web.public_url")
    routes: list[InboundHandler] = list(handlers)
    if twilio_auth_token:
        routes.append(
            TwilioInbound(store, twilio_auth_token, clock=clock, conversations=conversations)
        )
        routes.append(TwilioStatus(store, twilio_auth_token, clock=clock))
    if vonage_signature_secret:
        for vonage in (VonageInbound, VonageReceipts):
            routes.append(
                vonage(
                    store,
                    vonage_signature_secret,
                    method=vonage_signature_method,
                    clock=clock,
                    conversations=conversations,
                )
            )
    if linkmobility_gate_username and linkmobility_gate_password:
        user, password = linkmobility_gate_username, linkmobility_gate_password
        routes.append(LinkMobilityReports(store, user, password, clock=clock))
        routes.append(
            LinkMobilityInbound(store, user, password, clock=clock, conversations=conversations)
        )
    if whatsapp_app_secret:
        routes.append(
            WhatsAppInbound(
                store,
                whatsapp_app_secret,
                whatsapp_verify_token,
                clock=clock,
                conversations=conversations,
            )
        )
    if connector is not None:
        routes.append(CheckoutWebhooks(connector, store, clock=clock))
    if unsubscribe is None and unsubscribe_secret:
        unsubscribe = UnsubscribeLinks(public_url, unsubscribe_secret, clock=clock)
    if unsubscribe is not None:
        routes.append(
            UnsubscribeHandler(
                unsubscribe,
                store,
                clock=clock,
                shop_name=shop.name if shop else None,
                shop_locale=shop.locale if shop else None,
            )
        )
    return _App(public_url, routes, mounts or {})


def make_shops_app(
    shops: Mapping[str, WSGIApplication],
    *,
    public_url: str,
    mounts: Mapping[str, WSGIApplication] | None = None,
) -> WSGIApplication:
    """One WSGI application for many shops: ``/shops/NAME/…`` goes to ``shops[NAME]`` (made
    by :func:`make_app` with ``public_url`` + ``/shops/NAME``), which sees ``/shops/NAME`` in
    ``SCRIPT_NAME``; ``/healthz`` answers ``ok``; ``mounts`` as in :func:`make_app`; anything
    else is 404. ``public_url``'s own path may be stripped by a reverse proxy or passed on."""
    router = _App(public_url, [], mounts or {})

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        prefix = router.prefix
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix) :] or "/"
        else:
            prefix = ""
        first, _, rest = path[len("/shops/") :].partition("/")
        if path.startswith("/shops/") and first in shops:
            inner = dict(environ)
            inner["SCRIPT_NAME"] = f"{environ.get('SCRIPT_NAME', '')}{prefix}/shops/{first}"
            inner["PATH_INFO"] = "/" + rest
            return shops[first](inner, start_response)
        return router(environ, start_response)

    return app
