"""A synthetic shop run through the real engine, to prove the report's statistics.

``simulate`` abandons ``checkouts`` carts (one person each), runs passes on a
:class:`~cartrescue.clock.FrozenClock` so the first reminder goes out (or is held back for
the holdout), then lets each person buy with a known probability (``p_held_out`` when no
message reached them, ``p_messaged`` when one did) and runs more passes, so the purchases
arrive as completed checkouts the way a shop reports them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cartrescue.clock import FrozenClock
from cartrescue.engine import Recovery
from cartrescue.experiments import ExperimentPlan
from cartrescue.models import BadCheckout, Checkout, Customer, LineItem
from cartrescue.policy import Policy, Step
from cartrescue.store.base import Store

from .memory import MemoryChannel

__all__ = ["START", "SimulatedShop", "Simulation", "simulate"]

START = datetime(2026, 3, 11, 10, 0, tzinfo=UTC)
"""A Wednesday morning, inside the default send window in UTC."""


class SimulatedShop:
    """A connector over a dict of checkouts: yields those updated since the watermark."""

    name = "simulated"

    def __init__(self) -> None:
        self.checkouts: dict[str, Checkout] = {}

    def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout | BadCheckout]:
        for checkout in self.checkouts.values():
            if since is None or checkout.updated_at >= since:
                yield checkout


@dataclass(frozen=True, slots=True)
class Simulation:
    shop: SimulatedShop
    channel: MemoryChannel
    clock: FrozenClock
    recovery: Recovery
    messaged: int
    bought: int


def _checkout(number: int, at: datetime, rng: random.Random) -> Checkout:
    price = Decimal(rng.randrange(2000, 15000)) / 100
    quantity = rng.randint(1, 3)
    return Checkout(
        id=f"sim-{number}",
        abandoned_at=at,
        updated_at=at,
        recovery_url=f"https://shop.example/checkouts/sim-{number}/recover",
        currency="EUR",
        total=price * quantity,
        line_items=(LineItem("Wool socks", quantity, price),),
        customer=Customer(
            first_name="Sam",
            email=f"person{number}@example.com",
            locale=rng.choice(("en", "de")),
            email_consent=True,
            timezone="UTC",
        ),
    )


def simulate(
    store: Store,
    *,
    checkouts: int,
    p_held_out: float,
    p_messaged: float,
    plan: ExperimentPlan,
    seed: int = 1,
    key: bytes = b"simulation-key-of-at-least-32-bytes!",
) -> Simulation:
    """Run the shop through the engine; return what happened (the store holds the rest)."""
    rng = random.Random(seed)
    clock = FrozenClock(START)
    store.start_at(START - timedelta(days=1))
    shop = SimulatedShop()
    for number in range(checkouts):
        at = START + timedelta(seconds=number * 1800 / max(checkouts, 1))
        checkout = _checkout(number, at, rng)
        shop.checkouts[checkout.id] = checkout
    channel = MemoryChannel("email")
    recovery = Recovery(
        shop,
        [channel],
        store,
        policy=Policy(steps=(Step(1, timedelta(hours=1), ("email",)),)),
        clock=clock,
        experiments=plan,
        experiment_key=key,
    )
    clock.set(START + timedelta(hours=1, minutes=40))
    recovery.run()
    messaged = {m.checkout_id for m in channel.sent}
    clock.advance(timedelta(hours=2))
    bought = 0
    for checkout in list(shop.checkouts.values()):
        p = p_messaged if checkout.id in messaged else p_held_out
        if rng.random() < p:
            bought += 1
            shop.checkouts[checkout.id] = replace(
                checkout, completed_at=clock(), updated_at=clock()
            )
    for _ in range(2):
        clock.advance(timedelta(minutes=30))
        recovery.run()
    return Simulation(shop, channel, clock, recovery, len(messaged), bought)
