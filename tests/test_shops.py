"""Many shops in one file: ``[[shops]]``, ``run --shop/--all``, ``stats``, ``report``,
``forget``, and the commands that act on one shop (``explain``, ``test-send``, ``preview``)."""

from __future__ import annotations

import io
import json
import sqlite3

import pytest

from cartrescue.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, main
from cartrescue.config import load_config
from cartrescue.errors import ConfigError
from cartrescue.shops import select_shops

SHOPS = """
[shop]
name = "Top"
locale = "en"
[connector]
type = "cartrescue.demo:DemoConnector"
[channels.sms]
type = "console"
[channels.email]
type = "console"
[store]
path = "store.sqlite3"
[policy]
frequency_cap = "12h"

[[shops]]
name = "nordlys"
display_name = "Nordlys Design"
timezone = "Europe/Oslo"
policy = { max_overdue = "30d" }

[[shops]]
name = "lisboa"
timezone = "Europe/Lisbon"
locale = "pt"
[shops.channels.sms]
type = "console"
"""


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), out=out)
    return code, out.getvalue()


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "cartrescue.toml"
    path.write_text(SHOPS)
    return path


def test_each_shop_has_its_own_settings_over_the_shared_ones(config):
    loaded = load_config(config)
    assert sorted(loaded.shops) == ["lisboa", "nordlys"]
    nordlys, lisboa = loaded.shops["nordlys"], loaded.shops["lisboa"]
    assert nordlys.shop.name == "Nordlys Design" and nordlys.shop.timezone == "Europe/Oslo"
    assert lisboa.shop.name == "lisboa" and lisboa.shop.locale == "pt"
    assert str(nordlys.policy.max_overdue) == "30 days, 0:00:00"
    assert nordlys.policy.frequency_cap == lisboa.policy.frequency_cap  # laid over [policy]
    assert sorted(nordlys.channels()) == ["email", "sms"]
    assert sorted(lisboa.channels()) == ["sms"]  # [channels] replaced as a whole
    assert nordlys.store_path().endswith("store.nordlys.sqlite3")
    assert lisboa.store_path().endswith("store.lisboa.sqlite3")


def test_a_mistake_in_a_shop_names_the_entry(tmp_path):
    path = tmp_path / "cartrescue.toml"
    path.write_text(SHOPS.replace('timezone = "Europe/Lisbon"', 'timezone = "Mars/Olympus"'))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert any(p.key.startswith("shops") for p in err.value.problems)
    path.write_text(SHOPS.replace('name = "lisboa"', 'name = "nordlys"'))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "unique" in str(err.value)
    path.write_text(SHOPS + '\n[shops.connector]\ntype = "nosuch"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert any(p.key == "shops[2].connector.type" for p in err.value.problems)


def test_run_needs_a_choice_then_runs_one_shop_or_all(config):
    code, out = run("run", "--config", str(config))
    assert code == EXIT_CONFIG
    code, out = run("run", "--config", str(config), "--shop", "nowhere")
    assert code == EXIT_CONFIG
    code, out = run("run", "--config", str(config), "--shop", "lisboa")
    assert code == EXIT_OK and out.startswith("lisboa: Pass at")
    assert (config.parent / "store.lisboa.sqlite3").exists()
    assert not (config.parent / "store.nordlys.sqlite3").exists()
    code, out = run("run", "--config", str(config), "--all")
    assert code == EXIT_OK
    assert "nordlys: Pass at" in out and "lisboa: Pass at" in out
    code, out = run("stats", "--config", str(config), "--json", "--shop", "nordlys")
    one = json.loads(out)
    code, out = run("stats", "--config", str(config), "--json")
    overall = json.loads(out)
    code, out2 = run("stats", "--config", str(config), "--json", "--shop", "lisboa")
    other = json.loads(out2)
    assert overall["checkouts_seen"] == one["checkouts_seen"] + other["checkouts_seen"] > 0
    code, out = run("stats", "--config", str(config))
    assert out.startswith("All 2 shops: nordlys, lisboa")


def test_forget_erases_the_contact_in_every_shop(config):
    assert run("run", "--config", str(config), "--all")[0] == EXIT_OK

    def naming(shop: str) -> int:
        db = sqlite3.connect(config.parent / f"store.{shop}.sqlite3")
        try:
            query = "SELECT count(*) FROM checkouts WHERE phone = '+4791234567'"
            return int(db.execute(query).fetchone()[0])
        finally:
            db.close()

    assert naming("nordlys") == naming("lisboa") == 1
    code, _out = run("forget", "--config", str(config), "+4791234567")
    assert code == EXIT_OK
    assert naming("nordlys") == naming("lisboa") == 0


def test_a_single_shop_file_is_its_own_shop(tmp_path):
    path = tmp_path / "cartrescue.toml"
    path.write_text(SHOPS.split("[[shops]]")[0])
    loaded = load_config(path)
    assert loaded.shops == {} and select_shops(loaded) == [loaded]
    assert loaded.store_path().endswith("store.sqlite3")
    with pytest.raises(ConfigError):
        select_shops(loaded, "nordlys")


def test_validate_checks_every_shop(config):
    loaded = load_config(config)
    loaded.validate()
    loaded.shops["lisboa"].data["channels"]["sms"]["type"] = "nosuch"
    with pytest.raises(ConfigError) as err:
        loaded.validate()
    assert [p.key for p in err.value.problems] == ["shops.lisboa.channels.sms.type"]


@pytest.mark.parametrize(
    "command",
    [
        ("explain", "1001"),
        ("test-send", "--to", "+4791234567"),
        ("preview",),
        ("report", "--json"),
        ("optout", "list"),
    ],
)
def test_a_command_for_one_shop_names_the_choices(config, capsys, command):
    code, _ = run(*command, "--config", str(config))
    assert code == EXIT_CONFIG
    error = capsys.readouterr().err
    assert "several shops" in error and "--shop NAME (one of lisboa, nordlys" in error
    assert ("--all" in error) == (command[0] in ("report", "optout"))
    code, _ = run(*command, "--config", str(config), "--shop", "nowhere")
    assert code == EXIT_CONFIG
    assert "no shop named 'nowhere'" in capsys.readouterr().err


def test_explain_test_send_and_preview_act_on_the_named_shop(config):
    assert run("run", "--config", str(config), "--shop", "lisboa")[0] == EXIT_OK
    code, out = run("explain", "1001", "--config", str(config), "--shop", "lisboa")
    assert code == EXIT_OK and out.startswith("checkout 1001: ")
    code, out = run("explain", "1001", "--config", str(config), "--shop", "nordlys")
    assert code == EXIT_FAILED and "no checkout with this id" in out  # never run
    code, out = run("test-send", "--config", str(config), "--shop", "lisboa", "--to", "+4791234567")
    assert code == EXIT_OK and "recorded as a test" in out
    _, lisboa = run("preview", "--config", str(config), "--shop", "lisboa", "--step", "1")
    _, nordlys = run("preview", "--config", str(config), "--shop", "nordlys", "--step", "1")
    assert "Nordlys Design" in nordlys and "Nordlys Design" not in lisboa


def test_report_and_stats_of_each_shop_and_of_all(config, tmp_path, monkeypatch):
    pytest.importorskip("scipy", reason="the report needs the report extra")
    monkeypatch.chdir(tmp_path)
    assert run("run", "--config", str(config), "--all")[0] == EXIT_OK
    code, out = run("report", "--config", str(config), "--shop", "nordlys", "--json")
    assert code == EXIT_OK
    nordlys = json.loads(out)
    code, out = run("report", "--config", str(config), "--all", "--json", "--csv", "tables")
    assert code == EXIT_OK
    every = json.loads(out)
    assert sorted(every["shops"]) == ["lisboa", "nordlys"]
    assert every["shops"]["nordlys"]["kpis"] == nordlys["kpis"]
    kpis = [every["shops"][s]["kpis"] for s in ("lisboa", "nordlys")]
    for figure in ("abandoned_checkouts", "messages_sent", "converted"):
        assert every["overall"]["kpis"][figure] == sum(k[figure] for k in kpis), figure
    assert (tmp_path / "tables" / "kpis.csv").exists()
    assert (tmp_path / "tables" / "lisboa" / "kpis.csv").exists()
    code, out = run("report", "--config", str(config), "--all", "--out", "weekly.html")
    assert code == EXIT_OK
    assert out.split() == ["wrote", "weekly.html", "wrote", "weekly.nordlys.html", "wrote",
                           "weekly.lisboa.html"]  # fmt: skip
    code, out = run("stats", "--config", str(config), "--all", "--json")
    stats = json.loads(out)
    assert sorted(stats["shops"]) == ["lisboa", "nordlys"]
    assert stats["overall"]["checkouts_seen"] == sum(
        s["checkouts_seen"] for s in stats["shops"].values()
    )
    code, out = run("stats", "--config", str(config), "--all")
    assert out.index("Shop nordlys") < out.index("Shop lisboa") < out.index("All 2 shops")


def test_opt_outs_of_one_shop_or_of_every_shop(config):
    assert run("optout", "add", "+4791234567", "--config", str(config), "--shop", "lisboa")[0] == 0
    code, out = run("optout", "add", "kari@example.no", "--config", str(config), "--all")
    assert code == EXIT_OK
    assert out.splitlines() == [
        "nordlys: opted out kari@example.no (*)",
        "lisboa: opted out kari@example.no (*)",
    ]
    _, listed = run("optout", "list", "--config", str(config), "--all")
    assert sorted(line.split("\t")[0] for line in listed.splitlines()) == [
        "lisboa: +4791234567",
        "lisboa: kari@example.no",
        "nordlys: kari@example.no",
    ]
    _, out = run(
        "optout", "remove", "kari@example.no", "--config", str(config), "--shop", "nordlys"
    )
    assert out == "removed 1 opt-out(s) for kari@example.no\n"
    _, listed = run("optout", "list", "--config", str(config), "--shop", "nordlys")
    assert listed == ""
