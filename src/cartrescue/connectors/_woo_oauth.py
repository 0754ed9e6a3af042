"""OAuth 1.0a one-legged signing the way WooCommerce verifies it over plain HTTP.

``WC_REST_Authentication::check_oauth_signature`` does not verify RFC 5849 base strings as a
generic library builds them, so this module builds exactly what it recomputes:

* the base URI is the shop's *home URL* (host and path from WordPress's settings, the scheme
  of the request) plus the request path below the home path: ``http://shop.example`` for
  the site root (plain permalinks, ``/?rest_route=…``: no trailing slash), else
  ``http://shop.example/wp-json/wc/v3/orders``;
* the parameters are the query's (as PHP decodes them into ``$_GET``, ``rest_route``
  included) plus the ``oauth_*`` ones, sorted by name (``strcmp``); each name and value is
  ``rawurlencode``d (RFC 3986: ``/`` is ``%2F``), each ``name=value`` pair is encoded once
  more and the pairs are joined with ``%26``; ``name[]`` arrays are signed as
  ``name[0]``, ``name[1]``…, and a repeated plain name as its last value;
* the HMAC (SHA-256 here; WooCommerce also takes SHA-1) is keyed with ``consumer_secret&``.

The ``woocommerce`` package's signer leaves ``/`` unencoded in values (so ``rest_route``
never verifies) and keeps the trailing slash of the site root; oauthlib encodes values
right but normalises the base URI the RFC way (``http://shop.example/``) and signs
repeated and ``[]`` names as sent, not as PHP reads them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

__all__ = ["base_uri", "sign_url", "signature"]


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def base_uri(url: str, home: str) -> str:
    """The URI WooCommerce signs for a request to ``url`` on a site whose home is ``home``."""
    request, site = urlsplit(url), urlsplit(home)
    site_path = site.path.rstrip("/")
    path = request.path
    if path.startswith(site_path + "/"):
        path = path[len(site_path) + 1 :]
    tail = "/" + path.lstrip("/") if path else ""
    return f"{request.scheme}://{site.netloc}{site_path}{tail}"


def _php_params(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(signed name, value) as WordPress sees the decoded query: the last value of a plain
    name, ``a[]`` numbered from 0, ``a[k]`` kept, in PHP's order (sorted names, then the
    array's own order). The signed name of ``a[k]`` is ``a%5Bk%5D`` (brackets encoded,
    ``k`` not, as ``join_with_equals_sign`` writes it)."""
    plain: dict[str, str] = {}
    arrays: dict[str, list[tuple[str, str]]] = {}
    for name, value in pairs:
        match = re.fullmatch(r"([^\[]+)\[([^\]]*)\]", name)
        if match is None:
            plain[name] = value
            arrays.pop(name, None)
            continue
        top, sub = match.groups()
        items = arrays.setdefault(top, [])
        plain.pop(top, None)
        if sub == "":
            sub = str(sum(1 for k, _ in items if k.isdigit()))
        items[:] = [(k, v) for k, v in items if k != sub] + [(sub, value)]
    names = sorted({*plain, *arrays}, key=str.encode)
    out: list[tuple[str, str]] = []
    for top in names:
        if top in plain:
            out.append((_encode(top), plain[top]))
        else:
            out += [(f"{_encode(top)}%5B{sub}%5D", value) for sub, value in arrays[top]]
    return out


def signature(
    method: str, url: str, home: str, params: list[tuple[str, str]], consumer_secret: str
) -> str:
    """The base64 HMAC-SHA256 WooCommerce expects for ``params`` (decoded, without
    ``oauth_signature``) on ``method url``."""
    pairs = "%26".join(_encode(f"{name}={_encode(value)}") for name, value in _php_params(params))
    text = f"{method.upper()}&{_encode(base_uri(url, home))}&{pairs}"
    digest = hmac.new(f"{consumer_secret}&".encode(), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign_url(
    method: str,
    url: str,
    *,
    home: str,
    consumer_key: str,
    consumer_secret: str,
    timestamp: int,
    nonce: str,
) -> str:
    """``url`` with the ``oauth_*`` parameters (and the signature) added to its query."""
    parts = urlsplit(url)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.startswith("oauth_")
    ]
    oauth = [
        ("oauth_consumer_key", consumer_key),
        ("oauth_nonce", nonce),
        ("oauth_signature_method", "HMAC-SHA256"),
        ("oauth_timestamp", str(timestamp)),
    ]
    signed = signature(method, url, home, query + oauth, consumer_secret)
    full = query + oauth + [("oauth_signature", signed)]
    return urlunsplit(parts._replace(query=urlencode(full, quote_via=quote, safe="")))
