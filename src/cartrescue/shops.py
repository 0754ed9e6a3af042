"""Many shops in one deployment: ``[[shops]]`` in ``cartrescue.toml``.

Each entry names a shop and may give its own connector, channels, templates, policy, locale
and time zone; whatever it leaves out comes from the top of the file (``[policy]`` and
``[templates]`` keys are laid over the top-level ones, ``[connector]`` and ``[channels]``
are replaced as a whole). All shops share one ``[store]``, with the shop's name part of
every key: in PostgreSQL a column of every table (:meth:`PostgresStore.for_shop`); with
SQLite, one file per shop beside the configured one (``cartrescue.SHOP.sqlite3``), since a
SQLite file has one writer at a time anyway.

A file without ``[[shops]]`` is a single-shop file and works as it always has.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from .config import Config, config_from_data
from .errors import ConfigError, ConfigProblem
from .store.base import Stats

__all__ = ["combine_stats", "select_shops", "shop_configs", "shop_data"]

_REPLACED = ("connector", "channels")
_LAID_OVER = ("policy", "templates")


def shop_data(data: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """The single-shop file one ``[[shops]]`` entry stands for: the top-level tables with
    the entry's own laid over them."""
    merged = {key: value for key, value in data.items() if key != "shops"}
    shop = dict(data.get("shop") or {})
    shop["name"] = entry.get("display_name") or entry["name"]
    for key in ("locale", "timezone", "home_url"):
        if key in entry:
            shop[key] = entry[key]
    merged["shop"] = shop
    for key in _REPLACED:
        if key in entry:
            merged[key] = entry[key]
    for key in _LAID_OVER:
        if key in entry:
            merged[key] = {**(data.get(key) or {}), **entry[key]}
    return merged


def shop_configs(config: Config, *, require_secrets: bool = True) -> dict[str, Config]:
    """Each ``[[shops]]`` entry's checked configuration, by name; one ConfigError lists every
    mistake in every entry (keys as ``shops[N].connector.token_env``, N from 1)."""
    built: dict[str, Config] = {}
    problems: list[ConfigProblem] = []
    for index, entry in enumerate(config.data.get("shops") or [], start=1):
        name = str(entry["name"])
        try:
            built[name] = config_from_data(
                shop_data(config.data, entry),
                config.path,
                config.env,
                require_secrets=require_secrets,
                shop_key=name,
            )
        except ConfigError as err:
            for problem in err.problems:
                key = f"shops[{index}].{problem.key}" if problem.key else f"shops[{index}]"
                problems.append(ConfigProblem(key, f"shop {name}: {problem.message}", problem.fix))
    if problems:
        raise ConfigError(problems=problems)
    return built


def select_shops(config: Config, shop: str | None = None, *, every: bool = False) -> list[Config]:
    """The configurations a command acts on: ``shop`` by name, or ``every`` shop; a
    single-shop file is its own one shop. ConfigError names the shops when the choice is
    missing or unknown."""
    if not config.shops:
        if shop is not None:
            raise ConfigError(
                f"--shop {shop}: this file has no [[shops]]",
                key="shops",
                fix="leave out --shop, or add [[shops]] entries",
            )
        return [config]
    if shop is not None:
        if shop not in config.shops:
            raise ConfigError(
                f"no shop named {shop!r}",
                key="shops",
                fix="name one of " + ", ".join(sorted(config.shops)),
            )
        return [config.shops[shop]]
    if every:
        return list(config.shops.values())
    raise ConfigError(
        "this file configures several shops; say which",
        key="shops",
        fix="pass --shop NAME (one of " + ", ".join(sorted(config.shops)) + ") or --all",
    )


def _add(counters: Iterable[Any]) -> dict[Any, Any]:
    total: Counter[Any] = Counter()
    for counter in counters:
        total.update(dict(counter))
    return dict(total)


def combine_stats(all_stats: Sequence[Stats]) -> Stats:
    """Every shop's figures added up, for ``stats`` over the whole deployment; the last
    pass is the oldest of the shops' (the one that says whether the schedule is stale)."""
    revenue: dict[str, Decimal] = {}
    for stats in all_stats:
        for currency, amount in stats.revenue_recovered.items():
            revenue[currency] = revenue.get(currency, Decimal(0)) + amount
    completed = [s.last_pass_completed for s in all_stats]
    started = [s.last_pass_started for s in all_stats if s.last_pass_started]
    errors = [s.last_pass_error for s in all_stats if s.last_pass_error]
    return Stats(
        checkouts_seen=sum(s.checkouts_seen for s in all_stats),
        checkouts_by_status=_add(s.checkouts_by_status for s in all_stats),
        messages=_add(s.messages for s in all_stats),
        messaged_checkouts=sum(s.messaged_checkouts for s in all_stats),
        conversions=_add(s.conversions for s in all_stats),
        recovered=sum(s.recovered for s in all_stats),
        revenue_recovered=revenue,
        clicks=sum(s.clicks for s in all_stats),
        opt_outs=sum(s.opt_outs for s in all_stats),
        bad_payloads=sum(s.bad_payloads for s in all_stats),
        last_pass_completed=None if None in completed or not completed else min(completed),  # type: ignore[type-var]
        last_pass_started=min(started) if started else None,
        last_pass_error=errors[0] if errors else None,
        skip_reasons=_add(s.skip_reasons for s in all_stats),
        passes_completed=sum(s.passes_completed for s in all_stats),
        not_rendered=sum(s.not_rendered for s in all_stats),
    )
