"""``[[shops]]`` on one PostgreSQL store: the shop is part of every key, and one ``serve``
answers every shop under its own path."""

from __future__ import annotations

import io
import json

import pytest

from cartrescue.cli import EXIT_OK, main

from ..conftest import NOON

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


SERVED = SHOPS.replace(
    "[[shops]]",
    """[web]
public_url = "https://agency.example/cartrescue"
twilio_auth_token_env = "CR_TWILIO"
unsubscribe_secret_env = "CR_UNSUB"
[links]
base_url = "https://go.agency.example/r/"

[[shops]]""",
    1,
)
PUBLIC = "https://agency.example/cartrescue"


def _signed_reply(app, shop: str, text: str, sid: str, *, signed_for: str | None = None):
    from urllib.parse import urlencode

    from ..test_web import call, hand_signed_twilio

    body = urlencode({"Body": text, "From": "+4791234567", "MessageSid": sid}).encode()
    url = f"{PUBLIC}/shops/{signed_for or shop}/twilio/sms"
    signature = hand_signed_twilio(url, body).decode()
    # A reverse proxy that passes public_url's path on, as one that strips it.
    return call(app, "POST", f"/cartrescue/shops/{shop}/twilio/sms", body,
                {"X-Twilio-Signature": signature})  # fmt: skip


def test_serve_answers_each_shop_under_its_own_path(tmp_path, pg_url, monkeypatch):
    import contextlib

    from cartrescue.cli import serve_app
    from cartrescue.config import load_config
    from cartrescue.store.postgres import PostgresStore

    from ..test_web import TWILIO_TOKEN, UNSUB_SECRET, call

    monkeypatch.setenv("CARTRESCUE_DATABASE_URL", pg_url)
    monkeypatch.setenv("CR_TWILIO", TWILIO_TOKEN)
    monkeypatch.setenv("CR_UNSUB", UNSUB_SECRET)
    path = tmp_path / "cartrescue.toml"
    path.write_text(SERVED)
    assert run("run", "--config", str(path), "--all")[0] == EXIT_OK
    config = load_config(path)
    with contextlib.ExitStack() as stack, PostgresStore(pg_url) as db:
        nordlys, lisboa = db.for_shop("nordlys"), db.for_shop("lisboa")
        app, where = serve_app(config, None, stack)
        assert where == f"{PUBLIC}/shops/nordlys/, {PUBLIC}/shops/lisboa/"
        assert call(app, "GET", "/healthz")[0] == 200
        assert call(app, "GET", "/shops/nowhere/healthz")[0] == 404

        # A reply reaches the shop whose number the buyer answered, and only it.
        assert _signed_reply(app, "nordlys", "Is it in blue?", "SM1")[0] == 200
        assert [e.text for e in nordlys.conversation("1001")] == ["Is it in blue?"]
        assert lisboa.conversation("1001") == []
        assert nordlys.paused_until("1001") is not None
        # Signed for another shop's address: refused (Twilio signs the full URL).
        assert _signed_reply(app, "lisboa", "Hi", "SM2", signed_for="nordlys")[0] == 403

        # The unsubscribe links of a shop's messages lead to that shop.
        recovery = config.shops["lisboa"].recovery(store=lisboa)
        url = recovery.unsubscribe("kari@example.no", "email")
        assert url.startswith(f"{PUBLIC}/shops/lisboa/unsubscribe/")
        status, _, _ = call(app, "POST", url.removeprefix(PUBLIC), b"List-Unsubscribe=One-Click")
        assert status == 200
        assert lisboa.optouts_for(["kari@example.no"]) == {"email"}
        assert nordlys.optouts_for(["kari@example.no"]) == set()

        # The short links the shops share are answered by the shop that made each code.
        link = config.shops["lisboa"].links(lisboa)
        assert link is not None
        short = link.shorten("https://lisboa.example/cart", checkout_id="1001", step=9,
                             channel="sms")  # fmt: skip
        status, headers, _ = call(app, "GET", short.removeprefix("https://go.agency.example"))
        assert status == 302 and headers["Location"].startswith("https://lisboa.example/cart")
        assert lisboa.stats(NOON).clicks == 1 and nordlys.stats(NOON).clicks == 0
        assert call(app, "GET", "/r/Zz9Zz9Zz")[0] == 404

    with contextlib.ExitStack() as stack:
        app, where = serve_app(config, "lisboa", stack)  # serve --shop lisboa
        assert where == f"{PUBLIC}/shops/lisboa/"
        assert _signed_reply(app, "nordlys", "Still there?", "SM3")[0] == 404
