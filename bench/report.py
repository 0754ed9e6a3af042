"""``cartrescue report`` over large stores: time and peak memory at 100 000 and 1 000 000
outbox rows, and the 20 000-checkout simulation through the real engine.

A store is filled directly (two messages per messaged checkout, a 10 % holdout, an A/B
test, 10 % purchases, 5 % clicks). Each report runs in a fresh process, which prints its
wall time and how far its peak RSS rose above the RSS after the imports. Targets: the time
ratio 1M/100k under 12 (linear), the memory rise about the same at both sizes (flat).

    python bench/report.py                    # 100k and 1M rows, then the simulation
    python bench/report.py --rows 100000      # one size
    python bench/report.py --simulate 20000   # only the simulation
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cartrescue.store.sqlite import SQLiteStore

START = datetime(2026, 1, 1, tzinfo=UTC)

CHILD = """
import json, resource, sys, time
from datetime import datetime
from cartrescue.report import ReportOptions, make_report, render_html
from cartrescue.store.sqlite import SQLiteStore
import cartrescue.report.html  # matplotlib: imported before the baseline
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
with SQLiteStore(sys.argv[1]) as store:
    report = make_report(store, ReportOptions(), since=datetime.fromisoformat(sys.argv[2]),
                         until=datetime.fromisoformat(sys.argv[3]),
                         now=datetime.fromisoformat(sys.argv[3]))
page = render_html(report)
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "rise_kib": peak - base, "page_bytes": len(page),
                  "checkouts": report["kpis"]["abandoned_checkouts"],
                  "messages": report["kpis"]["messages_sent"]}))
"""


def _ts(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


def fill(path: Path, outbox_rows: int, seed: int = 1) -> None:
    """A store with ``outbox_rows`` outbox rows (two per messaged checkout)."""
    rng = random.Random(seed)
    treated = outbox_rows // 2
    held = treated // 9  # 10 % of everyone
    with SQLiteStore(path) as store:
        db = store._db
        db.execute("BEGIN")
        for n in range(treated + held):
            cid = f"c{n}"
            at = START + timedelta(seconds=n * 30)
            total = rng.randrange(2000, 20000) / 100
            data = json.dumps(
                {
                    "id": cid,
                    "currency": "EUR",
                    "total": str(total),
                    "line_items": [{"quantity": rng.randint(1, 3)}],
                    "customer": {"locale": rng.choice(("en", "de", "nb"))},
                }
            )
            email = f"p{n}@example.com"
            db.execute(
                "INSERT INTO checkouts (id, data, email, abandoned_at, updated_at, first_seen,"
                " last_seen, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'done')",
                (cid, data, email, _ts(at), _ts(at), _ts(at), _ts(at)),
            )
            is_held = n >= treated
            db.execute(
                "INSERT INTO assignments VALUES (?, 'holdout', ?, NULL, ?)",
                (cid, "holdout" if is_held else "treated", _ts(at + timedelta(hours=1))),
            )
            arm = None
            if not is_held:
                arm = "a" if n % 2 else "b"
                db.execute(
                    "INSERT INTO assignments VALUES (?, 'subject', ?, 1, ?)",
                    (cid, arm, _ts(at + timedelta(hours=1))),
                )
                for step, delay in ((1, 1), (2, 24)):
                    sent = at + timedelta(hours=delay)
                    db.execute(
                        "INSERT INTO outbox (key, checkout_id, step, channel, recipient, status,"
                        " claimed_at, finished_at, experiment, arm)"
                        " VALUES (?, ?, ?, 'email', ?, 'sent', ?, ?, ?, ?)",
                        (
                            f"{cid}:{step}:email",
                            cid,
                            step,
                            email,
                            _ts(sent),
                            _ts(sent),
                            "subject" if step == 1 else None,
                            arm if step == 1 else None,
                        ),
                    )
                if rng.random() < 0.05:
                    db.execute(
                        "INSERT INTO clicks (code, checkout_id, step, channel, at)"
                        " VALUES ('x', ?, 1, 'email', ?)",
                        (cid, _ts(at + timedelta(hours=2))),
                    )
            if rng.random() < (0.08 if is_held else 0.12):
                bought = at + timedelta(hours=rng.choice((3, 30, 100)))
                db.execute(
                    "INSERT INTO conversions (checkout_id, kind, order_id, total, currency, at)"
                    " VALUES (?, 'converted', ?, ?, 'EUR', ?)",
                    (cid, f"o{n}", str(total), _ts(bought)),
                )
        db.execute("COMMIT")


def measure(path: Path, rows: int) -> dict[str, float]:
    until = START + timedelta(seconds=rows * 30 + 3600)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), _ts(START), _ts(until)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def sizes(rows: list[int], workdir: Path) -> None:
    results = {}
    for count in rows:
        path = workdir / f"report-{count}.sqlite3"
        if not path.exists():
            t = time.perf_counter()
            fill(path, count)
            print(f"filled {count:>9,} outbox rows in {time.perf_counter() - t:.1f}s")
        results[count] = measure(path, count)
        r = results[count]
        print(
            f"{count:>9,} outbox rows ({r['checkouts']:,} checkouts):"
            f" {r['seconds']:.2f}s, peak RSS rise {r['rise_kib'] / 1024:.1f} MiB"
        )
    if len(rows) >= 2:
        small, large = results[min(rows)], results[max(rows)]
        factor = max(rows) / min(rows)
        ratio = large["seconds"] / small["seconds"]
        print(
            f"time ratio {max(rows):,}/{min(rows):,}: {ratio:.1f}"
            f" (linear: {factor:.0f}; target < 12)"
        )
        print(
            f"memory rise: {small['rise_kib'] / 1024:.1f} MiB vs {large['rise_kib'] / 1024:.1f} MiB"
        )


def simulation(checkouts: int) -> None:
    from cartrescue.experiments import ExperimentPlan
    from cartrescue.report import ReportOptions, make_report
    from cartrescue_testing.simulation import START as SIM_START
    from cartrescue_testing.simulation import simulate

    with tempfile.TemporaryDirectory() as tmp, SQLiteStore(Path(tmp) / "sim.sqlite3") as store:
        t = time.perf_counter()
        sim = simulate(
            store,
            checkouts=checkouts,
            p_held_out=0.08,
            p_messaged=0.12,
            plan=ExperimentPlan(holdout=0.1),
        )
        engine = time.perf_counter() - t
        report = make_report(
            store,
            ReportOptions(),
            since=SIM_START - timedelta(days=1),
            until=SIM_START + timedelta(days=1),
            now=sim.clock(),
        )
    lift = report["holdout"]["comparison"]["lift"]
    inside = lift["low"] < 0.04 < lift["high"] and lift["low"] > 0
    print(
        f"simulation: {checkouts:,} checkouts through the engine in {engine:.1f}s;"
        f" lift {lift['estimate'] * 100:+.2f} points"
        f" ({lift['low'] * 100:+.2f} to {lift['high'] * 100:+.2f});"
        f" contains +4 and excludes 0: {inside}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--simulate", type=int)
    parser.add_argument("--dir", help="keep the filled stores here (default: a temp dir)")
    args = parser.parse_args()
    if args.simulate and not args.rows:
        simulation(args.simulate)
        return
    with tempfile.TemporaryDirectory() as tmp:
        sizes(args.rows or [100_000, 1_000_000], Path(args.dir or tmp))
    if not args.rows:
        simulation(20_000)


if __name__ == "__main__":
    main()
