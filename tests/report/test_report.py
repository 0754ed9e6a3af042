"""The report end to end: a synthetic shop through the real engine, then the figures, the
command, the CSV files and the HTML page (in headless Chromium when it is installed)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from cartrescue.cli import main
from cartrescue.experiments import Arm, Experiment, ExperimentPlan
from cartrescue.report import ReportOptions, make_report, render_html
from cartrescue.store.base import Signal, SignalOutcome
from cartrescue.store.sqlite import _MIGRATIONS, SQLiteStore
from cartrescue_testing.simulation import START, simulate

SPAN = {"since": START - timedelta(days=1), "until": START + timedelta(days=1)}


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """4000 people, half held out; 8 % of held-out and 12 % of messaged people buy."""
    path = tmp_path_factory.mktemp("report") / "shop.sqlite3"
    with SQLiteStore(path) as store:
        sent = simulate(
            store,
            checkouts=4000,
            p_held_out=0.08,
            p_messaged=0.12,
            plan=ExperimentPlan(holdout=0.5),
            seed=7,
        )
        # The email provider's status callbacks: nine in ten delivered, the tenth failed.
        for n in range(1, len(sent.channel.sent) + 1):
            signal = Signal.FAILED if n % 10 == 0 else Signal.DELIVERED
            assert store.record_signal(f"mem-{n}", signal, START) is SignalOutcome.RECORDED
    return path


@pytest.fixture(scope="module")
def report(shop) -> dict[str, Any]:
    with SQLiteStore(shop) as store:
        return make_report(store, ReportOptions(locale="de"), now=START + timedelta(days=1), **SPAN)


def test_the_lift_interval_contains_the_true_lift_and_excludes_zero(report):
    comparison = report["holdout"]["comparison"]
    lift = comparison["lift"]
    assert lift["low"] < 0.04 < lift["high"]
    assert lift["low"] > 0
    assert comparison["significant"] and comparison["verdict"] == "better"
    assert comparison["probability_to_beat"] > 0.99
    incremental = report["attribution"]["incremental"]
    treated = incremental["treated"]
    conversions = incremental["conversions"]
    assert conversions["low"] < 0.04 * treated < conversions["high"]
    assert incremental["revenue"]["low"] < incremental["revenue"]["estimate"]


def test_the_report_shows_delivery_rates_per_channel(report):
    (email,) = report["engagement"]
    assert email["channel"] == "email"
    assert email["sent"] == report["kpis"]["messages_sent"]
    assert email["failed"] == email["sent"] // 10
    assert email["delivery_rate"] == pytest.approx(1 - (email["sent"] // 10) / email["sent"])
    assert email["read"] is None and email["read_rate"] is None  # email reports no reads


def test_held_out_people_are_watched_but_never_messaged(shop, report):
    treated, held = report["holdout"]["arms"]
    assert (treated["arm"], held["arm"]) == ("treated", "holdout")
    assert held["messaged"] == 0 and held["converted"] > 0
    assert treated["messaged"] == treated["eligible"]
    assert treated["eligible"] + held["eligible"] == 4000
    with SQLiteStore(shop) as store:
        stats = store.stats(START)
        assert stats.skip_reasons["step skipped: holdout"] == held["eligible"]
        assert stats.messaged_checkouts == treated["eligible"]
    # attributed counts only messaged people's purchases; incremental is the difference
    assert report["attribution"]["attributed"]["conversions"] == treated["converted"]
    kpis = report["kpis"]
    assert kpis["abandoned_checkouts"] == 4000
    assert kpis["converted"] == treated["converted"] + held["converted"]
    assert kpis["messages_sent"] == treated["messaged"]


def test_an_ab_test_records_its_arm_on_each_outbox_entry(tmp_path):
    experiment = Experiment(
        "offer", (Arm("plain"), Arm("sms-first", weight=3)), start=START - timedelta(days=1)
    )
    with SQLiteStore(tmp_path / "ab.sqlite3") as store:
        sim = simulate(
            store,
            checkouts=400,
            p_held_out=0.1,
            p_messaged=0.1,
            plan=ExperimentPlan(holdout=0.1, experiments=(experiment,)),
        )
        arms = {
            str(k): str(a)
            for k, a in store._query(
                "SELECT checkout_id, arm FROM assignments WHERE experiment = 'offer'"
            )
        }
        on_outbox = dict(store._query("SELECT checkout_id, arm FROM outbox"))
        assert on_outbox and on_outbox == {k: arms[k] for k in on_outbox}
        assert set(on_outbox) == {m.checkout_id for m in sim.channel.sent}
        assert 0.65 < list(arms.values()).count("sms-first") / len(arms) < 0.85
        report = make_report(store, ReportOptions(), now=sim.clock(), **SPAN)
    (offer,) = report["experiments"]
    assert {a["arm"] for a in offer["arms"]} == {"plain", "sms-first"}
    (comparison,) = offer["comparisons"]
    assert comparison["verdict"] == "not enough data yet"
    assert comparison["sample_needed"] > comparison["sample_have"]


def test_a_store_of_schema_1_migrates_forward(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(_MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    db.execute("INSERT INTO meta (key, value) VALUES ('salt', 'x')")
    db.commit()
    db.close()
    with SQLiteStore(path) as store:
        assert store.schema_version() == len(_MIGRATIONS)
        assert store.assignments("c1") == {}
        assert store.assignment_key() == store.assignment_key()


class _Figures(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.charts: dict[str, int] = {}
        self._chart: str | None = None

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        if "data-figure" in found:
            self.figures[found["data-figure"] or ""] = found.get("data-value") or ""
        if tag == "figure":
            self._chart = found.get("data-chart")
            self.charts.setdefault(self._chart or "", 0)
        if self._chart and tag in ("path", "use", "line", "rect", "polyline"):
            self.charts[self._chart] += 1

    def handle_endtag(self, tag):
        if tag == "figure":
            self._chart = None


def _at(report: dict[str, Any], path: str) -> Any:
    value: Any = report
    for name, index in re.findall(r"([^.\[\]]+)(?:\[(\d+)\])?", path):
        value = value[name]
        if index:
            value = value[int(index)]
    return value


def _check_page(dom: str, report: dict[str, Any]) -> None:
    parser = _Figures()
    parser.feed(dom)
    assert len(parser.figures) > 40
    for path, raw in parser.figures.items():
        expected = _at(report, path)
        if expected is None:
            assert raw == "", path
        elif isinstance(expected, str):
            assert raw == expected, path
        else:
            assert float(raw) == pytest.approx(expected, rel=1e-12), path
    assert set(parser.charts) == {"revenue", "conversion", "lift", "funnel"}
    for chart, marks in parser.charts.items():
        assert marks >= 5, f"chart {chart} is empty"


def _config(tmp_path: Path, shop: Path) -> Path:
    config = tmp_path / "cartrescue.toml"
    config.write_text(
        f'[shop]\nname = "Sokker"\nlocale = "de"\n[store]\npath = "{shop}"\n'
        '[experiment]\nholdout = 0.5\n[costs]\ncurrency = "EUR"\nemail = 0.002\n'
        '[attribution]\nsend_window = "12h"\n',
        encoding="utf-8",
    )
    return config


def test_report_command_writes_the_page_csv_and_the_same_figures_as_json(tmp_path, shop, capsys):
    config = _config(tmp_path, shop)
    out = tmp_path / "report.html"
    code = main(
        ["report", "-c", str(config), "--since", "9999d", "--out", str(out),
         "--csv", str(tmp_path / "csv"), "--json"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["shop"] == "Sokker" and report["currency"] == "EUR"
    assert report["kpis"]["cost"] == pytest.approx(
        report["kpis"]["messages_sent"] * 0.002, abs=0.01
    )
    assert report["attribution"]["windows"]["send_hours"] == 12
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page)  # nothing to fetch: offline
    assert "€" in page  # Babel formats money for the shop's locale
    _check_page(page, report)
    with (tmp_path / "csv" / "arms.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["arm"] for r in rows] == ["treated", "holdout"]
    assert int(rows[1]["eligible"]) == report["holdout"]["arms"][1]["eligible"]


def test_report_page_in_headless_chromium(tmp_path, shop, report):
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CARTRESCUE_REQUIRE_SERVICES") == "1":
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed: apt-get install -y chromium")
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
    ]  # fmt: skip
    done = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == []
    _check_page(done.stdout, report)
    artifacts = Path(os.environ.get("CARTRESCUE_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "report.png"
    subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", "--window-size=1280,4000", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 10_000


def test_report_without_data_says_so(tmp_path, capsys):
    config = _config(tmp_path, tmp_path / "empty.sqlite3")
    assert main(["report", "-c", str(config), "--out", str(tmp_path / "r.html")]) == 0
    assert "wrote" in capsys.readouterr().out
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "No holdout" in page and "abandoned checkouts" in page


def test_the_report_module_loads_plotting_only_to_draw(tmp_path):
    code = "import sys, cartrescue.report; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
