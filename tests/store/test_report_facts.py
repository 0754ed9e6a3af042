from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from cartrescue.models import Purchase
from cartrescue.store.base import AttributionWindows, LinkRecord
from cartrescue.store.sqlite import SQLiteStore

from ..conftest import NOON, make_checkout

SPAN = (NOON - timedelta(days=1), NOON + timedelta(days=1))


@pytest.fixture(params=["sqlite", "postgres"])
def store(request):
    """The report's figures are the same from both stores, on the same rows."""
    if request.param == "sqlite":
        with SQLiteStore(":memory:") as s:
            yield s
        return
    pytest.importorskip("psycopg", reason="needs the postgres extra: pip install -e '.[postgres]'")
    from cartrescue.store.postgres import PostgresStore

    with PostgresStore(request.getfixturevalue("pg_url"), shop="nordlys", max_size=2) as s:
        # Another shop's rows in the same tables are never counted.
        other = s.for_shop("lisboa")
        other.upsert_checkout(make_checkout("a1", email="a1@example.com"), NOON)
        other.record_assignments("a1", [("holdout", "holdout", None)], NOON)
        _sent(other, "a1", 1, NOON + timedelta(hours=1))
        _bought(other, "a1", NOON + timedelta(hours=2))
        yield s


def _sent(store, cid, step, at, channel="email"):
    key = f"{cid}:{step}:{channel}"
    assert store.claim(
        key, checkout_id=cid, step=step, channel=channel, recipient="kari@example.no",
        contacts=[], at=at, cap_since=None, run_id=None,
    )  # fmt: skip
    store.finish(key, "sent", at)


def _bought(store, cid, at):
    purchase = Purchase(order_id=f"o-{cid}", placed_at=at, total=Decimal("100.00"), currency="NOK")
    store.record_conversion(cid, "converted", purchase, at, at - timedelta(days=30))


def _arm(store, key):
    where = "shop = 'nordlys' AND key = %s" if hasattr(store, "shop") else "key = ?"
    return store._query(f"SELECT arm FROM outbox WHERE {where}", (key,))[0][0]


def test_attribution_follows_the_send_and_click_windows(store):
    for cid in ("late", "clicked", "soon", "organic"):
        store.upsert_checkout(make_checkout(cid), NOON)
    sent = NOON + timedelta(hours=1)
    for cid in ("late", "clicked", "soon"):
        _sent(store, cid, 1, sent)
    store.save_link(LinkRecord("code1", "clicked", 1, "email", "https://x", None, sent, None))
    store.record_click("code1", sent + timedelta(hours=40))
    _bought(store, "late", sent + timedelta(hours=30))  # after the 24 h send window
    _bought(store, "clicked", sent + timedelta(hours=50))  # 10 h after a click
    _bought(store, "soon", sent + timedelta(hours=2))
    _bought(store, "organic", NOON + timedelta(hours=3))  # never messaged
    facts = store.report_facts(*SPAN, AttributionWindows())
    assert (facts.converted, facts.attributed) == (4, 2)
    assert facts.attributed_revenue == 200.0
    (row,) = facts.breakdown
    assert (row.sent, row.clicked, row.attributed) == (3, 1, 2)
    longer = store.report_facts(
        *SPAN, AttributionWindows(channels={"email": (timedelta(days=5), timedelta(hours=36))})
    )
    assert longer.attributed == 3
    shorter = store.report_facts(*SPAN, AttributionWindows(click=timedelta(hours=1)))
    assert shorter.attributed == 1


def test_the_last_qualifying_message_gets_the_credit(store):
    store.upsert_checkout(make_checkout("c1"), NOON)
    _sent(store, "c1", 1, NOON + timedelta(hours=1))
    _sent(store, "c1", 2, NOON + timedelta(hours=20))
    _bought(store, "c1", NOON + timedelta(hours=22))
    facts = store.report_facts(*SPAN, AttributionWindows())
    credit = {r.step: r.attributed for r in facts.breakdown}
    assert credit == {1: 0, 2: 1}
    assert facts.attributed == 1


def test_groups_count_assigned_checkouts_and_outbox_carries_the_arm(store):
    for cid in ("a1", "a2", "h1"):
        store.upsert_checkout(make_checkout(cid, email=f"{cid}@example.com"), NOON)
    store.record_assignments("a1", [("holdout", "treated", None), ("offer", "b", 1)], NOON)
    store.record_assignments("a2", [("holdout", "treated", None), ("offer", "b", 2)], NOON)
    store.record_assignments("h1", [("holdout", "holdout", None)], NOON)
    store.record_assignments("a1", [("offer", "a", 1)], NOON)  # the first arm stays
    assert store.assignments("a1") == {"holdout": "treated", "offer": "b"}
    _sent(store, "a1", 1, NOON + timedelta(hours=1))
    _sent(store, "a2", 1, NOON + timedelta(hours=1))  # its experiment covers step 2 only
    arms = {e.checkout_id: _arm(store, e.key) for c in ("a1", "a2") for e in store.outbox_for(c)}
    assert arms == {"a1": "b", "a2": None}
    _bought(store, "h1", NOON + timedelta(hours=2))
    store.add_optout("a2@example.com", "*", "reply", NOON + timedelta(hours=2))
    facts = store.report_facts(*SPAN, AttributionWindows())
    groups = {(g.experiment, g.arm): g for g in facts.groups}
    treated, held = groups["holdout", "treated"], groups["holdout", "holdout"]
    assert (treated.eligible, treated.messaged, treated.converted, treated.opted_out) == (
        2,
        2,
        0,
        1,
    )
    assert (held.eligible, held.messaged, held.converted, held.revenue) == (1, 0, 1, 100.0)
    assert store.arm_counts("holdout") == {"holdout": (1, 1), "treated": (2, 0)}
    assert store.forget("a1@example.com") > 0
    assert store.assignments("a1") == {}


def test_both_stores_give_the_same_figures_for_the_same_shop(pg_url):
    """The simulated shop through the real engine, once into each store: the report reads
    the same aggregates from both (the arms are keyed the same, so the same people are held
    out)."""
    pytest.importorskip("psycopg", reason="needs the postgres extra: pip install -e '.[postgres]'")
    from cartrescue.experiments import Arm, Experiment, ExperimentPlan
    from cartrescue.store.postgres import PostgresStore
    from cartrescue_testing.simulation import START, simulate

    test = Experiment("wording", (Arm("a"), Arm("b")), start=START - timedelta(days=1))
    plan = ExperimentPlan(holdout=0.3, experiments=(test,))
    span = (START - timedelta(days=1), START + timedelta(days=1))
    windows = AttributionWindows(channels={"email": (timedelta(days=2), timedelta(hours=3))})
    facts = []
    with SQLiteStore(":memory:") as lite, PostgresStore(pg_url, shop="sim") as pg:
        for store in (lite, pg):
            simulate(store, checkouts=300, p_held_out=0.1, p_messaged=0.3, plan=plan, seed=3)
            facts.append(store.report_facts(*span, windows))
    sqlite_facts, pg_facts = facts
    assert sqlite_facts.abandoned == 300 and sqlite_facts.converted > 0
    assert {g.arm for g in sqlite_facts.groups} == {"a", "b", "holdout", "treated"}
    _same(pg_facts, sqlite_facts, "facts")


def _same(left, right, where: str) -> None:
    """Equal field by field, floats to 1e-6 (the stores add money up in other orders, and
    SQLite counts time in floating-point julian days)."""
    from dataclasses import fields, is_dataclass

    if is_dataclass(left):
        for f in fields(left):
            _same(getattr(left, f.name), getattr(right, f.name), f"{where}.{f.name}")
    elif isinstance(left, tuple):
        assert len(left) == len(right), where
        for i, (a, b) in enumerate(zip(left, right, strict=True)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(left, float):
        assert left == pytest.approx(right, rel=1e-6), where
    else:
        assert left == right, where
