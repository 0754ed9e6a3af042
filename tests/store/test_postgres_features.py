"""Experiments, ``cartrescue report``, the reply flow and ``explain`` on PostgreSQL: the same
scenarios the SQLite tests run, on a real server, and the commands on a PostgreSQL
``[store]``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from cartrescue.cli import EXIT_OK
from cartrescue.clock import FrozenClock
from cartrescue.engine import Recovery
from cartrescue.experiments import Arm, Experiment, ExperimentPlan
from cartrescue.store.base import AttributionWindows
from cartrescue_testing import MemoryChannel

from .. import test_conversations as conversations
from .. import test_explain as explaining
from ..conftest import NOON, make_checkout
from ..test_engine import ListConnector
from .test_shops_postgres import SHOPS, run

psycopg = pytest.importorskip(
    "psycopg", reason="needs the postgres extra: pip install -e '.[postgres]'"
)

from cartrescue.store.postgres import PostgresStore  # noqa: E402


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    with PostgresStore(pg_url, shop="nordlys", max_size=4) as s:
        yield s


@pytest.mark.parametrize(
    "scenario",
    [
        "test_a_reply_between_step_1_and_2_holds_the_rest_for_the_pause_then_resumes",
        "test_never_resume_holds_for_good",
        "test_the_same_delivery_twice_makes_one_entry",
        "test_a_whatsapp_text_is_a_reply_and_a_retry_changes_nothing",
        "test_a_keyword_is_not_a_reply_and_the_latest_open_checkout_gets_it",
        "test_not_interested_ends_the_sequence_without_an_opt_out",
        "test_i_have_a_question_forwards_and_pauses",
    ],
)
def test_the_reply_flow(store: PostgresStore, scenario: str) -> None:
    store.start_at(NOON - timedelta(days=1))
    getattr(conversations, scenario)(store, FrozenClock(NOON + timedelta(hours=1)))


def test_replies_are_kept_apart_per_shop(store: PostgresStore) -> None:
    other = store.for_shop("lisboa")
    clock = FrozenClock(NOON + timedelta(hours=1))
    for shop in (store, other):
        shop.start_at(NOON - timedelta(days=1))
        conversations.recovery(shop, clock, make_checkout("c1")).run()
    conversations.send_sms_with_sid(conversations.app_for(store, clock), "Blue?", "SM1")
    # The same provider message id reaching the other shop's endpoint is its own reply.
    conversations.send_sms_with_sid(conversations.app_for(other, clock), "Blue?", "SM1")
    assert [e.text for e in store.conversation("c1")] == ["Blue?"]
    assert [e.text for e in other.conversation("c1")] == ["Blue?"]
    other.forget("+4791234567")
    assert other.conversation("c1") == [] and other.paused_until("c1") is None
    assert store.paused_until("c1") is not None


@pytest.mark.parametrize(
    "scenario",
    [
        "test_send_names_segment_step_channel_and_incentive",
        "test_frequency_cap_hold_and_outbox_shown",
        "test_experiment_arms_are_shown",
        "test_the_arm_the_next_pass_records_is_shown",
        "test_a_held_out_person_is_explained",
    ],
)
def test_explain(store: PostgresStore, scenario: str) -> None:
    store.start_at(NOON - timedelta(days=30))
    getattr(explaining, scenario)(store)


def _engine_run(store: PostgresStore, plan: ExperimentPlan, hours: float) -> Any:
    store.start_at(NOON - timedelta(days=1))
    channels = [MemoryChannel("sms"), MemoryChannel("email")]
    recovery = Recovery(
        ListConnector([make_checkout("c1")]),
        channels,
        store,
        clock=FrozenClock(NOON + timedelta(hours=hours)),
        experiments=plan,
        experiment_key=b"k" * 32,
    )
    return recovery.run(), channels


def test_an_ab_test_sends_the_arm_and_records_it(store: PostgresStore) -> None:
    never = Arm("never", weight=1e-12)
    by_email = Arm("by-email", channel="email")
    plan = ExperimentPlan(
        experiments=(Experiment("t", (never, by_email), start=NOON - timedelta(days=2)),)
    )
    report, (sms, email) = _engine_run(store, plan, 1)
    assert report.counts["sent"] == 1 and not sms.sent
    assert [m.key for m in email.sent] == ["c1:1:email"]
    assert store.assignments("c1") == {"t": "by-email"}
    assert store.arm_counts("t") == {"by-email": (1, 0)}
    facts = store.report_facts(
        NOON - timedelta(days=1), NOON + timedelta(days=1), AttributionWindows()
    )
    assert [(r.experiment, r.arm, r.sent) for r in facts.breakdown] == [("t", "by-email", 1)]


def test_a_held_out_person_is_never_messaged(store: PostgresStore) -> None:
    report, (sms, email) = _engine_run(store, ExperimentPlan(holdout=0.999999), 1)
    assert report.counts["step skipped: holdout"] == 1 and not sms.sent and not email.sent
    assert store.assignments("c1") == {"holdout": "holdout"}


# One shop of the [[shops]] file, as a single-shop file with a holdout.
CONFIG = SHOPS.split("[[shops]]")[0] + '[shop]\nname = "Nordlys"\n[experiment]\nholdout = 0.5\n'


def test_report_and_explain_commands(tmp_path, pg_url, monkeypatch) -> None:
    pytest.importorskip("scipy", reason="the report needs the report extra")
    monkeypatch.setenv("CARTRESCUE_DATABASE_URL", pg_url)
    path = tmp_path / "cartrescue.toml"
    path.write_text(CONFIG)
    assert run("run", "--config", str(path))[0] == EXIT_OK
    with PostgresStore(pg_url) as store:
        # Checkouts the pass never messaged have no arm yet: one in each, so both show.
        store.record_assignments("1006", [("holdout", "holdout", None)], NOON)
        store.record_assignments("1007", [("holdout", "treated", None)], NOON)
        arms = store.arm_counts("holdout")
        seen = store.stats(NOON).checkouts_seen
    code, out = run("report", "--config", str(path), "--json", "--since", "400d")
    assert code == EXIT_OK
    report = json.loads(out)
    assert report["kpis"]["abandoned_checkouts"] == seen > 0
    assert {a["arm"]: a["eligible"] for a in report["holdout"]["arms"]} == {
        arm: n for arm, (n, _) in arms.items()
    }
    code, out = run("explain", "1001", "--config", str(path))
    assert out.startswith("checkout 1001: ")
