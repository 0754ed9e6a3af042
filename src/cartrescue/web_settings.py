"""The ``[web]`` table of ``cartrescue.toml``: where ``cartrescue serve`` is reached, its
secrets, and the unsubscribe links the engine puts in messages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from wsgiref.types import WSGIApplication

from .channels.vonage_inbound import SIGNATURE_METHODS
from .clock import Clock, utc_now
from .connectors.base import WebhookCapable
from .conversations import Conversations
from .errors import ConfigError
from .models import ShopInfo
from .store.base import Store
from .unsubscribe import DEFAULT_TTL, UnsubscribeLinks
from .web import make_app

__all__ = ["WebSettings", "web_settings"]

_SECRETS = (
    "unsubscribe_secret",
    "unsubscribe_previous_secrets",
    "twilio_auth_token",
    "whatsapp_app_secret",
    "whatsapp_verify_token",
    "vonage_signature_secret",
    "linkmobility_gate_password",
)


@dataclass(frozen=True, slots=True)
class WebSettings:
    """The ``[web]`` table of ``cartrescue.toml``."""

    public_url: str
    unsubscribe_secret: str | None = None
    unsubscribe_previous_secrets: tuple[str, ...] = ()
    unsubscribe_ttl: timedelta = DEFAULT_TTL
    twilio_auth_token: str | None = None
    whatsapp_app_secret: str | None = None
    whatsapp_verify_token: str | None = None
    vonage_signature_secret: str | None = None
    vonage_signature_method: str = "md5hash"
    linkmobility_gate_username: str | None = None
    linkmobility_gate_password: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080

    @property
    def unsubscribe_secrets(self) -> tuple[str, ...]:
        """Newest first: the current secret, then the previous ones still accepted."""
        if not self.unsubscribe_secret:
            return ()
        return (self.unsubscribe_secret, *self.unsubscribe_previous_secrets)

    def unsubscribe_links(self, *, clock: Clock = utc_now) -> UnsubscribeLinks | None:
        if not self.unsubscribe_secret:
            return None
        return UnsubscribeLinks(
            self.public_url, self.unsubscribe_secrets, ttl=self.unsubscribe_ttl, clock=clock
        )

    def app(
        self,
        store: Store,
        *,
        mounts: Mapping[str, WSGIApplication] | None = None,
        connector: WebhookCapable | None = None,
        clock: Clock = utc_now,
        shop: ShopInfo | None = None,
        conversations: Conversations | None = None,
    ) -> WSGIApplication:
        return make_app(
            store,
            public_url=self.public_url,
            twilio_auth_token=self.twilio_auth_token,
            whatsapp_app_secret=self.whatsapp_app_secret,
            whatsapp_verify_token=self.whatsapp_verify_token,
            unsubscribe=self.unsubscribe_links(clock=clock),
            mounts=mounts,
            connector=connector,
            clock=clock,
            shop=shop,
            conversations=conversations,
            vonage_signature_secret=self.vonage_signature_secret,
            vonage_signature_method=self.vonage_signature_method,
            linkmobility_gate_username=self.linkmobility_gate_username,
            linkmobility_gate_password=self.linkmobility_gate_password,
        )


def web_settings(data: Mapping[str, Any], env: Mapping[str, str]) -> WebSettings | None:
    """Read the ``[web]`` table of a parsed config; ``None`` when there is none.

    Keys: ``public_url``; ``host`` and ``port`` for ``cartrescue serve``;
    ``unsubscribe_ttl_days`` (how long an unsubscribe link works, 365 by default); and, each
    from the environment variable it names, ``unsubscribe_secret_env``,
    ``unsubscribe_previous_secrets_env`` (older secrets still accepted after a rotation,
    separated by spaces or commas), ``twilio_auth_token_env``, ``whatsapp_app_secret_env``,
    ``whatsapp_verify_token_env``, ``vonage_signature_secret_env`` (with
    ``vonage_signature_method``, ``md5hash`` by default), ``linkmobility_gate_password_env``
    (with ``linkmobility_gate_username``: the Basic auth set on LINK Mobility's gate).
    """
    table = data.get("web")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError("expected a table", key="web")
    known = {
        "public_url",
        "host",
        "port",
        "unsubscribe_ttl_days",
        "vonage_signature_method",
        "linkmobility_gate_username",
        *(f"{name}_env" for name in _SECRETS),
    }
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
    previous = tuple(secrets.pop("unsubscribe_previous_secrets", "").replace(",", " ").split())
    if previous and "unsubscribe_secret" not in secrets:
        raise ConfigError(
            "previous secrets need a current one (unsubscribe_secret_env)",
            key="web.unsubscribe_previous_secrets_env",
        )
    days = table.get("unsubscribe_ttl_days", DEFAULT_TTL.days)
    if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        raise ConfigError(
            f"expected a positive number of days, got {days!r}", key="web.unsubscribe_ttl_days"
        )
    host = table.get("host", "127.0.0.1")
    port = table.get("port", 8080)
    if not isinstance(host, str) or not host:
        raise ConfigError("expected an address such as '127.0.0.1'", key="web.host")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
        raise ConfigError(f"expected a port number, got {port!r}", key="web.port")
    method = table.get("vonage_signature_method", "md5hash")
    if method not in SIGNATURE_METHODS:
        raise ConfigError(
            f"expected one of {', '.join(SIGNATURE_METHODS)}, got {method!r}",
            key="web.vonage_signature_method",
        )
    gate_user = table.get("linkmobility_gate_username")
    if gate_user is not None and (not isinstance(gate_user, str) or not gate_user):
        raise ConfigError("expected the gate's user name", key="web.linkmobility_gate_username")
    if (gate_user is None) != ("linkmobility_gate_password" not in secrets):
        raise ConfigError(
            "LINK Mobility's gate authenticates with both a user name and a password: set "
            "linkmobility_gate_username and linkmobility_gate_password_env together",
            key="web.linkmobility_gate_username",
        )
    settings = WebSettings(
        public_url=url.rstrip("/"),
        linkmobility_gate_username=gate_user,
        vonage_signature_method=method,
        host=host,
        port=port,
        unsubscribe_previous_secrets=previous,
        unsubscribe_ttl=timedelta(days=days),
        **secrets,
    )
    settings.unsubscribe_links()  # validates the secrets' length now, not at the first send
    return settings
