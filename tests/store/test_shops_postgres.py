"""``[[shops]]`` on one PostgreSQL store: the shop is part of every key."""

from __future__ import annotations

import io
import json

import pytest

from cartrescue.cli import EXIT_OK, main

psycopg = pytest.importorskip("psycopg", reason="pip install -e '.[postgres]'")

SHOPS = """
[connector]
type = "cartrescue.demo:DemoConnector"
[channels.sms]
type = "console"
[channels.email]
type = "console"
[store]
url_env = "CARTRESCUE_DATABASE_URL"

[[shops]]
name = "nordlys"
timezone = "Europe/Oslo"

[[shops]]
name = "lisboa"
timezone = "Europe/Lisbon"
"""


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


def test_shops_share_one_database_keyed_by_shop(tmp_path, pg_url, monkeypatch):
    monkeypatch.setenv("CARTRESCUE_DATABASE_URL", pg_url)
    path = tmp_path / "cartrescue.toml"
    path.write_text(SHOPS)
    assert run("run", "--config", str(path), "--shop", "nordlys")[0] == EXIT_OK
    with psycopg.connect(pg_url) as db:
        shops = db.execute("SELECT DISTINCT shop FROM checkouts").fetchall()
    assert shops == [("nordlys",)]
    assert run("run", "--config", str(path), "--all")[0] == EXIT_OK
    _, one = run("stats", "--config", str(path), "--json", "--shop", "lisboa")
    _, overall = run("stats", "--config", str(path), "--json")
    assert json.loads(overall)["checkouts_seen"] == 2 * json.loads(one)["checkouts_seen"] > 0
    assert run("forget", "--config", str(path), "+4791234567")[0] == EXIT_OK
    with psycopg.connect(pg_url) as db:
        left = db.execute("SELECT count(*) FROM checkouts WHERE phone = '+4791234567'")
        assert left.fetchone() == (0,)
        kept = db.execute("SELECT count(DISTINCT shop) FROM checkouts").fetchone()
    assert kept == (2,)
