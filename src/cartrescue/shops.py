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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

from .config import Config, config_from_data
from .errors import ConfigError, ConfigProblem
from .store.base import BreakdownFacts, DayFacts, GroupFacts, ReportFacts, Stats

__all__ = [
    "combine_facts",
    "combine_stats",
    "select_shops",
    "shop_configs",
    "shop_data",
    "shop_url",
]

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
    web = data.get("web")
    if isinstance(web, dict) and isinstance(web.get("public_url"), str):
        # One `cartrescue serve` answers every shop, each under its own path: the providers'
        # webhooks and the unsubscribe links of this shop's messages point there.
        merged["web"] = {**web, "public_url": shop_url(web["public_url"], entry["name"])}
    for key in _REPLACED:
        if key in entry:
            merged[key] = entry[key]
    for key in _LAID_OVER:
        if key in entry:
            merged[key] = {**(data.get(key) or {}), **entry[key]}
    return merged


def shop_url(public_url: str, name: str) -> str:
    """Where ``cartrescue serve`` answers the shop ``name`` of a ``[[shops]]`` file: its
    ``/shops/NAME`` under ``[web] public_url``."""
    return f"{public_url.rstrip('/')}/shops/{quote(name, safe='')}"


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


def select_shops(
    config: Config, shop: str | None = None, *, every: bool = False, all_allowed: bool = True
) -> list[Config]:
    """The configurations a command acts on: ``shop`` by name, or ``every`` shop; a
    single-shop file is its own one shop. ConfigError names the shops when the choice is
    missing or unknown (and offers ``--all`` when the command takes it)."""
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
        fix="pass --shop NAME (one of "
        + ", ".join(sorted(config.shops))
        + (") or --all" if all_allowed else ")"),
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


_Row = TypeVar("_Row", GroupFacts, BreakdownFacts, DayFacts)


def _sum_rows(rows: Iterable[_Row], key: Callable[[_Row], tuple[Any, ...]]) -> tuple[_Row, ...]:
    """Rows with the same key added up, field by field (the key's fields kept)."""
    merged: dict[tuple[Any, ...], _Row] = {}
    for row in rows:
        found = merged.get(key(row))
        if found is None:
            merged[key(row)] = row
            continue
        values = {
            f.name: getattr(found, f.name) + getattr(row, f.name)
            if isinstance(getattr(row, f.name), int | float)
            and not isinstance(getattr(row, f.name), bool)
            and f.name != "step"
            else getattr(found, f.name)
            for f in fields(row)
        }
        merged[key(row)] = type(row)(**values)
    return tuple(merged[k] for k in sorted(merged, key=_order))


def _order(key: tuple[Any, ...]) -> tuple[tuple[int, Any], ...]:
    # Numbers in numeric order, None first, text in text order: as the stores sort them.
    return tuple(
        (1, v) if isinstance(v, int) else (0, "") if v is None else (2, str(v)) for v in key
    )


def combine_facts(all_facts: Sequence[ReportFacts]) -> ReportFacts:
    """Every shop's report figures added up, for ``report --all``: counts and money summed,
    arms, breakdown rows and days matched by their keys, the hours to recovery weighted by
    each shop's attributed purchases. ValueError when the shops sell in different
    currencies: their money cannot be added."""
    currencies = sorted({f.currency for f in all_facts if f.currency})
    if len(currencies) > 1:
        raise ValueError(f"the shops sell in {', '.join(currencies)}")
    timed = [(f.hours_to_recovery, f.attributed) for f in all_facts if f.hours_to_recovery]
    weight = sum(n for _, n in timed)
    first = all_facts[0]
    return ReportFacts(
        since=first.since,
        until=first.until,
        abandoned=sum(f.abandoned for f in all_facts),
        abandoned_value=sum(f.abandoned_value for f in all_facts),
        abandoned_items=sum(f.abandoned_items for f in all_facts),
        converted=sum(f.converted for f in all_facts),
        converted_revenue=sum(f.converted_revenue for f in all_facts),
        attributed=sum(f.attributed for f in all_facts),
        attributed_revenue=sum(f.attributed_revenue for f in all_facts),
        hours_to_recovery=sum(h * n for h, n in timed) / weight if weight else None,
        currency=currencies[0] if currencies else None,
        groups=_sum_rows((g for f in all_facts for g in f.groups), lambda g: (g.experiment, g.arm)),
        breakdown=_sum_rows(
            (b for f in all_facts for b in f.breakdown),
            lambda b: (b.step, b.channel, b.locale, b.experiment, b.arm),
        ),
        days=_sum_rows((d for f in all_facts for d in f.days), lambda d: (d.day,)),
    )
