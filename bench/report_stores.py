"""The report's aggregates and a page's stated reasons, SQLite against PostgreSQL.

The simulated shop (``cartrescue_testing.simulation``: the real engine, a 30 % holdout and an
A/B test) is run once into each store with the same seed and key, so both hold the same
rows; then, in one run:

- ``report_facts`` over the day, the median of five reads per store, and the PostgreSQL time
  as a ratio of SQLite's (the figures are checked equal first);
- a page of 500 checkouts' stated reasons read with ``reasons(ids)`` (one query) against 500
  ``abandonment_reason`` calls, per store.

PostgreSQL is the server at ``CARTRESCUE_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), in a database made for the run and
dropped after it.

    python bench/report_stores.py                  # 1000 checkouts
    python bench/report_stores.py --checkouts 5000
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import time
from collections.abc import Callable
from datetime import timedelta

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from cartrescue.experiments import Arm, Experiment, ExperimentPlan
from cartrescue.store.base import AttributionWindows, ReportFacts
from cartrescue.store.postgres import PostgresStore
from cartrescue.store.sqlite import SQLiteStore
from cartrescue_testing.simulation import START, simulate

PG_URL = os.environ.get("CARTRESCUE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def median_seconds(call: Callable[[], object], times: int = 5) -> float:
    runs = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkouts", type=int, default=1000)
    args = parser.parse_args()
    test = Experiment("wording", (Arm("a"), Arm("b")), start=START - timedelta(days=1))
    plan = ExperimentPlan(holdout=0.3, experiments=(test,))
    span = (START - timedelta(days=1), START + timedelta(days=1))
    windows = AttributionWindows()
    name = f"cartrescue_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            url = make_conninfo(PG_URL, dbname=name)
            with SQLiteStore(":memory:") as lite, PostgresStore(url, shop="bench") as pg:
                stores = {"SQLite": lite, "PostgreSQL": pg}
                for label, store in stores.items():
                    started = time.perf_counter()
                    simulate(
                        store,
                        checkouts=args.checkouts,
                        p_held_out=0.1,
                        p_messaged=0.3,
                        plan=plan,
                        seed=5,
                    )
                    print(f"{label}: simulated in {time.perf_counter() - started:.1f} s")
                first, second = (s.report_facts(*span, windows) for s in stores.values())

                def counts(facts: ReportFacts) -> object:
                    arms = [(g.experiment, g.arm, g.eligible, g.attributed) for g in facts.groups]
                    return facts.abandoned, facts.converted, facts.attributed, arms

                assert counts(first) == counts(second), "the stores disagree"
                print(
                    f"{first.abandoned} checkouts, {sum(r.sent for r in first.breakdown)}"
                    f" messages, {first.converted} bought"
                )
                report = {
                    label: median_seconds(lambda s=store: s.report_facts(*span, windows))
                    for label, store in stores.items()
                }
                ids = [f"sim-{n}" for n in range(min(500, args.checkouts))]
                for store in stores.values():
                    for n, checkout_id in enumerate(ids[::3]):
                        store.record_reason(checkout_id, ("price", "shipping_cost")[n % 2], START)
                for label, store in stores.items():
                    one = median_seconds(lambda s=store: s.reasons(ids))
                    each = median_seconds(
                        lambda s=store: [s.abandonment_reason(i) for i in ids], times=3
                    )
                    print(
                        f"{label}: report_facts {report[label] * 1000:.1f} ms;"
                        f" 500 reasons in one query {one * 1000:.2f} ms, one by one"
                        f" {each * 1000:.1f} ms ({each / one:.0f}x)"
                    )
                print(
                    f"report_facts PostgreSQL/SQLite: {report['PostgreSQL'] / report['SQLite']:.2f}"
                )
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


if __name__ == "__main__":
    main()
