"""Short links for messages: the LinkShortener protocol, self-hosted short links and the WSGI
app that redirects them.

A Shopify recovery URL is 100–130 characters: more than half of an SMS. ``SelfHostedLinks``
stores an unguessable code per checkout, step and channel in the store and puts
``base_url + code`` in the message. :func:`redirect_app` answers those links: a known code
is redirected (302) to its stored destination with UTM parameters added and the click is
recorded; an unknown code is a 404; an expired one leads to the shop's home page. Only
destinations stored by ``shorten`` are ever redirected to, so a crafted link cannot send
anyone elsewhere (no open redirect).

``cartrescue serve-links`` serves the app with the standard library's WSGI server; a larger
shop mounts ``redirect_app(store)`` in its own WSGI server (gunicorn, uWSGI, or under a path
of an existing application).
"""

from __future__ import annotations

import logging
import re
import secrets
import sqlite3
import string
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from .clock import Clock, utc_now
from .errors import ConfigError, StoreError
from .store.base import LinkRecord, Store

__all__ = ["LinkShortener", "SelfHostedLinks", "add_utm", "redirect_app", "shops_redirect_app"]

log = logging.getLogger("cartrescue.links")

BASE62 = string.digits + string.ascii_letters
_CODE = re.compile(r"[0-9A-Za-z]{7,32}")
_PATH = re.compile(r"/?(?:[^/]*/)*?(?P<code>[0-9A-Za-z]{7,32})/?")
_PREVIEW_AGENTS = re.compile(
    r"facebookexternalhit|Facebot|WhatsApp|Twitterbot|Slackbot|TelegramBot|Discordbot|"
    r"LinkedInBot|SkypeUriPreview|Googlebot|bingbot|Applebot",
    re.IGNORECASE,
)
"""User agents that fetch a link to draw a preview or index it: redirected, not counted."""


@runtime_checkable
class LinkShortener(Protocol):
    """Turns a long recovery URL into a short one for one checkout, step and channel.

    Called once per message that is about to be rendered; calling it again for the same
    checkout, step and channel should give the same link. A shortener may also offer
    ``example() -> str``, a link as long as its real ones and stored nowhere: a dry run
    renders with it, so the SMS lengths it reports are the real ones.
    """

    def shorten(self, url: str, *, checkout_id: str, step: int, channel: str) -> str: ...


def _web_url(value: object, *, key: str, what: str) -> str:
    """``value`` checked to be an absolute http(s) URL, with non-ASCII percent-encoded."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"expected an absolute http(s) URL for {what}, got {value!r}", key=key)
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ConfigError(f"{what} must not contain spaces or control characters", key=key)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"expected an absolute http(s) URL for {what}, got {value!r}", key=key)
    return quote(value, safe="/:?#[]@!$&'()*+,;=%~-._")


def add_utm(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` added to its query, keeping any that are already there."""
    parts = urlsplit(url)
    present = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    extra = urlencode([(name, value) for name, value in params.items() if name not in present])
    # The destination's own query stays byte for byte (a platform may sign or parse it).
    query = "&".join(q for q in (parts.query, extra) if q)
    return urlunsplit(parts._replace(query=query))


class SelfHostedLinks:
    """Short links served by cartrescue itself (see :func:`redirect_app`).

    ``base_url`` is where the redirect app answers, e.g. ``https://go.myshop.example/r/``;
    a link is ``base_url`` followed by ``code_length`` random base62 characters (at least 7:
    62⁷ ≈ 3.5·10¹² codes, never guessed). A link expires ``expires_after`` after it was made
    (None: never); after that it leads to ``home_url`` (the shop's home page). Every
    character of ``base_url`` costs room in an SMS: keep it short.
    """

    def __init__(
        self,
        base_url: str,
        store: Store,
        *,
        code_length: int = 8,
        expires_after: timedelta | None = timedelta(days=30),
        home_url: str | None = None,
        utm_source: str = "cartrescue",
        utm_campaign: str = "abandoned_checkout",
        utm: bool = True,
        clock: Clock = utc_now,
    ) -> None:
        base = _web_url(base_url, key="links.base_url", what="links.base_url")
        parts = urlsplit(base)
        if parts.query or parts.fragment:
            raise ConfigError("must not have a query or a fragment", key="links.base_url")
        self.base_url = base if base.endswith("/") else base + "/"
        if isinstance(code_length, bool) or not isinstance(code_length, int):
            raise ConfigError("expected a whole number from 7 to 32", key="links.code_length")
        if not 7 <= code_length <= 32:
            raise ConfigError(
                f"expected a whole number from 7 to 32, got {code_length}", key="links.code_length"
            )
        if expires_after is not None and expires_after <= timedelta(0):
            raise ConfigError("must be a positive duration", key="links.expires_after")
        self.store = store
        self.code_length = code_length
        self.expires_after = expires_after
        self.home_url = (
            _web_url(home_url, key="shop.home_url", what="the shop's home page")
            if home_url
            else None
        )
        self.utm_source = utm_source
        self.utm_campaign = utm_campaign
        self.utm = utm
        self.clock = clock

    @property
    def path(self) -> str:
        """The path the redirect app answers under (``/r/``)."""
        return urlsplit(self.base_url).path or "/"

    def example(self) -> str:
        """A link as long as the real ones, for previews."""
        return self.base_url + (BASE62[10:] * 2)[: self.code_length]

    def shorten(self, url: str, *, checkout_id: str, step: int, channel: str) -> str:
        """The short link for this checkout, step and channel, made on first use.

        A link keeps its first destination: a retried step links where the first try did.
        """
        existing = self.store.link_for(checkout_id, step, channel)
        if existing is not None:
            return self.base_url + existing.code
        destination = _web_url(url, key="link", what="a link's destination")
        now = self.clock()
        for _ in range(5):
            code = "".join(secrets.choice(BASE62) for _ in range(self.code_length))
            record = LinkRecord(
                code=code,
                checkout_id=checkout_id,
                step=step,
                channel=channel,
                destination=destination,
                home_url=self.home_url,
                created_at=now,
                expires_at=now + self.expires_after if self.expires_after else None,
            )
            try:
                self.store.save_link(record)
            except (sqlite3.IntegrityError, StoreError):
                # Either the code exists (astronomically rare) or another process made this
                # checkout's link just now: use theirs if so, else draw again.
                existing = self.store.link_for(checkout_id, step, channel)
                if existing is not None:
                    return self.base_url + existing.code
                continue
            return self.base_url + code
        raise StoreError(f"could not store a short link for checkout {checkout_id}")

    def app(self) -> WSGIApplication:
        """The redirect app for these links, with the same UTM settings."""
        return redirect_app(
            self.store,
            clock=self.clock,
            utm_source=self.utm_source,
            utm_campaign=self.utm_campaign,
            utm=self.utm,
        )


def redirect_app(
    store: Store,
    *,
    clock: Clock = utc_now,
    utm_source: str = "cartrescue",
    utm_campaign: str = "abandoned_checkout",
    utm: bool = True,
) -> WSGIApplication:
    """A WSGI application that redirects short-link codes; no global state.

    The code is the last segment of the request path, so the app answers under any prefix:
    served directly (``/r/Ab3dE9xQ``) or mounted by another server (``SCRIPT_NAME=/r``,
    ``PATH_INFO=/Ab3dE9xQ``). ``GET`` and ``HEAD`` only.

    - known, live code: ``302`` to the stored destination with ``utm_source``,
      ``utm_medium`` (the channel), ``utm_campaign`` and ``utm_content`` (``step-N``) added
      (parameters the destination already has are kept); the click is recorded unless the
      request is ``HEAD`` or comes from a link-preview robot;
    - expired code: ``302`` to the shop's home page, or ``410`` when none is known;
    - anything else: ``404``.
    """

    def respond(
        start_response: StartResponse,
        status: str,
        body: str,
        headers: Iterable[tuple[str, str]] = (),
        *,
        head: bool,
    ) -> list[bytes]:
        data = body.encode("utf-8")
        start_response(
            status,
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(data))),
                ("Cache-Control", "no-store"),
                ("Referrer-Policy", "no-referrer"),
                ("X-Robots-Tag", "noindex"),
                *headers,
            ],
        )
        return [] if head else [data]

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        head = method == "HEAD"
        if method not in ("GET", "HEAD"):
            return respond(
                start_response,
                "405 Method Not Allowed",
                "Method not allowed\n",
                [("Allow", "GET, HEAD")],
                head=head,
            )
        match = _PATH.fullmatch(str(environ.get("PATH_INFO", "")))
        if match is None:
            return respond(start_response, "404 Not Found", "Not found\n", head=head)
        code = match.group("code")
        try:
            link = store.link(code)
        except StoreError:
            log.exception("short link lookup failed")
            return respond(
                start_response,
                "503 Service Unavailable",
                "Try again in a moment\n",
                [("Retry-After", "5")],
                head=head,
            )
        if link is None or link.code != code:
            return respond(start_response, "404 Not Found", "Not found\n", head=head)
        now = clock()
        if link.expires_at is not None and link.expires_at <= now:
            if link.home_url and _safe(link.home_url):
                return respond(
                    start_response, "302 Found", "", [("Location", link.home_url)], head=head
                )
            return respond(start_response, "410 Gone", "This link has expired\n", head=head)
        if not _safe(link.destination):
            log.error("short link %s has an unusable destination; not redirecting", code)
            return respond(start_response, "404 Not Found", "Not found\n", head=head)
        location = link.destination
        if utm:
            location = add_utm(
                location,
                {
                    "utm_source": utm_source,
                    "utm_medium": link.channel,
                    "utm_campaign": utm_campaign,
                    "utm_content": f"step-{link.step}",
                },
            )
        agent = str(environ.get("HTTP_USER_AGENT", ""))
        if not head and not _PREVIEW_AGENTS.search(agent):
            try:
                store.record_click(code, now)
            except StoreError:
                log.exception("could not record a click on %s", code)
        return respond(start_response, "302 Found", "", [("Location", location)], head=head)

    return app


def _safe(url: str) -> bool:
    """A stored URL fit for a Location header: absolute http(s), printable ASCII only."""
    parts = urlsplit(url)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and url.isascii()
        and url.isprintable()
        and " " not in url
    )


def shops_redirect_app(shops: Sequence[SelfHostedLinks]) -> WSGIApplication:
    """The redirect app for many shops' links under one ``base_url`` (``[[shops]]`` share
    ``[links]``): a code is looked up in each shop's store in turn, and the shop that made
    it answers (codes are random, so two shops never share one in practice)."""
    apps = [(links.store, links.app()) for links in shops]

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        match = _PATH.fullmatch(str(environ.get("PATH_INFO", "")))
        if match is not None:
            for store, redirect in apps:
                try:
                    found = store.link(match.group("code")) is not None
                except StoreError:
                    found = True  # that shop's app answers 503, as for one shop
                if found:
                    return redirect(environ, start_response)
        return apps[0][1](environ, start_response)  # 404 (or 405), as for one shop

    return app
