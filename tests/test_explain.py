from __future__ import annotations

import io
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from cartrescue.cli import EXIT_FAILED, EXIT_OK, main
from cartrescue.experiments import Arm, Experiment, ExperimentPlan
from cartrescue.explain import explain, format_explanation
from cartrescue.models import DiscountOffer
from cartrescue.policy import Policy, Step
from cartrescue.segments import Segment, SegmentConditions
from cartrescue.store.sqlite import SQLiteStore

from .conftest import NOON, make_checkout

CHANNELS = ["sms", "email"]

POLICY = Policy(
    segments=(
        Segment("tiny", SegmentConditions(max_value=Decimal(50)), skip=True),
        Segment(
            "vip",
            SegmentConditions(min_value=Decimal(1000)),
            steps=(
                Step(1, timedelta(hours=1), ("email",), DiscountOffer(Decimal(15), 7200)),
                Step(2, timedelta(hours=5), ("email",)),
            ),
        ),
    )
)


@pytest.fixture
def store(tmp_path):
    with SQLiteStore(tmp_path / "store.sqlite3") as s:
        s.start_at(NOON - timedelta(days=30))
        yield s


def stored(store, **changes):
    checkout = replace(make_checkout(), **changes)
    store.upsert_checkout(checkout, NOON)
    return checkout


def trail(store, hours, policy=POLICY, checkout_id="c1"):
    found = explain(checkout_id, store, policy, CHANNELS, NOON + timedelta(hours=hours))
    return found, format_explanation(found)


def sent(store, step, channel, hours):
    key = f"c1:{step}:{channel}"
    at = NOON + timedelta(hours=hours)
    assert store.claim(
        key,
        checkout_id="c1",
        step=step,
        channel=channel,
        recipient="kari@example.no",
        contacts=["kari@example.no", "+4791234567"],
        at=at,
        cap_since=None,
        run_id=None,
    )
    store.finish(key, "sent", at)


def test_send_names_segment_step_channel_and_incentive(store):
    stored(store, total=Decimal(1500))
    found, text = trail(store, 1)
    assert (found.segment, found.decision.action, found.decision.step) == ("vip", "send", 1)
    assert found.segment_trail == (("tiny", "value 1500 not below 50"),)
    assert "segment tiny: not matched (value 1500 not below 50)" in text
    assert "segment: vip" in text
    assert "channel: email" in text
    assert "incentive: 15 % off, valid 2h" in text
    assert "would be sent" in text
    assert found.why_nothing_sent is None


def test_not_due_waits(store):
    stored(store)
    found, text = trail(store, 0.5)
    assert found.decision.action == "wait"
    assert "nothing sent: held: not due until 2026-03-11 13:00 UTC" in text
    assert "segment: default" in text


def test_quiet_hours_hold(store):
    stored(store, abandoned_at=NOON + timedelta(hours=8))  # 21:00 in Oslo at step 1
    found, text = trail(store, 9)
    assert found.decision.reason == "quiet hours"
    assert "nothing sent: held: quiet hours until" in text


def test_frequency_cap_hold_and_outbox_shown(store):
    stored(store)
    sent(store, 1, "sms", 1)
    policy = Policy(
        steps=(Step(1, timedelta(hours=1), ("sms",)), Step(2, timedelta(hours=10), ("email",)))
    )
    found, text = trail(store, 10, policy)
    assert found.decision.reason == "frequency cap"
    assert "step 1 on sms: sent" in text
    assert "held: frequency cap" in text


def test_overdue_steps_are_listed_as_skipped(store):
    stored(store)
    policy = Policy(
        steps=(Step(1, timedelta(hours=1), ("sms",)), Step(2, timedelta(hours=30), ("email",)))
    )
    found, text = trail(store, 10, policy)
    assert found.skipped == ((1, "overdue"),)
    assert "step 1: would be skipped (overdue)" in text
    assert found.decision.action == "wait"


def test_no_allowed_channel_skip(store):
    stored(store, customer=replace(make_checkout().customer, email=None, email_consent=False))
    policy = Policy(steps=(Step(1, timedelta(hours=1), ("email",)),))
    found, text = trail(store, 1, policy)
    assert found.skipped == ((1, "no allowed channel for this step"),)
    assert "nothing sent: stopped: all steps done" in text


def test_cooldown_withholds_the_incentive(store):
    stored(store, total=Decimal(1500))
    store.record_discount("other", ["kari@example.no"], "OLDCODE", NOON - timedelta(days=2))
    found, text = trail(store, 1)
    assert found.decision.action == "send"
    assert found.decision.discount is None
    assert "incentive: none: this person was given a code within the discount cooldown" in text


def test_step_without_offer(store):
    stored(store)
    _, text = trail(store, 1)
    assert "incentive: none: the step offers none" in text


@pytest.mark.parametrize(
    ("changes", "optout", "reason"),
    [
        ({"total": Decimal(20)}, None, "segment tiny is skipped"),
        ({"customer": None}, None, "no reachable contact"),
        (
            {"customer": replace(make_checkout().customer, email_consent=False, sms_consent=False)},
            None,
            "no consent for any configured channel",
        ),
        ({}, "*", "opted out"),
        (
            {"abandoned_at": NOON - timedelta(days=40)},
            None,
            "abandoned before cartrescue was switched on",
        ),
        ({"completed_at": NOON}, None, "completed"),
    ],
)
def test_each_stop(store, changes, optout, reason):
    stored(store, **changes)
    if optout:
        store.add_optout("kari@example.no", optout, "cli", NOON)
        store.add_optout("+4791234567", optout, "cli", NOON)
    found, text = trail(store, 1)
    assert found.decision.action == "stop"
    assert found.decision.reason == reason
    assert f"nothing sent: stopped: {reason}" in text


def test_all_steps_done(store):
    stored(store)
    policy = Policy(steps=(Step(1, timedelta(hours=1), ("sms",)),))
    sent(store, 1, "sms", 1)
    _, text = trail(store, 30, policy)
    assert "stopped: all steps done" in text


def test_closed_and_unknown_checkouts(store):
    stored(store)
    sent(store, 1, "sms", 1)
    store.close_checkout("c1", "done", "all steps done", NOON)
    found, text = trail(store, 2)
    assert found.checkout is None
    assert "nothing sent: the checkout is closed (done)" in text
    assert "step 1 on sms: sent" in text
    found, text = trail(store, 2, checkout_id="nope")
    assert found.status is None
    assert "the store has no checkout with this id" in text


def test_experiment_arms_are_shown(store):
    stored(store)
    store.record_assignments("c1", [("offer-test", "B", 1)], NOON)
    found, text = trail(store, 1)
    assert found.arms == {"offer-test": "B"}
    assert "experiment offer-test: B" in text


def test_cli_explain(tmp_path):
    config = tmp_path / "cartrescue.toml"
    config.write_text(
        '[shop]\nname = "Nordlys"\n[connector]\ntype = "cartrescue.demo:DemoConnector"\n'
        '[channels.sms]\ntype = "console"\n[channels.email]\ntype = "console"\n'
        '[store]\npath = "store.sqlite3"\n'
        '[[segments]]\nname = "big"\nmin_value = 1000\n'
    )
    out = io.StringIO()
    assert main(["run", "--config", str(config)], out=out) == EXIT_OK
    out = io.StringIO()
    code = main(["explain", "1001", "--config", str(config)], out=out)
    assert code == EXIT_OK
    assert out.getvalue().startswith("checkout 1001: ")
    out = io.StringIO()
    assert main(["explain", "nope", "--config", str(config)], out=out) == EXIT_FAILED
    assert "no checkout with this id" in out.getvalue()


def test_offer_below_minimum_subtotal_is_explained(store):
    stored(store, total=Decimal(300))
    offer = DiscountOffer(Decimal(10), 3600, min_subtotal=Decimal(500))
    policy = Policy(steps=(Step(1, timedelta(hours=1), ("email",), offer),))
    _, text = trail(store, 1, policy)
    assert "incentive: none: the cart is below the offer's minimum subtotal of 500" in text


PLAN = ExperimentPlan(
    experiments=(
        Experiment("offer-test", (Arm("A"), Arm("B", no_discount=True)), NOON - timedelta(days=1)),
    )
)


def test_the_arm_the_next_pass_records_is_shown(store):
    stored(store)
    found = explain(
        "c1", store, POLICY, CHANNELS, NOON + timedelta(hours=1),
        experiments=PLAN, experiment_key=b"k" * 32, shop_name="Nordlys",
    )  # fmt: skip
    assert set(found.arms) == {"offer-test"}
    assert found.arms["offer-test"] in {"A", "B"}
    assert store.assignments("c1") == {}  # nothing recorded


def test_a_held_out_person_is_explained(store):
    stored(store)
    plan = replace(PLAN, holdout=0.9999)
    found = explain(
        "c1", store, POLICY, CHANNELS, NOON + timedelta(hours=1),
        experiments=plan, experiment_key=b"k" * 32, shop_name="Nordlys",
    )  # fmt: skip
    text = format_explanation(found)
    assert found.arms == {"holdout": "holdout"}
    assert "decision: skip (holdout)" in text
    assert "nothing sent: held out" in text
