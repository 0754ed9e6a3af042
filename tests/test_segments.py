from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from cartrescue.config import load_config
from cartrescue.errors import ConfigError
from cartrescue.models import Customer, DiscountOffer, LineItem
from cartrescue.policy import History, Policy, Step, StepRecord, decide
from cartrescue.segments import (
    DEFAULT_SEGMENT,
    CustomerKind,
    Segment,
    SegmentConditions,
    first_match,
)

from .conftest import NOON, make_checkout

CHANNELS = ["sms", "whatsapp", "email"]
START = NOON - timedelta(days=30)


def cart(
    *,
    total: str = "499",
    quantities: tuple[int, ...] = (1,),
    orders: int | None = None,
    country: str | None = "NO",
    stock: tuple[bool | None, ...] | None = None,
):
    base = make_checkout()
    assert base.customer is not None
    stock = stock if stock is not None else (None,) * len(quantities)
    return replace(
        base,
        total=Decimal(total),
        line_items=tuple(
            LineItem(f"item {i}", q, Decimal(10), in_stock=s)
            for i, (q, s) in enumerate(zip(quantities, stock, strict=True))
        ),
        customer=replace(base.customer, orders_count=orders),
        country=country,
    )


C = SegmentConditions


@pytest.mark.parametrize(
    ("conditions", "checkout", "matches"),
    [
        (C(), cart(), True),
        # value range: min inclusive, max exclusive
        (C(min_value=Decimal(500)), cart(total="499.99"), False),
        (C(min_value=Decimal(500)), cart(total="500"), True),
        (C(max_value=Decimal(500)), cart(total="499.99"), True),
        (C(max_value=Decimal(500)), cart(total="500"), False),
        (C(min_value=Decimal(100), max_value=Decimal(200)), cart(total="150"), True),
        # item count: the sum of quantities
        (C(min_items=3), cart(quantities=(1, 1)), False),
        (C(min_items=3), cart(quantities=(2, 1)), True),
        (C(max_items=2), cart(quantities=(1,)), True),
        (C(max_items=2), cart(quantities=(2,)), False),
        # new vs returning; unknown never matches
        (C(customer=CustomerKind.NEW), cart(orders=0), True),
        (C(customer=CustomerKind.NEW), cart(orders=2), False),
        (C(customer=CustomerKind.RETURNING), cart(orders=2), True),
        (C(customer=CustomerKind.RETURNING), cart(orders=0), False),
        (C(customer=CustomerKind.RETURNING), cart(orders=None), False),
        (C(customer=CustomerKind.NEW), cart(orders=None), False),
        # countries, case-insensitive; unknown never matches
        (C(countries=frozenset({"no", "SE"})), cart(country="NO"), True),
        (C(countries=frozenset({"SE"})), cart(country="no"), False),
        (C(countries=frozenset({"SE"})), cart(country=None), False),
        # stock; unknown never matches
        (C(all_in_stock=True), cart(quantities=(1, 1), stock=(True, True)), True),
        (C(all_in_stock=True), cart(quantities=(1, 1), stock=(True, False)), False),
        (C(all_in_stock=False), cart(quantities=(1, 1), stock=(True, False)), True),
        (C(all_in_stock=False), cart(quantities=(1, 1), stock=(True, True)), False),
        (C(all_in_stock=True), cart(quantities=(1, 1), stock=(True, None)), False),
        (C(all_in_stock=False), cart(quantities=(1,), stock=(None,)), False),
        # all conditions must hold
        (C(min_value=Decimal(100), customer=CustomerKind.NEW), cart(orders=1), False),
        (C(min_value=Decimal(100), customer=CustomerKind.NEW), cart(orders=0), True),
    ],
)
def test_each_condition(conditions, checkout, matches):
    assert (conditions.failed(checkout) is None) is matches


def test_first_match_wins_in_order():
    high = Segment("high", C(min_value=Decimal(1000)))
    returning = Segment("returning", C(customer=CustomerKind.RETURNING))
    anyone = Segment("anyone")
    segments = (high, returning, anyone)
    assert first_match(cart(total="2000", orders=3), segments) is high
    assert first_match(cart(total="20", orders=3), segments) is returning
    assert first_match(cart(total="20", orders=0), segments) is anyone
    assert first_match(cart(total="2000", orders=3), (returning, high)) is returning
    assert first_match(cart(total="20"), (high,)) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": ()}, "at least one step"),
        ({"skip": True, "steps": (Step(1, timedelta(hours=1), ("email",)),)}, "not both"),
        ({"steps": (Step(2, timedelta(hours=1), ("email",)),)}, "numbered"),
    ],
)
def test_segment_rejects_inconsistent_definitions(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Segment("x", **kwargs)


def test_conditions_reject_empty_ranges():
    with pytest.raises(ValueError, match="min_value"):
        C(min_value=Decimal(5), max_value=Decimal(5))
    with pytest.raises(ValueError, match="min_items"):
        C(min_items=3, max_items=2)


def test_policy_rejects_duplicate_and_reserved_names():
    with pytest.raises(ValueError, match="unique"):
        Policy(segments=(Segment("a"), Segment("a")))
    with pytest.raises(ValueError, match="unique"):
        Policy(segments=(Segment(DEFAULT_SEGMENT),))


QUICK = (
    Step(1, timedelta(hours=2), ("email",)),
    Step(2, timedelta(hours=3), ("sms",), DiscountOffer(Decimal(5), 3600)),
)
POLICY = Policy(
    segments=(
        Segment("vip", C(min_value=Decimal(1000)), steps=QUICK),
        Segment("tiny", C(max_value=Decimal(50)), skip=True),
        Segment("norway", C(countries=frozenset({"NO"}))),
    ),
    max_overdue=timedelta(days=2),
)


@pytest.mark.parametrize(
    ("checkout", "hours", "segment", "action", "step", "channel"),
    [
        (cart(total="1500"), 1, "vip", "wait", None, None),
        (cart(total="1500"), 2, "vip", "send", 1, "email"),
        (cart(total="20"), 2, "tiny", "stop", None, None),
        (cart(total="200", country="NO"), 1, "norway", "send", 1, "sms"),
        (cart(total="200", country="SE"), 1, DEFAULT_SEGMENT, "send", 1, "sms"),
    ],
)
def test_decide_uses_the_segment_schedule(checkout, hours, segment, action, step, channel):
    d = decide(checkout, History(start_at=START), POLICY, CHANNELS, NOON + timedelta(hours=hours))
    assert (d.segment, d.action, d.step, d.channel) == (segment, action, step, channel)


def test_skipped_segment_stops_with_reason():
    d = decide(cart(total="20"), History(start_at=START), POLICY, CHANNELS, NOON)
    assert d.status == "stopped"
    assert d.reason == "segment tiny is skipped"


def test_segment_offer_is_decided():
    d = decide(
        cart(total="1500"), History(start_at=START), POLICY, CHANNELS, NOON + timedelta(hours=3)
    )
    assert (d.step, d.discount) == (2, DiscountOffer(Decimal(5), 3600))


def test_policy_horizon_and_step_count_cover_every_schedule():
    long = tuple(Step(n, timedelta(hours=10 * n), ("email",)) for n in range(1, 6))
    policy = Policy(segments=(Segment("long", steps=long),))
    assert policy.max_steps == 5
    assert policy.horizon == timedelta(hours=50) + policy.max_overdue + timedelta(days=1)
    assert Policy().max_steps == 3


def test_no_segments_keeps_todays_schedule():
    d = decide(cart(), History(start_at=START), Policy(), CHANNELS, NOON + timedelta(hours=1))
    assert (d.segment, d.step) == (DEFAULT_SEGMENT, 1)


CONFIG = """
[shop]
name = "Shop"

[[segments]]
name = "vip"
min_value = 1000
countries = ["no", "SE"]
customer = "returning"
[[segments.steps]]
delay = "2h"
channels = ["email"]
discount = { percent = 5, valid_for = "24h" }

[[segments]]
name = "out-of-stock"
all_in_stock = false
skip = true
"""


def test_config_builds_segments():
    policy = load_config(None, text=CONFIG, env={}).policy
    vip, oos = policy.segments
    assert vip.name == "vip"
    assert vip.conditions == C(
        min_value=Decimal(1000),
        countries=frozenset({"NO", "SE"}),
        customer=CustomerKind.RETURNING,
    )
    assert vip.steps == (
        Step(1, timedelta(hours=2), ("email",), DiscountOffer(Decimal(5), 24 * 3600)),
    )
    assert (oos.name, oos.skip, oos.steps) == ("out-of-stock", True, None)
    assert oos.conditions.all_in_stock is False


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[segments]]\nname = "a"\nskip = true\n[[segments.steps]]\ndelay = "1h"\n', "skip"),
        ('[[segments]]\nname = "a"\nmin_value = 10\nmax_value = 5\n', "min_value"),
        ('[[segments]]\nname = "a"\ncustomer = "loyal"\n', "customer"),
        ('[[segments]]\nname = "a"\ncountries = ["Norway"]\n', "countries"),
        ('[[segments]]\nname = "default"\n', "segments"),
        ('[[segments]]\nname = "a"\n[[segments]]\nname = "a"\n', "segments"),
        (
            '[[segments]]\nname = "a"\n[[segments.steps]]\ndelay = "2h"\n'
            '[[segments.steps]]\ndelay = "1h"\n',
            "segments[1]",
        ),
    ],
)
def test_config_reports_bad_segments(text, key):
    with pytest.raises(ConfigError) as caught:
        load_config(None, text=text, env={})
    assert key in str(caught.value)


def test_unknown_customer_history_is_not_guessed():
    base = make_checkout()
    assert isinstance(base.customer, Customer)
    assert base.customer.orders_count is None
    assert first_match(base, (Segment("new", C(customer=CustomerKind.NEW)),)) is None


OFFER = DiscountOffer(Decimal(10), 3600, min_subtotal=Decimal(500), first_time_only=True)


@pytest.mark.parametrize(
    ("total", "orders", "last_discount", "offered"),
    [
        ("600", 0, None, True),
        ("500", 0, None, True),
        ("499.99", 0, None, False),  # below the minimum subtotal
        ("600", 1, None, False),  # bought before
        ("600", None, None, False),  # unknown history: no code
        ("600", 0, NOON - timedelta(days=2), False),  # cooldown
    ],
)
def test_offer_conditions(total, orders, last_discount, offered):
    policy = Policy(steps=(Step(1, timedelta(hours=1), ("email",), OFFER),))
    d = decide(
        cart(total=total, orders=orders),
        History(start_at=START, last_discount=last_discount),
        policy,
        CHANNELS,
        NOON + timedelta(hours=1),
    )
    assert d.action == "send"
    assert (d.discount == OFFER) is offered


def test_offer_rejects_a_non_positive_minimum():
    with pytest.raises(ValueError, match="min_subtotal"):
        DiscountOffer(Decimal(10), 3600, min_subtotal=Decimal(0))


def test_config_reads_offer_conditions():
    text = (
        '[[policy.steps]]\ndelay = "1h"\n'
        "discount = { percent = 10, min_subtotal = 500, first_time_only = true }\n"
    )
    [step] = load_config(None, text=text, env={}).policy.steps
    assert step.discount == DiscountOffer(
        Decimal(10), 48 * 3600, min_subtotal=Decimal(500), first_time_only=True
    )


def test_config_reads_the_free_shipping_threshold():
    text = '[shop]\nfree_shipping_threshold = 500\nfree_shipping_currency = "NOK"\n'
    shop = load_config(None, text=text, env={}).shop
    assert (shop.free_shipping_threshold, shop.free_shipping_currency) == (Decimal(500), "NOK")
    with pytest.raises(ConfigError, match="free_shipping_threshold"):
        load_config(None, text="[shop]\nfree_shipping_threshold = 0\n", env={})


@pytest.mark.parametrize(
    ("stock", "skip_sold_out", "action"),
    [
        ((False,), True, "stop"),
        ((False, False), True, "stop"),
        ((False, True), True, "send"),
        ((False, None), True, "send"),  # one item's stock unknown: it may be buyable
        ((None,), True, "send"),
        ((False,), False, "send"),
    ],
)
def test_sold_out_carts_get_no_reminder(stock, skip_sold_out, action):
    checkout = cart(quantities=(1,) * len(stock), stock=stock)
    policy = Policy(skip_sold_out=skip_sold_out)
    d = decide(checkout, History(start_at=START), policy, CHANNELS, NOON + timedelta(hours=1))
    assert d.action == action
    if action == "stop":
        assert d.reason == "every item in the cart is sold out"


def test_config_reads_skip_sold_out():
    assert load_config(None, text="", env={}).policy.skip_sold_out is True
    text = "[policy]\nskip_sold_out = false\n"
    assert load_config(None, text=text, env={}).policy.skip_sold_out is False


# -- the reason the buyer gave for leaving ---------------------------------------------------
FREE_SHIPPING = DiscountOffer(None, 3600, free_shipping=True)
PERCENT = DiscountOffer(Decimal(10), 3600)
BY_REASON = Policy(
    steps=(
        Step(1, timedelta(hours=1), ("email",)),
        Step(2, timedelta(hours=24), ("email",), PERCENT),
    ),
    segments=(
        Segment(
            "shipping",
            C(reasons=frozenset({"shipping_cost", "delivery_time"})),
            steps=(
                Step(1, timedelta(hours=1), ("email",)),
                Step(2, timedelta(hours=24), ("email",), FREE_SHIPPING),
            ),
        ),
    ),
)


@pytest.mark.parametrize(
    ("reason", "segment", "offer"),
    [
        ("shipping_cost", "shipping", FREE_SHIPPING),
        ("delivery_time", "shipping", FREE_SHIPPING),
        ("price", DEFAULT_SEGMENT, PERCENT),
        (None, DEFAULT_SEGMENT, PERCENT),
    ],
)
def test_a_stated_reason_chooses_the_next_step(reason, segment, offer):
    sent_1 = (StepRecord(1, "email", "sent"),)
    history = History(start_at=START, records=sent_1, reason=reason)
    d = decide(cart(), history, BY_REASON, CHANNELS, NOON + timedelta(hours=24))
    # step 1 stays sent under either schedule; the new segment's next pending step applies
    assert (d.segment, d.action, d.step, d.discount) == (segment, "send", 2, offer)


def test_reason_conditions_are_pure_and_name_what_failed():
    conditions = C(reasons=frozenset({"shipping_cost"}))
    assert conditions.failed(cart()) == "no stated reason"
    assert conditions.failed(cart(), "price") == "stated reason price"
    assert conditions.failed(cart(), "shipping_cost") is None
    assert first_match(cart(), BY_REASON.segments, "shipping_cost") is BY_REASON.segments[0]


def test_an_unknown_reason_names_the_choices():
    with pytest.raises(ValueError, match=r"shiping.*choose from shipping_cost, price"):
        C(reasons=frozenset({"shiping"}))
    text = '[[segments]]\nname = "a"\nreasons = ["shipping_cost", "shiping"]\n'
    with pytest.raises(ConfigError) as caught:
        load_config(None, text=text, env={})
    message = str(caught.value)
    assert "segments[1].reasons" in message
    assert "shiping" in message
    assert "shipping_cost, price, just_browsing, payment_problem, delivery_time, other" in message


def test_config_reads_reasons():
    text = '[[segments]]\nname = "a"\nreasons = ["shipping_cost", "delivery_time"]\n'
    (segment,) = load_config(None, text=text, env={}).policy.segments
    assert segment.conditions.reasons == frozenset({"shipping_cost", "delivery_time"})
