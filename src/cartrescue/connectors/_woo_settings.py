"""The WooCommerce connector's settings, checked once when it is built.

Every mistake is a :class:`~cartrescue.errors.ConfigError` naming the key as it is written in
``cartrescue.toml`` (``statuses``, ``consent_meta.sms``, …).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError
from ._woo_client import AuthMode
from ._woo_orders import Consent, parse_consent

__all__ = ["DEFAULT_CREATED_VIA", "DEFAULT_STATUSES", "Settings", "parse_settings"]

DEFAULT_STATUSES = ("pending", "failed")
DEFAULT_CREATED_VIA = ("checkout", "store-api")
_NEVER_ABANDONED = frozenset({"processing", "completed", "refunded", "trash", "any"})
_URL = re.compile(r"^https?://[^/\s]+")


@dataclass(frozen=True, slots=True)
class Settings:
    url: str
    consumer_key: str
    consumer_secret: str
    statuses: tuple[str, ...]
    created_via: frozenset[str]
    paid_statuses: frozenset[str]
    consent: Consent
    auth_mode: AuthMode
    rest_root: str
    webhook_secret: str | None
    coupon_prefix: str
    per_page: int
    timeout: float | tuple[float, float]
    attempts: int
    verify_ssl: bool


def _words(value: object, key: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(
        isinstance(v, str) and v.strip() for v in items
    ):
        raise ConfigError(f"expected a list of names, got {value!r}", key=key)
    if not items:
        raise ConfigError("name at least one", key=key)
    return tuple(dict.fromkeys(v.strip() for v in items))


def _secret(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"expected a non-empty string (or {key}_env)", key=key)
    return value.strip()


def _flag(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError("expected true or false", key=key)
    return value


def _whole(value: object, key: str, low: int, high: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"expected {what}", key=key)
    return value


def _timeout(value: object) -> float | tuple[float, float]:
    def seconds(v: object) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and v > 0

    if seconds(value):
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, list | tuple) and len(value) == 2 and all(seconds(v) for v in value):
        return (float(value[0]), float(value[1]))
    raise ConfigError(
        f"expected seconds (30) or [connect, read] seconds ([5, 30]), got {value!r}",
        key="timeout",
    )


def _url(value: object, key: str) -> str:
    if not isinstance(value, str) or not _URL.match(value.strip()):
        raise ConfigError(
            f"expected an address such as https://shop.example, got {value!r}", key=key
        )
    return value.strip().rstrip("/")


def parse_settings(
    url: object,
    consumer_key: object,
    consumer_secret: object,
    *,
    statuses: object,
    created_via: object,
    paid_statuses: object,
    consent_meta: object,
    consent_meta_value: object,
    consent: object,
    query_string_auth: object,
    webhook_secret: object,
    coupon_prefix: object,
    per_page: object,
    timeout: object,
    attempts: object,
    verify_ssl: object,
    base_url: object,
) -> Settings:
    """Check every setting; the authentication follows the address: Basic (or the query
    string) over HTTPS, OAuth 1.0a over plain HTTP."""
    shop = _url(url, "url")
    chosen = _words(statuses, "statuses")
    paid = _words(paid_statuses, "paid_statuses")
    for status in chosen:
        if status in _NEVER_ABANDONED or status in paid:
            raise ConfigError(f"{status!r} orders are not abandoned checkouts", key="statuses")
    if not isinstance(coupon_prefix, str) or not re.fullmatch(r"[A-Za-z0-9-]{0,12}", coupon_prefix):
        raise ConfigError("expected up to 12 letters, digits or dashes", key="coupon_prefix")
    if webhook_secret is not None and (not isinstance(webhook_secret, str) or not webhook_secret):
        raise ConfigError(
            "expected the webhook's secret (or webhook_secret_env)", key="webhook_secret"
        )
    query = _flag(query_string_auth, "query_string_auth")
    mode: AuthMode = ("query" if query else "basic") if shop.startswith("https://") else "oauth1"
    return Settings(
        url=shop,
        consumer_key=_secret(consumer_key, "consumer_key"),
        consumer_secret=_secret(consumer_secret, "consumer_secret"),
        statuses=chosen,
        created_via=frozenset(_words(created_via, "created_via")),
        paid_statuses=frozenset(paid),
        consent=parse_consent(consent_meta, consent_meta_value, consent),
        auth_mode=mode,
        rest_root=f"{shop}/wp-json" if base_url is None else _url(base_url, "base_url"),
        webhook_secret=webhook_secret,
        coupon_prefix=coupon_prefix.upper(),
        per_page=_whole(
            per_page, "per_page", 1, 100, "a whole number from 1 to 100 (WordPress's maximum)"
        ),
        timeout=_timeout(timeout),
        attempts=_whole(attempts, "attempts", 1, 20, "a whole number from 1 to 20"),
        verify_ssl=_flag(verify_ssl, "verify_ssl"),
    )
