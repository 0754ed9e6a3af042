from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cartrescue.experiments import (
    HOLDOUT,
    TREATED,
    Arm,
    ArmCounts,
    Experiment,
    ExperimentPlan,
    assign,
    assign_arm,
    in_holdout,
    person_key,
    with_arm,
)
from cartrescue.models import DiscountOffer

KEY = b"k" * 32
T0 = datetime(2026, 3, 1, tzinfo=UTC)
PEOPLE = [f"person{i}@example.com" for i in range(20_000)]


def ab(*weights: float, allocation: str = "fixed", step: int | None = None) -> Experiment:
    return Experiment(
        "subject",
        tuple(Arm(f"arm{i}", w) for i, w in enumerate(weights)),
        start=T0,
        step=step,
        allocation=allocation,  # type: ignore[arg-type]
    )


def arms_of(people: list[str], experiment: Experiment, key: bytes = KEY) -> dict[str, str]:
    return {p: assign_arm(key, "shop", experiment, p).name for p in people}


def test_assignment_is_stable_across_reruns_and_reordered_input():
    experiment = ab(1, 1, 2)
    first = arms_of(PEOPLE[:2000], experiment)
    again = arms_of(list(reversed(PEOPLE[:2000])), experiment)
    assert first == again


def test_assignment_is_the_same_in_another_process():
    code = (
        "import json, sys\n"
        "from datetime import UTC, datetime\n"
        "from cartrescue.experiments import Arm, Experiment, assign_arm, in_holdout\n"
        "e = Experiment('subject', (Arm('arm0', 1), Arm('arm1', 1), Arm('arm2', 2)),"
        " start=datetime(2026, 3, 1, tzinfo=UTC))\n"
        "people = [f'person{i}@example.com' for i in range(2000)]\n"
        "print(json.dumps({p: [assign_arm(b'k' * 32, 'shop', e, p).name,"
        " in_holdout(b'k' * 32, 'shop', p, 0.1)] for p in people}))\n"
    )
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", code], check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    here = {
        p: [a, in_holdout(KEY, "shop", p, 0.1)]
        for p, a in arms_of(PEOPLE[:2000], ab(1, 1, 2)).items()
    }
    assert runs[0] == here


def test_arm_shares_match_the_weights_within_sampling_error():
    shares = Counter(arms_of(PEOPLE, ab(1, 1, 2)).values())
    n = len(PEOPLE)
    for arm, expected in (("arm0", 0.25), ("arm1", 0.25), ("arm2", 0.5)):
        se = (expected * (1 - expected) / n) ** 0.5
        assert abs(shares[arm] / n - expected) < 4 * se, shares


def test_the_holdout_takes_its_share_of_people_and_the_key_decides_who():
    held = [p for p in PEOPLE if in_holdout(KEY, "shop", p, 0.1)]
    assert abs(len(held) / len(PEOPLE) - 0.1) < 4 * (0.09 / len(PEOPLE)) ** 0.5
    other = {p for p in PEOPLE if in_holdout(b"x" * 32, "shop", p, 0.1)}
    assert len(other & set(held)) < len(held) * 0.2  # independent draws overlap ~10 %
    assert not any(in_holdout(KEY, "shop", p, 0.0) for p in PEOPLE[:100])


def test_a_person_is_held_out_on_every_cart_and_step():
    plan = ExperimentPlan(holdout=0.2, experiments=(ab(1, 1),))
    for person in PEOPLE[:300]:
        first = assign(plan, KEY, "shop", [person], 1, T0)
        later = assign(plan, KEY, "shop", [person.upper(), "+4791234567"], 2, T0 + timedelta(1))
        assert first.held_out == later.held_out
        assert first.arms["holdout"] == (HOLDOUT if first.held_out else TREATED)
        if first.held_out:
            assert first.arm is None
        else:
            assert first.arm is not None and first.arm == later.arm


def test_recorded_assignments_win_and_experiments_respect_dates_and_steps():
    experiment = Experiment(
        "dated", (Arm("a"), Arm("b")), start=T0, end=T0 + timedelta(days=7), step=2
    )
    plan = ExperimentPlan(experiments=(experiment,))
    person = PEOPLE[0]
    assert assign(plan, KEY, "shop", [person], 1, T0).arm is None  # another step
    assert assign(plan, KEY, "shop", [person], 2, T0 - timedelta(1)).arm is None  # not started
    assert assign(plan, KEY, "shop", [person], 2, T0 + timedelta(8)).arm is None  # over
    kept = assign(plan, KEY, "shop", [person], 2, T0 + timedelta(8), recorded={"dated": "b"})
    assert kept.arm is not None and kept.arm.name == "b"  # a finished test keeps its arms
    assert assign(plan, KEY, "shop", [], 2, T0).arms == {}


def test_adaptive_allocation_is_deterministic_keeps_a_floor_and_favours_the_winner():
    experiment = ab(1, 1, 1, allocation="adaptive")
    counts = {
        "arm0": ArmCounts(1000, 50),
        "arm1": ArmCounts(1000, 150),
        "arm2": ArmCounts(1000, 60),
    }
    picks = [assign_arm(KEY, "shop", experiment, p, counts).name for p in PEOPLE[:6000]]
    assert picks == [assign_arm(KEY, "shop", experiment, p, counts).name for p in PEOPLE[:6000]]
    share = Counter(picks)
    for arm in ("arm0", "arm2"):
        assert share[arm] / len(picks) > 0.1 * 0.8  # the floor: about 10 % each
    assert share["arm1"] / len(picks) > 0.6


def test_arms_change_channel_and_offer():
    offer = DiscountOffer(Decimal(5), 3600)
    plain = DiscountOffer(Decimal(10), 3600)
    assert with_arm(Arm("x", channel="sms"), "email", plain, ["sms", "email"]) == ("sms", plain)
    assert with_arm(Arm("x", channel="sms"), "email", plain, ["email"]) == ("email", plain)
    assert with_arm(Arm("x", no_discount=True), "email", plain, ["email"]) == ("email", None)
    assert with_arm(Arm("x", discount=offer), "email", None, ["email"]) == ("email", offer)
    assert with_arm(None, "email", plain, ["email"]) == ("email", plain)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Arm("holdout"), "reserved"),
        (lambda: Arm("a", weight=0), "weight"),
        (lambda: Experiment("e", (Arm("a"),), start=T0), "two arms"),
        (lambda: Experiment("e", (Arm("a"), Arm("a")), start=T0), "differ"),
        (lambda: Experiment("e", (Arm("a"), Arm("b")), start=T0, control="c"), "control"),
        (lambda: Experiment("e", (Arm("a"), Arm("b")), start=T0, end=T0), "after start"),
        (lambda: ExperimentPlan(holdout=1.0), "holdout"),
    ],
)
def test_bad_experiments_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_person_key_is_the_first_contact_lower_cased():
    assert person_key(["Kari@Example.NO", "+4791234567"]) == "kari@example.no"
    assert person_key(["", "+4791234567"]) == "+4791234567"
    assert person_key([]) is None


def test_experiment_costs_and_attribution_settings_are_read_and_checked():
    from cartrescue.config import load_config
    from cartrescue.errors import ConfigError

    config = load_config(
        None,
        text='[experiment]\nholdout = 0.1\n[[experiment.tests]]\nname = "offer"\n'
        'start = "2026-01-01T00:00:00Z"\nstep = 3\narms = [{ name = "plain" },'
        ' { name = "none", discount = "none" }, { name = "five", discount = { percent = 5 },'
        ' delay = "3h", channel = "sms" }]\n[attribution]\nclick_window = "3d"\n'
        '[attribution.channels.sms]\nsend_window = "6h"\n',
    )
    plan = config.experiments()
    assert plan.holdout == 0.1
    (test,) = plan.experiments
    assert [a.name for a in test.arms] == ["plain", "none", "five"]
    assert test.arms[1].no_discount and test.arms[2].discount is not None
    assert test.arms[2].delay == timedelta(hours=3) and test.arms[2].channel == "sms"
    windows = config.attribution()
    assert windows.of("sms") == (timedelta(days=3), timedelta(hours=6))
    assert windows.of("email") == (timedelta(days=3), timedelta(hours=24))
    with pytest.raises(ConfigError) as err:
        load_config(
            None,
            text='[[experiment.tests]]\nname = "x"\nstart = "2026-01-01T00:00:00Z"\n'
            'arms = [{ name = "a" }, { name = "a" }]\n',
        )
    assert "experiment.tests" in str(err.value) and "differ" in str(err.value)


def _engine_run(plan, at_hours: float, purchases=None):
    from cartrescue import FrozenClock, Recovery, SQLiteStore
    from cartrescue_testing import MemoryChannel

    from .conftest import NOON, make_checkout
    from .test_engine import ListConnector

    store = SQLiteStore(":memory:")
    store.start_at(NOON - timedelta(days=1))
    clock = FrozenClock(NOON + timedelta(hours=at_hours))
    channels = [MemoryChannel("sms"), MemoryChannel("email")]
    connector = ListConnector([make_checkout("c1")], purchases)
    recovery = Recovery(
        connector, channels, store, clock=clock, experiments=plan, experiment_key=KEY
    )
    return recovery.run(), channels, store


def _only(arm: Arm, step: int = 1) -> ExperimentPlan:
    never = Arm("never", weight=1e-12)
    return ExperimentPlan(experiments=(Experiment("t", (never, arm), start=T0, step=step),))


def test_the_engine_sends_an_arm_on_its_channel_and_records_it():
    report, (sms, email), store = _engine_run(_only(Arm("by-email", channel="email")), 1)
    assert report.counts["sent"] == 1 and not sms.sent
    assert [m.key for m in email.sent] == ["c1:1:email"]
    assert store.assignments("c1") == {"t": "by-email"}
    assert store._query("SELECT experiment, arm FROM outbox") == [("t", "by-email")]


def test_the_engine_waits_for_an_arms_delay():
    plan = _only(Arm("later", delay=timedelta(hours=3)))
    report, _, store = _engine_run(plan, 1)
    assert report.counts["sent"] == 0 and report.counts["held: experiment t"] == 1
    assert store.assignments("c1") == {"t": "later"}
    report, _, _ = _engine_run(plan, 3.5)
    assert report.counts["sent"] == 1


def test_the_engine_skips_a_held_out_persons_steps_but_checks_their_purchase():
    from cartrescue import Purchase

    from .conftest import NOON

    plan = ExperimentPlan(holdout=0.999999)
    report, (sms, email), store = _engine_run(plan, 1)
    assert report.counts["step skipped: holdout"] == 1 and not sms.sent and not email.sent
    assert store.skipped_steps("c1") == {1}
    assert store.assignments("c1") == {"holdout": "holdout"}
    bought = {"c1": Purchase("o1", NOON + timedelta(minutes=30), Decimal(499), "NOK", True)}
    report, _, store = _engine_run(plan, 1, bought)
    assert report.counts["converted"] == 1
    assert store.checkout_status("c1") == "converted"


def test_adaptive_allocation_through_the_engine_reads_the_stored_counts():
    experiment = Experiment("adapt", (Arm("a"), Arm("b")), start=T0, allocation="adaptive")
    report, _, store = _engine_run(ExperimentPlan(experiments=(experiment,)), 1)
    assert report.counts["sent"] == 1
    (arm,) = store.assignments("c1").values()
    assert arm in ("a", "b")
    assert store.arm_counts("adapt") == {arm: (1, 0)}


def test_templates_see_the_arms_template_variant(tmp_path):
    from cartrescue import FrozenClock, Recovery, SQLiteStore, TemplateRenderer
    from cartrescue_testing import MemoryChannel

    from .conftest import NOON, make_checkout
    from .test_engine import ListConnector

    (tmp_path / "sms").mkdir()
    (tmp_path / "sms" / "1.en.j2").write_text(
        "{% if template_variant == 'urgent' %}Last chance{% else %}Hello{% endif %} {{ link }}"
    )
    store = SQLiteStore(":memory:")
    store.start_at(NOON - timedelta(days=1))
    sms = MemoryChannel("sms")
    recovery = Recovery(
        ListConnector([make_checkout("c1")]),
        [sms],
        store,
        clock=FrozenClock(NOON + timedelta(hours=1)),
        renderer=TemplateRenderer([tmp_path]),
        experiments=_only(Arm("urgent-arm", template="urgent")),
        experiment_key=KEY,
    )
    assert recovery.run().counts["sent"] == 1
    assert sms.sent[0].text.startswith("Last chance")
