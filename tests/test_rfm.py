"""RFM scoring and grouping: pure functions, table-driven."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cartrescue.config import load_config
from cartrescue.errors import ConfigError
from cartrescue.models import Customer
from cartrescue.rfm import DEFAULT_GROUPS, Cutoffs, Rfm, RfmGroup, RfmMethod, RfmScores, score
from cartrescue.segments import SegmentConditions

from .conftest import make_checkout

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
CUTS = Cutoffs()  # 30/90 days, 2/5 orders, 100/500 spent


def person(orders, spent=None, days=None):
    return Customer(
        email="kari@example.no",
        orders_count=orders,
        amount_spent=None if spent is None else Decimal(spent),
        last_order_at=None if days is None else NOW - timedelta(days=days),
    )


@pytest.mark.parametrize(
    ("orders", "spent", "days", "expected"),
    [
        (None, None, None, None),  # the order count is unknown: no scores
        (0, "0", None, RfmScores(0, 0, 0)),  # never bought
        (1, "50", 10, RfmScores(3, 1, 1)),
        (2, "100", 30, RfmScores(3, 2, 2)),  # each cut-off is inclusive
        (4, "499.99", 31, RfmScores(2, 2, 2)),
        (5, "500", 90, RfmScores(2, 3, 3)),
        (9, "2000", 91, RfmScores(1, 3, 3)),
        (3, None, None, RfmScores(None, 2, None)),  # count known, the rest not
    ],
)
def test_scores(orders, spent, days, expected):
    assert score(person(orders, spent, days), NOW, CUTS) == expected


@pytest.mark.parametrize(
    ("orders", "spent", "days", "group"),
    [
        (None, None, None, None),
        (0, "0", None, "new"),
        (1, "80", 5, "new"),  # a first order lately
        (6, "900", 3, "champions"),
        (6, "90", 3, "loyal"),  # frequent and recent but small spender
        (3, "300", 60, "loyal"),
        (6, "900", 200, "at risk"),
        (1, "80", 60, "hibernating"),
        (1, "80", 400, "hibernating"),
        (3, "300", None, "others"),  # no date of the last order: only the catch-all fits
    ],
)
def test_default_groups(orders, spent, days, group):
    assert Rfm().group(person(orders, spent, days), NOW) == group


def test_groups_are_tried_in_order_and_may_leave_people_out():
    rfm = Rfm(groups=(RfmGroup("big", monetary=frozenset({3})), RfmGroup("any")))
    assert rfm.group(person(1, "600", 400), NOW) == "big"
    assert rfm.group(person(1, "60", 400), NOW) == "any"
    only_big = Rfm(groups=(RfmGroup("big", monetary=frozenset({3})),))
    assert only_big.group(person(1, "60", 400), NOW) is None


def test_quantiles_use_the_buyers_seen_once_there_are_enough():
    rfm = Rfm(method=RfmMethod.QUANTILES, min_customers=3)
    few = [person(1, "10", 1), person(2, "20", 2)]
    assert rfm.cutoffs_for(few, NOW) == rfm.cutoffs  # too few: the thresholds
    seen = [person(n, str(10 * n), 10 * n) for n in range(1, 10)] + [person(0, "0")]
    cutoffs = rfm.cutoffs_for(seen, NOW)
    assert cutoffs.orders == pytest.approx((3.67, 6.33), abs=0.01)
    assert cutoffs.recency_days == pytest.approx((36.67, 63.33), abs=0.01)
    assert cutoffs.amount_spent == (Decimal("36.67"), Decimal("63.33"))
    # in a shop of small spenders, 90 spent over 9 orders is a champion
    assert rfm.group(person(9, "90", 20), NOW, cutoffs) == "champions"
    assert rfm.group(person(9, "90", 20), NOW) == "loyal"  # by the thresholds


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Cutoffs(recency_days=(90, 30)), "recency_days"),
        (lambda: RfmGroup("x", recency=frozenset({4})), "0 to 3"),
        (lambda: Rfm(groups=(RfmGroup("a"), RfmGroup("a"))), "unique"),
        (lambda: Rfm(groups=()), "at least one"),
    ],
)
def test_bad_rfm_settings_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_segment_on_rfm_never_matches_an_unknown_group():
    conditions = SegmentConditions(rfm=frozenset({"champions"}))
    base = make_checkout("1")
    assert base.customer is not None

    def in_group(group):
        return replace(base, customer=replace(base.customer, rfm_group=group))

    assert conditions.failed(in_group(None)) == "unknown RFM group (no customer history)"
    assert conditions.failed(in_group("loyal")) == "RFM group loyal"
    assert conditions.failed(in_group("champions")) is None
    assert conditions.needs_history


TOML = """
[rfm]
method = "quantiles"
recency_days = [14, 60]
orders = [3, 8]
amount_spent = [200, 1000]
min_customers = 50
[[rfm.groups]]
name = "vip"
frequency = [3]
monetary = [3]
[[rfm.groups]]
name = "rest"

[[segments]]
name = "vips"
rfm = ["vip"]
skip = true
"""


def test_the_rfm_table_reaches_the_policy():
    policy = load_config(None, text=TOML, env={}).policy
    assert policy.rfm == Rfm(
        cutoffs=Cutoffs((14, 60), (3, 8), (Decimal(200), Decimal(1000))),
        method=RfmMethod.QUANTILES,
        groups=(
            RfmGroup("vip", frequency=frozenset({3}), monetary=frozenset({3})),
            RfmGroup("rest"),
        ),
        min_customers=50,
    )
    assert policy.segments[0].conditions.rfm == {"vip"}
    assert policy.needs_rfm and policy.needs_history
    default = load_config(None, text='[[segments]]\nname = "x"\nrfm = ["at risk"]\n', env={})
    assert default.policy.rfm.groups == DEFAULT_GROUPS


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[[segments]]\nname = "x"\nrfm = ["champs"]\n', ["'champs'", "'champions'", "rfm.groups"]),
        ("[rfm]\norders = [5, 2]\n", ["orders", "[low, high]"]),
        ('[[rfm.groups]]\nname = "a"\n[[rfm.groups]]\nname = "a"\n', ["unique"]),
        ('[[rfm.groups]]\nname = "a"\nrecency = [5]\n', ["recency"]),
    ],
)
def test_rfm_mistakes_name_the_key_and_the_fix(text, words):
    with pytest.raises(ConfigError) as caught:
        load_config(None, text=text, env={})
    message = str(caught.value)
    for word in words:
        assert word in message, message
