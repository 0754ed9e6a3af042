"""``cartrescue stats``: a readable table, and a documented JSON document that agrees with it."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from babel.numbers import format_currency

from cartrescue.cli import EXIT_FAILED, EXIT_OK, main
from cartrescue.clock import utc_now
from cartrescue.models import Purchase
from cartrescue.stats import stats_document
from cartrescue.store import SQLiteStore

README = Path(__file__).resolve().parents[1] / "README.md"


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), out=out)
    return code, out.getvalue()


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "cartrescue.toml"
    path.write_text(
        '[shop]\nname = "Nordlys"\nlocale = "nb"\n'
        '[connector]\ntype = "cartrescue.demo:DemoConnector"\n'
        '[channels.sms]\ntype = "console"\n[store]\npath = "store.sqlite3"\n'
    )
    return path


def _history(path: Path, *, last_pass_ago: timedelta) -> None:
    """Two messages for one checkout, the second one paid for, one pass long ago."""
    now = utc_now()
    with SQLiteStore(path) as store:
        for step, status in ((1, "sent"), (2, "failed")):
            key = f"c1:{step}:sms"
            assert store.claim(
                key,
                checkout_id="c1",
                step=step,
                channel="sms",
                recipient="+4791234567",
                contacts=["+4791234567"],
                at=now - timedelta(hours=3),
                cap_since=None,
                run_id=None,
            )
            store.finish(key, status, now - timedelta(hours=3))
        store.record_conversion(
            "c1",
            "converted",
            Purchase("o1", now, Decimal("1290.50"), "NOK", same_checkout=True),
            now,
            now - timedelta(days=7),
        )
        run_id = store.begin_run(now - last_pass_ago)
        store.finish_run(run_id, now - last_pass_ago, {}, None)


def test_stats_is_a_readable_table(config):
    _history(config.parent / "store.sqlite3", last_pass_ago=timedelta(minutes=5))
    code, out = run("stats", "--config", str(config))
    assert code == EXIT_OK, out
    assert "{" not in out and "}" not in out  # no raw dicts
    header = next(line for line in out.splitlines() if "channel" in line and "sent" in line)
    row = next(line for line in out.splitlines() if re.match(r"\s+1\s+sms\s", line))
    columns = header.split()
    assert row.split()[columns.index("sent")] == "1"
    assert row.split()[columns.index("failed")] == "0"
    revenue = next(line for line in out.splitlines() if line.startswith("Revenue recovered"))
    assert format_currency(Decimal("1290.50"), "NOK", locale="nb") in revenue  # the shop's locale
    assert "paid the abandoned checkout       1" in out
    assert re.search(r"Last pass completed: .*\(5 minutes ago\)", out), out


def test_staleness_is_humanised_and_json_exits_like_the_table(config):
    _history(config.parent / "store.sqlite3", last_pass_ago=timedelta(hours=5))
    code, out = run("stats", "--config", str(config))
    assert code == EXIT_FAILED
    assert "no pass has completed for 5 hours; runs are expected every 15 minutes" in out
    assert not re.search(r"\d:\d\d:\d\d", out), out
    json_code, text = run("stats", "--config", str(config), "--json")
    assert json_code == code
    document = json.loads(text)
    assert document["stale"] is True
    assert "5 hours" in document["stale_reason"]
    assert document["last_pass_age_seconds"] >= 5 * 3600
    assert document["passes_completed"] == 1
    assert document["revenue_recovered"] == {"NOK": "1290.50"}
    assert document["messages"] == [
        {"step": 1, "channel": "sms", "status": "sent", "count": 1},
        {"step": 2, "channel": "sms", "status": "failed", "count": 1},
    ]


def test_fresh_stats_json_is_not_stale(config):
    _history(config.parent / "store.sqlite3", last_pass_ago=timedelta(minutes=1))
    code, text = run("stats", "--config", str(config), "--json")
    assert code == EXIT_OK
    assert json.loads(text)["stale"] is False


def test_readme_documents_every_json_field():
    with SQLiteStore(":memory:") as store:
        document = stats_document(store.stats(utc_now()), now=utc_now(), stale=None)
    readme = README.read_text(encoding="utf-8")
    section = readme[readme.index("### `stats --json`") :]
    section = section[: section.index("\n#")]
    missing = [name for name in document if f"`{name}`" not in section]
    assert not missing, f"README's stats --json section does not describe {missing}"


def test_optout_list_filters_by_channel(config):
    assert run("optout", "add", "kari@example.no", "--channel", "email", "-c", str(config))[0] == 0
    assert run("optout", "add", "+4791234567", "--channel", "sms", "-c", str(config))[0] == 0
    assert run("optout", "add", "+4790000000", "-c", str(config))[0] == 0  # every channel
    code, out = run("optout", "list", "--channel", "sms", "--config", str(config))
    assert code == EXIT_OK
    assert "kari@example.no" not in out
    assert "+4791234567\tsms" in out and "+4790000000\t*" in out
    code, out = run("optout", "list", "--config", str(config))
    assert "kari@example.no\temail" in out


def test_stats_show_delivery_and_read_rates_per_channel(config):
    from cartrescue.store.base import Signal

    now = utc_now()
    with SQLiteStore(config.parent / "store.sqlite3") as store:
        for n, channel, signal in (
            (1, "sms", Signal.DELIVERED),
            (2, "sms", Signal.FAILED),
            (3, "sms", None),
            (4, "sms", Signal.DELIVERED),
            (5, "whatsapp", Signal.READ),
            (6, "whatsapp", Signal.DELIVERED),
        ):
            key = f"c{n}:1:{channel}"
            assert store.claim(
                key,
                checkout_id=f"c{n}",
                step=1,
                channel=channel,
                recipient="+4791234567",
                contacts=[],
                at=now,
                cap_since=None,
                run_id=None,
            )
            store.finish(key, "sent", now, provider_id=f"p{n}")
            if signal is not None:
                store.record_signal(f"p{n}", signal, now)
        store.finish("c1:1:sms", "sent", now, provider_id="p1")
    _code, text = run("stats", "--config", str(config), "--json")
    engagement = {row["channel"]: row for row in json.loads(text)["engagement"]}
    assert engagement["sms"] == {
        "channel": "sms",
        "sent": 4,
        "delivered": 2,
        "delivery_rate": 0.5,
        "read": None,
        "read_rate": None,
        "reads_reported": False,
        "failed": 1,
    }
    whatsapp = engagement["whatsapp"]
    assert (whatsapp["sent"], whatsapp["delivered"], whatsapp["read"]) == (2, 2, 1)
    assert (whatsapp["delivery_rate"], whatsapp["read_rate"]) == (1.0, 0.5)
    _, table = run("stats", "--config", str(config))
    section = table[table.index("Delivery, as the providers report it:") :].splitlines()
    assert section[2].split() == ["sms", "4", "2", "(50.0%)", "-", "1"]
    assert section[3].split() == ["whatsapp", "2", "2", "(100.0%)", "1", "(50.0%)", "0"]


def test_stats_before_any_message_say_there_are_no_status_callbacks(config):
    _code, text = run("stats", "--config", str(config))
    assert "no status callbacks yet" in text
    assert json.loads(run("stats", "--config", str(config), "--json")[1])["engagement"] == []
