"""PostgresStore beyond the conformance suite: processes racing for one person, shops side by
side in one database, versioned migrations, the configuration and doctor."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cartrescue.config import load_config
from cartrescue.doctor import doctor_problems
from cartrescue.errors import ConfigError, StoreError

from ..conftest import NOON

pytest.importorskip("psycopg", reason="needs the postgres extra: pip install -e '.[postgres]'")

from cartrescue.store.postgres import PostgresStore, _redacted, migrations

ROUNDS = 100


def claim(store: PostgresStore, key: str, person: str, *, capped: bool) -> bool:
    checkout_id, step, channel = key.split(":")
    return store.claim(
        key,
        checkout_id=checkout_id,
        step=int(step),
        channel=channel,
        recipient=person,
        contacts=(person,),
        at=NOON,
        cap_since=NOON - timedelta(hours=24) if capped else None,
        run_id=None,
    )


def _worker(url: str, me: int, barrier: Any, results: Any) -> None:
    """One worker process: each round, at the same instant as the other, it tries to message
    the same cart of one person, then another cart of a second person under the cap."""
    with PostgresStore(url, max_size=1) as store:
        for r in range(ROUNDS):
            barrier.wait(timeout=60)
            same = claim(store, f"cart{r}:1:sms", f"a{r}@example.no", capped=True)
            if same:
                store.finish(f"cart{r}:1:sms", "sent", NOON)
            other = claim(store, f"cart{r}-{me}:1:sms", f"b{r}@example.no", capped=True)
            if other:
                store.finish(f"cart{r}-{me}:1:sms", "sent", NOON)
            results.put((r, same, other))


def test_two_processes_messaging_one_person_at_once_send_one_message(pg_url: str) -> None:
    PostgresStore(pg_url).close()  # migrated before the race, as a deployment would
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(pg_url, i, barrier, results)) for i in (0, 1)]
    for w in workers:
        w.start()
    seen = [results.get(timeout=120) for _ in range(2 * ROUNDS)]
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0
    for r in range(ROUNDS):
        rows = [(same, other) for n, same, other in seen if n == r]
        assert [same for same, _ in rows].count(True) == 1, f"round {r}: same cart twice"
        assert [other for _, other in rows].count(True) == 1, f"round {r}: cap broken"
    with PostgresStore(pg_url) as store:
        stats = store.stats(NOON)
    assert stats.messages == {(1, "sms", "sent"): 2 * ROUNDS}


@pytest.mark.parametrize("shared_pool", [False, True])
def test_shops_share_a_database_and_see_only_their_own_rows(pg_url: str, shared_pool: bool) -> None:
    with (
        PostgresStore(pg_url, shop="nordlys") as a,
        a.for_shop("fjord") if shared_pool else PostgresStore(pg_url, shop="fjord") as b,
    ):
        assert claim(a, "c1:1:sms", "kari@example.no", capped=True)
        assert claim(b, "c1:1:sms", "kari@example.no", capped=True)
        a.add_optout("kari@example.no", "sms", "twilio", NOON)
        a.set_watermark("shopify", NOON)
        assert b.optouts_for(["kari@example.no"]) == set()
        assert b.watermark("shopify") is None
        assert b.forget("kari@example.no") > 0
        assert [e.key for e in a.outbox_for("c1")] == ["c1:1:sms"]
        assert a.optouts_for(["kari@example.no"]) == {"sms"}
        assert b.shop == "fjord"
        b.close()
        assert a.watermark("shopify") == NOON  # closing one shop's handle leaves the other
    assert not shared_pool or a.pool.closed


def test_migrations_are_numbered_and_recorded(pg_url: str) -> None:
    steps = migrations()
    assert [v for v, _, _ in steps] == list(range(1, len(steps) + 1))
    with PostgresStore(pg_url) as store:
        assert store.schema_version() == len(steps)
        rows = store._query("SELECT version, name FROM cartrescue_schema ORDER BY version")
        assert rows == [(v, name) for v, name, _ in steps]


def test_processes_opening_a_new_database_at_once_migrate_it_once(pg_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_one() -> None:
        barrier.wait()
        try:
            PostgresStore(pg_url, max_size=1).close()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with PostgresStore(pg_url) as store:
        assert store._query("SELECT count(*) FROM cartrescue_schema") == [(len(migrations()),)]


def test_a_newer_schema_is_refused(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        store._query("INSERT INTO cartrescue_schema (version, name) VALUES (999, 'x') RETURNING 1")
    with pytest.raises(StoreError, match="newer"):
        PostgresStore(pg_url)


def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    url = "postgresql://cartrescue:s3cret-pass@127.0.0.1:1/cartrescue"
    with pytest.raises(StoreError) as caught:
        PostgresStore(url, timeout=2)
    assert "s3cret-pass" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@db.example:5432/x", "postgresql://u:***@db.example:5432/x"),
        ("host=db.example password=pw dbname=x", "host=db.example password=*** dbname=x"),
        ("postgresql://db.example/x", "postgresql://db.example/x"),
    ],
)
def test_urls_are_shown_without_passwords(url: str, shown: str) -> None:
    assert _redacted(url) == shown


TOML = """
[shop]
name = "Nordlys"
[connector]
type = "cartrescue.demo:DemoConnector"
[channels.sms]
type = "console"
[store]
url_env = "CARTRESCUE_DATABASE_URL"
"""


def test_config_builds_a_postgres_store_from_url_env(pg_url: str, tmp_path: Path) -> None:
    config = load_config(None, text=TOML, env={"CARTRESCUE_DATABASE_URL": pg_url})
    with config.store() as store:
        assert isinstance(store, PostgresStore)
        store.set_watermark("demo", NOON)
    assert pg_url in config.secrets()  # the log filter redacts the URL
    assert not [
        p for p in doctor_problems(config) if p.area.startswith("store") and p.severity == "error"
    ]


def test_config_names_the_missing_variable_and_a_path_given_too() -> None:
    # The whole file is checked when it is loaded: a missing variable is reported then,
    with pytest.raises(ConfigError, match="CARTRESCUE_DATABASE_URL is not set"):
        load_config(None, text=TOML, env={})
    # or, for a command that needs no secrets, when the store is built.
    config = load_config(None, text=TOML, env={}, require_secrets=False)
    with pytest.raises(ConfigError, match="CARTRESCUE_DATABASE_URL is not set"):
        config.store()
    with pytest.raises(ConfigError, match="not both"):
        load_config(None, text=TOML + 'path = "x.sqlite3"\n', env={"CARTRESCUE_DATABASE_URL": "x"})


def test_doctor_says_the_database_does_not_answer() -> None:
    config = load_config(
        None,
        text=TOML,
        env={"CARTRESCUE_DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/x?connect_timeout=2"},
    )
    [problem] = [p for p in doctor_problems(config) if p.area == "store" and p.severity == "error"]
    assert "cannot connect" in problem.message
    assert "url_env" in problem.fix
    assert "pw@" not in problem.message


def test_the_demo_shop_on_postgres_sends_each_message_once(pg_url: str) -> None:
    """The engine over PostgresStore, twice: the second pass sends nothing again."""
    from datetime import UTC, datetime

    from cartrescue.clock import FrozenClock
    from cartrescue.demo import DemoConnector, demo_shop
    from cartrescue.engine import Recovery
    from cartrescue.models import CHANNEL_KINDS
    from cartrescue_testing import MemoryChannel

    clock = FrozenClock(datetime(2026, 3, 11, 13, 0, tzinfo=UTC))
    channels = [MemoryChannel(kind) for kind in CHANNEL_KINDS]
    with PostgresStore(pg_url, shop="nordlys") as store:
        store.start_at(clock() - timedelta(days=3))
        for _ in range(2):
            recovery = Recovery(
                DemoConnector(clock=clock), channels, store, clock=clock, shop=demo_shop()
            )
            assert recovery.run().ok
        stats = store.stats(clock())
    sent = [m for c in channels for m in c.sent]
    assert sent
    assert sum(n for (_, _, status), n in stats.messages.items() if status == "sent") == len(sent)
    assert len({(m.checkout_id, m.step, m.channel) for m in sent}) == len(sent)
    assert stats.passes_completed == 2


def test_a_failed_claim_is_rolled_back_and_the_store_stays_usable(pg_url: str) -> None:
    with PostgresStore(pg_url, max_size=1) as store:
        store._run("ALTER TABLE touches RENAME TO touches_away")
        with pytest.raises(StoreError, match="touches"):
            claim(store, "c1:1:sms", "kari@example.no", capped=True)
        store._run("ALTER TABLE touches_away RENAME TO touches")
        assert store.outbox_for("c1") == []  # the failed claim left nothing behind
        assert claim(store, "c1:1:sms", "kari@example.no", capped=True)
