"""Customer history for segments: fetched once per person per pass, and the RFM group.

:class:`HistoryCache` is what the engine calls once per page of checkouts when a segment
needs history (``rfm`` or ``customer`` conditions). It asks the connector
(:class:`~cartrescue.connectors.base.CustomerHistoryLookup`) about the people of the page it
has not asked about this pass — one checkout per person — and returns the page with each
customer's ``orders_count``, ``amount_spent``, ``last_order_at`` and ``rfm_group`` filled in.
A failed lookup is logged and remembered for the pass: that person's history stays unknown,
so conditions on it do not match, and the pass goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from .connectors.base import CustomerHistoryLookup, HistoryCheck
from .errors import ConnectorError
from .logmask import mask_text
from .models import Checkout, Customer, CustomerHistory
from .policy import Policy
from .rfm import Rfm

__all__ = ["HistoryCache", "HistoryStats", "history_key", "with_history"]

log = logging.getLogger("cartrescue.history")


def history_key(customer: Customer | None) -> str | None:
    """Who the history belongs to: the platform's customer id, else the email address;
    None for a buyer the shop cannot look up."""
    if customer is None:
        return None
    if customer.id:
        return f"id:{customer.id}"
    if customer.email:
        return f"email:{customer.email.lower()}"
    return None


def with_history(customer: Customer, history: CustomerHistory) -> Customer:
    """``customer`` with what ``history`` says about their past orders."""
    return replace(
        customer,
        orders_count=history.orders_count,
        amount_spent=history.amount_spent,
        last_order_at=history.last_order_at,
    )


@dataclass
class HistoryStats:
    """How a pass used the cache: people asked about, people the cache answered, failed
    answers, and calls to the connector (one a page at most)."""

    asked: int = 0
    cached: int = 0
    failed: int = 0
    lookups: int = 0


class HistoryCache:
    """Histories of one pass (create one per pass; nothing is kept between passes).

    ``fetch_all`` asks about every buyer (RFM needs the amount and the last order date);
    without it only buyers whose order count the checkout did not carry are asked about
    (enough for ``customer = "new"|"returning"``).
    """

    def __init__(self, connector: CustomerHistoryLookup, rfm: Rfm, *, fetch_all: bool) -> None:
        self.connector = connector
        self.rfm = rfm
        self.fetch_all = fetch_all
        self._known: dict[str, HistoryCheck] = {}
        self._seen: dict[str, Customer] = {}
        self.stats = HistoryStats()

    @classmethod
    def for_pass(cls, connector: object, policy: Policy) -> HistoryCache | None:
        """The cache a pass needs, or None when no segment reads history or the connector
        cannot read it (said once in the log, since those conditions then never match)."""
        if not policy.needs_history:
            return None
        if not isinstance(connector, CustomerHistoryLookup):
            name = getattr(connector, "name", type(connector).__name__)
            if policy.needs_rfm:
                log.warning(
                    "the %s connector cannot read customer history: rfm conditions never match",
                    name,
                )
            return None
        return cls(connector, policy.rfm, fetch_all=policy.needs_rfm)

    def _wanted(self, customer: Customer | None) -> str | None:
        key = history_key(customer)
        if key is None or customer is None:
            return None
        if not self.fetch_all and customer.orders_count is not None:
            return None
        return key

    def attach(self, page: Sequence[Checkout], now: datetime) -> list[Checkout]:
        """``page`` with each buyer's history and RFM group (one lookup per new person)."""
        ask: dict[str, Checkout] = {}
        for checkout in page:
            key = self._wanted(checkout.customer)
            if key is None:
                continue
            if key in self._known or key in ask:
                self.stats.cached += 1
            else:
                ask[key] = checkout
        if ask:
            self._fetch(ask)
        enriched: list[Checkout] = []
        for checkout in page:
            customer = checkout.customer
            key = self._wanted(customer)
            found = self._known.get(key) if key is not None else None
            if customer is not None and isinstance(found, CustomerHistory):
                customer = with_history(customer, found)
                self._seen[key or ""] = customer
            enriched.append(
                checkout if customer is checkout.customer else replace(checkout, customer=customer)
            )
        if not self.fetch_all:
            return enriched
        cutoffs = self.rfm.cutoffs_for(self._seen.values(), now)
        return [
            replace(
                c, customer=replace(c.customer, rfm_group=self.rfm.group(c.customer, now, cutoffs))
            )
            if c.customer is not None
            else c
            for c in enriched
        ]

    def _fetch(self, ask: dict[str, Checkout]) -> None:
        self.stats.asked += len(ask)
        self.stats.lookups += 1
        checkouts = list(ask.values())
        try:
            answers = self.connector.customer_histories(checkouts)
        except ConnectorError as err:
            answers = {c.id: err for c in checkouts}
        except Exception as err:  # a broken connector must not end the pass
            log.warning("customer history lookup raised %s", type(err).__name__, exc_info=True)
            answers = {
                c.id: ConnectorError(f"history lookup raised {type(err).__name__}")
                for c in checkouts
            }
        for key, checkout in ask.items():
            answer = answers.get(checkout.id)
            if isinstance(answer, ConnectorError):
                self.stats.failed += 1
                log.warning(
                    "checkout=%s customer history unknown: %s", checkout.id, mask_text(str(answer))
                )
            elif answer is not None and not isinstance(answer, CustomerHistory):
                self.stats.failed += 1
                log.warning("checkout=%s customer history unreadable", checkout.id)
                answer = None
            self._known[key] = answer
