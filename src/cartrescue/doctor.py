"""Read-only health checks: what ``cartrescue doctor`` reports, and the protocol connectors
and channels implement to take part."""

from __future__ import annotations

import os
import pwd
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .clock import utc_now
from .errors import CartRescueError, ConfigError
from .models import CHANNEL_KINDS, ChannelKind
from .preview import (
    SAMPLE_RECOVERY_URL,
    offer_samples,
    offer_step,
    preview,
    sample_segments,
    schedule_steps,
)
from .registry import CHANNELS, CONNECTORS, discover
from .render import TemplateRenderer
from .sms import SINGLE
from .stats import humanize_age, humanize_duration
from .store.sqlite import SCHEMA_VERSION, SQLiteStore

if TYPE_CHECKING:  # config builds connectors and channels, which import Problem from here
    from .config import Config
    from .web_settings import WebSettings

__all__ = [
    "Checked",
    "DoctorReport",
    "Problem",
    "SelfCheck",
    "doctor",
    "doctor_problems",
    "signal_problems",
    "stale_schedule",
    "store_key_problems",
    "web_check",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that is wrong, and how to fix it. ``area`` names the part (``connector``,
    ``channels.sms``, ``store``); ``severity`` is ``error`` or ``warning``."""

    area: str
    message: str
    fix: str
    severity: str = "error"


@runtime_checkable
class SelfCheck(Protocol):
    """Optional capability of connectors and channels: check credentials, scopes and
    settings against the real service without changing anything, and return the problems
    found (an empty list when all is well). Must not send messages or write to the shop."""

    def check(self) -> list[Problem]: ...


@dataclass(frozen=True, slots=True)
class Checked:
    """One part ``doctor`` built and checked: ``area`` as in :class:`Problem`, and what it
    found (``"shopify nordlys.myshopify.com"``)."""

    area: str
    summary: str


@dataclass(frozen=True, slots=True)
class DoctorReport:
    """What ``doctor`` checked, and the problems it found."""

    checked: tuple[Checked, ...]
    problems: tuple[Problem, ...]
    config_errors: tuple[Problem, ...] = ()
    """Those of ``problems`` that are mistakes in the file or its environment variables:
    ``run`` would stop on them with exit status 3."""

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def _config_fix(key: str) -> str:
    if key.endswith("_env"):
        return (
            "set that environment variable where cartrescue runs (the env file of the cron "
            f"job or service), or correct {key} in the configuration file"
        )
    return f"add or correct {key} in the configuration file"


def web_check(config: Config) -> WebSettings | None:
    """The ``[web]`` settings as ``run`` and ``serve`` build them (one place to re-point)."""
    from .web_settings import web_settings  # it imports the channels, which import Problem

    return web_settings(config.data, config.env)


def doctor_problems(config: Config) -> list[Problem]:
    """Every problem ``doctor`` finds, read-only."""
    return list(doctor(config).problems)


def doctor(config: Config) -> DoctorReport:
    """Build everything ``run`` builds and check every setting it needs, without writing
    anything: the store is opened read-only (or only its path checked)."""
    checked: list[Checked] = []
    problems: list[Problem] = []
    config_errors: list[Problem] = []

    def config_error(area: str, err: ConfigError) -> None:
        for problem in err.problems:
            key = problem.key or area
            config_errors.append(Problem(key, problem.message, problem.fix or _config_fix(key)))
            problems.append(config_errors[-1])

    where = str(config.path) if config.path else "configuration"
    checked.append(
        Checked(
            "config",
            f"{where}: shop {config.shop.name!r}, locale {config.shop.locale}, "
            f"{len(config.policy.steps)} step(s)",
        )
    )
    if config.policy.segments:
        checked.append(
            Checked(
                "segments",
                f"{len(config.policy.segments)} segment(s); sample carts: "
                f"{sample_segments(config.policy, config.shop.locale)}",
            )
        )
    problems.extend(_plugin_problems())
    connector: object = None
    try:
        connector = config.connector()
    except ConfigError as err:
        config_error("connector", err)
    channels: dict[str, object] = {}
    try:
        channels = dict(config.channels())
    except ConfigError as err:
        config_error("channels", err)
    parts = [("connector", connector), *((f"channels.{k}", c) for k, c in channels.items())]
    for area, part in parts:
        if part is None:
            continue
        found = _self_check(part)
        problems.extend(found)
        how = "checked online" if isinstance(part, SelfCheck) else "built (no online check)"
        if not found:
            checked.append(Checked(area, f"{_type_of(config.data, area)}: {how}"))
    try:
        template_problems, rendered = _template_problems(config)
        problems.extend(template_problems)
        if not template_problems:
            checked.append(Checked("templates", f"{rendered} message(s) render and fit"))
    except ConfigError as err:
        config_error("templates", err)
    except CartRescueError as err:
        problems.append(Problem("templates", str(err), "fix the template"))
    try:
        offer_checked, offer_problems = _offer_samples(config)
        checked.extend(offer_checked)
        problems.extend(offer_problems)
    except CartRescueError:
        pass  # the templates check above reports what stops the renderer
    try:
        store_checked, store_problems, last, last_error = _store_check(config)
    except ConfigError as err:
        config_error("store", err)
        store_checked, store_problems, last, last_error = None, [], None, None
    problems.extend(store_problems)
    problems.extend(store_key_problems(config))
    if store_checked:
        checked.append(Checked("store", store_checked))
    try:
        with SQLiteStore(":memory:") as scratch:
            links = config.links(scratch)
        checked.append(
            Checked(
                "links",
                "none: messages carry the shop's own recovery link"
                if links is None
                else f"short links under {links.base_url}",
            )
        )
    except ConfigError as err:
        config_error("links", err)
    try:
        web = web_check(config)
        unsubscribe = None if web is None else web.unsubscribe_links()
        checked.append(
            Checked(
                "web",
                "no [web] table: no unsubscribe links, no inbound webhooks"
                if web is None
                else f"{web.public_url}; one-click unsubscribe "
                f"{'on' if unsubscribe is not None else 'off'}",
            )
        )
        problems.extend(_reason_problems(config, web))
        problems.extend(signal_problems(channels, web))
    except ConfigError as err:
        config_error("web", err)
    try:
        with SQLiteStore(":memory:") as scratch:
            config.conversations(scratch)
    except ConfigError as err:
        config_error("conversations", err)
    if not config_errors:
        try:  # what run builds, all together: catches what only shows when parts meet
            with SQLiteStore(":memory:") as scratch:
                config.recovery(store=scratch)
        except ConfigError as err:
            config_error("config", err)
    stale = stale_schedule(last, config)
    if stale:
        problems.append(Problem("schedule", stale, "check crontab -l or systemctl list-timers"))
    else:
        checked.append(
            Checked(
                "schedule",
                f"every {humanize_duration(config.run_interval)}; last pass "
                + ("never" if last is None else humanize_age(last, utc_now())),
            )
        )
    if last_error:
        problems.append(Problem("last pass", last_error, "see the run's log", "warning"))
    return DoctorReport(tuple(checked), tuple(problems), tuple(config_errors))


def _reason_problems(config: Config, web: WebSettings | None) -> list[Problem]:
    """A segment on the buyer's stated reason that no answer can ever reach: replies come
    in only through ``cartrescue serve``'s signed SMS and WhatsApp webhooks."""
    names = [s.name for s in config.policy.segments if s.conditions.reasons is not None]
    inbound = web is not None and (
        web.twilio_auth_token or web.whatsapp_app_secret or web.vonage_signature_secret
    )
    if not names or inbound:
        return []
    return [
        Problem(
            "segments",
            f"segment {', '.join(names)} matches the buyer's stated reason, but no SMS or "
            "WhatsApp inbound webhook is configured, so no answer ever arrives",
            "set [web] twilio_auth_token_env, whatsapp_app_secret_env or "
            "vonage_signature_secret_env and run cartrescue serve",
            "warning",
        )
    ]


def signal_problems(channels: dict[str, object], web: WebSettings | None) -> list[Problem]:
    """Warnings for channels whose delivery and read signals cannot reach ``stats``: the
    provider is not asked for status callbacks, or ``serve`` would not verify them."""
    url = "<public_url>" if web is None else web.public_url
    found = []
    for kind, channel in channels.items():
        area, provider = f"channels.{kind}", getattr(channel, "provider", None)
        if provider == "twilio" and not getattr(channel, "status_callback", None):
            fix = f'set status_callback = "{url}/twilio/status"'
        elif provider == "twilio" and (web is None or not web.twilio_auth_token):
            fix = "set [web] twilio_auth_token_env so serve verifies Twilio's status callbacks"
        elif provider == "vonage" and (web is None or not web.vonage_signature_secret):
            fix = (
                "enable signed webhooks, set [web] vonage_signature_secret_env and point "
                f"status_callback (or the account's delivery receipt URL) at {url}/vonage/dlr"
            )
        elif provider == "linkmobility" and not getattr(channel, "delivery_report_gate", None):
            fix = (
                f"ask LINK Support for a gate that posts to {url}/linkmobility/dlr with Basic "
                "auth, and set delivery_report_gate to its id"
            )
        elif provider == "linkmobility" and (web is None or not web.linkmobility_gate_password):
            fix = "set [web] linkmobility_gate_username and linkmobility_gate_password_env"
        elif provider == "whatsapp" and (web is None or not web.whatsapp_app_secret):
            fix = f"set [web] whatsapp_app_secret_env; Meta posts statuses to {url}/whatsapp"
        else:
            continue
        found.append(
            Problem(
                area,
                "no status callbacks reach cartrescue: stats and the report show no delivery "
                "or read rate for this channel",
                fix,
                "warning",
            )
        )
    return found


def _plugin_problems() -> list[Problem]:
    problems: list[Problem] = []
    for group in (CONNECTORS, CHANNELS):
        for plugin in discover(group):
            if plugin.error:
                problems.append(
                    Problem(
                        "plugins",
                        f"{plugin.name} from {plugin.package} does not load: {plugin.error}",
                        f"reinstall or remove the package {plugin.package}",
                        "warning",
                    )
                )
    return problems


def _self_check(part: object) -> list[Problem]:
    if not isinstance(part, SelfCheck):
        return []
    try:
        return part.check()
    except CartRescueError as err:
        return [Problem(type(part).__name__, str(err), "see the message")]


def _store_check(
    config: Config,
) -> tuple[str | None, list[Problem], datetime | None, str | None]:
    """(summary, problems, last pass completed, last pass error) of the store, read-only."""
    if config.settings.store.url is not None:
        return _server_store_check(config)
    path = config.store_path()
    if path == ":memory:":
        return "in memory: nothing is kept between passes", [], None, None
    file = Path(path)
    folder = file.parent
    user = _user()
    problems: list[Problem] = []
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        problems.append(
            Problem(
                "store",
                f"the folder {existing} is not writable by {user}: the store and its journal "
                "files cannot be created there",
                f"chown {user} {existing} (or run doctor as the user the cron job runs as)",
                "warning",
            )
        )
    if not file.exists():
        return f"{file} does not exist yet: the first run creates it", problems, None, None
    if not os.access(file, os.R_OK | os.W_OK):
        problems.append(
            Problem(
                "store",
                f"{file} is not readable and writable by {user}",
                f"chown {user} {file} (or run doctor as the user the cron job runs as)",
                "warning",
            )
        )
        return None, problems, None, None
    try:
        version, last, last_error = _read_store(file)
    except sqlite3.DatabaseError as err:
        problems.append(
            Problem(
                "store",
                f"{file} cannot be read as a cartrescue store ({err})",
                "restore it from a backup, or move it aside so the next run starts a new one",
            )
        )
        return None, problems, None, None
    if version > SCHEMA_VERSION:
        problems.append(
            Problem(
                "store",
                f"{file} was written by a newer cartrescue (schema {version})",
                "upgrade cartrescue",
            )
        )
    summary = f"{file}: schema {version}" + (
        "" if version == SCHEMA_VERSION else f", the next run migrates it to {SCHEMA_VERSION}"
    )
    return summary, problems, last, last_error


def _server_store_check(
    config: Config,
) -> tuple[str | None, list[Problem], datetime | None, str | None]:
    """A PostgreSQL store: connecting is the check (it also migrates the schema forward, as
    the next run would)."""
    from .errors import StoreError

    try:
        with config.store() as store:
            stats = store.stats(utc_now())
    except StoreError as err:
        fix = "check that the database server answers and that the URL in [store] url_env is right"
        return None, [Problem("store", str(err), fix)], None, None
    return (
        "PostgreSQL ([store] url_env): connected",
        [],
        stats.last_pass_completed,
        stats.last_pass_error,
    )


def _read_store(file: Path) -> tuple[int, datetime | None, str | None]:
    """Schema version, last pass completed and last pass error, without writing a byte: a
    store with no ``-wal`` file is opened immutable, so not even a lock file appears."""
    mode = "mode=ro" if Path(f"{file}-wal").exists() else "immutable=1"
    db = sqlite3.connect(f"{file.resolve().as_uri()}?{mode}", uri=True)
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version == 0:
            return 0, None, None
        (last,) = db.execute(
            "SELECT max(finished_at) FROM runs WHERE finished_at IS NOT NULL AND error IS NULL"
        ).fetchone()
        row = db.execute("SELECT error FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        db.close()
    return (
        version,
        None if last is None else datetime.fromisoformat(str(last)),
        None if row is None or row[0] is None else str(row[0]),
    )


def _type_of(data: dict[str, Any], area: str) -> str:
    """The ``type`` key of the table at dotted ``area`` (``channels.sms``)."""
    table: Any = data
    for name in area.split("."):
        table = table.get(name, {}) if isinstance(table, dict) else {}
    return str(table.get("type", "?")) if isinstance(table, dict) else "?"


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


_LENGTH_FIX = (
    "add a shorter variant to the template, or set [links] base_url to a short address; "
    "'cartrescue preview --config FILE' shows every template"
)


def _template_setup(config: Config) -> tuple[TemplateRenderer, list[ChannelKind], str]:
    """The renderer, the configured channels the steps use (in order), and a link as long as
    the real ones."""
    renderer = config.renderer()
    configured = set(_table_keys(config.data.get("channels")))
    used = {
        c for steps in config.policy.schedules() for step in steps for c in step.channels
    } & configured
    with SQLiteStore(":memory:") as scratch:
        try:
            links = config.links(scratch)
        except ConfigError:  # reported by the links check
            links = None
        link = links.example() if links is not None else SAMPLE_RECOVERY_URL
    return renderer, [c for c in CHANNEL_KINDS if c in used], link


def _template_problems(config: Config) -> tuple[list[Problem], int]:
    """Every template of a configured channel and step that does not render or fit, with
    sample and worst-case data and a link as long as the real ones; and how many rendered."""
    renderer, used, link = _template_setup(config)
    rows = preview(
        renderer,
        shop=config.shop,
        link=link,
        locales=renderer.locales(),
        steps=schedule_steps(config.policy),
        channels=used,
    )
    return [
        Problem(
            "templates",
            f"{row.template or row.channel} ({row.locale}, {row.sample}): "
            f"{row.problem or 'does not fit'}",
            _LENGTH_FIX,
        )
        for row in rows
        if not row.fits
    ], len(rows)


def _offer_samples(config: Config) -> tuple[list[Checked], list[Problem]]:
    """A sample of each offer kind (and of the free-shipping threshold line) per locale, as
    the last step that offers something would send it on the first channel the steps use
    (SMS before WhatsApp before email), with a typical cart. A kind that does not render is
    a warning, since a step may offer it later; the offers the steps do make are checked
    with worst-case data by the templates check."""
    renderer, used, link = _template_setup(config)
    step = offer_step(schedule_steps(config.policy))
    if not used or step is None:
        return [], []
    channel = used[0]
    checked: list[Checked] = []
    problems: list[Problem] = []
    rows = offer_samples(
        renderer,
        shop=config.shop,
        link=link,
        locales=renderer.locales(),
        step=step,
        channels=[channel],
        worst=False,
    )
    for row in rows:
        where = f"{channel} step {step} {row.locale} {row.sample}"
        if row.content is None:
            problems.append(
                Problem(
                    "templates",
                    f"{row.template or channel} ({row.locale}, {row.sample} sample): {row.problem}",
                    _LENGTH_FIX
                    if row.length is not None
                    else "word that kind in the template (incentive.kind, "
                    "free_shipping_remaining) before a step offers it",
                    "warning",
                )
            )
            continue
        text = row.content.subject if channel == "email" else row.content.text.split("\n[")[0]
        size = f" ({row.length.units}/{SINGLE[row.length.encoding]})" if row.length else ""
        checked.append(Checked("offers", f"{where}: {' '.join((text or '').split())}{size}"))
    return checked, problems


def _table_keys(value: object) -> list[str]:
    return [str(k) for k in value] if isinstance(value, dict) else []


def stale_schedule(
    last: datetime | None, config: Config, *, now: datetime | None = None
) -> str | None:
    """Why the schedule looks stopped: no pass completed in three run intervals; else None."""
    now = now or utc_now()
    limit = config.run_interval * 3
    if last is not None and now - last > limit:
        return (
            f"no pass has completed for {humanize_duration(now - last)}; runs are expected "
            f"every {humanize_duration(config.run_interval)}: is the cron job or timer still "
            "firing?"
        )
    return None


def store_key_problems(config: Config) -> list[Problem]:
    """A warning when no secret keys the opt-out hashes that ``forget`` leaves behind: a
    copied store would then give the forgotten numbers back by enumeration."""
    try:
        key = config.store_hash_key()
    except ConfigError as err:
        return [
            Problem(p.key or "store", p.message, p.fix or "set the variable or file [store] names")
            for p in err.problems
        ]
    if key is not None:
        return []
    return [
        Problem(
            "store",
            "no hash key: forgotten opt-outs are kept as hashes salted inside the store file",
            'set [store] hash_key_env = "CARTRESCUE_HASH_KEY" and export a secret of 32+ '
            "characters (python -c 'import secrets; print(secrets.token_hex(32))')",
            "warning",
        )
    ]
