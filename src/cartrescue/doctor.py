"""Read-only health checks: what ``cartrescue doctor`` reports, and the protocol connectors
and channels implement to take part."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .clock import utc_now
from .errors import CartRescueError, ConfigError, StoreError
from .models import CHANNEL_KINDS
from .preview import SAMPLE_RECOVERY_URL, preview
from .registry import CHANNELS, CONNECTORS, discover
from .stats import humanize_duration
from .store.sqlite import SQLiteStore

if TYPE_CHECKING:  # config builds connectors and channels, which import Problem from here
    from .config import Config

__all__ = ["Problem", "SelfCheck", "doctor_problems", "stale_schedule"]


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


def doctor_problems(config: Config) -> list[Problem]:
    """Every problem ``doctor`` finds, read-only."""
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
    parts: list[object] = []
    for area, build in (("connector", config.connector), ("channels", config.channels)):
        try:
            built = build()
        except ConfigError as err:
            problems.append(
                Problem(err.key or area, str(err), "correct the key in cartrescue.toml")
            )
            continue
        parts.extend(built.values() if isinstance(built, dict) else [built])
    for part in parts:
        if isinstance(part, SelfCheck):
            try:
                problems.extend(part.check())
            except CartRescueError as err:
                problems.append(Problem(type(part).__name__, str(err), "see the message"))
    try:
        problems.extend(_template_problems(config))
    except CartRescueError as err:
        problems.append(Problem("templates", str(err), "fix the template"))
    try:
        with SQLiteStore(config.store_path()) as store:
            stats = store.stats(utc_now())
        stale = stale_schedule(stats.last_pass_completed, config)
        if stale:
            problems.append(Problem("schedule", stale, "check crontab -l or systemctl list-timers"))
        if stats.last_pass_error:
            problems.append(
                Problem("last pass", stats.last_pass_error, "see the run's log", "warning")
            )
    except StoreError as err:
        problems.append(
            Problem("store", str(err), "check [store] path and its folder's permissions")
        )
    return problems


def _template_problems(config: Config) -> list[Problem]:
    """Every template of a configured channel and step that does not render or fit, with
    sample and worst-case data and a link as long as the real ones."""
    renderer = config.renderer()
    configured = set(_table_keys(config.data.get("channels")))
    used = {c for step in config.policy.steps for c in step.channels} & configured
    with SQLiteStore(":memory:") as scratch:
        links = config.links(scratch)
        link = links.example() if links is not None else SAMPLE_RECOVERY_URL
    rows = preview(
        renderer,
        shop=config.shop,
        link=link,
        locales=renderer.locales(),
        steps=[(s.number, s.discount.percent if s.discount else None) for s in config.policy.steps],
        channels=[c for c in CHANNEL_KINDS if c in used],
    )
    fix = (
        "add a shorter variant to the template, or set [links] base_url to a short address; "
        "'cartrescue preview --config FILE' shows every template"
    )
    return [
        Problem(
            "templates",
            f"{row.template or row.channel} ({row.locale}, {row.sample}): "
            f"{row.problem or 'does not fit'}",
            fix,
        )
        for row in rows
        if not row.fits
    ]


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
