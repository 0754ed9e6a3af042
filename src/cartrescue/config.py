"""``cartrescue.toml`` → the objects of a :class:`~cartrescue.engine.Recovery`.

Secrets never sit in the file: a key ending in ``_env`` names the environment variable that
holds the value (``token_env = "SHOPIFY_TOKEN"`` passes ``token``). Every mistake is a
:class:`~cartrescue.errors.ConfigError` naming the key, raised before anything runs.
"""

from __future__ import annotations

import inspect
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .channels.base import Channel
from .clock import Clock, utc_now
from .connectors.base import Connector
from .engine import Recovery
from .errors import CartRescueError, ConfigError
from .links import SelfHostedLinks
from .logsafe import register_secrets
from .models import CHANNEL_KINDS, ChannelKind, DiscountOffer, ShopInfo
from .policy import Policy, SendWindow, Step
from .registry import CHANNELS, CONNECTORS, load_plugin
from .render import TemplateRenderer
from .store.base import Store
from .store.sqlite import SQLiteStore
from .web_settings import web_settings

if TYPE_CHECKING:
    from .store.postgres import PostgresStore

__all__ = ["Config", "build_plugin", "load_config", "parse_duration"]

_SECTIONS = {"shop", "connector", "channels", "store", "policy", "templates", "links", "web", "run"}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
# Keys that hold a credential when written inline instead of through ``*_env``.
_SECRET_KEY = re.compile(r"(?:token|secret|password|api_key|_key)$")


def parse_duration(value: object, *, key: str) -> timedelta:
    """``"90m"``, ``"1h30m"``, ``"2d"``, or a number of seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"expected a duration such as '24h', got {value!r}", key=key)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.replace(" ", "").lower()
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ConfigError(f"expected a duration such as '24h' or '90m', got {value!r}", key=key)
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise ConfigError(f"expected a duration such as '24h', got {value!r}", key=key)
    if seconds < 0:
        raise ConfigError("a duration must not be negative", key=key)
    return timedelta(seconds=seconds)


def _table(data: Mapping[str, Any], name: str, key: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError("expected a table", key=key)
    return value


def _resolve_secrets(
    options: Mapping[str, Any], env: Mapping[str, str], key: str
) -> dict[str, Any]:
    resolved: dict[str, Any] = {}
    for name, value in options.items():
        if name.endswith("_env"):
            target = name[: -len("_env")]
            if not isinstance(value, str) or not value:
                raise ConfigError(
                    "expected the name of an environment variable", key=f"{key}.{name}"
                )
            if value not in env:
                raise ConfigError(f"environment variable {value} is not set", key=f"{key}.{name}")
            if target in options:
                raise ConfigError(f"give {target} or {name}, not both", key=f"{key}.{name}")
            resolved[target] = env[value]
        else:
            resolved[name] = value
    return resolved


def build_plugin(
    group: str,
    table: Mapping[str, Any],
    *,
    key: str,
    env: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """Build the plugin named by ``table["type"]`` with the table's other keys as keyword
    arguments, checked against its constructor so a misspelt key is named."""
    kind = table.get("type")
    if not isinstance(kind, str) or not kind:
        raise ConfigError("missing 'type' (the plugin name, e.g. 'shopify')", key=f"{key}.type")
    cls = load_plugin(group, kind, key=f"{key}.type")
    options = _resolve_secrets({k: v for k, v in table.items() if k != "type"}, env, key)
    signature = inspect.signature(cls)
    params = signature.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for name, value in (extra or {}).items():
        if name in params and name not in options:
            options[name] = value
    if not takes_any:
        unknown = sorted(set(options) - set(params))
        if unknown:
            allowed = sorted(
                n
                for n, p in params.items()
                if p.kind
                in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            )
            raise ConfigError(
                f"unknown key for {kind!r}; expected one of: {', '.join(allowed)}",
                key=f"{key}.{unknown[0]}",
            )
    missing = [
        n
        for n, p in params.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        and n not in options
    ]
    if missing:
        raise ConfigError(
            f"{kind!r} needs this key (or {missing[0]}_env)", key=f"{key}.{missing[0]}"
        )
    try:
        return cls(**options)
    except ConfigError as err:
        raise ConfigError(str(err), key=key) from err
    except (TypeError, ValueError, CartRescueError) as err:
        raise ConfigError(f"{kind!r} refused its settings: {err}", key=key) from err


def _policy(table: Mapping[str, Any]) -> Policy:
    known = {
        "steps",
        "max_overdue",
        "lookback",
        "quiet_hours",
        "send_window",
        "frequency_cap",
        "max_sms_per_checkout",
        "discount_cooldown",
        "attribution_window",
        "whatsapp_consent_from_sms",
    }
    for name in table:
        if name not in known:
            raise ConfigError(
                f"unknown key; expected one of: {', '.join(sorted(known))}", key=f"policy.{name}"
            )
    kwargs: dict[str, Any] = {}
    for name in (
        "max_overdue",
        "lookback",
        "frequency_cap",
        "discount_cooldown",
        "attribution_window",
    ):
        if name in table:
            kwargs[name] = parse_duration(table[name], key=f"policy.{name}")
    if "max_sms_per_checkout" in table:
        value = table["max_sms_per_checkout"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError("expected a whole number ≥ 0", key="policy.max_sms_per_checkout")
        kwargs["max_sms_per_checkout"] = value
    if "whatsapp_consent_from_sms" in table:
        value = table["whatsapp_consent_from_sms"]
        if not isinstance(value, bool):
            raise ConfigError("expected true or false", key="policy.whatsapp_consent_from_sms")
        kwargs["whatsapp_consent_from_sms"] = value
    window_key = "send_window" if "send_window" in table else "quiet_hours"
    if window_key in table:
        kwargs["send_window"] = _window(table[window_key], key=f"policy.{window_key}")
    if "steps" in table:
        kwargs["steps"] = _steps(table["steps"])
    try:
        return Policy(**kwargs)
    except ValueError as err:
        raise ConfigError(str(err), key="policy") from err


def _clock_time(value: object, key: str) -> time:
    if not isinstance(value, str) or not re.fullmatch(r"\d{1,2}:\d{2}", value):
        raise ConfigError(f"expected a time such as '09:00', got {value!r}", key=key)
    hours, minutes = map(int, value.split(":"))
    if hours > 23 or minutes > 59:
        raise ConfigError(f"{value!r} is not a time of day", key=key)
    return time(hours, minutes)


def _window(value: object, *, key: str) -> SendWindow:
    """The hours messages may go out, recipient-local: ``"09:00-20:00"``."""
    if not isinstance(value, str) or value.count("-") != 1:
        raise ConfigError(f"expected sending hours such as '09:00-20:00', got {value!r}", key=key)
    start, end = value.split("-")
    try:
        return SendWindow(_clock_time(start.strip(), key), _clock_time(end.strip(), key))
    except ValueError as err:
        raise ConfigError(str(err), key=key) from err


def _steps(value: object) -> tuple[Step, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("expected one or more [[policy.steps]] tables", key="policy.steps")
    steps = []
    for index, raw in enumerate(value, start=1):
        key = f"policy.steps[{index}]"
        if not isinstance(raw, dict):
            raise ConfigError("expected a table", key=key)
        unknown = set(raw) - {"delay", "channels", "discount"}
        if unknown:
            raise ConfigError(
                "unknown key; expected delay, channels, discount", key=f"{key}.{sorted(unknown)[0]}"
            )
        if "delay" not in raw:
            raise ConfigError("missing (e.g. delay = '1h')", key=f"{key}.delay")
        channels = raw.get("channels", ["email"])
        if not isinstance(channels, list) or not all(c in CHANNEL_KINDS for c in channels):
            raise ConfigError(
                f"expected a list of {', '.join(map(repr, CHANNEL_KINDS))}", key=f"{key}.channels"
            )
        discount = None
        if "discount" in raw:
            discount = _discount(raw["discount"], key=f"{key}.discount")
        try:
            steps.append(
                Step(
                    index,
                    parse_duration(raw["delay"], key=f"{key}.delay"),
                    tuple(cast(list[ChannelKind], channels)),
                    discount,
                )
            )
        except ValueError as err:
            raise ConfigError(str(err), key=key) from err
    return tuple(steps)


def _discount(raw: object, *, key: str) -> DiscountOffer:
    if not isinstance(raw, dict) or "percent" not in raw:
        raise ConfigError("expected { percent = 10, valid_for = '48h' }", key=key)
    try:
        percent = Decimal(str(raw["percent"]))
    except InvalidOperation:
        raise ConfigError(
            f"percent {raw['percent']!r} is not a number", key=f"{key}.percent"
        ) from None
    valid_for = parse_duration(raw.get("valid_for", "48h"), key=f"{key}.valid_for")
    try:
        return DiscountOffer(percent, int(valid_for.total_seconds()))
    except ValueError as err:
        raise ConfigError(str(err), key=key) from err


def _string(
    table: Mapping[str, Any], name: str, key: str, default: str | None = None
) -> str | None:
    value = table.get(name, default)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"expected a string, got {value!r}", key=key)
    return value


@dataclass
class Config:
    """A parsed ``cartrescue.toml``. Parts are built on demand (``stats`` needs only the
    store, ``run`` everything), each validated when built; :meth:`validate` builds them all."""

    path: Path | None
    data: dict[str, Any]
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    policy: Policy = field(default_factory=Policy)
    shop: ShopInfo = field(default_factory=lambda: ShopInfo(name="Shop"))
    run_interval: timedelta = timedelta(minutes=15)

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def _path(self, value: str) -> Path:
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    def store_path(self) -> str:
        table = _table(self.data, "store", "store")
        value = _string(table, "path", "store.path", "cartrescue.sqlite3")
        assert value is not None
        return value if value == ":memory:" else str(self._path(value))

    def store_hash_key(self) -> bytes | None:
        """The secret that keys the hashes a forgotten opt-out leaves behind, from
        ``[store] hash_key_env`` (an environment variable) or ``hash_key_file`` (a file kept
        outside the store); None when neither is configured."""
        table = _table(self.data, "store", "store")
        _known_keys(table, "store", {"path", "url_env", "hash_key_env", "hash_key_file"})
        if "hash_key_env" in table and "hash_key_file" in table:
            raise ConfigError("give hash_key_env or hash_key_file, not both", key="store")
        if "hash_key_env" in table:
            key = "store.hash_key_env"
            resolved = _resolve_secrets({"hash_key_env": table["hash_key_env"]}, self.env, "store")
            value = str(resolved["hash_key"]).strip().encode()
        elif "hash_key_file" in table:
            key = "store.hash_key_file"
            name = _string(table, "hash_key_file", key)
            assert name is not None
            try:
                value = self._path(name).read_bytes().strip()
            except OSError as err:
                raise ConfigError(f"cannot read the hash key: {err}", key=key) from None
        else:
            return None
        if len(value) < 32:
            raise ConfigError(
                "the hash key must be at least 32 characters "
                "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')",
                key=key,
            )
        return value

    def store(self) -> SQLiteStore | PostgresStore:
        """The store ``[store]`` names: PostgreSQL when ``url_env`` names the environment
        variable holding its URL (``cartrescue[postgres]``), else the SQLite file at ``path``,
        the embedded default."""
        table = _table(self.data, "store", "store")
        hash_key = self.store_hash_key()
        if "url_env" not in table:
            return SQLiteStore(self.store_path(), hash_key=hash_key)
        if "path" in table:
            raise ConfigError("give path (SQLite) or url_env (PostgreSQL), not both", key="store")
        url = _resolve_secrets({"url_env": table["url_env"]}, self.env, "store")["url"]
        try:
            from .store.postgres import PostgresStore
        except ImportError:
            raise ConfigError(
                "a PostgreSQL store needs the postgres extra: pip install 'cartrescue[postgres]'",
                key="store.url_env",
            ) from None
        return PostgresStore(str(url), hash_key=hash_key)

    def secrets(self) -> list[str]:
        """Every secret value this file configures: each ``*_env`` key's variable (in any
        table, ``[web]`` included), secrets written inline, and the store's hash key. The
        log filter redacts them wherever they appear."""
        found: list[str] = []

        def walk(table: Mapping[str, Any]) -> None:
            for name, value in table.items():
                if isinstance(value, dict):
                    walk(value)
                elif name.endswith("_env") and isinstance(value, str):
                    if self.env.get(value):
                        found.append(self.env[value])
                elif _SECRET_KEY.search(name) and isinstance(value, str):
                    found.append(value)

        walk(self.data)
        try:
            key = self.store_hash_key()
        except ConfigError:
            key = None
        if key:
            found.append(key.decode(errors="replace"))
        return found

    def connector(self) -> Connector:
        table = _table(self.data, "connector", "connector")
        if not table:
            raise ConfigError("missing [connector] table (e.g. type = 'shopify')", key="connector")
        connector = build_plugin(CONNECTORS, table, key="connector", env=self.env)
        if not isinstance(connector, Connector):
            raise ConfigError(
                f"{type(connector).__name__} does not implement the Connector protocol",
                key="connector.type",
            )
        return connector

    def channels(self) -> dict[str, Channel]:
        table = _table(self.data, "channels", "channels")
        if not table:
            raise ConfigError(
                "configure at least one of " + ", ".join(f"[channels.{k}]" for k in CHANNEL_KINDS),
                key="channels",
            )
        built: dict[str, Channel] = {}
        for kind, options in table.items():
            key = f"channels.{kind}"
            if kind not in CHANNEL_KINDS:
                *first, last = (f"channels.{k}" for k in CHANNEL_KINDS)
                raise ConfigError(f"expected {', '.join(first)} or {last}", key=key)
            if not isinstance(options, dict):
                raise ConfigError("expected a table", key=key)
            channel = build_plugin(CHANNELS, options, key=key, env=self.env, extra={"kind": kind})
            if not isinstance(channel, Channel):
                raise ConfigError(
                    f"{type(channel).__name__} does not implement the Channel protocol",
                    key=f"{key}.type",
                )
            if channel.kind != kind:
                raise ConfigError(
                    f"this channel sends {channel.kind!r}, not {kind!r}", key=f"{key}.type"
                )
            built[kind] = channel
        return built

    def template_dirs(self) -> list[Path]:
        table = _table(self.data, "templates", "templates")
        dirs = table.get("dirs", [])
        if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
            raise ConfigError("expected a list of folders", key="templates.dirs")
        return [self._path(d) for d in dirs]

    def template_settings(self) -> dict[str, Any]:
        """Keyword options for :class:`~cartrescue.render.TemplateRenderer` from
        ``[templates]`` (besides ``dirs``)."""
        table = _table(self.data, "templates", "templates")
        _known_keys(table, "templates", {"dirs", "max_segments", "smart_encoding"})
        options: dict[str, Any] = {}
        if "max_segments" in table:
            value = table["max_segments"]
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10:
                raise ConfigError(
                    f"expected a whole number from 1 to 10, got {value!r}",
                    key="templates.max_segments",
                )
            options["max_segments"] = value
        if "smart_encoding" in table:
            options["smart_encoding"] = _flag(table, "templates", "smart_encoding")
        return options

    def renderer(self) -> TemplateRenderer:
        return TemplateRenderer(
            self.template_dirs(), shop_locale=self.shop.locale, **self.template_settings()
        )

    def links(self, store: Store) -> SelfHostedLinks | None:
        """The short-link maker ``[links]`` describes, or None without a ``[links]`` table."""
        table = _table(self.data, "links", "links")
        if not table:
            return None
        return SelfHostedLinks(store=store, home_url=self.shop.home_url, **_link_options(table))

    def recovery(self, *, clock: Clock = utc_now, store: Store | None = None) -> Recovery:
        """Build the whole :class:`~cartrescue.engine.Recovery` this file describes."""
        store = store or self.store()
        web = web_settings(self.data, self.env)
        return Recovery(
            self.connector(),
            self.channels(),
            store,
            policy=self.policy,
            renderer=self.renderer(),
            clock=clock,
            shop=self.shop,
            links=self.links(store),
            unsubscribe=None if web is None else web.unsubscribe_links(clock=clock),
        )

    def validate(self) -> None:
        """Build every part once (without network calls), raising the first ConfigError."""
        self.connector()
        self.channels()
        self.renderer()
        self.template_dirs()
        self.store_path()
        self.store_hash_key()
        if _table(self.data, "links", "links"):
            _link_options(_table(self.data, "links", "links"))


def _known_keys(table: Mapping[str, Any], section: str, known: set[str]) -> None:
    for name in table:
        if name not in known:
            raise ConfigError(
                f"unknown key; expected one of: {', '.join(sorted(known))}",
                key=f"{section}.{name}",
            )


def _flag(table: Mapping[str, Any], section: str, name: str) -> bool:
    value = table[name]
    if not isinstance(value, bool):
        raise ConfigError(f"expected true or false, got {value!r}", key=f"{section}.{name}")
    return value


def _link_options(table: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for :class:`~cartrescue.links.SelfHostedLinks` from ``[links]``."""
    _known_keys(
        table,
        "links",
        {"type", "base_url", "code_length", "expires_after", "utm", "utm_source", "utm_campaign"},
    )
    kind = table.get("type", "self-hosted")
    if kind != "self-hosted":
        raise ConfigError(
            f"unknown link shortener {kind!r}; expected 'self-hosted'", key="links.type"
        )
    if "base_url" not in table:
        raise ConfigError(
            "missing (where the short links answer, e.g. 'https://go.myshop.example/r/')",
            key="links.base_url",
        )
    options: dict[str, Any] = {"base_url": table["base_url"]}
    if "code_length" in table:
        options["code_length"] = table["code_length"]
    if "expires_after" in table:
        raw = table["expires_after"]
        options["expires_after"] = (
            None if raw == "never" else parse_duration(raw, key="links.expires_after")
        )
    if "utm" in table:
        options["utm"] = _flag(table, "links", "utm")
    for name in ("utm_source", "utm_campaign"):
        if name in table:
            value = table[name]
            if not isinstance(value, str) or not value.strip():
                raise ConfigError("expected a non-empty string", key=f"links.{name}")
            options[name] = value
    return options


def load_config(
    path: str | Path | None, *, env: Mapping[str, str] | None = None, text: str | None = None
) -> Config:
    """Read and check a ``cartrescue.toml`` (or ``text``). Raises ``ConfigError``."""
    where = Path(path) if path is not None else None
    if text is None:
        if where is None:
            raise ConfigError("no configuration file given")
        try:
            text = where.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{where} not found (create one with 'cartrescue init')") from None
        except OSError as err:
            raise ConfigError(f"cannot read {where}: {err}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{where or 'config'} is not valid TOML: {err}") from None
    for name in data:
        if name not in _SECTIONS:
            raise ConfigError(
                f"unknown section; expected one of: {', '.join(sorted(_SECTIONS))}", key=name
            )
    shop_table = _table(data, "shop", "shop")
    unknown = set(shop_table) - {"name", "locale", "timezone", "home_url"}
    if unknown:
        raise ConfigError(
            "unknown key; expected name, locale, timezone, home_url",
            key=f"shop.{sorted(unknown)[0]}",
        )
    timezone = _string(shop_table, "timezone", "shop.timezone")
    if timezone is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"{timezone!r} is not an IANA time zone such as 'Europe/Oslo'", key="shop.timezone"
            ) from None
    shop = ShopInfo(
        name=_string(shop_table, "name", "shop.name", "Shop") or "Shop",
        locale=_string(shop_table, "locale", "shop.locale", "en") or "en",
        timezone=timezone,
        home_url=_string(shop_table, "home_url", "shop.home_url"),
    )
    run_table = _table(data, "run", "run")
    interval = parse_duration(run_table.get("interval", "15m"), key="run.interval")
    config = Config(
        path=where,
        data=data,
        env=dict(os.environ if env is None else env),
        policy=_policy(_table(data, "policy", "policy")),
        shop=shop,
        run_interval=interval,
    )
    register_secrets(config.secrets())
    return config
