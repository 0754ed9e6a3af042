"""Store throughput: claims + finishes per second, and database round trips per message.

One process, the send path only: for each message ``claim`` (two contacts, under
the frequency cap, as the engine calls it) then ``finish(sent)``. SQLite on a file in a
temporary folder; PostgreSQL in a database made for the run and dropped after it (the server
at ``CARTRESCUE_TEST_PG_URL``, default ``postgresql://postgres@127.0.0.1:5432/postgres``).

It runs with one thread, then with ``--threads`` threads sharing the store (the engine's
dispatch threads): PostgreSQL's rate is bound by flushing each commit to disk (two commits a
message: the claim, then the result), and concurrent commits share a flush.

Round trips are counted on the wire for PostgreSQL (libpq's protocol trace: one per Sync or
simple Query the client sends); for SQLite, which has no wire, the SQL statements run.

    python bench/store.py                # 2000 messages per store, 1 and 4 threads
    python bench/store.py --messages 500 --threads 8
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cartrescue.store import SQLiteStore
from cartrescue.store.base import OutboxStore

NOON = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
PG_URL = os.environ.get("CARTRESCUE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def send_path(store: OutboxStore, count: int, offset: int = 0) -> float:
    """Claim and finish ``count`` messages to distinct people; the seconds it took."""
    started = time.perf_counter()
    for i in range(offset, offset + count):
        key = f"c{i}:1:sms"
        won = store.claim(
            key,
            checkout_id=f"c{i}",
            step=1,
            channel="sms",
            recipient=f"+4790{i:06d}",
            contacts=(f"+4790{i:06d}", f"p{i}@example.no"),
            at=NOON,
            cap_since=NOON - timedelta(hours=24),
            run_id=None,
        )
        assert won, key
        store.finish(key, "sent", NOON, provider_id=f"SM{i}")
    return time.perf_counter() - started


def threaded(store: OutboxStore, count: int, threads: int) -> float:
    """Messages per second with ``threads`` threads sharing ``store``."""
    share = count // threads
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for done in [pool.submit(send_path, store, share, 10**5 * (t + 1)) for t in range(threads)]:
            done.result()
    return share * threads / (time.perf_counter() - started)


def bench_sqlite(count: int, threads: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "bench.sqlite3", hash_key="k" * 32)
        statements = 0

        def counted(_sql: str) -> None:
            nonlocal statements
            statements += 1

        send_path(store, 50, offset=10**7)  # warm up
        store._db.set_trace_callback(counted)
        seconds = send_path(store, count)
        store._db.set_trace_callback(None)
        parallel = threaded(store, count, threads)
        store.close()
    return count / seconds, parallel, statements / count


@contextmanager
def pg_database() -> Iterator[str]:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    name = f"cartrescue_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield make_conninfo(PG_URL, dbname=name)
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def count_round_trips(trace: Path) -> int:
    """Client messages that wait for the server: a Sync ends an extended-protocol batch, a
    Query is a simple query."""
    total = 0
    for line in trace.read_text(errors="replace").splitlines():
        fields = line.split("\t")
        if len(fields) > 3 and fields[1] == "F" and fields[3].split(" ")[0] in ("Sync", "Query"):
            total += 1
    return total


def bench_postgres(count: int, threads: int) -> tuple[float, float, float]:
    from cartrescue.store.postgres import PostgresStore

    with pg_database() as url, PostgresStore(url, hash_key="k" * 32, max_size=1) as store:
        send_path(store, 50, offset=10**7)  # warm up
        seconds = send_path(store, count)
        # Count round trips on a shorter run with the trace on (tracing slows the client).
        traced = min(count, 200)
        with tempfile.TemporaryDirectory() as folder:
            trace = Path(folder) / "trace"
            with open(trace, "w") as sink:
                # The pool holds one connection: the one traced is the one every call uses.
                with store.pool.connection() as conn:
                    conn.pgconn.trace(sink.fileno())
                send_path(store, traced, offset=10**6)
                with store.pool.connection() as conn:
                    conn.pgconn.untrace()
            trips = count_round_trips(trace)
    with pg_database() as url, PostgresStore(url, hash_key="k" * 32, max_size=threads) as store:
        parallel = threaded(store, count, threads)
    return count / seconds, parallel, trips / traced


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    rows: list[tuple[str, Callable[[int, int], tuple[float, float, float]], str]] = [
        ("SQLite (file, WAL)", bench_sqlite, "statements"),
        ("PostgreSQL (loopback)", bench_postgres, "round trips"),
    ]
    print(f"{args.messages} messages, claim (capped, 2 contacts) + finish")
    threads = f"{args.threads} threads"
    print(f"{'store (messages/s)':<24}{'1 thread':>12}{threads:>12}  per message")
    for name, run, unit in rows:
        try:
            rate, parallel, per = run(args.messages, args.threads)
        except Exception as err:  # a missing server is reported, the other rows still run
            print(f"{name:<24}{'-':>12}  not measured: {err}".splitlines()[0])
            continue
        print(f"{name:<24}{rate:>12.0f}{parallel:>12.0f}  {per:.1f} {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
