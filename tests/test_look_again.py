"""Look-again times change nothing but speed: the same shop, run pass after pass with and
without them, sends, skips, stops and counts the same."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cartrescue.clock import FrozenClock
from cartrescue.engine import Recovery, RunReport
from cartrescue.errors import PermanentSendError, TransientSendError
from cartrescue.models import Checkout, Customer, LineItem, Message
from cartrescue.policy import Policy
from cartrescue.store.base import Histories, Unchanged
from cartrescue.store.sqlite import SQLiteStore
from cartrescue_testing.memory import MemoryChannel

START = datetime(2026, 3, 11, 6, 0, tzinfo=UTC)
PHONES = ("+14155550{:03d}", "+4420794600{:02d}", "+8131234{:04d}", "+4791234{:03d}")


class Counting(SQLiteStore):
    """A SQLite store that counts the checkouts whose histories a pass reads (decides)."""

    decided = 0

    def histories(self, checkout_ids: Sequence[str], contacts: Sequence[str]) -> Histories:
        self.decided += len(checkout_ids)
        return super().histories(checkout_ids, contacts)


class EveryCheckout(Counting):
    """A SQLite store that keeps no look-again times: every pass decides every checkout."""

    def checkouts_to_decide(
        self, abandoned_after: datetime, now: datetime, config: str, token: str
    ) -> Iterator[Checkout | Unchanged]:
        return self.active_checkouts(abandoned_after)


class Shop:
    name = "shop"

    def __init__(self) -> None:
        self.checkouts: dict[str, Checkout] = {}

    def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout]:
        items = sorted(self.checkouts.values(), key=lambda c: c.updated_at)
        return iter([c for c in items if since is None or c.updated_at > since])


def _person(rng: random.Random, n: int) -> Customer:
    phone = rng.choice(PHONES).format(n) if rng.random() < 0.8 else None
    email = f"buyer{n}@example.com" if rng.random() < 0.8 or phone is None else None
    return Customer(
        first_name=f"Buyer {n}",
        email=email,
        phone=phone,
        email_consent=rng.random() < 0.85,
        sms_consent=rng.random() < 0.7,
        timezone=rng.choice([None, None, "Asia/Tokyo", "America/Los_Angeles"]),
    )


def _failing(attempts: dict[str, int]) -> MemoryChannel:
    def fail(message: Message) -> None:
        attempts[message.key] = attempts.get(message.key, 0) + 1
        if message.to.endswith("7"):
            raise PermanentSendError("rejected", provider="memory")
        if message.to.endswith("3") and attempts[message.key] == 1:
            raise TransientSendError("try later", provider="memory")
        if message.to.endswith("9@example.com"):
            raise PermanentSendError("bounced", provider="memory", skip_step=True)

    return MemoryChannel("sms", fail=fail)


class Side:
    def __init__(self, store: Counting, policy: Policy) -> None:
        self.store = store
        self.shop = Shop()
        self.clock = FrozenClock(START)
        self.attempts: dict[str, int] = {}
        self.sms = _failing(self.attempts)
        self.email = MemoryChannel("email")
        self.policy = policy

    def run(self) -> RunReport:
        engine = Recovery(
            self.shop,
            [self.sms, self.email],
            self.store,
            clock=self.clock,
            policy=self.policy,
            # One page a pass: which of one person's carts due in the same pass wins the
            # frequency cap depends on page boundaries and worker timing otherwise.
            batch_size=1000,
        )
        return engine.run()

    def state(self) -> tuple[object, ...]:
        rows = self.store._query(
            "SELECT key, status, attempts FROM outbox ORDER BY key"
        ) + self.store._query("SELECT checkout_id, step, reason FROM skipped_steps ORDER BY 1, 2")
        closed = self.store._query("SELECT id, status, reason FROM checkouts ORDER BY id")
        return tuple(map(tuple, rows)), tuple(map(tuple, closed))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_passes_with_and_without_look_again_times_do_the_same(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    policy = Policy(frequency_cap=timedelta(hours=3), max_overdue=timedelta(hours=5))
    fast = Side(Counting(tmp_path / "fast.db"), policy)
    slow = Side(EveryCheckout(tmp_path / "slow.db"), policy)
    sides = (fast, slow)
    people = [_person(rng, n) for n in range(14)]
    now, number = START, 0
    for _ in range(150):
        now += timedelta(minutes=rng.choice([7, 23, 41, 60]))
        event = rng.random()
        if event < 0.25:  # a cart abandoned
            number += 1
            at = now - timedelta(minutes=rng.randint(1, 30))
            cart = Checkout(
                id=f"c{number}",
                abandoned_at=at,
                updated_at=at,
                recovery_url=f"https://shop.example/c{number}",
                currency="USD",
                total=Decimal(rng.randint(5, 300)),
                line_items=(LineItem("Mug", 1, Decimal(12)),),
                customer=rng.choice(people),
            )
            for side in sides:
                side.shop.checkouts[cart.id] = cart
        elif event < 0.35 and number:  # a cart changed or bought
            cart = fast.shop.checkouts[f"c{rng.randint(1, number)}"]
            changed = Checkout.from_dict(
                {**cart.to_dict(), "updated_at": now.isoformat(), "total": "99.00"}
                | ({"completed_at": now.isoformat()} if rng.random() < 0.5 else {})
            )
            for side in sides:
                side.shop.checkouts[cart.id] = changed
        elif event < 0.42:  # an opt-out
            person = rng.choice(people)
            contact = person.phone or person.email
            assert contact is not None
            channel = rng.choice(["sms", "*", "email"])
            for side in sides:
                side.store.add_optout(contact, channel, "test", now)
        elif event < 0.5 and number:  # a reply pauses a cart, or a pause is lifted
            cart_id = f"c{rng.randint(1, number)}"
            until = rng.choice([None, now + timedelta(hours=rng.randint(1, 30)), now])
            for side in sides:
                side.store.pause_checkout(cart_id, until, now)
        for side in sides:
            side.clock.set(now)
        got, expected = fast.run(), slow.run()
        assert got.ok and expected.ok
        assert +got.counts == +expected.counts, now
        assert sorted(got.failures) == sorted(expected.failures), now
        assert fast.state() == slow.state(), now
    assert [m.key for m in fast.sms.sent] == [m.key for m in slow.sms.sent]
    assert sorted(m.key for m in fast.email.sent) == sorted(m.key for m in slow.email.sent)
    assert fast.sms.sent and fast.email.sent
    assert fast.store.decided < 0.8 * slow.store.decided, (fast.store.decided, slow.store.decided)


def _due_shop(count: int) -> Shop:
    shop = Shop()
    at = START + timedelta(hours=2)
    for n in range(count):
        shop.checkouts[f"d{n}"] = Checkout(
            id=f"d{n}",
            abandoned_at=at,
            updated_at=at,
            recovery_url=f"https://shop.example/d{n}",
            currency="USD",
            total=Decimal(20),
            customer=Customer(email=f"due{n}@example.com", email_consent=True),
        )
    return shop


def test_a_pass_with_nothing_due_decides_nothing(tmp_path: Path) -> None:
    store = Counting(tmp_path / "store.db")
    shop, email = _due_shop(30), MemoryChannel("email")
    clock = FrozenClock(START + timedelta(hours=4))
    assert Recovery(shop, [email], store, clock=clock).run().counts["sent"] == 30
    decided = store.decided
    second = Recovery(shop, [email], store, clock=clock).run()
    assert +second.counts == {"waiting": 30}
    assert store.decided == decided  # nothing read but the look-again times
    # the same as deciding every checkout
    every = EveryCheckout(tmp_path / "every.db")
    Recovery(shop, [email], every, clock=clock).run()
    assert +Recovery(shop, [email], every, clock=clock).run().counts == {"waiting": 30}
    # step 2 falls due 24 h after abandonment: every checkout is decided, and sent to
    clock.set(START + timedelta(hours=27, minutes=1))
    assert Recovery(shop, [email], store, clock=clock).run().counts["sent"] == 30
    assert store.decided == decided + 30


def test_another_configuration_decides_again(tmp_path: Path) -> None:
    store = Counting(tmp_path / "store.db")
    shop, email = _due_shop(10), MemoryChannel("email")
    clock = FrozenClock(START + timedelta(hours=4))
    Recovery(shop, [email], store, clock=clock).run()
    decided = store.decided
    Recovery(shop, [email], store, clock=clock).run()
    assert store.decided == decided
    faster = Policy(frequency_cap=timedelta(hours=1))
    assert +Recovery(shop, [email], store, clock=clock, policy=faster).run().counts == {
        "waiting": 10
    }
    assert store.decided == decided + 10
    sms = MemoryChannel("sms")
    Recovery(shop, [email, sms], store, clock=clock, policy=faster).run()
    assert store.decided == decided + 20


def test_segments_that_read_more_than_the_checkout_decide_every_pass(tmp_path: Path) -> None:
    # Stock, tags, collections and customer history change without the checkout changing:
    # a cart may move to a segment whose step is due sooner, so no waiting time is kept.
    from cartrescue.segments import Segment, SegmentConditions

    drifting = Policy(segments=(Segment("in-stock", SegmentConditions(all_in_stock=True)),))
    store = Counting(tmp_path / "store.db")
    shop, email = _due_shop(10), MemoryChannel("email")
    clock = FrozenClock(START + timedelta(hours=4))
    assert Recovery(shop, [email], store, clock=clock, policy=drifting).run().counts["sent"] == 10
    decided = store.decided
    assert +Recovery(shop, [email], store, clock=clock, policy=drifting).run().counts == {
        "waiting": 10
    }
    assert store.decided == decided + 10
