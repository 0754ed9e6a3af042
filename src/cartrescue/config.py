"""``cartrescue.toml`` → the objects of a :class:`~cartrescue.engine.Recovery`.

The file is checked against the declared settings (:mod:`cartrescue.settings`): the
sections, and each ``[connector]`` / ``[channels.KIND]`` table against the settings its plugin
declares. Secrets never sit in the file: a key ending in ``_env`` names the environment
variable that holds the value (``token_env = "SHOPIFY_TOKEN"`` passes ``token``). Every
mistake in the file is reported at once, in one :class:`~cartrescue.errors.ConfigError` whose
``problems`` each name the dotted key, what was expected and found, and the fix — before
anything runs.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import time, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .channels.base import Channel
from .clock import Clock, utc_now
from .connectors.base import Connector
from .conversations import Conversations, EmailForwarder, Forwarder, WebhookForwarder
from .engine import Recovery
from .errors import CartRescueError, ConfigError, ConfigProblem, PluginError
from .experiments import Arm, Experiment, ExperimentPlan
from .links import SelfHostedLinks
from .logsafe import register_secrets
from .models import CHANNEL_KINDS, ChannelKind, DiscountOffer, ShopInfo
from .policy import Policy, SendWindow, SoldOutItems, Step
from .registry import CHANNELS, CONNECTORS, load_plugin
from .render import TemplateRenderer
from .rfm import DEFAULT_GROUPS, Cutoffs, Rfm, RfmGroup, RfmMethod
from .segments import CustomerKind, Segment, SegmentConditions
from .settings.base import parse_duration, validate_table
from .settings.problems import nearest_key, unknown_key_problem
from .settings.schema import plugin_settings_model
from .settings.sections import (
    ConfigSettings,
    DiscountSettings,
    ExperimentSettings,
    LinksSettings,
    PolicySettings,
    RfmSettings,
    SegmentSettings,
    StepSettings,
)
from .store.base import AttributionWindows, ConversationStore, Store
from .store.sqlite import SQLiteStore
from .web_settings import web_settings

if TYPE_CHECKING:
    from .store.postgres import PostgresStore

__all__ = ["Config", "build_plugin", "load_config", "parse_duration"]

# Keys that hold a credential when written inline instead of through ``*_env``.
_SECRET_KEY = re.compile(r"(?:token|secret|password|api_key|_key)$")
_INTERNALS = ("Callable", "Session", "Clock", "TextIO", "SSLContext")
"""Constructor parameters with these types are for Python callers (tests inject them);
never offered as config keys."""


def _settable(param: inspect.Parameter) -> bool:
    if param.kind not in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
        return False
    if param.name in ("kind", "session", "clock", "sleep", "monotonic", "now", "stream"):
        return False
    annotation = str(param.annotation)
    return not any(word in annotation for word in _INTERNALS)


def _by_signature(
    cls: type,
    options: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    key: str,
    problems: list[ConfigProblem],
) -> dict[str, Any] | None:
    """For plugins that declare no settings model: ``*_env`` keys from the environment, the
    other keys checked against the constructor's signature."""
    before = len(problems)
    resolved: dict[str, Any] = {}
    for name, value in options.items():
        if not name.endswith("_env"):
            resolved[name] = value
            continue
        target = name.removesuffix("_env")
        if target in options:
            problems.append(
                ConfigProblem(
                    f"{key}.{name}", f"both {target} and {name} are given", f"keep only {name}"
                )
            )
        elif not isinstance(value, str) or not value:
            problems.append(
                ConfigProblem(
                    f"{key}.{name}",
                    f"expected the name of an environment variable, found {value!r}",
                    f'write {name} = "{target.upper()}"',
                )
            )
        elif not env.get(value):
            problems.append(
                ConfigProblem(
                    f"{key}.{name}",
                    f"environment variable {value} is not set (or is empty)",
                    f"set {value} in the environment cartrescue runs with "
                    "(e.g. the env file cron or systemd reads)",
                )
            )
        else:
            resolved[target] = env[value]
    params = inspect.signature(cls).parameters
    settable = [n for n, p in params.items() if _settable(p)]
    valid = sorted({*settable, *(f"{n}_env" for n in settable)})
    meant: set[str] = set()
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        for name in sorted(options):
            target = name.removesuffix("_env") if name.endswith("_env") else name
            if target not in params:
                problems.append(unknown_key_problem(f"{key}.{name}", name, valid))
                meant.add((nearest_key(name, valid) or "").removesuffix("_env"))
    for name in settable:
        param = params[name]
        given = name in resolved or f"{name}_env" in options or name in meant
        if param.default is inspect.Parameter.empty and not given:
            problems.append(
                ConfigProblem(
                    f"{key}.{name}",
                    "missing; this key is required",
                    f'add {name} = … (or {name}_env = "VARIABLE" for a secret)',
                )
            )
    return resolved if len(problems) == before else None


def _plugin_fix(group: str, name: str) -> str:
    installed = sorted({ep.name for ep in entry_points(group=group)})
    near = difflib.get_close_matches(name, installed, n=1)
    if near:
        return f'did you mean type = "{near[0]}"?'
    return (
        "install the package that provides it, or name one of those installed"
        if installed
        else "install a package that provides one"
    )


def check_plugin(
    group: str,
    table: Mapping[str, Any],
    *,
    key: str,
    env: Mapping[str, str],
    problems: list[ConfigProblem],
    extra: Mapping[str, Any] | None = None,
) -> tuple[type, dict[str, Any]] | None:
    """Find the plugin ``table["type"]`` names and check the table's other keys against the
    settings it declares (``settings_model``), or else its constructor's signature. Returns
    the class and its keyword arguments, or None with every mistake appended to
    ``problems``."""
    kind = table.get("type")
    if not isinstance(kind, str) or not kind:
        example = "shopify" if group == CONNECTORS else "twilio"
        problems.append(
            ConfigProblem(f"{key}.type", "missing the plugin's name", f'add type = "{example}"')
        )
        return None
    try:
        cls = load_plugin(group, kind, key=f"{key}.type")
    except PluginError as err:
        fix = err.fix or (_plugin_fix(group, kind) if ":" not in kind else "correct the path")
        problems.append(ConfigProblem(f"{key}.type", err.message, fix))
        return None
    options = {k: v for k, v in table.items() if k != "type"}
    model = plugin_settings_model(cls)
    kwargs: dict[str, Any] | None
    if model is not None:
        settings = validate_table(model, options, env=env, prefix=key, problems=problems)
        kwargs = None if settings is None else settings.given()
    else:
        kwargs = _by_signature(cls, options, env=env, key=key, problems=problems)
    if kwargs is None:
        return None
    params = inspect.signature(cls).parameters
    for name, value in (extra or {}).items():
        if name in params and name not in kwargs:
            kwargs[name] = value
    return cls, kwargs


def build_plugin(
    group: str,
    table: Mapping[str, Any],
    *,
    key: str,
    env: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """Build the plugin named by ``table["type"]`` with the table's other keys as keyword
    arguments, checked first against the settings the plugin declares (or its constructor),
    so every mistake in the table is reported at once."""
    problems: list[ConfigProblem] = []
    found = check_plugin(group, table, key=key, env=env, problems=problems, extra=extra)
    if found is None:
        raise ConfigError(problems=problems)
    cls, kwargs = found
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(
            problems=[
                ConfigProblem(
                    f"{key}.{p.key}" if p.key else key,
                    p.message,
                    p.fix or f"correct {key}.{p.key or 'type'} in cartrescue.toml",
                )
                for p in err.problems
            ]
        ) from err
    except (TypeError, ValueError, CartRescueError) as err:
        raise ConfigError(
            f"{table['type']!r} refused its settings: {err}",
            key=key,
            fix=f"correct the [{key}] table",
        ) from err


def _clock_time(value: str) -> time:
    hours, minutes = map(int, value.strip().split(":"))
    return time(hours, minutes)


def _window(value: str) -> SendWindow:
    start, end = value.split("-")
    return SendWindow(_clock_time(start), _clock_time(end))


def _offer(settings: DiscountSettings) -> DiscountOffer:
    return DiscountOffer(
        settings.percent,
        int(settings.valid_for.total_seconds()),
        min_subtotal=settings.min_subtotal,
        first_time_only=settings.first_time_only,
        amount=settings.amount,
        free_shipping=settings.free_shipping,
    )


def _steps(
    raws: Sequence[StepSettings], where: str, problems: list[ConfigProblem]
) -> tuple[Step, ...]:
    steps = []
    for index, raw in enumerate(raws, start=1):
        discount = _offer(raw.discount) if raw.discount is not None else None
        try:
            steps.append(Step(index, raw.delay, tuple(raw.channels), discount))
        except ValueError as err:
            problems.append(ConfigProblem(f"{where}[{index}]", str(err), "correct this step"))
    return tuple(steps)


def _rfm(settings: RfmSettings) -> Rfm:
    """The :class:`~cartrescue.rfm.Rfm` of a checked ``[rfm]`` table."""
    low_r, high_r = settings.recency_days
    low_f, high_f = settings.orders
    low_m, high_m = settings.amount_spent
    groups = (
        tuple(
            RfmGroup(
                g.name,
                frozenset(g.recency) if g.recency is not None else None,
                frozenset(g.frequency) if g.frequency is not None else None,
                frozenset(g.monetary) if g.monetary is not None else None,
            )
            for g in settings.groups
        )
        if settings.groups is not None
        else DEFAULT_GROUPS
    )
    return Rfm(
        cutoffs=Cutoffs((low_r, high_r), (low_f, high_f), (low_m, high_m)),
        method=RfmMethod(settings.method),
        groups=groups,
        min_customers=settings.min_customers,
    )


def _policy(
    settings: PolicySettings,
    problems: list[ConfigProblem],
    segments: Sequence[SegmentSettings] = (),
    rfm: RfmSettings | None = None,
) -> Policy:
    """The :class:`~cartrescue.policy.Policy` of a checked ``[policy]`` table."""
    kwargs: dict[str, Any] = {
        name: getattr(settings, name)
        for name in (
            "max_overdue",
            "lookback",
            "frequency_cap",
            "discount_cooldown",
            "attribution_window",
            "max_sms_per_checkout",
            "whatsapp_consent_from_sms",
            "skip_sold_out",
        )
        if getattr(settings, name) is not None
    }
    if settings.sold_out_items is not None:
        kwargs["sold_out_items"] = SoldOutItems(settings.sold_out_items)
    window = settings.send_window or settings.quiet_hours
    if window is not None:
        kwargs["send_window"] = _window(window)
    if settings.steps is not None:
        kwargs["steps"] = _steps(settings.steps, "policy.steps", problems)
    built = []
    for number, segment in enumerate(segments, start=1):
        where = f"segments[{number}]"
        try:
            built.append(
                Segment(
                    segment.name,
                    SegmentConditions(
                        min_value=segment.min_value,
                        max_value=segment.max_value,
                        min_items=segment.min_items,
                        max_items=segment.max_items,
                        customer=CustomerKind(segment.customer) if segment.customer else None,
                        countries=frozenset(segment.countries) if segment.countries else None,
                        all_in_stock=segment.all_in_stock,
                        product_tags=frozenset(segment.product_tags)
                        if segment.product_tags
                        else None,
                        collections=frozenset(segment.collections) if segment.collections else None,
                        reasons=frozenset(segment.reasons) if segment.reasons else None,
                        rfm=frozenset(segment.rfm) if segment.rfm else None,
                    ),
                    steps=_steps(segment.steps, f"{where}.steps", problems)
                    if segment.steps is not None
                    else None,
                    skip=segment.skip,
                )
            )
        except ValueError as err:
            problems.append(ConfigProblem(where, str(err), "correct this segment"))
    kwargs["segments"] = tuple(built)
    if rfm is not None:
        kwargs["rfm"] = _rfm(rfm)
    try:
        return Policy(**kwargs)
    except ValueError as err:
        problems.append(
            ConfigProblem(
                "policy.steps", str(err), "give each step a longer delay than the one before"
            )
            if "step" in str(err)
            else ConfigProblem("policy", str(err), "correct the [policy] table")
        )
        return Policy()


@dataclass
class Config:
    """A checked ``cartrescue.toml``. :func:`load_config` checks the whole file (sections,
    plugin tables, environment variables) and reports every mistake at once; parts are built
    on demand (``stats`` needs only the store, ``run`` everything)."""

    path: Path | None
    data: dict[str, Any]
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    policy: Policy = field(default_factory=Policy)
    shop: ShopInfo = field(default_factory=lambda: ShopInfo(name="Shop"))
    run_interval: timedelta = timedelta(minutes=15)
    settings: ConfigSettings = field(default_factory=ConfigSettings)
    unset_env: frozenset[str] = frozenset()
    """Variables named by ``*_env`` keys that are not set, in a config loaded with
    ``require_secrets=False``; a part that needs one raises ConfigError when built."""
    shop_key: str = ""
    """The ``[[shops]]`` name this configuration is for ("" in a single-shop file): part of
    every key in the store."""
    shops: dict[str, Config] = field(default_factory=dict)
    """Each ``[[shops]]`` entry's own configuration, by name (empty in a single-shop file);
    see :mod:`cartrescue.shops`."""

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def _path(self, value: str) -> Path:
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    def store_path(self) -> str:
        """The SQLite file; with many shops, one file per shop beside it
        (``cartrescue.sqlite3`` → ``cartrescue.SHOP.sqlite3``)."""
        value = self.settings.store.path
        if value == ":memory:":
            return value
        path = self._path(value)
        if self.shop_key:
            path = path.with_name(f"{path.stem}.{self.shop_key}{path.suffix or '.sqlite3'}")
        return str(path)

    def store_hash_key(self) -> bytes | None:
        """The secret that keys the hashes a forgotten opt-out leaves behind, from
        ``[store] hash_key_env`` (an environment variable) or ``hash_key_file`` (a file kept
        outside the store); None when neither is configured."""
        store = self.settings.store
        if store.hash_key is not None:
            key, variable = "store.hash_key_env", self.data["store"].get("hash_key_env")
            if variable in self.unset_env:
                raise ConfigError(
                    f"environment variable {variable} is not set (or is empty)",
                    key=key,
                    fix=f"set {variable} in the environment cartrescue runs with "
                    "(e.g. the env file cron or systemd reads)",
                )
            value = store.hash_key.strip().encode()
        elif store.hash_key_file is not None:
            key = "store.hash_key_file"
            try:
                value = self._path(store.hash_key_file).read_bytes().strip()
            except OSError as err:
                raise ConfigError(
                    f"cannot read the hash key: {err.strerror}",
                    key=key,
                    fix="check the file exists and the user cartrescue runs as can read it",
                ) from None
        else:
            return None
        if len(value) < 32:
            raise ConfigError(
                f"the hash key has {len(value)} characters; at least 32 are needed",
                key=key,
                fix="python -c 'import secrets; print(secrets.token_hex(32))'",
            )
        return value

    def store(self) -> SQLiteStore | PostgresStore:
        """The store ``[store]`` names: PostgreSQL when ``url_env`` names the environment
        variable holding its URL (``cartrescue[postgres]``), else the SQLite file at ``path``,
        the embedded default."""
        settings = self.settings.store
        hash_key = self.store_hash_key()
        if settings.url is None:
            return SQLiteStore(self.store_path(), hash_key=hash_key)
        variable = self.data["store"].get("url_env")
        if variable in self.unset_env:
            raise ConfigError(
                f"environment variable {variable} is not set (or is empty)",
                key="store.url_env",
                fix=f"set {variable} in the environment cartrescue runs with",
            )
        try:
            from .store.postgres import PostgresStore
        except ImportError:
            raise ConfigError(
                "a PostgreSQL store needs the postgres extra",
                key="store.url_env",
                fix="pip install 'cartrescue[postgres]'",
            ) from None
        return PostgresStore(settings.url, shop=self.shop_key, hash_key=hash_key)

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
        table = self.data.get("connector")
        if not table:
            raise ConfigError(
                "missing the [connector] table",
                key="connector",
                fix='add [connector] type = "shopify"',
            )
        connector = build_plugin(CONNECTORS, table, key="connector", env=self.env)
        if not isinstance(connector, Connector):
            raise ConfigError(
                f"{type(connector).__name__} does not implement the Connector protocol",
                key="connector.type",
                fix="name a connector plugin",
            )
        return connector

    def channels(self) -> dict[str, Channel]:
        table = self.data.get("channels")
        if not table:
            raise ConfigError(
                "no channel configured",
                key="channels",
                fix="add at least one of " + ", ".join(f"[channels.{k}]" for k in CHANNEL_KINDS),
            )
        built: dict[str, Channel] = {}
        for kind, options in table.items():
            key = f"channels.{kind}"
            if kind not in CHANNEL_KINDS:
                *first, last = (f"channels.{k}" for k in CHANNEL_KINDS)
                raise ConfigError(f"expected {', '.join(first)} or {last}", key=key)
            channel = build_plugin(CHANNELS, options, key=key, env=self.env, extra={"kind": kind})
            if not isinstance(channel, Channel):
                raise ConfigError(
                    f"{type(channel).__name__} does not implement the Channel protocol",
                    key=f"{key}.type",
                    fix="name a channel plugin",
                )
            if channel.kind != kind:
                raise ConfigError(
                    f"this channel sends {channel.kind!r}, not {kind!r}",
                    key=f"{key}.type",
                    fix=f"move this table to [channels.{channel.kind}]",
                )
            built[kind] = channel
        return built

    def template_dirs(self) -> list[Path]:
        return [self._path(d) for d in self.settings.templates.dirs]

    def template_settings(self) -> dict[str, Any]:
        """Keyword options for :class:`~cartrescue.render.TemplateRenderer` from
        ``[templates]`` (besides ``dirs``)."""
        templates = self.settings.templates
        options: dict[str, Any] = {}
        if templates.max_segments is not None:
            options["max_segments"] = templates.max_segments
        if templates.smart_encoding is not None:
            options["smart_encoding"] = templates.smart_encoding
        return options

    def renderer(self) -> TemplateRenderer:
        return TemplateRenderer(
            self.template_dirs(), shop_locale=self.shop.locale, **self.template_settings()
        )

    def links(self, store: Store) -> SelfHostedLinks | None:
        """The short-link maker ``[links]`` describes, or None without a ``[links]`` table."""
        if self.settings.links is None:
            return None
        return SelfHostedLinks(
            store=store, home_url=self.shop.home_url, **_link_options(self.settings.links)
        )

    def conversations(self, store: Store, *, clock: Clock = utc_now) -> Conversations | None:
        """What ``[conversations]`` asks of replies (pause, forwards); None when ``store``
        keeps no conversations."""
        if not isinstance(store, ConversationStore):
            return None
        settings = self.settings.conversations
        forwarders: list[Forwarder] = []
        if settings.webhook_url and settings.webhook_secret:
            forwarders.append(
                WebhookForwarder(settings.webhook_url, settings.webhook_secret, clock=clock)
            )
        if settings.email_to:
            options = (self.data.get("channels") or {}).get("email")
            if not options:
                raise ConfigError(
                    "forwarding replies by email needs an email channel",
                    key="conversations.email_to",
                    fix="add [channels.email], or remove email_to",
                )
            channel = build_plugin(
                CHANNELS, options, key="channels.email", env=self.env, extra={"kind": "email"}
            )
            if not isinstance(channel, Channel):
                raise ConfigError("not a channel", key="channels.email.type")
            forwarders.append(EmailForwarder(channel, settings.email_to))
        acknowledge: dict[ChannelKind, Channel] = {}
        if settings.acknowledge:
            built = self.channels() if self.data.get("channels") else {}
            acknowledge = {c.kind: c for c in built.values() if c.kind in ("sms", "whatsapp")}
            if not acknowledge:
                raise ConfigError(
                    "acknowledging replies needs an SMS or WhatsApp channel",
                    key="conversations.acknowledge",
                    fix="add [channels.sms] or [channels.whatsapp], or remove acknowledge",
                )
        pause = None if settings.pause == "never" else settings.pause
        return Conversations(
            store,
            pause=pause,
            forwarders=forwarders,
            clock=clock,
            acknowledge=acknowledge,
            locale=self.shop.locale,
        )

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
            experiments=self.experiments(),
            experiment_key=self.store_hash_key(),
        )

    def experiments(self) -> ExperimentPlan:
        """The holdout and A/B tests ``[experiment]`` describes (none by default)."""
        return _experiments(self.settings.experiment)

    def attribution(self) -> AttributionWindows:
        """The attribution windows ``[attribution]`` describes (5 days after a click,
        24 hours after a send, unless configured)."""
        settings = self.settings.attribution
        return AttributionWindows(
            click=settings.click_window,
            send=settings.send_window,
            channels={
                kind: (
                    window.click_window or settings.click_window,
                    window.send_window or settings.send_window,
                )
                for kind, window in settings.channels.items()
            },
        )

    def validate(self) -> None:
        """Build every part once (without network calls); one ConfigError lists every
        problem found."""
        problems: list[ConfigProblem] = []
        for name, shop in self.shops.items():
            try:
                shop.validate()
            except ConfigError as err:
                problems.extend(
                    ConfigProblem(
                        f"shops.{name}.{p.key}" if p.key else f"shops.{name}", p.message, p.fix
                    )
                    for p in err.problems
                )
        builds = (self.connector, self.channels, self.renderer, self.store_hash_key)
        for build in builds[2:] if self.shops else builds:
            try:
                build()
            except ConfigError as err:
                problems.extend(err.problems)
        if problems:
            raise ConfigError(problems=problems)


def _experiments(settings: ExperimentSettings) -> ExperimentPlan:
    tests = []
    for test in settings.tests:
        arms = []
        for arm in test.arms:
            discount = arm.discount
            arms.append(
                Arm(
                    name=arm.name,
                    weight=arm.weight,
                    template=arm.template,
                    delay=arm.delay,
                    channel=arm.channel,
                    discount=None if discount is None or discount == "none" else _offer(discount),
                    no_discount=discount == "none",
                )
            )
        tests.append(
            Experiment(
                name=test.name,
                arms=tuple(arms),
                start=test.start,
                end=test.end,
                step=test.step,
                allocation=test.allocation,
                floor=test.floor,
                control=test.control,
            )
        )
    return ExperimentPlan(holdout=settings.holdout, experiments=tuple(tests))


def _link_options(links: LinksSettings) -> dict[str, Any]:
    """Keyword arguments for :class:`~cartrescue.links.SelfHostedLinks` from ``[links]``."""
    options: dict[str, Any] = {"base_url": links.base_url}
    for name in ("code_length", "expires_after", "utm", "utm_source", "utm_campaign"):
        if name in links.model_fields_set:
            options[name] = getattr(links, name)
    return options


def _check_plugins(
    data: Mapping[str, Any], env: Mapping[str, str], problems: list[ConfigProblem]
) -> None:
    connector = data.get("connector")
    if isinstance(connector, dict) and connector:
        check_plugin(CONNECTORS, connector, key="connector", env=env, problems=problems)
    channels = data.get("channels")
    if isinstance(channels, dict):
        for kind, table in channels.items():
            if kind in CHANNEL_KINDS and isinstance(table, dict):
                check_plugin(
                    CHANNELS,
                    table,
                    key=f"channels.{kind}",
                    env=env,
                    problems=problems,
                    extra={"kind": kind},
                )


_PRODUCT_DETAILS = frozenset({"shopify", "woocommerce"})
"""Built-in connectors that read product tags and collections only when asked to."""


def _check_product_details(
    data: Mapping[str, Any], segments: Sequence[SegmentSettings], problems: list[ConfigProblem]
) -> None:
    """A segment on product tags or collections needs a connector that reads them; without
    ``product_details`` the segment would silently match no cart."""
    connector = data.get("connector")
    if not isinstance(connector, dict) or connector.get("type") not in _PRODUCT_DETAILS:
        return
    if connector.get("product_details") is True:
        return
    for number, segment in enumerate(segments, start=1):
        for name in ("product_tags", "collections"):
            if getattr(segment, name):
                what = "tags" if name == "product_tags" else "collections"
                problems.append(
                    ConfigProblem(
                        f"segments[{number}].{name}",
                        f"the {connector['type']} connector reads no product {what} unless "
                        "asked, so this segment would match no cart",
                        "set [connector] product_details = true",
                    )
                )


def _env_names(table: Mapping[str, Any]) -> set[str]:
    """Every environment variable a ``*_env`` key names, in any table."""
    names: set[str] = set()
    for name, value in table.items():
        if isinstance(value, dict):
            names |= _env_names(value)
        elif name.endswith("_env") and isinstance(value, str):
            names.add(value)
    return names


_UNSET = "unset-" + "0" * 58
"""Stands in, while the file is checked, for a secret whose variable is not set when the
command does not use secrets (``stats``, ``optout``, ``preview``); it is never used."""


def load_config(
    path: str | Path | None,
    *,
    env: Mapping[str, str] | None = None,
    text: str | None = None,
    require_secrets: bool = True,
) -> Config:
    """Read and check a ``cartrescue.toml`` (or ``text``): every section, every plugin's
    table against the settings it declares, and every environment variable a ``*_env`` key
    names. Raises one ``ConfigError`` listing every mistake found."""
    where = Path(path) if path is not None else None
    if text is None:
        if where is None:
            raise ConfigError("no configuration file given", fix="pass --config FILE")
        try:
            text = where.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"{where} not found", fix="create one with 'cartrescue init'"
            ) from None
        except OSError as err:
            raise ConfigError(
                f"cannot read {where}: {err.strerror}",
                fix="check the file's permissions for the user cartrescue runs as",
            ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(
            f"{where or 'config'} is not valid TOML: {err}",
            fix="correct the syntax at the line and column shown (quotes, brackets, '=')",
        ) from None
    environment = dict(os.environ if env is None else env)
    config = config_from_data(data, where, environment, require_secrets=require_secrets)
    if config.settings.shops:
        from .shops import shop_configs

        config.shops = shop_configs(config, require_secrets=require_secrets)
    register_secrets(config.secrets())
    return config


def config_from_data(
    data: dict[str, Any],
    where: Path | None,
    environment: Mapping[str, str],
    *,
    require_secrets: bool = True,
    shop_key: str = "",
) -> Config:
    """Check an already parsed file (``data``) as :func:`load_config` does, without its
    ``[[shops]]``; one ConfigError lists every mistake found."""
    unset: frozenset[str] = frozenset()
    checked_env = environment
    if not require_secrets:
        unset = frozenset(v for v in _env_names(data) if not environment.get(v))
        checked_env = {**environment, **dict.fromkeys(unset, _UNSET)}
    problems: list[ConfigProblem] = []
    settings = validate_table(ConfigSettings, data, env=checked_env, prefix="", problems=problems)
    _check_plugins(data, checked_env, problems)
    policy = Policy()
    if settings is not None:
        policy = _policy(settings.policy, problems, settings.segments, settings.rfm)
        _check_product_details(data, settings.segments, problems)
        try:
            _experiments(settings.experiment)
        except ValueError as err:
            problems.append(
                ConfigProblem("experiment.tests", str(err), "correct the [[experiment.tests]]")
            )
    if problems or settings is None:
        count = len(problems)
        raise ConfigError(
            f"{count} problems in {where or 'the configuration'}" if count > 1 else "",
            problems=problems,
        )
    shop = settings.shop
    return Config(
        path=where,
        data=data,
        env=environment,
        policy=policy,
        shop=ShopInfo(
            name=shop.name,
            locale=shop.locale,
            timezone=shop.timezone,
            home_url=shop.home_url,
            free_shipping_threshold=shop.free_shipping_threshold,
            free_shipping_currency=shop.free_shipping_currency,
        ),
        run_interval=settings.run.interval,
        settings=settings,
        unset_env=unset,
        shop_key=shop_key,
    )
