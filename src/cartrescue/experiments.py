"""Which arm of an experiment, or the holdout, a person is in: pure functions over plain data.

Assignment is a keyed hash (HMAC-SHA256) of the shop, the experiment and the person's
contact key (email lower-cased, else phone in E.164), so the same person lands in the same
arm on every cart, pass, process and machine, and nobody can predict it without the key. The
key is ``[store] hash_key`` when configured, else a random secret the store keeps.

- **Holdout** (``[experiment] holdout = 0.1``): that share of *people* never gets a reminder;
  their checkouts are watched like the others, so their conversion rate is the baseline the
  report measures the lift against.
- **A/B tests** (``[[experiment.tests]]``): arms differ in delay, channel or incentive
  (including none) and carry a template variant name; weights set the shares.
- **Adaptive allocation** (``allocation = "adaptive"``): Thompson sampling on conversion
  (Beta–Bernoulli) with a floor per arm; the draw is seeded by the key, the person and the
  stored counts, so two processes given the same counts decide alike. Do not use it when
  you need an unbiased estimate of each arm's effect (the shares drift, and a slow outcome
  such as a purchase days later feeds back late), or with fewer than a few hundred
  conversions per arm: use fixed weights, then switch the winner on.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from .models import ChannelKind, DiscountOffer

__all__ = [
    "HOLDOUT",
    "HOLDOUT_EXPERIMENT",
    "TREATED",
    "Allocation",
    "Arm",
    "ArmCounts",
    "Assignment",
    "Experiment",
    "ExperimentPlan",
    "assign",
    "assign_arm",
    "hash_unit",
    "in_holdout",
    "person_key",
    "with_arm",
]

HOLDOUT_EXPERIMENT = "holdout"
"""The name under which holdout assignments are stored (arms :data:`HOLDOUT` and
:data:`TREATED`)."""
HOLDOUT = "holdout"
TREATED = "treated"

Allocation = Literal["fixed", "adaptive"]


@dataclass(frozen=True, slots=True)
class Arm:
    """One arm of an experiment. A field left None keeps what the policy's step says;
    ``no_discount`` sends the step without its offer (the "no incentive" arm)."""

    name: str
    weight: float = 1.0
    template: str | None = None
    """A template variant name, recorded with the assignment (templates can show it)."""
    delay: timedelta | None = None
    """Send the step this long after abandonment instead of the step's delay (keep it
    within the step's delay plus ``max_overdue``, or the step is skipped as overdue)."""
    channel: ChannelKind | None = None
    """Prefer this channel for the step, when the contact allows it."""
    discount: DiscountOffer | None = None
    no_discount: bool = False

    def __post_init__(self) -> None:
        if not self.name or self.name in (HOLDOUT, TREATED):
            raise ValueError(f"arm name {self.name!r} is empty or reserved")
        if not self.weight > 0:
            raise ValueError(f"arm {self.name}: weight must be positive")
        if self.discount is not None and self.no_discount:
            raise ValueError(f"arm {self.name}: give a discount or no_discount, not both")


@dataclass(frozen=True, slots=True)
class Experiment:
    """An A/B test on one step (``step``) or every step (None). Runs from ``start`` until
    ``end`` (None: until removed); a finished experiment stays in the store and the report.
    The first arm is the control unless ``control`` names another."""

    name: str
    arms: tuple[Arm, ...]
    start: datetime
    end: datetime | None = None
    step: int | None = None
    allocation: Allocation = "fixed"
    floor: float = 0.1
    """Adaptive allocation: each arm keeps at least this share of new people."""
    control: str | None = None

    def __post_init__(self) -> None:
        if not self.name or self.name == HOLDOUT_EXPERIMENT:
            raise ValueError(f"experiment name {self.name!r} is empty or reserved")
        if len(self.arms) < 2:
            raise ValueError(f"experiment {self.name}: give at least two arms")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {self.name}: arm names must differ")
        if self.control is not None and self.control not in names:
            raise ValueError(f"experiment {self.name}: control {self.control!r} is not an arm")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"experiment {self.name}: end must come after start")
        if not 0 <= self.floor * len(self.arms) <= 1:
            raise ValueError(f"experiment {self.name}: floor × arms must be within 0–1")

    @property
    def control_arm(self) -> str:
        return self.control or self.arms[0].name

    def running(self, at: datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)

    def covers(self, step: int) -> bool:
        return self.step is None or self.step == step

    def arm(self, name: str) -> Arm | None:
        return next((a for a in self.arms if a.name == name), None)


@dataclass(frozen=True, slots=True)
class ExperimentPlan:
    """``[experiment]``: the holdout share and the experiments."""

    holdout: float = 0.0
    experiments: tuple[Experiment, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.holdout < 1:
            raise ValueError("holdout must be a share from 0 up to (not including) 1")
        names = [e.name for e in self.experiments]
        if len(set(names)) != len(names):
            raise ValueError("experiment names must differ")

    @property
    def active(self) -> bool:
        return self.holdout > 0 or bool(self.experiments)


@dataclass(frozen=True, slots=True)
class ArmCounts:
    """What the store knows of an arm so far, for adaptive allocation."""

    assigned: int = 0
    converted: int = 0


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where one checkout's person stands: held out, or treated with at most one arm."""

    held_out: bool = False
    experiment: str | None = None
    arm: Arm | None = None
    arms: Mapping[str, str] = field(default_factory=dict)
    """Experiment name → arm name, as recorded (holdout included)."""


def person_key(contacts: Sequence[str]) -> str | None:
    """The identity a person is assigned by: their first contact key (email lower-cased,
    else phone), as :func:`cartrescue.policy.contact_keys` orders them."""
    return next((c.strip().lower() for c in contacts if c and c.strip()), None)


def _digest(key: bytes, *parts: str) -> bytes:
    message = "\x1f".join(parts).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).digest()


def hash_unit(key: bytes, *parts: str) -> float:
    """A number in [0, 1) drawn from the keyed hash of ``parts``: uniform, stable."""
    (value,) = struct.unpack(">Q", _digest(key, *parts)[:8])
    return float(value) / 2.0**64


def in_holdout(key: bytes, shop: str, person: str, share: float) -> bool:
    """Whether ``person`` is in the shop's holdout of ``share``."""
    return share > 0 and hash_unit(key, shop, HOLDOUT_EXPERIMENT, person) < share


def _weighted(arms: Sequence[Arm], weights: Sequence[float], u: float) -> Arm:
    total = sum(weights)
    edge = 0.0
    for arm, weight in zip(arms, weights, strict=True):
        edge += weight / total
        if u < edge:
            return arm
    return arms[-1]


def assign_arm(
    key: bytes,
    shop: str,
    experiment: Experiment,
    person: str,
    counts: Mapping[str, ArmCounts] | None = None,
) -> Arm:
    """The arm ``person`` is in. Fixed allocation: by the arms' weights. Adaptive: a share
    ``floor`` × arms is spread evenly (every arm keeps learning), the rest goes to the arm
    whose Beta(1 + converted, 1 + assigned − converted) draw is highest, the draw seeded by
    the key, the person and ``counts``."""
    u = hash_unit(key, shop, experiment.name, person)
    arms = experiment.arms
    if experiment.allocation == "fixed" or counts is None:
        return _weighted(arms, [a.weight for a in arms], u)
    explore = experiment.floor * len(arms)
    if u < explore:
        return arms[min(int(u / experiment.floor), len(arms) - 1)]
    state = ",".join(
        f"{a.name}:{counts.get(a.name, ArmCounts()).assigned}:"
        f"{counts.get(a.name, ArmCounts()).converted}"
        for a in arms
    )
    seed = int.from_bytes(_digest(key, shop, experiment.name, person, state)[:8], "big")
    rng = random.Random(seed)
    best, best_draw = arms[0], -1.0
    for arm in arms:
        seen = counts.get(arm.name, ArmCounts())
        failures = max(seen.assigned - seen.converted, 0)
        draw = rng.betavariate(1 + seen.converted, 1 + failures)
        if draw > best_draw:
            best, best_draw = arm, draw
    return best


def assign(
    plan: ExperimentPlan,
    key: bytes,
    shop: str,
    contacts: Sequence[str],
    step: int,
    at: datetime,
    *,
    recorded: Mapping[str, str] | None = None,
    counts: Mapping[str, Mapping[str, ArmCounts]] | None = None,
) -> Assignment:
    """Where the person with ``contacts`` stands for ``step`` at ``at``. ``recorded`` holds
    the checkout's earlier assignments (experiment → arm), which always win, so a checkout
    keeps its arm whatever the counts do later; ``counts`` (experiment → arm → counts)
    feeds adaptive experiments."""
    recorded = dict(recorded or {})
    person = person_key(contacts)
    if person is None:
        return Assignment(arms=recorded)
    arms = dict(recorded)
    if plan.holdout > 0 or HOLDOUT_EXPERIMENT in arms:
        if HOLDOUT_EXPERIMENT not in arms:
            held = in_holdout(key, shop, person, plan.holdout)
            arms[HOLDOUT_EXPERIMENT] = HOLDOUT if held else TREATED
        if arms[HOLDOUT_EXPERIMENT] == HOLDOUT:
            return Assignment(held_out=True, arms=arms)
    for experiment in plan.experiments:
        if not experiment.covers(step):
            continue
        name = arms.get(experiment.name)
        if name is None:
            if not experiment.running(at):
                continue
            name = assign_arm(
                key, shop, experiment, person, (counts or {}).get(experiment.name)
            ).name
            arms[experiment.name] = name
        arm = experiment.arm(name)
        if arm is not None:
            return Assignment(experiment=experiment.name, arm=arm, arms=arms)
    return Assignment(arms=arms)


def with_arm(
    arm: Arm | None,
    channel: ChannelKind | None,
    discount: DiscountOffer | None,
    allowed: Sequence[ChannelKind],
) -> tuple[ChannelKind | None, DiscountOffer | None]:
    """The channel and offer a step goes out with under ``arm``: the arm's channel when the
    contact allows it, and the arm's offer (or none)."""
    if arm is None:
        return channel, discount
    if arm.channel is not None and arm.channel in allowed:
        channel = arm.channel
    if arm.no_discount:
        discount = None
    elif arm.discount is not None:
        discount = arm.discount
    return channel, discount
