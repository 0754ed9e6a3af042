"""RFM: recency, frequency and monetary scores from a customer's history, and named groups.

Pure functions over :class:`~cartrescue.models.Customer` (its ``orders_count``,
``amount_spent`` and ``last_order_at``, read from the platform by the engine) and the time.
Each score is 0 to 3:

- **recency** — 3 when the last order is at most ``recency_days[0]`` days old, 2 when at
  most ``recency_days[1]``, else 1;
- **frequency** — 3 with at least ``orders[1]`` paid orders, 2 with at least ``orders[0]``,
  else 1;
- **monetary** — 3 with at least ``amount_spent[1]`` spent (shop currency), 2 with at least
  ``amount_spent[0]``, else 1.

A person who never bought scores 0 on all three. A score the history cannot give (the
platform told the order count but not the date of the last order, say) is unknown (None),
and a group that asks for it does not match. With ``method = "quantiles"`` the cut-offs are
the terciles over the customers whose history the pass read (those who bought), once at least
``min_customers`` of them were seen; until then the thresholds apply.

Groups are tried in order and the first whose score sets all hold wins (a set left out is not
checked); :data:`DEFAULT_GROUPS` are ``champions``, ``loyal``, ``new``, ``at risk``,
``hibernating`` and ``others``.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from .models import Customer

__all__ = [
    "DEFAULT_GROUPS",
    "Cutoffs",
    "Rfm",
    "RfmGroup",
    "RfmMethod",
    "RfmScores",
    "score",
]

SCORES = frozenset({0, 1, 2, 3})


class RfmMethod(StrEnum):
    """Where the cut-offs come from."""

    THRESHOLDS = "thresholds"
    QUANTILES = "quantiles"


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """The two cut-offs of each score (see the module docstring)."""

    recency_days: tuple[float, float] = (30.0, 90.0)
    orders: tuple[float, float] = (2.0, 5.0)
    amount_spent: tuple[Decimal, Decimal] = (Decimal(100), Decimal(500))

    def __post_init__(self) -> None:
        for name in ("recency_days", "orders", "amount_spent"):
            low, high = getattr(self, name)
            if low < 0 or high < low:
                raise ValueError(f"{name}: give two cut-offs, the first not above the second")


@dataclass(frozen=True, slots=True)
class RfmScores:
    """One person's scores, 0 (never bought) to 3; None where the history cannot say."""

    recency: int | None
    frequency: int
    monetary: int | None


@dataclass(frozen=True, slots=True)
class RfmGroup:
    """A named group: the scores it takes on each axis (None: any)."""

    name: str
    recency: frozenset[int] | None = None
    frequency: frozenset[int] | None = None
    monetary: frozenset[int] | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an RFM group needs a name")
        for axis in ("recency", "frequency", "monetary"):
            values = getattr(self, axis)
            if values is not None:
                values = frozenset(values)
                object.__setattr__(self, axis, values)
                if not values or not values <= SCORES:
                    raise ValueError(f"RFM group {self.name}: {axis} scores must be 0 to 3")

    def matches(self, scores: RfmScores) -> bool:
        """Whether ``scores`` fall in every set this group gives."""
        for wanted, value in (
            (self.recency, scores.recency),
            (self.frequency, scores.frequency),
            (self.monetary, scores.monetary),
        ):
            if wanted is not None and (value is None or value not in wanted):
                return False
        return True


def _group(
    name: str,
    recency: Iterable[int] | None = None,
    frequency: Iterable[int] | None = None,
    monetary: Iterable[int] | None = None,
) -> RfmGroup:
    return RfmGroup(
        name,
        frozenset(recency) if recency is not None else None,
        frozenset(frequency) if frequency is not None else None,
        frozenset(monetary) if monetary is not None else None,
    )


DEFAULT_GROUPS: tuple[RfmGroup, ...] = (
    _group("champions", recency=[3], frequency=[3], monetary=[2, 3]),
    _group("loyal", recency=[2, 3], frequency=[2, 3]),
    _group("new", recency=[0, 3], frequency=[0, 1]),
    _group("at risk", recency=[1], frequency=[2, 3]),
    _group("hibernating", recency=[1, 2], frequency=[1]),
    _group("others"),
)
"""Bought often, lately and much; bought more than once, not long ago; never bought or a
first order lately; bought often, not lately; bought once, a while ago; anyone else."""


def score(customer: Customer, now: datetime, cutoffs: Cutoffs) -> RfmScores | None:
    """``customer``'s scores at ``now``, or None when the order count is unknown."""
    orders = customer.orders_count
    if orders is None:
        return None
    if orders <= 0:
        return RfmScores(0, 0, 0)
    frequency = 3 if orders >= cutoffs.orders[1] else 2 if orders >= cutoffs.orders[0] else 1
    recency = None
    if customer.last_order_at is not None:
        days = max(0.0, (now - customer.last_order_at).total_seconds() / 86400)
        low, high = cutoffs.recency_days
        recency = 3 if days <= low else 2 if days <= high else 1
    monetary = None
    spent = customer.amount_spent
    if spent is not None:
        low_m, high_m = cutoffs.amount_spent
        monetary = 3 if spent >= high_m else 2 if spent >= low_m else 1
    return RfmScores(recency, frequency, monetary)


def _terciles(values: Sequence[float]) -> tuple[float, float]:
    low, high = statistics.quantiles(values, n=3, method="inclusive")
    return low, high


@dataclass(frozen=True, slots=True)
class Rfm:
    """How customers are scored and grouped: ``[rfm]`` in ``cartrescue.toml``."""

    cutoffs: Cutoffs = Cutoffs()
    method: RfmMethod = RfmMethod.THRESHOLDS
    groups: tuple[RfmGroup, ...] = DEFAULT_GROUPS
    min_customers: int = 20
    """With ``quantiles``: the buyers seen before the terciles replace the thresholds."""
    _names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [g.name for g in self.groups]
        if not names:
            raise ValueError("give at least one RFM group")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"RFM group names must be unique: {', '.join(twice)}")
        if self.min_customers < 3:
            raise ValueError("min_customers must be at least 3")
        object.__setattr__(self, "_names", frozenset(names))

    @property
    def names(self) -> frozenset[str]:
        """The names of the groups."""
        return self._names

    def cutoffs_for(self, seen: Iterable[Customer], now: datetime) -> Cutoffs:
        """The cut-offs to score with, given the customers seen so far: the thresholds, or
        with ``quantiles`` and enough buyers among ``seen``, their terciles. (Recency is
        scored the other way round: the fewest days are the best.)"""
        if self.method != RfmMethod.QUANTILES:
            return self.cutoffs
        buyers = [c for c in seen if c.orders_count]
        if len(buyers) < self.min_customers:
            return self.cutoffs
        days = [
            max(0.0, (now - c.last_order_at).total_seconds() / 86400)
            for c in buyers
            if c.last_order_at is not None
        ]
        spent = [float(c.amount_spent) for c in buyers if c.amount_spent is not None]
        orders = [float(c.orders_count or 0) for c in buyers]
        recency = _terciles(days) if len(days) >= 2 else self.cutoffs.recency_days
        amount = (
            tuple(Decimal(str(round(v, 2))) for v in _terciles(spent))
            if len(spent) >= 2
            else self.cutoffs.amount_spent
        )
        return Cutoffs(
            recency_days=recency,
            orders=_terciles(orders),
            amount_spent=(amount[0], amount[1]),
        )

    def group(
        self, customer: Customer, now: datetime, cutoffs: Cutoffs | None = None
    ) -> str | None:
        """The name of the first group ``customer``'s scores fall in, or None (order count
        unknown, or no group takes these scores)."""
        scores = score(customer, now, cutoffs or self.cutoffs)
        if scores is None:
            return None
        return next((g.name for g in self.groups if g.matches(scores)), None)
