"""Scaling across worker processes: checkouts decided and messages sent per second.

Many shops (``--shops``, ``--checkouts`` each, every checkout due for its first reminder)
are shared round-robin among 1, 2 and 4 worker processes, each running full passes
(``Recovery.run()``: decide, render, claim, send to an in-memory channel, record) on a
PostgreSQL store, one shop after another, as Celery workers do; and, for comparison, by one
process on SQLite (one file per shop, as ``[[shops]]`` keeps them). The broker is left out:
a task is one message per shop pass, noise beside the pass itself.

It prints the rates, the scaling ratios against one PostgreSQL process, and the database
round trips per message sent (PostgreSQL: counted on the wire with libpq's trace, one per
Sync or simple Query; SQLite, which has no wire: the SQL statements run).

PostgreSQL at ``CARTRESCUE_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/
postgres``); a database is made for the run and dropped after it.

    python bench/scale.py                       # 8 shops x 250 checkouts
    python bench/scale.py --shops 16 --checkouts 100 --workers 1 2 4 8
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cartrescue.clock import FrozenClock
from cartrescue.engine import Recovery
from cartrescue.models import Checkout, Customer, LineItem, ShopInfo
from cartrescue.store import SQLiteStore
from cartrescue.store.base import Store
from cartrescue_testing.memory import MemoryChannel
from store import count_round_trips, pg_database

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


class ListConnector:
    """The checkouts of one made-up shop, from memory (no network in the measurement)."""

    name = "bench"

    def __init__(self, shop: int, count: int) -> None:
        self.items = [
            Checkout(
                id=f"{shop}-{n}",
                abandoned_at=NOW - timedelta(hours=2) + timedelta(seconds=n),
                updated_at=NOW - timedelta(hours=2) + timedelta(seconds=n),
                recovery_url=f"https://shop{shop}.example/r/{n:032x}",
                currency="EUR",
                total=Decimal("54.00"),
                line_items=(LineItem("Linen napkins", 2, Decimal("22.00")),),
                customer=Customer(
                    first_name="Kari",
                    phone=f"+479{shop % 100:02d}{n:05d}",
                    locale="en",
                    sms_consent=True,
                ),
            )
            for n in range(count)
        ]

    def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout]:
        yield from self.items


def one_pass(store: Store, shop: int, count: int) -> tuple[int, int]:
    channel = MemoryChannel("sms")
    report = Recovery(
        ListConnector(shop, count),
        [channel],
        store,
        clock=FrozenClock(NOW),
        shop=ShopInfo(name=f"Shop {shop}", timezone="UTC"),
    ).run()
    assert report.ok, report.error
    return report.fetched, len(channel.sent)


def pg_worker(url: str, prefix: str, shops: list[int], count: int) -> tuple[int, int]:
    from cartrescue.store.postgres import PostgresStore

    decided = sent = 0
    with PostgresStore(url, shop=f"{prefix}-warm", max_size=4) as base:
        for shop in shops:
            store = base.for_shop(f"{prefix}-{shop}")
            fetched, messages = one_pass(store, shop, count)
            decided, sent = decided + fetched, sent + messages
    return decided, sent


def run_pg(url: str, workers: int, shops: int, count: int) -> tuple[float, float]:
    prefix = f"w{workers}"
    share = [list(range(w, shops, workers)) for w in range(workers)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.apply(os.getpid)  # the processes are up before the clock starts
        started = time.perf_counter()
        results = pool.starmap(pg_worker, [(url, prefix, part, count) for part in share])
        seconds = time.perf_counter() - started
    decided = sum(r[0] for r in results)
    sent = sum(r[1] for r in results)
    return decided / seconds, sent / seconds


def run_sqlite(shops: int, count: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as folder:
        decided = sent = statements = 0
        started = time.perf_counter()
        for shop in range(shops):
            store = SQLiteStore(Path(folder) / f"bench.shop{shop}.sqlite3")
            if shop == 0:

                def counted(_sql: str) -> None:
                    nonlocal statements
                    statements += 1

                store._db.set_trace_callback(counted)
            fetched, messages = one_pass(store, shop, count)
            if shop == 0:
                store._db.set_trace_callback(None)
                per_message = statements / max(1, messages)
            decided, sent = decided + fetched, sent + messages
            store.close()
        seconds = time.perf_counter() - started
    return decided / seconds, sent / seconds, per_message


def pg_round_trips(url: str, count: int) -> float:
    """Round trips per message sent in one shop's pass, on one traced connection."""
    from cartrescue.store.postgres import PostgresStore

    with (
        PostgresStore(url, shop="traced", max_size=1) as store,
        tempfile.TemporaryDirectory() as folder,
    ):
        trace = Path(folder) / "trace"
        with open(trace, "w") as sink:
            with store.pool.connection() as conn:
                conn.pgconn.trace(sink.fileno())
            _, sent = one_pass(store, 999, count)
            with store.pool.connection() as conn:
                conn.pgconn.untrace()
        return count_round_trips(trace) / max(1, sent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shops", type=int, default=8)
    parser.add_argument("--checkouts", type=int, default=250, help="per shop")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args(argv)
    total = args.shops * args.checkouts
    print(
        f"{args.shops} shops x {args.checkouts} checkouts = {total}, each due one SMS; "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'store':<12}{'processes':>10}{'checkouts/s':>13}{'messages/s':>12}{'scaling':>9}")
    decided, sent, sqlite_trips = run_sqlite(args.shops, args.checkouts)
    print(f"{'SQLite':<12}{1:>10}{decided:>13.0f}{sent:>12.0f}{'':>9}")
    with pg_database() as url:
        from cartrescue.store.postgres import PostgresStore

        PostgresStore(url).close()  # the schema, once, before the workers race to make it
        base = None
        for workers in args.workers:
            decided, sent = run_pg(url, workers, args.shops, args.checkouts)
            base = base or sent
            print(
                f"{'PostgreSQL':<12}{workers:>10}{decided:>13.0f}{sent:>12.0f}{sent / base:>8.2f}x"
            )
        trips = pg_round_trips(url, min(args.checkouts, 200))
    print(
        f"per message sent: PostgreSQL {trips:.1f} round trips (wire), "
        f"SQLite {sqlite_trips:.1f} statements"
    )
    print(
        f"what bends the curve: {os.cpu_count()} CPUs shared by the workers and the database "
        "server (a pass is CPU work: deciding, rendering, the driver), and a durable commit "
        "per claim and per result, whose disk flushes concurrent workers share"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
