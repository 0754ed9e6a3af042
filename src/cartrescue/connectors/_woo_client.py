"""HTTP for the WooCommerce REST API: authentication, error explanations, JSON decoding.

Requests go through :class:`~cartrescue.http.HttpClient` (one session, timeouts, retries of
GETs); OAuth 1.0a signatures are built in :mod:`._woo_oauth` exactly as WooCommerce
recomputes them.

How WooCommerce authenticates (``WC_REST_Authentication``): over HTTPS it reads the consumer
key and secret from the query string (``consumer_key``/``consumer_secret``) or else from HTTP
Basic auth; over plain HTTP only OAuth 1.0a one-legged signatures in the query string count.
A request that carries no usable credentials is not an authentication error there: it runs as
a logged-out visitor and is refused by the endpoint (401 ``woocommerce_rest_cannot_view``) —
which is what a server that drops the ``Authorization`` header produces.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth
from requests.structures import CaseInsensitiveDict

from ..clock import Clock, utc_now
from ..errors import ConnectorAuthError, ConnectorError
from ..http import HttpClient, redact
from ._woo_oauth import sign_url

__all__ = ["AuthMode", "WooAuth", "WooClient", "explain_refusal", "wp_error"]

log = logging.getLogger("cartrescue.connectors.woocommerce")

AuthMode = Literal["basic", "query", "oauth1"]

_CODE = re.compile(r'"code"\s*:\s*"([^"]+)"')
_MESSAGE = re.compile(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)"')

KEYS_PAGE = "WooCommerce → Settings → Advanced → REST API"


class WooAuth(AuthBase):
    """Adds WooCommerce credentials to a request, afresh on every try (an OAuth nonce may be
    used once): ``basic`` (HTTPS), ``query`` (HTTPS, for servers that drop the
    ``Authorization`` header) or ``oauth1`` (plain HTTP: signed for the shop's ``home`` URL,
    by default the request's site root, at ``clock``'s time, with a fresh 128-bit nonce)."""

    def __init__(
        self,
        consumer_key: str,
        consumer_secret: str,
        mode: AuthMode,
        *,
        home: str = "",
        clock: Clock = utc_now,
    ) -> None:
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.mode = mode
        self.home = home
        self.clock = clock

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.mode == "basic":
            signed: requests.PreparedRequest = HTTPBasicAuth(
                self.consumer_key, self.consumer_secret
            )(request)
            return signed
        assert request.url is not None
        if self.mode == "query":
            request.prepare_url(
                request.url,
                {"consumer_key": self.consumer_key, "consumer_secret": self.consumer_secret},
            )
            return request
        request.url = sign_url(
            request.method or "GET",
            request.url,
            home=self.home or _site_root(request.url),
            consumer_key=self.consumer_key,
            consumer_secret=self.consumer_secret,
            timestamp=int(self.clock().timestamp()),
            nonce=secrets.token_hex(16),
        )
        return request


def _site_root(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def wp_error(err: ConnectorError) -> tuple[str | None, str | None]:
    """The WordPress error ``code`` and ``message`` in an error's (redacted) response snippet."""
    snippet = err.snippet or ""
    code = _CODE.search(snippet)
    message = _MESSAGE.search(snippet)
    text = None
    if message:
        try:
            text = json.loads(f'"{message.group(1)}"')
        except ValueError:
            text = message.group(1)
    return (code.group(1) if code else None, text)


def explain_refusal(
    status: int | None, code: str | None, message: str | None, mode: AuthMode
) -> str:
    """What a 401/403 from WooCommerce means for this configuration, and how to fix it."""
    said = f"WooCommerce says {message!r}" if message else "WooCommerce refused the request"
    text = (message or "").lower()
    if status == 403:
        return (
            f"{said}: the key's WordPress user may not do this; create the key for a user "
            f"with the manage_woocommerce capability (Shop manager or Administrator)"
        )
    if code and code.startswith("woocommerce_rest_cannot_"):
        if mode == "basic":
            return (
                f"{said} ({code}): the request reached WordPress without usable credentials. "
                f"Either consumer_key is unknown to the shop ({KEYS_PAGE}), or the web server "
                f"drops the Authorization header before PHP sees it (common with PHP over "
                f"CGI/FastCGI). If the key is right, set query_string_auth = true in "
                f"[connector]: the key and secret then travel in the HTTPS query string"
            )
        if mode == "query":
            return f"{said} ({code}): consumer_key is unknown to the shop ({KEYS_PAGE})"
        return (
            f"{said} ({code}): no OAuth signature reached WordPress; over plain HTTP "
            f"WooCommerce accepts only OAuth 1.0a. Use the https:// address of the shop"
        )
    if "secret is invalid" in text:
        return f"{said}: consumer_secret does not belong to consumer_key ({KEYS_PAGE})"
    if "key is invalid" in text:
        return f"{said}: consumer_key is unknown to the shop ({KEYS_PAGE})"
    if "permissions" in text:
        return (
            f"{said}: edit the key's permissions ({KEYS_PAGE}): Read to poll orders, "
            f"Read/Write to create discount codes"
        )
    if "signature" in text:
        return (
            f"{said}: OAuth 1.0a over plain HTTP signs the exact URL; url must match the "
            f"shop's address (Settings → General). Better: use https://"
        )
    if "timestamp" in text:
        return f"{said}: this machine's clock is more than 15 minutes off"
    if code == "woocommerce_rest_authentication_missing_parameter":
        return (
            f"{said}: something between here and the shop cut the OAuth parameters from "
            f"the query string. Better: use https://"
        )
    if "nonce" in text:
        return (
            f"{said}: every request is signed with a new nonce, so something between here "
            f"and the shop (a proxy or a cache) sent this one twice. Better: use https://"
        )
    return f"{said} ({code or status}): check consumer_key and consumer_secret ({KEYS_PAGE})"


def _decode(
    response: requests.Response, what: str, secrets_: tuple[str, ...], warn: Callable[[], None]
) -> Any:
    """JSON from a WordPress response, tolerating PHP notices printed before it (a site with
    ``WP_DEBUG_DISPLAY`` on prefixes ``<b>Deprecated</b>: …`` to every response)."""
    text = response.text
    try:
        return json.loads(text)
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text[:20000]):
        try:
            value, end = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if not text[end:].strip():
            warn()
            return value
    raise ConnectorError(
        f"woocommerce: {what} answered with something that is not JSON: "
        f"{redact(text, 120, secrets_)}",
        connector="woocommerce",
        status=response.status_code,
    )


class WooClient:
    """Calls one shop's REST API. ``rest_root`` is the WordPress REST root
    (``https://shop.example/wp-json``, or ``https://shop.example/?rest_route=`` on a site
    with plain permalinks); WooCommerce paths (``wc/v3/orders``) go below it. ``home`` is the
    shop's address as WordPress knows it, which OAuth signatures are made for."""

    def __init__(
        self,
        rest_root: str,
        consumer_key: str,
        consumer_secret: str,
        *,
        mode: AuthMode,
        session: requests.Session | None,
        timeout: float | tuple[float, float],
        attempts: int,
        sleep: Callable[[float], None],
        verify: bool,
        home: str = "",
        clock: Clock = utc_now,
    ) -> None:
        self.mode = mode
        self.auth = WooAuth(consumer_key, consumer_secret, mode, home=home, clock=clock)
        self.secrets = (consumer_key, consumer_secret)
        self.verify = verify
        self._noticed = False
        self.http = HttpClient(
            "woocommerce",
            rest_root,
            session=session,
            timeout=timeout,
            attempts=attempts,
            auth_hint="check consumer_key and consumer_secret",
            secrets=self.secrets,
            sleep=sleep,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        payload: Any = None,
        signed: bool = True,
    ) -> tuple[Any, CaseInsensitiveDict[str]]:
        """Send one call and return (decoded JSON, response headers); raises
        ``ConnectorAuthError`` with the fix for a refusal, ``ConnectorError`` otherwise."""
        what = f"{method} {path or '/'}"
        kwargs: dict[str, Any] = {"params": dict(params or {}), "verify": self.verify}
        if signed:
            kwargs["auth"] = self.auth
        if payload is not None:
            kwargs["json"] = payload
        try:
            response = self.http.request(method, path, **kwargs)
        except ConnectorAuthError as err:
            code, message = wp_error(err)
            raise ConnectorAuthError(
                f"woocommerce: {what} was refused (HTTP {err.status}): "
                f"{explain_refusal(err.status, code, message, self.mode)}",
                connector="woocommerce",
                status=err.status,
                snippet=err.snippet,
            ) from err
        except ConnectorError as err:
            code, message = wp_error(err)
            if code is None:
                raise
            raise ConnectorError(
                f"woocommerce: {what} failed (HTTP {err.status} {code}): {message}",
                connector="woocommerce",
                status=err.status,
                snippet=err.snippet,
            ) from err
        return _decode(response, what, self.secrets, self._notices), response.headers

    def _notices(self) -> None:
        if not self._noticed:
            self._noticed = True
            log.warning(
                "the shop prints PHP notices before its JSON; turn WP_DEBUG_DISPLAY off in "
                "wp-config.php"
            )
