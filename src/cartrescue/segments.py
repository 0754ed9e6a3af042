"""Which segment a cart is in: pure functions over the checkout.

A :class:`Segment` is a named set of conditions and what to do with the carts that meet
them: their own schedule (steps, delays, channels, offers) or ``skip``. Segments are tried in
order; the first that matches wins, and a cart no segment matches gets the policy's own
schedule (the segment :data:`DEFAULT_SEGMENT`). A condition on data the platform did not
give (whether the customer bought before, whether an item is in stock) never matches, so a
cart is never put in a segment on a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from .models import Checkout
from .reasons import REASONS

if TYPE_CHECKING:
    from .policy import Step

__all__ = [
    "DEFAULT_SEGMENT",
    "CustomerKind",
    "Segment",
    "SegmentConditions",
    "customer_kind",
    "first_match",
    "item_count",
]

DEFAULT_SEGMENT = "default"
"""The name of the segment of a cart no configured segment matches."""


class CustomerKind(StrEnum):
    """Whether the person bought from the shop before."""

    NEW = "new"
    RETURNING = "returning"


@dataclass(frozen=True, slots=True)
class SegmentConditions:
    """What a cart must meet to be in a segment; a condition left as None is not checked.

    ``min_value`` is inclusive and ``max_value`` exclusive (the cart total in the shop's
    currency), as are ``min_items`` and ``max_items`` (the sum of the quantities).
    ``countries`` are ISO 3166-1 alpha-2 codes. ``all_in_stock`` true matches carts whose
    every item the platform reports as in stock; false, carts with at least one item out of
    stock. ``rfm`` names the RFM groups (:mod:`cartrescue.rfm`) whose people the segment
    takes; it needs the customer's history, which the engine reads from the platform.

    ``product_tags`` and ``collections`` match a cart when **any** of its lines' products
    has **any** of the names given, compared case-insensitively with surrounding spaces
    ignored (``"Wool"`` matches the tag ``" wool"``). A collection matches by its handle
    or its title; WooCommerce has no collections, so there its product categories (slug or
    name) stand in. A line whose product the platform said nothing about (the connector
    did not read it, or the product is gone) cannot match, so a cart none of whose known
    lines match is not in the segment.

    ``reasons`` (:data:`~cartrescue.reasons.REASONS` ids) matches carts whose buyer said they
    left for one of them; a cart whose buyer gave no reason never matches it.
    """

    min_value: Decimal | None = None
    max_value: Decimal | None = None
    min_items: int | None = None
    max_items: int | None = None
    customer: CustomerKind | None = None
    countries: frozenset[str] | None = None
    all_in_stock: bool | None = None
    product_tags: frozenset[str] | None = None
    collections: frozenset[str] | None = None
    rfm: frozenset[str] | None = None
    reasons: frozenset[str] | None = None

    @property
    def needs_history(self) -> bool:
        """Whether a condition reads the customer's order history."""
        return self.rfm is not None or self.customer is not None

    def __post_init__(self) -> None:
        if (
            self.min_value is not None
            and self.max_value is not None
            and self.min_value >= self.max_value
        ):
            raise ValueError("min_value must be below max_value")
        if (
            self.min_items is not None
            and self.max_items is not None
            and self.min_items >= self.max_items
        ):
            raise ValueError("min_items must be below max_items")
        if self.countries is not None:
            object.__setattr__(self, "countries", frozenset(c.upper() for c in self.countries))
        for name in ("product_tags", "collections"):
            names = getattr(self, name)
            if names is not None:
                folded = frozenset(_fold(n) for n in names) - {""}
                if not folded:
                    raise ValueError(f"{name} needs at least one non-empty name")
                object.__setattr__(self, name, folded)
        if self.reasons is not None:
            unknown = sorted(set(self.reasons) - set(REASONS))
            if unknown or not self.reasons:
                raise ValueError(
                    f"unknown reason {', '.join(map(repr, unknown)) or '(none given)'}: "
                    f"choose from {', '.join(REASONS)}"
                )
            object.__setattr__(self, "reasons", frozenset(self.reasons))
        if self.rfm is not None:
            if not self.rfm:
                raise ValueError("rfm needs at least one group name")
            object.__setattr__(self, "rfm", frozenset(self.rfm))

    def failed(self, checkout: Checkout, reason: str | None = None) -> str | None:
        """The first condition ``checkout`` does not meet, in words, or None when it meets
        them all. ``reason`` is the :data:`~cartrescue.reasons.REASONS` id the buyer gave
        for leaving (None: they gave none)."""
        total = checkout.total
        if self.min_value is not None and total < self.min_value:
            return f"value {total} below {self.min_value}"
        if self.max_value is not None and total >= self.max_value:
            return f"value {total} not below {self.max_value}"
        items = item_count(checkout)
        if self.min_items is not None and items < self.min_items:
            return f"{items} items, fewer than {self.min_items}"
        if self.max_items is not None and items >= self.max_items:
            return f"{items} items, not fewer than {self.max_items}"
        if self.customer is not None:
            kind = customer_kind(checkout)
            if kind is None:
                return "unknown whether the customer bought before"
            if kind != self.customer:
                return f"{kind} customer"
        if self.countries is not None:
            if checkout.country is None:
                return "unknown country"
            if checkout.country.upper() not in self.countries:
                return f"country {checkout.country.upper()}"
        if self.rfm is not None:
            group = checkout.customer.rfm_group if checkout.customer else None
            if group is None:
                return "unknown RFM group (no customer history)"
            if group not in self.rfm:
                return f"RFM group {group}"
        if self.all_in_stock is not None:
            stock = [li.in_stock for li in checkout.line_items]
            if not stock or any(s is None for s in stock):
                return "unknown stock"
            if all(stock) != self.all_in_stock:
                return "all items in stock" if all(stock) else "an item out of stock"
        if self.product_tags is not None:
            failed = _names_failed(checkout, "product_tags", self.product_tags, "product tag")
            if failed:
                return failed
        if self.collections is not None:
            failed = _names_failed(checkout, "collections", self.collections, "collection")
            if failed:
                return failed
        if self.reasons is not None:
            if reason is None:
                return "no stated reason"
            if reason not in self.reasons:
                return f"stated reason {REASONS.get(reason, reason)}"
        return None


def _fold(name: str) -> str:
    return name.strip().casefold()


def _names_failed(checkout: Checkout, field: str, wanted: frozenset[str], what: str) -> str | None:
    """None when a line's product has one of ``wanted``, else why not (in words)."""
    known = [names for li in checkout.line_items if (names := getattr(li, field)) is not None]
    if not known:
        return f"{what}s unknown"
    if any(_fold(n) in wanted for names in known for n in names):
        return None
    shown = ", ".join(sorted(wanted))
    return (
        f"no item with the {what} {shown}"
        if len(wanted) == 1
        else f"no item with a {what} in {shown}"
    )


@dataclass(frozen=True, slots=True)
class Segment:
    """A named group of carts and their schedule: ``steps`` (None: the policy's), or
    ``skip`` (no reminders at all)."""

    name: str
    conditions: SegmentConditions = SegmentConditions()
    steps: tuple[Step, ...] | None = None
    skip: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a segment needs a name")
        if self.skip and self.steps is not None:
            raise ValueError(f"segment {self.name}: give steps or skip, not both")
        if self.steps is not None:
            _check_steps(self.name, self.steps)


def _check_steps(name: str, steps: Sequence[Step]) -> None:
    if not steps:
        raise ValueError(f"segment {name}: give at least one step")
    numbers = [s.number for s in steps]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"segment {name}: steps must be numbered 1, 2, 3, … in order")
    delays = [s.delay for s in steps]
    if delays != sorted(delays):
        raise ValueError(f"segment {name}: step delays must grow from one step to the next")


def item_count(checkout: Checkout) -> int:
    """How many items the cart holds (the sum of the line quantities)."""
    return sum(li.quantity for li in checkout.line_items)


def customer_kind(checkout: Checkout) -> CustomerKind | None:
    """New or returning, when the platform told how many orders the customer placed."""
    customer = checkout.customer
    if customer is None or customer.orders_count is None:
        return None
    return CustomerKind.RETURNING if customer.orders_count > 0 else CustomerKind.NEW


def first_match(
    checkout: Checkout, segments: Sequence[Segment], reason: str | None = None
) -> Segment | None:
    """The first of ``segments`` whose conditions ``checkout`` meets (``reason``: the one its
    buyer stated for leaving, if any), or None."""
    for segment in segments:
        if segment.conditions.failed(checkout, reason) is None:
            return segment
    return None
