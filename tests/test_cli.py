from __future__ import annotations

import io
import json
import re
import sqlite3

import pytest

from cartrescue.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, main


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), out=out)
    return code, out.getvalue()


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "cartrescue.toml"
    path.write_text(
        '[shop]\nname = "Nordlys"\n[connector]\ntype = "cartrescue.demo:DemoConnector"\n'
        '[channels.sms]\ntype = "console"\n[channels.email]\ntype = "console"\n'
        '[store]\npath = "store.sqlite3"\n'
    )
    return path


def test_demo_prints_each_message_and_a_summary():
    code, out = run("demo")
    assert code == EXIT_OK
    assert "--- sms to +47******67 · step 1 · 1001:1:sms" in out
    assert "Nordlys Design: Hei Kari!" in out  # Kari reads Norwegian (nb)
    assert re.search(r"https://nordlys-design.example/r/[0-9A-Za-z]{8} ", out)
    assert "sent: 4" in out
    assert "bad payload: 1" in out
    assert "held: quiet hours: 1" in out
    assert "kari.nordmann@example.no" not in out
    callbacks = out[out.index("The providers' status callbacks") :].splitlines()
    assert callbacks[3].split() == ["sms", "2", "1", "(50.0%)", "-", "1"]


def test_run_then_stats(config):
    code, out = run("run", "--config", str(config))
    assert code == EXIT_OK
    assert "Pass at" in out
    code, out = run("stats", "--config", str(config), "--json")
    assert code == EXIT_OK
    stats = json.loads(out)
    assert stats["checkouts_seen"] >= 1
    assert stats["last_pass_completed"] is not None
    code, out = run("stats", "--config", str(config))
    assert "Last pass completed:" in out and "never" not in out.split("Last pass completed:")[1]


def test_run_dry_run_prints_messages_and_records_no_sends(config):
    code, out = run("run", "--config", str(config), "--dry-run")
    assert code == EXIT_OK
    assert "Dry run at" in out
    db = sqlite3.connect(config.parent / "store.sqlite3")
    assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0


def test_config_error_exit_code(tmp_path, capsys):
    bad = tmp_path / "cartrescue.toml"
    bad.write_text('[connector]\ntype = "nosuch"\n[channels.sms]\ntype = "console"\n')
    code, _ = run("run", "--config", str(bad))
    assert code == EXIT_CONFIG
    assert "connector.type" in capsys.readouterr().err


def test_optout_add_list_remove(config):
    assert run("optout", "add", "+47 912 34 567", "--config", str(config))[0] == EXIT_OK
    code, out = run("optout", "list", "--config", str(config))
    assert code == EXIT_OK
    assert "+4791234567\t*\tcli" in out
    _code, out = run("optout", "remove", "+4791234567", "--config", str(config))
    assert "removed 1" in out
    assert run("optout", "add", "not-a-number", "--config", str(config))[0] == EXIT_CONFIG


def test_forget_erases_every_row_naming_the_person(config):
    from cartrescue.store import SQLiteStore

    run("run", "--config", str(config))
    with SQLiteStore(config.parent / "store.sqlite3") as store:
        assert store.rows_naming("kari.nordmann@example.no") > 0
    code, out = run("forget", "Kari.Nordmann@example.no", "--config", str(config))
    assert code == EXIT_OK and "erased" in out
    with SQLiteStore(config.parent / "store.sqlite3") as store:
        assert store.rows_naming("kari.nordmann@example.no") == 0
        assert store.rows_naming("+4791234567") == 0


def test_init_writes_a_config_that_validates(tmp_path):
    code, out = run("init", str(tmp_path))
    assert code == EXIT_OK
    assert (tmp_path / "cartrescue.toml").exists()
    assert (tmp_path / "templates" / "sms").is_dir()
    assert run("init", str(tmp_path))[0] == EXIT_CONFIG  # refuses to overwrite
    code, out = run("doctor", "--config", str(tmp_path / "cartrescue.toml"))
    assert code == EXIT_OK, out


def test_doctor_reports_a_stale_schedule(config):
    from datetime import timedelta

    from cartrescue.clock import utc_now
    from cartrescue.store import SQLiteStore

    with SQLiteStore(config.parent / "store.sqlite3") as store:
        run_id = store.begin_run(utc_now() - timedelta(hours=5))
        store.finish_run(run_id, utc_now() - timedelta(hours=5), {}, None)
    code, out = run("doctor", "--config", str(config))
    assert code == EXIT_FAILED
    assert "schedule" in out and "cron" in out


def test_doctor_says_which_sms_templates_do_not_fit_without_short_links(config):
    code, out = run("doctor", "--config", str(config))
    assert code == EXIT_FAILED
    assert "templates: sms/1.en.j2 (en, worst case)" in out
    assert "[links] base_url" in out
    config.write_text(config.read_text() + '[links]\nbase_url = "https://go.shop.example/r/"\n')
    code, out = run("doctor", "--config", str(config))
    assert "templates:" not in out, out


def test_doctor_warns_without_a_hash_key_and_run_uses_the_key(config, monkeypatch, capsys):
    out = run("doctor", "--config", str(config))[1]
    assert "[warning] store: no hash key" in out
    assert "hash_key_env" in out
    config.write_text(
        config.read_text().replace("[store]\n", '[store]\nhash_key_env = "CARTRESCUE_HASH_KEY"\n')
    )
    monkeypatch.delenv("CARTRESCUE_HASH_KEY", raising=False)
    capsys.readouterr()
    assert run("doctor", "--config", str(config))[0] == EXIT_CONFIG
    assert "environment variable CARTRESCUE_HASH_KEY is not set" in capsys.readouterr().err
    monkeypatch.setenv("CARTRESCUE_HASH_KEY", "short")
    assert run("run", "--config", str(config))[0] == EXIT_CONFIG
    monkeypatch.setenv("CARTRESCUE_HASH_KEY", "s" * 40)
    out = run("doctor", "--config", str(config))[1]
    assert "hash key" not in out
    assert run("optout", "add", "+4791234567", "--config", str(config))[0] == EXIT_OK
    assert run("forget", "+4791234567", "--config", str(config))[0] == EXIT_OK
    db = sqlite3.connect(config.parent / "store.sqlite3")
    (stored,) = db.execute("SELECT hash FROM optout_hashes").fetchone()
    db.close()
    assert stored.startswith("hmac:")


def test_a_template_error_exits_1_shows_in_stats_and_the_step_is_sent_once_fixed(tmp_path, capsys):
    from .test_processes import write_shop

    templates = tmp_path / "templates" / "sms"
    templates.mkdir(parents=True)
    locales = ("ar", "en", "fi", "hu", "nb", "pt-BR")
    for locale in locales:
        (templates / f"1.{locale}.j2").write_text("Hi {{ no_such_variable }} {{ link }}")
    config = write_shop(tmp_path, 1, '[channels.sms]\ntype = "console"\nmask = false')
    config.write_text(config.read_text() + f'[templates]\ndirs = ["{tmp_path / "templates"}"]\n')

    code, out = run("run", "--config", str(config))
    assert code == EXIT_FAILED, out
    assert "failed: not rendered: 1" in out
    assert "no_such_variable" in out
    code, out = run("stats", "--config", str(config))
    assert "Not rendered:         1" in out
    code, out = run("stats", "--config", str(config), "--json")
    assert json.loads(out)["not_rendered"] == 1

    for locale in locales:  # the owner fixes the template; the step is still due
        (templates / f"1.{locale}.j2").write_text("Hi {{ first_name }}: {{ link }}")
    capsys.readouterr()
    code, out = run("run", "--config", str(config))
    assert code == EXIT_OK, out
    assert "sent: 1" in out
    printed = capsys.readouterr().out  # the console channel
    assert "c0:1:sms" in printed
    assert "Hi Kari: https://" in printed
    code, out = run("stats", "--config", str(config), "--json")
    stats = json.loads(out)
    assert stats["not_rendered"] == 0
    assert {"step": 1, "channel": "sms", "status": "sent", "count": 1} in stats["messages"]


def test_stats_and_optout_need_no_secrets_but_run_does(config, monkeypatch, capsys):
    """An owner runs stats by hand, without the env file cron reads."""
    config.write_text(
        config.read_text().replace(
            '[channels.sms]\ntype = "console"\n',
            '[channels.sms]\ntype = "twilio"\naccount_sid = "AC' + "0" * 32 + '"\n'
            'auth_token_env = "TWILIO_AUTH_TOKEN"\nfrom_number = "+4759440000"\n',
        )
    )
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    assert run("stats", "--config", str(config))[0] == EXIT_OK
    assert run("optout", "list", "--config", str(config))[0] == EXIT_OK
    capsys.readouterr()
    assert run("run", "--config", str(config))[0] == EXIT_CONFIG
    assert "TWILIO_AUTH_TOKEN is not set" in capsys.readouterr().err
