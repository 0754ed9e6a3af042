"""Walking ``GET /wc/v3/orders`` page by page without losing orders that change meanwhile.

A plain walk over ``page=1..X-WP-TotalPages`` skips orders: the list is an SQL ``LIMIT/OFFSET``
over a live table, so when an order on an earlier page leaves the result (it was paid, so its
status no longer matches) every later order moves up one place and the first order of the next
page is never seen. While a shop is busy that happens on most passes.

So the walk is keyset-based: orders come sorted by ``modified`` ascending (WooCommerce adds
``ID`` as tie-breaker), and after each page ``modified_after`` moves up to the last order's
modification time minus one second (WordPress compares ``>`` at one-second precision), asking
again for page 1. An order that changes meanwhile gets a later modification time and so is
met again at the end, in its new state; one that leaves the result takes no place from the
others. Orders met twice are yielded once unless they changed. ``X-WP-TotalPages`` says when
the last page has been read; when more than a page of orders share one second, the walk goes
on to page 2, 3… of that same window.

Two WordPress quirks are handled: with posts storage WooCommerce sorts by the *local* column
while ``dates_are_gmt=true`` filters on the GMT one, so in the hour the clocks go back an
order can sort after one with a later GMT time; until an hour past the change the cursor then
keeps a margin as large as the UTC offsets seen differ. And a server that ignores
``orderby=modified`` or ``modified_after`` (an old WooCommerce, or a plugin) is detected from
the answers, after which the walk falls back to plain pages with the filter applied here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from requests.structures import CaseInsensitiveDict

from ..errors import BadPayloadError, ConnectorError
from ..http import PageNumberPaginator, PageRequest, paginate
from ..models import parse_time

__all__ = ["Fetch", "gmt_param", "naive_utc", "walk_orders"]

log = logging.getLogger("cartrescue.connectors.woocommerce")

ONE_SECOND = timedelta(seconds=1)

Fetch = Callable[[Mapping[str, Any]], tuple[Any, CaseInsensitiveDict[str]]]
"""Sends ``GET wc/v3/orders`` with the given query and returns (JSON, headers)."""


def naive_utc(value: datetime) -> datetime:
    """``value`` in UTC without tzinfo and microseconds (MySQL keeps whole seconds)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None, microsecond=0)


def gmt_param(value: datetime) -> str:
    """A time as WooCommerce wants it with ``dates_are_gmt=true``: UTC, whole seconds and no
    offset. (WordPress converts a value *with* an offset to the site's time zone before it
    compares it with the GMT column, so ``…Z`` would be off by the site's UTC offset.)"""
    return naive_utc(value).isoformat()


def _modified(order: object) -> tuple[datetime | None, datetime | None]:
    """(GMT, local wall time) of the order's last change, as naive datetimes."""
    if not isinstance(order, Mapping):
        return None, None
    values: list[datetime | None] = []
    for name in ("date_modified_gmt", "date_modified"):
        try:
            values.append(parse_time(order.get(name), assume_utc=True).replace(tzinfo=None))
        except BadPayloadError:  # reported when the order is mapped
            values.append(None)
    return values[0], values[1]


class _Walk(PageNumberPaginator):
    """Numbered pages, restarting at page 1 above a moving ``modified_after`` (the keyset)."""

    def __init__(self, query: Mapping[str, Any], lower: datetime, per_page: int):
        super().__init__(per_page)
        self.query = dict(query, per_page=per_page, orderby="modified", order="asc")
        self.lower = naive_utc(lower) - ONE_SECOND
        self.since = self.lower
        self.keyset = True
        self.max_offset = timedelta(0)
        self.first_seen: dict[timedelta, datetime] = {}
        self.seen: dict[object, tuple[object, datetime | None]] = {}

    def update_state(self, data: Any, headers: Mapping[str, str]) -> None:
        super().update_state(data, headers)
        if self.has_next_page and self.keyset:
            cursor = self._cursor(data)
            if cursor is not None and cursor > self.lower:
                self.lower = cursor
                self.seen = {
                    k: v for k, v in self.seen.items() if v[1] is not None and v[1] > cursor
                }
                self.page = 1

    def update_request(self, request: PageRequest) -> PageRequest:
        return PageRequest(
            request.path, dict(self.query, modified_after=self.lower.isoformat(), page=self.page)
        )

    def _cursor(self, orders: list[Any]) -> datetime | None:
        """Where the next request starts, or None to read the next page of this window."""
        previous_local = None
        last_gmt = None
        offset = timedelta(0)
        for order in orders:
            gmt, local = _modified(order)
            if gmt is None or local is None:
                return None
            if gmt <= self.lower or (previous_local is not None and local < previous_local):
                log.warning(
                    "the shop ignores orderby=modified or modified_after (an old WooCommerce?);"
                    " reading plain pages, which can miss orders that change meanwhile"
                )
                self.keyset = False
                return None
            previous_local, last_gmt, offset = local, gmt, local - gmt
            self.max_offset = max(self.max_offset, offset)
            self.first_seen[offset] = min(gmt, self.first_seen.get(offset, gmt))
        if last_gmt is None:
            return None
        # An unseen order sorting after the last one (local time) can have an earlier GMT
        # only if it has a larger UTC offset, i.e. it was changed before the clocks went
        # back: at the earliest (last local time - largest offset), and before the first
        # change seen with the last one's offset.
        earliest = last_gmt - (self.max_offset - offset)
        if earliest < self.first_seen[offset]:
            return earliest - ONE_SECOND
        return last_gmt - ONE_SECOND

    def fresh(self, order: Any) -> bool:
        """True the first time an order is met in this state."""
        if not isinstance(order, Mapping) or "id" not in order:
            return True
        gmt, _ = _modified(order)
        stamp = order.get("date_modified_gmt")
        if gmt is not None and gmt <= self.since:
            return False  # the server ignored modified_after
        key = order["id"] if isinstance(order["id"], int | str) else repr(order["id"])
        if self.seen.get(key, (None, None))[0] == stamp and stamp is not None:
            return False
        self.seen[key] = (stamp, gmt)
        return True


def walk_orders(
    fetch: Fetch, query: Mapping[str, Any], since: datetime, per_page: int
) -> Iterator[Any]:
    """Yield every order matching ``query`` and modified after ``since`` (a naive or aware
    UTC time), each once per state, fetching one page at a time."""
    walk = _Walk(query, since, per_page)

    def page(request: PageRequest) -> tuple[list[Any], Mapping[str, str]]:
        data, headers = fetch(request.params or {})
        if not isinstance(data, list):
            raise ConnectorError(
                f"woocommerce: GET wc/v3/orders answered with a {type(data).__name__}, "
                f"not a list of orders",
                connector="woocommerce",
            )
        return data, headers

    for orders in paginate(page, walk, PageRequest("wc/v3/orders")):
        for order in orders:
            if walk.fresh(order):
                yield order
