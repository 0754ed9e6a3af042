from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from cartrescue.models import Customer
from cartrescue.policy import (
    DEFAULT_STEPS,
    History,
    Policy,
    SendWindow,
    StepRecord,
    decide,
    next_window_open,
    recipient_timezones,
)

from .conftest import NOON, make_checkout

CHANNELS = ["sms", "whatsapp", "email"]
START = NOON - timedelta(days=30)


def history(**kw):
    return History(start_at=kw.pop("start_at", START), **kw)


def at(hours: float):
    return NOON + timedelta(hours=hours)


@pytest.mark.parametrize(
    ("hours", "action", "step"),
    [
        (0.5, "wait", None),
        (1, "send", 1),
        (23.9, "send", 1),  # with max_overdue of two days, step 1 still goes before 24 h
    ],
)
def test_first_step_fires_at_one_hour(hours, action, step):
    policy = Policy(max_overdue=timedelta(days=2))
    d = decide(make_checkout(), history(), policy, CHANNELS, at(hours))
    assert d.action == action
    assert d.step == step


def test_steps_fire_at_1h_24h_48h_on_default_channels():
    c = make_checkout()
    sent = []
    for hours, expected_step, expected_channel in (
        (1, 1, "sms"),
        (24, 2, "email"),
        (48, 3, "email"),
    ):
        d = decide(c, history(records=tuple(sent)), Policy(), CHANNELS, at(hours))
        assert (d.action, d.step, d.channel) == ("send", expected_step, expected_channel)
        assert d.recipient == ("+4791234567" if expected_channel == "sms" else "kari@example.no")
        sent.append(StepRecord(expected_step, expected_channel, "sent"))
    assert decide(c, history(records=tuple(sent)), Policy(), CHANNELS, at(49)).action == "stop"


def test_not_due_before_each_step():
    c = make_checkout()
    d = decide(c, history(records=(StepRecord(1, "sms", "sent"),)), Policy(), CHANNELS, at(23))
    assert d.action == "wait"
    assert d.until == at(24)


def test_only_last_step_offers_discount_by_default():
    assert [s.discount is not None for s in DEFAULT_STEPS] == [False, False, True]
    c = make_checkout()
    records = (StepRecord(1, "sms", "sent"), StepRecord(2, "email", "sent"))
    d = decide(c, history(records=records), Policy(), CHANNELS, at(48))
    assert d.discount is not None
    assert d.discount.percent == 10


def test_discount_withheld_when_contact_got_a_code_within_30_days():
    c = make_checkout()
    records = (StepRecord(1, "sms", "sent"), StepRecord(2, "email", "sent"))
    recent = history(records=records, last_discount=at(48) - timedelta(days=29))
    assert decide(c, recent, Policy(), CHANNELS, at(48)).discount is None
    old = history(records=records, last_discount=at(48) - timedelta(days=31))
    assert decide(c, old, Policy(), CHANNELS, at(48)).discount is not None


def test_step_one_falls_back_to_email_without_sms_consent():
    c = make_checkout(sms_consent=False)
    d = decide(c, history(), Policy(), CHANNELS, at(1))
    assert (d.action, d.channel) == ("send", "email")


def test_whatsapp_needs_its_own_consent_unless_configured():
    c = make_checkout(email=None, sms_consent=True)
    only_whatsapp = ["whatsapp"]
    assert decide(c, history(), Policy(), only_whatsapp, at(1)).action == "stop"
    d = decide(c, history(), Policy(whatsapp_consent_from_sms=True), only_whatsapp, at(1))
    assert (d.action, d.channel) == ("send", "whatsapp")


def test_at_most_one_sms_per_checkout():
    from cartrescue.policy import Step

    steps = (
        Step(1, timedelta(hours=1), ("sms",)),
        Step(2, timedelta(hours=24), ("sms", "email")),
    )
    c = make_checkout()
    d = decide(
        c, history(records=(StepRecord(1, "sms", "sent"),)), Policy(steps=steps), CHANNELS, at(24)
    )
    assert d.channel == "email"


def test_quiet_hours_hold_then_send_when_window_opens():
    # Abandoned 19:30 Oslo time; step 1 due 20:30 local: held until 09:00 next morning.
    abandoned = datetime(2026, 3, 11, 18, 30, tzinfo=UTC)  # 19:30 CET
    c = make_checkout(abandoned_at=abandoned)
    due = abandoned + timedelta(hours=1)
    d = decide(c, history(), Policy(), CHANNELS, due)
    assert (d.action, d.reason) == ("wait", "quiet hours")
    opens = datetime(2026, 3, 12, 8, 0, tzinfo=UTC)  # 09:00 CET
    assert d.until == opens
    assert decide(c, history(), Policy(), CHANNELS, opens - timedelta(minutes=1)).action == "wait"
    sent = decide(c, history(), Policy(), CHANNELS, opens)
    assert (sent.action, sent.step) == ("send", 1)
    # Held overnight is not overdue: the clock for overdue starts when the window opens.
    assert decide(c, history(), Policy(), CHANNELS, opens + timedelta(hours=5)).action == "send"


def test_quiet_hours_use_every_zone_of_the_phone_number():
    # No customer zone: +1 212 is New York only; shop zone is ignored when the phone tells.
    customer = Customer(phone="+12125551234", sms_consent=True)
    zones = recipient_timezones(customer, "Europe/Oslo")
    assert [z.key for z in zones] == ["America/New_York"]
    c = make_checkout(timezone=None, phone="+12125551234", email=None)
    # 12:00 UTC is 08:00 in New York (EDT on 2026-03-11): quiet.
    d = decide(c, history(), Policy(), CHANNELS, at(1) - timedelta(hours=1) + timedelta(hours=0))
    assert d.action == "wait"
    assert d.reason in ("not due", "quiet hours")
    d = decide(c, history(), Policy(), CHANNELS, NOON + timedelta(hours=1))  # 09:00 EDT
    assert d.action == "send"


def test_quiet_hours_fall_back_to_shop_zone():
    c = make_checkout(timezone=None, phone=None)
    late = datetime(2026, 3, 11, 20, 30, tzinfo=UTC)
    c = make_checkout(timezone=None, phone=None, abandoned_at=late - timedelta(hours=1))
    assert (
        decide(c, history(), Policy(), CHANNELS, late, shop_timezone="Asia/Tokyo").action == "wait"
    )
    # 20:30 UTC is 15:30 in New York: open.
    assert (
        decide(c, history(), Policy(), CHANNELS, late, shop_timezone="America/New_York").action
        == "send"
    )


def test_multi_zone_window_is_the_intersection():
    from zoneinfo import ZoneInfo

    zones = [ZoneInfo("America/New_York"), ZoneInfo("America/Los_Angeles")]
    window = SendWindow(time(9), time(20))
    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # 08:00 NY, 05:00 LA
    opens = next_window_open(start, zones, window)
    assert opens == datetime(2026, 6, 1, 16, 0, tzinfo=UTC)  # 09:00 LA, 12:00 NY


def test_nothing_after_completion():
    c = make_checkout(completed_at=at(0.5))
    d = decide(c, history(), Policy(), CHANNELS, at(1))
    assert (d.action, d.status) == ("stop", "converted")


@pytest.mark.parametrize("channel", ["*", "sms"])
def test_opt_out(channel):
    c = make_checkout(email_consent=channel == "sms")
    d = decide(c, history(opted_out=frozenset({channel})), Policy(), CHANNELS, at(1))
    if channel == "*":
        assert (d.action, d.reason) == ("stop", "opted out")
    else:
        assert (d.action, d.channel) == ("send", "email")


def test_no_consent_stops():
    c = make_checkout(email_consent=False, sms_consent=False)
    d = decide(c, history(), Policy(), CHANNELS, at(1))
    assert (d.action, d.reason) == ("stop", "no consent for any configured channel")


def test_no_contact_stops_with_the_connectors_problem():
    c = make_checkout(email=None, phone=None, problems=("invalid phone number '+47 12'",))
    d = decide(c, history(), Policy(), CHANNELS, at(1))
    assert d.action == "stop"
    assert "no reachable contact" in d.reason
    assert "+47 12" in d.reason
    assert (
        decide(make_checkout(customer=False), history(), Policy(), CHANNELS, at(1)).action == "stop"
    )


def test_carts_older_than_start_are_never_messaged():
    c = make_checkout()
    d = decide(c, history(start_at=NOON + timedelta(minutes=1)), Policy(), CHANNELS, at(1))
    assert (d.action, d.status) == ("stop", "stopped")


def test_overdue_step_is_skipped_not_sent_late():
    c = make_checkout()
    d = decide(c, history(), Policy(), CHANNELS, at(1 + 6.5))
    assert (d.action, d.step, d.reason) == ("skip", 1, "overdue")
    # within max_overdue it still goes
    assert decide(c, history(), Policy(), CHANNELS, at(1 + 5.5)).action == "send"


def test_cron_down_for_days_supersedes_earlier_steps():
    c = make_checkout()
    d = decide(c, history(), Policy(), CHANNELS, at(48.5))
    assert (d.action, d.step, d.superseded) == ("send", 3, (1, 2))


def test_frequency_cap_across_checkouts():
    c = make_checkout("c2")
    last = at(1) - timedelta(hours=2)  # another checkout was messaged 2 h before
    d = decide(c, history(last_contacted=last), Policy(), CHANNELS, at(1))
    assert (d.action, d.reason, d.until) == ("wait", "frequency cap", last + timedelta(hours=20))
    # The cap lifts at 07:00 UTC, 08:00 in Oslo: quiet hours hold it until 09:00 local, and
    # the step is not overdue then, because the cap moved its due time.
    lifted = last + timedelta(hours=20)
    held = decide(c, history(last_contacted=last), Policy(), CHANNELS, lifted)
    assert (held.action, held.reason) == ("wait", "quiet hours")
    later = decide(c, history(last_contacted=last), Policy(), CHANNELS, lifted + timedelta(hours=1))
    assert later.action == "send"


def test_failed_channel_falls_back_within_the_step():
    c = make_checkout()
    d = decide(c, history(records=(StepRecord(1, "sms", "failed"),)), Policy(), CHANNELS, at(1.2))
    assert d.channel == "email"


def test_policy_validates():
    with pytest.raises(ValueError, match="numbered"):
        Policy(steps=(DEFAULT_STEPS[1],))
    with pytest.raises(ValueError, match="window"):
        SendWindow(time(20), time(9))


def test_phone_zones_are_looked_up_once_per_area_not_per_number():
    from cartrescue import policy

    first = recipient_timezones(Customer(phone="+14155552671"), "Europe/Oslo")
    misses = policy._number_zones.cache_info().misses
    neighbour = recipient_timezones(Customer(phone="+14155559876"), "Europe/Oslo")
    assert [z.key for z in first] == [z.key for z in neighbour] == ["America/Los_Angeles"]
    assert policy._number_zones.cache_info().misses == misses  # a new buyer, same area


def test_an_invalid_number_does_not_hide_the_zones_of_its_valid_neighbours():
    # +31 14 0xx are Dutch municipal numbers: 14020 exists, 14034 does not.
    assert [z.key for z in recipient_timezones(Customer(phone="+3114034"), "UTC")] == ["UTC"]
    zones = recipient_timezones(Customer(phone="+3114020"), "UTC")
    assert [z.key for z in zones] == ["Europe/Amsterdam"]
