"""Talking to the Shopify Admin API within its limits: GraphQL cost pacing, REST call-limit
pacing, and Shopify's error shapes turned into cartrescue errors.

What this follows (shopify.dev "GraphQL Admin API rate limits", "REST Admin API rate limits",
"Make paginated requests to the REST Admin API"):

- Every GraphQL response carries ``extensions.cost`` with ``requestedQueryCost``,
  ``actualQueryCost`` and ``throttleStatus {maximumAvailable currentlyAvailable
  restoreRate}``. The bucket must hold the *requested* cost before a query runs; the
  difference to the actual cost is refunded. :class:`CostThrottle` keeps an estimate of the
  bucket and waits until the next query fits, so the bucket is never run dry.
- A throttled query is answered ``errors[].extensions.code == "THROTTLED"`` with HTTP 200
  (sources also report 429): both are retried after the time the bucket needs.
- A query whose requested cost is over the cap gets ``MAX_COST_EXCEEDED`` with the cost in
  ``extensions.cost``: :class:`QueryTooCostly` lets the caller shrink the page.
- REST answers carry ``X-Shopify-Shop-Api-Call-Limit: used/size`` (a bucket that leaks
  ``leak_rate`` calls a second, 2 on the standard plan) and 429 with ``Retry-After``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from tenacity import RetryCallState

from ..errors import ConnectorAuthError, ConnectorError
from ..http import HeaderLinkPaginator, HttpClient, PageRequest, paginate, redact, retrying

__all__ = [
    "CallLimitThrottle",
    "CostThrottle",
    "GraphQLClient",
    "QueryCost",
    "QueryTooCostly",
    "rest_pages",
]

log = logging.getLogger("cartrescue.connectors.shopify")


class QueryTooCostly(ConnectorError):
    """Shopify refused a query whose requested cost is over its cap (``MAX_COST_EXCEEDED``)."""

    def __init__(self, message: str, *, cost: int | None, max_cost: int | None) -> None:
        super().__init__(message, connector="shopify")
        self.cost = cost
        self.max_cost = max_cost


@dataclass(frozen=True, slots=True)
class QueryCost:
    """The cost Shopify reported for one query."""

    requested: float | None
    actual: float | None


class CostThrottle:
    """An estimate of one app's GraphQL cost bucket on one shop.

    ``update`` takes each response's ``throttleStatus``; ``wait_for(cost)`` sleeps until the
    bucket, refilled at ``restoreRate`` since then, holds ``cost`` points. Until the first
    response nothing is known and nothing waits.
    """

    MARGIN = 1.0

    def __init__(
        self,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._monotonic = monotonic
        self._sleep = sleep
        self.maximum: float | None = None
        self.available = 0.0
        self.restore_rate = 0.0
        self._at = 0.0
        self.waited = 0.0

    def update(self, status: Mapping[str, Any]) -> None:
        try:
            maximum = float(status["maximumAvailable"])
            available = float(status["currentlyAvailable"])
            rate = float(status["restoreRate"])
        except (KeyError, TypeError, ValueError):
            return
        self.maximum, self.available, self.restore_rate = maximum, available, rate
        self._at = self._monotonic()

    def estimate(self) -> float | None:
        """Points available now, or None when no response has said so yet."""
        if self.maximum is None:
            return None
        refilled = self.available + self.restore_rate * (self._monotonic() - self._at)
        return min(self.maximum, refilled)

    def delay_for(self, cost: float) -> float:
        """Seconds until ``cost`` points are available (0 when they are, or unknown).

        One point of margin: Shopify rounds ``currentlyAvailable`` and refills in real time
        on its side, so an exact estimate would now and then fall a fraction short.
        """
        now = self.estimate()
        needed = cost + self.MARGIN
        if now is None or now >= needed:
            return 0.0
        if self.restore_rate <= 0:
            return 1.0
        return (needed - now) / self.restore_rate

    def wait_for(self, cost: float) -> None:
        delay = self.delay_for(cost)
        if delay > 0:
            self.waited += delay
            self._sleep(delay)


class CallLimitThrottle:
    """Paces REST calls by ``X-Shopify-Shop-Api-Call-Limit`` so the bucket never overflows."""

    def __init__(
        self,
        *,
        leak_rate: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.leak_rate = leak_rate
        self._monotonic = monotonic
        self._sleep = sleep
        self._used = 0.0
        self._size: float | None = None
        self._at = 0.0

    def update(self, header: str | None) -> None:
        if not header or "/" not in header:
            return
        used, _, size = header.partition("/")
        try:
            self._used, self._size = float(used), float(size)
        except ValueError:
            return
        self._at = self._monotonic()

    def wait(self) -> None:
        if self._size is None:
            return
        used = max(0.0, self._used - self.leak_rate * (self._monotonic() - self._at))
        over = used - (self._size - 2)
        if over > 0:
            self._sleep(over / self.leak_rate)


def _codes(errors: object) -> list[str]:
    if not isinstance(errors, list):
        return []
    return [
        str(e.get("extensions", {}).get("code", ""))
        for e in errors
        if isinstance(e, dict) and isinstance(e.get("extensions"), dict)
    ]


def _messages(errors: object, secrets: tuple[str, ...]) -> str:
    if isinstance(errors, list):
        text = "; ".join(
            str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors
        )
    else:
        text = str(errors)
    return redact(text, secrets=secrets)


class _Throttled(Exception):
    """Shopify throttled a query; ``wait`` is what the bucket (or ``Retry-After``) needs."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"throttled, waiting {wait:.2f}s")
        self.wait = wait


class GraphQLClient:
    """POSTs GraphQL documents to one shop's ``graphql.json`` through an
    :class:`~cartrescue.http.HttpClient`, paced by a :class:`CostThrottle`.

    Queries are retried on 5xx and connection errors (reading twice is harmless); mutations
    are sent once. ``THROTTLED`` answers are retried up to ``throttle_attempts`` times after
    the wait the bucket needs.
    """

    def __init__(
        self,
        http: HttpClient,
        *,
        shop: str,
        throttle: CostThrottle,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        throttle_attempts: int = 20,
    ) -> None:
        self.http = http
        self.shop = shop
        self.headers = dict(headers or {})
        self.throttle = throttle
        self.sleep = sleep
        self.throttle_attempts = throttle_attempts
        self.last_cost = QueryCost(None, None)
        self.throttled = 0

    def execute(
        self,
        document: str,
        variables: Mapping[str, Any] | None = None,
        *,
        mutation: bool = False,
        expected_cost: float | None = None,
    ) -> dict[str, Any]:
        """Run ``document`` and return its ``data``; raise on any error in the answer."""
        payload = {"query": document, "variables": dict(variables or {})}
        # A throttled query did not run, so even a mutation is retried; the wait comes from
        # the bucket, which Shopify refills at its own pace (no cap).
        attempts = retrying(
            self.throttle_attempts,
            retry_on=_Throttled,
            max_wait=math.inf,
            sleep=self.sleep,
            before_sleep=self._log_throttle,
        )
        try:
            for attempt in attempts:
                with attempt:
                    return self._once(payload, mutation, expected_cost)
        except _Throttled:
            pass
        raise ConnectorError(
            f"shopify: {self.shop} kept throttling after {self.throttle_attempts} attempts",
            connector="shopify",
            status=429,
        )

    def _once(
        self, payload: Mapping[str, Any], mutation: bool, expected_cost: float | None
    ) -> dict[str, Any]:
        if expected_cost is not None:
            self.throttle.wait_for(expected_cost)
        response = self._post(payload, mutation)
        body = self._body(response)
        cost = _obj(_obj(body.get("extensions")).get("cost"))
        self.throttle.update(_obj(cost.get("throttleStatus")))
        self.last_cost = QueryCost(
            _float_or_none(cost.get("requestedQueryCost")),
            _float_or_none(cost.get("actualQueryCost")),
        )
        errors = body.get("errors")
        codes = _codes(errors)
        if response.status_code == 429 or "THROTTLED" in codes:
            self.throttled += 1
            raise _Throttled(self._throttle_wait(response, cost))
        if errors:
            self._raise(errors, codes)
        data = body.get("data")
        if not isinstance(data, dict):
            raise ConnectorError(f"shopify: {self.shop} answered without data", connector="shopify")
        return data

    def _log_throttle(self, state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action else 0.0
        log.info("shopify %s: throttled, waiting %.2fs", self.shop, wait)

    def _post(self, payload: Mapping[str, Any], mutation: bool) -> requests.Response:
        try:
            return self.http.request(
                "POST",
                "graphql.json",
                json=payload,
                headers=self.headers,
                retry=not mutation,
                accept={429},
            )
        except ConnectorAuthError:
            raise
        except ConnectorError as err:
            if err.status == 404:
                raise ConnectorError(
                    f"shopify: {self.shop} has no Admin API at this address (HTTP 404): check "
                    "connector.shop (the *.myshopify.com domain) and connector.api_version",
                    connector="shopify",
                    status=404,
                ) from err
            raise

    def _body(self, response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            if response.status_code == 429:
                return {}
            raise ConnectorError(
                f"shopify: {self.shop} answered with something that is not JSON: "
                f"{redact(response.text, 120, self.http.secrets)}",
                connector="shopify",
                status=response.status_code,
            ) from None
        if not isinstance(body, dict):
            raise ConnectorError(
                f"shopify: {self.shop} answered with unexpected JSON", connector="shopify"
            )
        return body

    def _throttle_wait(self, response: requests.Response, cost: Mapping[str, Any]) -> float:
        requested = _float_or_none(cost.get("requestedQueryCost"))
        if requested is not None:
            delay = self.throttle.delay_for(requested)
            if delay > 0:
                return delay
        retry_after = self.http.wait_after(response)
        return retry_after if retry_after is not None else 1.0

    def _raise(self, errors: object, codes: list[str]) -> None:
        message = _messages(errors, self.http.secrets)
        if "MAX_COST_EXCEEDED" in codes:
            extensions: Mapping[str, Any] = {}
            for error in errors if isinstance(errors, list) else ():
                found = _obj(_obj(error).get("extensions"))
                if found.get("code") == "MAX_COST_EXCEEDED":
                    extensions = found
            raise QueryTooCostly(
                f"shopify: {self.shop}: {message}",
                cost=_int(extensions.get("cost")),
                max_cost=_int(extensions.get("maxCost")),
            )
        if "ACCESS_DENIED" in codes:
            raise ConnectorAuthError(
                f"shopify: {self.shop} refused access: {message} (grant the scope it names to "
                "the app and approve it on the shop)",
                connector="shopify",
                status=403,
                snippet=message,
            )
        raise ConnectorError(
            f"shopify: {self.shop} returned errors: {message}", connector="shopify", snippet=message
        )


def rest_pages(
    http: HttpClient,
    path: str,
    params: Mapping[str, Any],
    *,
    key: str,
    throttle: CallLimitThrottle,
    headers: Mapping[str, str] | None = None,
) -> Iterator[list[Any]]:
    """Yield the ``key`` list of each page of a REST listing, following ``Link: rel="next"``.

    Filters go on the first request only; Shopify refuses a ``page_info`` request with any
    parameter other than ``limit`` and ``fields``, so later requests send exactly the query
    of the link (against our own base URL, so a proxy ``base_url`` keeps working).
    """

    def fetch(request: PageRequest) -> tuple[list[Any], Mapping[str, str]]:
        throttle.wait()
        response = http.request(
            "GET", request.path, params=request.params, headers=dict(headers or {})
        )
        throttle.update(response.headers.get("X-Shopify-Shop-Api-Call-Limit"))
        body = http.decode(response, path)
        items = body.get(key) if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ConnectorError(f"shopify: {path} answered without '{key}'", connector="shopify")
        return items, response.headers

    yield from paginate(fetch, HeaderLinkPaginator(), PageRequest(path, params))


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _float_or_none(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: object) -> int | None:
    number = _float_or_none(value)
    return None if number is None else int(number)
