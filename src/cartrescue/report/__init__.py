"""``cartrescue report``: KPIs, attributed and incremental revenue, per-arm statistics.

Needs the ``report`` extra (``pip install 'cartrescue[report]'``: scipy and matplotlib).
:func:`make_report` reads the store's aggregates and returns the figures as one JSON-safe
dict; :func:`render_html` draws the page, :func:`write_csv` writes the tables.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..store.base import ExperimentStore, ReportFacts, SignalCounts, SignalStore, Store
from .build import Costs, ReportOptions, build_report

if TYPE_CHECKING:
    from ..config import Config

__all__ = [
    "Costs",
    "ReportOptions",
    "build_report",
    "make_report",
    "options_from",
    "read_facts",
    "read_signals",
    "render_html",
    "write_csv",
]


def options_from(config: Config) -> ReportOptions:
    """The report options a checked ``cartrescue.toml`` gives: shop, locale, ``[costs]``,
    ``[attribution]`` and the experiments' controls and thresholds."""
    settings = config.settings
    costs = settings.costs
    plan = config.experiments()
    return ReportOptions(
        shop=config.shop.name,
        locale=config.shop.locale,
        costs=Costs(
            sms_segment=costs.sms_segment,
            whatsapp_conversation=costs.whatsapp_conversation,
            email=costs.email,
            currency=costs.currency,
        ),
        windows=config.attribution(),
        min_sample=settings.experiment.min_sample,
        min_detectable_lift=settings.experiment.min_detectable_lift,
        controls={e.name: e.control_arm for e in plan.experiments},
    )


def make_report(
    store: Store, options: ReportOptions, *, since: datetime, until: datetime, now: datetime
) -> dict[str, Any]:
    """The report of checkouts abandoned in [since, until)."""
    return build_report(
        read_facts(store, options, since=since, until=until),
        options,
        generated_at=now,
        signals=read_signals(store, since=since, until=until),
    )


def read_facts(
    store: Store, options: ReportOptions, *, since: datetime, until: datetime
) -> ReportFacts:
    """The store's aggregates of checkouts abandoned in [since, until), for
    :func:`build_report` (or added up over shops first)."""
    if not isinstance(store, ExperimentStore):
        raise ConfigError(
            f"{type(store).__name__} cannot aggregate the report's figures",
            key="store",
            fix="run cartrescue report against a SQLite or PostgreSQL store",
        )
    return store.report_facts(since, until, options.windows)


def read_signals(
    store: Store, *, since: datetime, until: datetime
) -> dict[str, SignalCounts] | None:
    """What the providers' status callbacks said about the messages for checkouts abandoned
    in [since, until), per channel; None for a store that keeps no signals."""
    return store.signal_counts(since, until) if isinstance(store, SignalStore) else None


def render_html(report: dict[str, Any]) -> str:
    """The self-contained HTML page of a report."""
    from .html import render_html as render  # matplotlib loads only when a page is drawn

    return render(report)


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    flat = []
    for row in rows:
        out: dict[str, Any] = {}
        _flat("", row, out)
        flat.append(out)
    columns = list(dict.fromkeys(key for row in flat for key in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(flat)


def write_csv(report: dict[str, Any], directory: Path) -> list[Path]:
    """Write the report's tables as CSV files into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    arms = list(report["holdout"]["arms"]) if report["holdout"] else []
    comparisons = []
    if report["holdout"]:
        comparisons.append({"experiment": "holdout", **report["holdout"]["comparison"]})
    for experiment in report["experiments"]:
        arms += experiment["arms"]
        comparisons += [{"experiment": experiment["name"], **c} for c in experiment["comparisons"]]
    tables: dict[str, list[dict[str, Any]]] = {
        "kpis": [report["kpis"]],
        "arms": arms,
        "comparisons": comparisons,
        "days": report["days"],
        "engagement": report["engagement"],
        **{f"by_{key}": rows for key, rows in report["breakdown"].items()},
    }
    written = []
    for name, rows in tables.items():
        path = directory / f"{name}.csv"
        _write(path, rows)
        written.append(path)
    return written
