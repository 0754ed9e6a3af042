"""``cartrescue test-send``: one real message to the owner, marked, recorded apart."""

from __future__ import annotations

import io
import json
import sqlite3
from urllib.parse import parse_qs

import pytest
import responses

from cartrescue.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, main
from cartrescue.store import SQLiteStore
from tests.conftest import load_fixture

SID = "AC0123456789abcdef0123456789abcdef"
URL = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), out=out)
    return code, out.getvalue()


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("TWILIO_TOKEN", "tw-auth-token-0123456789abcdef")
    path = tmp_path / "cartrescue.toml"
    path.write_text(
        '[shop]\nname = "Nordlys"\nlocale = "nb"\nhome_url = "https://nordlys.example"\n'
        '[connector]\ntype = "cartrescue.demo:DemoConnector"\n'
        f'[channels.sms]\ntype = "twilio"\naccount_sid = "{SID}"\n'
        'auth_token_env = "TWILIO_TOKEN"\nfrom_number = "+4759440000"\nrate_limit = 0\n'
        '[channels.email]\ntype = "console"\n'
        '[store]\npath = "store.sqlite3"\n'
    )
    return path


def _events(config) -> list[tuple[str, str | None]]:
    with SQLiteStore(config.parent / "store.sqlite3") as store:
        return store.events()


@responses.activate
def test_sends_one_marked_message_and_records_it_apart_from_the_outbox(config):
    responses.post(URL, json=load_fixture("twilio/message_created.json"), status=201)
    code, out = run("test-send", "--config", str(config), "--to", "+47 912 34 567", "--step", "1")
    assert code == EXIT_OK, out
    (call,) = responses.calls
    body = {k: v[0] for k, v in parse_qs(call.request.body).items()}
    assert body["To"] == "+4791234567"
    assert body["Body"].startswith("[TEST] Nordlys: Hei Kari!")
    assert "https://nordlys.example" in body["Body"]
    assert "sent via twilio" in out
    ((kind, detail),) = _events(config)
    assert kind == "test_send"
    assert detail is not None and "+4791234567" not in detail  # masked
    db = sqlite3.connect(config.parent / "store.sqlite3")
    assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    code, text = run("stats", "--config", str(config), "--json")
    assert json.loads(text)["messages"] == []


@responses.activate
def test_a_refusal_exits_1_with_the_reason(config):
    responses.post(URL, json=load_fixture("twilio/error_21211.json"), status=400)
    code, out = run("test-send", "-c", str(config), "--to", "+4791234567", "--channel", "sms")
    assert code == EXIT_FAILED
    assert "NOT SENT: twilio refused it:" in out
    assert "21211" in out
    assert [kind for kind, _ in _events(config)] == ["test_send_failed"]


def test_email_is_marked_in_the_subject(config):
    code, out = run(
        "test-send", "-c", str(config), "--to", "kari@example.no", "--step", "2", "--locale", "en"
    )
    assert code == EXIT_OK, out
    assert "Subject: [TEST] " in out
    assert "test email to k***@example.no · step 2 · locale en" in out


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (("--to", "not-a-number", "--channel", "sms"), "to"),
        (("--to", "+4791234567", "--step", "9"), "step"),
        (("--to", "+4791234567", "--channel", "whatsapp"), "channel"),
    ],
)
def test_mistakes_are_usage_errors(config, capsys, args, key):
    code, _ = run("test-send", "-c", str(config), *args)
    assert code == EXIT_CONFIG
    assert f"{key}:" in capsys.readouterr().err
