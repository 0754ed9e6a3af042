"""The one HTTP layer of connectors and channels: sessions, timeouts, the User-Agent, redaction
of response snippets, the classification of answers, one retry engine (tenacity) whose wait
honours ``Retry-After`` and platform throttles, and pagination strategies.
"""

from __future__ import annotations

import email.utils
import enum
import logging
import re
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from ._version import __version__
from .errors import ConnectorAuthError, ConnectorError
from .logmask import mask_text

__all__ = [
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "CursorPaginator",
    "HeaderLinkPaginator",
    "HttpClient",
    "PageNumberPaginator",
    "PageRequest",
    "Paginator",
    "RetryableHTTPError",
    "Verdict",
    "classify_status",
    "header_map",
    "never_sent",
    "new_session",
    "paginate",
    "parse_retry_after",
    "redact",
    "retry_wait",
    "retrying",
]
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)
"""(connect, read) seconds for every call unless configured otherwise."""
USER_AGENT = f"cartrescue/{__version__}"
_ENVIRONMENT_OPTIONS = ("proxies", "stream", "verify", "cert")
"""The options of :meth:`requests.Session.request` that the environment can supply."""

log = logging.getLogger("cartrescue.http")

_SECRETS = re.compile(
    r"(?i)(\"?(?:access_?token|token|password|secret|api_?key|consumer_(?:key|secret)|"
    r"authorization)\"?\s*[:=]\s*\"?)([^\"&\s,]+)"
)


def new_session(pool_size: int | None = None) -> requests.Session:
    """A session with cartrescue's User-Agent; one per connector or channel. ``pool_size``
    keeps that many connections per host for concurrent sends."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    if pool_size is not None:
        adapter = HTTPAdapter(pool_maxsize=max(10, pool_size))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
    return session


def redact(text: str, limit: int = 300, secrets: tuple[str, ...] = ()) -> str:
    """A short snippet of ``text`` safe to log: credentials, emails and phones masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _SECRETS.sub(lambda m: m.group(1) + "***", text)
    text = mask_text(text)
    return text if len(text) <= limit else text[:limit] + "…"


def parse_retry_after(
    value: str | None, *, now: Callable[[], datetime] | None = None
) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number (Shopify sends ``2.0``) or an
    HTTP date. None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = (now or (lambda: datetime.now(UTC)))()
    return max(0.0, (when - current).total_seconds())


class Verdict(enum.Enum):
    """What an answer means for the caller, as :meth:`HttpClient.classify` decides it."""

    OK = "ok"
    """Success: hand the response to the caller."""
    RETRY = "retry"
    """Not processed, try again after a wait (429; a connection that was never made)."""
    UNKNOWN = "unknown"
    """May have been processed (5xx, no answer): retried only where repeating is safe."""
    AUTH = "auth"
    """The credentials were refused (401, 403)."""
    ERROR = "error"
    """Refused for good (any other 4xx)."""


def classify_status(status: int, *, retry: Collection[int] = (429,)) -> Verdict:
    """The default classification of an HTTP status; ``retry`` lists the statuses that say
    the request was not processed."""
    if status < 400:
        return Verdict.OK
    if status in retry:
        return Verdict.RETRY
    if status >= 500:
        return Verdict.UNKNOWN
    if status in (401, 403):
        return Verdict.AUTH
    return Verdict.ERROR


def never_sent(err: requests.RequestException) -> bool:
    """Whether the connection failed before any byte of the request could reach the server."""
    if isinstance(err, requests.ConnectTimeout | requests.exceptions.ProxyError):
        return True
    seen: set[int] = set()
    stack: list[object] = [err]
    while stack:
        item = stack.pop()
        if id(item) in seen or not isinstance(item, BaseException):
            continue
        seen.add(id(item))
        if isinstance(
            item, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
        ):
            return True
        stack.extend(item.args)
        stack.extend(
            x for x in (item.__cause__, item.__context__, getattr(item, "reason", None)) if x
        )
    return False


def retry_wait(state: RetryCallState, max_wait: float) -> float:
    """The one wait before another try: what the failure asked for (its ``wait``: from
    ``Retry-After`` or a platform's throttle), else exponential backoff with jitter; never
    more than ``max_wait`` seconds."""
    error = state.outcome.exception() if state.outcome else None
    asked = getattr(error, "wait", None)
    if isinstance(asked, int | float):
        return min(max_wait, float(asked))
    return float(wait_exponential_jitter(multiplier=0.5, max=max_wait)(state))


def retrying(
    attempts: int,
    *,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    max_wait: float,
    sleep: Callable[[float], None],
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> Retrying:
    """The retry engine every HTTP call goes through: ``attempts`` tries of what raises
    ``retry_on``, waiting :func:`retry_wait` between them; the last error is re-raised."""
    return Retrying(
        stop=stop_after_attempt(attempts),
        wait=lambda state: retry_wait(state, max_wait),
        retry=retry_if_exception_type(retry_on),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


class RetryableHTTPError(Exception):
    """Internal: a response or failure worth another try, with the wait the server asked."""

    def __init__(self, message: str, *, status: int | None, wait: float | None) -> None:
        super().__init__(message)
        self.status = status
        self.wait = wait


class HttpClient:
    """Calls one platform's API through one ``requests.Session``.

    Every call has a timeout. :meth:`classify` decides what an answer means (a
    :class:`Verdict`); ``request`` retries what is worth retrying (429, 5xx and connection
    errors by default) with the engine of :func:`retrying`, honouring ``Retry-After``
    (:meth:`wait_after`); only for methods in ``retry_methods`` (GET by default), since
    retrying a write may repeat it. 401 and 403 raise
    :class:`~cartrescue.errors.ConnectorAuthError` with ``auth_hint``; other errors raise
    :class:`~cartrescue.errors.ConnectorError`, with a redacted snippet and never a
    credential. ``retry_statuses`` are the statuses that say "not processed, try again"
    (429; channels add 408). ``sleep`` is injectable so tests need not wait. Channels use
    the same client for their transport (:class:`~cartrescue.channels.base.HttpChannel`).
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        session: requests.Session | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        attempts: int = 5,
        max_wait: float = 60.0,
        retry_methods: frozenset[str] = frozenset({"GET", "HEAD"}),
        auth_hint: str = "check the credentials",
        secrets: tuple[str, ...] = (),
        sleep: Callable[[float], None] = time.sleep,
        pool_size: int | None = None,
        retry_statuses: Collection[int] = (429,),
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.own_session = session is None
        self.session = session or new_session(pool_size)
        self.timeout = timeout
        self.attempts = attempts
        self.max_wait = max_wait
        self.retry_methods = retry_methods
        self.auth_hint = auth_hint
        self.secrets = secrets
        self.sleep = sleep
        self.retry_statuses = frozenset(retry_statuses)
        self._settings: dict[tuple[str, str], dict[str, Any]] = {}

    def url(self, path: str) -> str:
        return (
            path
            if path.startswith(("http://", "https://"))
            else f"{self.base_url}/{path.lstrip('/')}"
        )

    # -- hooks ----------------------------------------------------------------------------
    def classify(self, response: requests.Response) -> Verdict:
        """What ``response`` means; override for APIs that say more than their status."""
        return classify_status(response.status_code, retry=self.retry_statuses)

    def wait_after(self, response: requests.Response) -> float | None:
        """Seconds the server asks to wait before another try (``Retry-After``)."""
        return parse_retry_after(response.headers.get("Retry-After"))

    # -- the engine -------------------------------------------------------------------------
    def retrying(
        self,
        attempts: int,
        *,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = RetryableHTTPError,
        before_sleep: Callable[[RetryCallState], None] | None = None,
    ) -> Retrying:
        """:func:`retrying` with this client's ``max_wait`` and ``sleep``."""
        return retrying(
            attempts,
            retry_on=retry_on,
            max_wait=self.max_wait,
            sleep=self.sleep,
            before_sleep=before_sleep,
        )

    def transmit(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request through the session with the client's timeout; no retry, no checks."""
        kwargs.setdefault("timeout", self.timeout)
        return self.session.request(method, self.url(path), **kwargs)

    def send_prepared(self, prepared: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Send a request already prepared by the session (see
        :meth:`requests.Session.prepare_request`) with the client's timeout; no retry, no
        checks. ``kwargs`` are the other options of :meth:`requests.Session.request`.

        ``Session.request`` prepares the request again and reads the environment's proxies
        and CA bundle on every call; under many send threads that costs as much CPU as the
        call itself. Here they are read once per origin, until :meth:`close`."""
        kwargs.setdefault("timeout", self.timeout)
        url = prepared.url or ""
        explicit = {k: kwargs.pop(k) for k in _ENVIRONMENT_OPTIONS if k in kwargs}
        settings: dict[str, Any]
        if explicit:
            settings = dict(
                self.session.merge_environment_settings(
                    url,
                    explicit.get("proxies") or {},
                    explicit.get("stream"),
                    explicit.get("verify"),
                    explicit.get("cert"),
                )
            )
        else:
            origin = urllib.parse.urlsplit(url)[:2]
            cached = self._settings.get(origin)
            if cached is None:
                cached = self._settings[origin] = dict(
                    self.session.merge_environment_settings(url, {}, None, None, None)
                )
            settings = {**cached, "proxies": dict(cached["proxies"])}
        return self.session.send(prepared, **settings, **kwargs)

    def close(self) -> None:
        """Release pooled connections (a session passed in is left to its owner) and forget
        the environment settings read by :meth:`send_prepared`."""
        self._settings.clear()
        if self.own_session:
            self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        retry: bool | None = None,
        accept: Collection[int] = (),
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request and return the successful (2xx/3xx) response.

        ``retry`` overrides ``retry_methods`` for this call (a GraphQL query is a POST that is
        safe to repeat; a mutation is not). A status in ``accept`` is returned as it is rather
        than raised or retried, for APIs that explain it in the body (Shopify's GraphQL 429
        carries the cost-bucket state the caller needs to wait the right time).
        """
        method = method.upper()
        if retry is None:
            retry = method in self.retry_methods
        attempts = self.attempts if retry else 1
        try:
            for attempt in self.retrying(attempts):
                with attempt:
                    return self._once(method, path, accept, **kwargs)
        except RetryableHTTPError as err:
            raise ConnectorError(
                f"{self.name}: {method} {self._safe(path)} failed after {attempts} "
                f"attempt(s): {err}",
                connector=self.name,
                status=err.status,
            ) from err
        raise AssertionError("unreachable")  # pragma: no cover

    def _safe(self, path: str) -> str:
        return redact(path.split("?")[0], secrets=self.secrets)

    def _once(
        self, method: str, path: str, accept: Collection[int] = (), **kwargs: Any
    ) -> requests.Response:
        try:
            response = self.transmit(method, path, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as err:
            # Not chained: requests' message holds the full URL, and with query-string
            # auth that URL holds a credential. The redacted text keeps the reason.
            detail = redact(str(err).replace(self.url(path), self._safe(path)), 200, self.secrets)
            raise RetryableHTTPError(
                f"{type(err).__name__}: {detail}", status=None, wait=None
            ) from None
        status = response.status_code
        if status in accept:
            return response
        verdict = self.classify(response)
        if verdict is Verdict.OK:
            return response
        if verdict in (Verdict.RETRY, Verdict.UNKNOWN):
            raise RetryableHTTPError(
                f"HTTP {status}: {redact(response.text, secrets=self.secrets)}",
                status=status,
                wait=self.wait_after(response),
            )
        if verdict is Verdict.AUTH:
            raise ConnectorAuthError(
                f"{self.name}: {method} {self._safe(path)} was refused (HTTP {status}): "
                f"{self.auth_hint}",
                connector=self.name,
                status=status,
                snippet=redact(response.text, secrets=self.secrets),
            )
        raise ConnectorError(
            f"{self.name}: {method} {self._safe(path)} failed (HTTP {status}): "
            f"{redact(response.text, secrets=self.secrets)}",
            connector=self.name,
            status=status,
            snippet=redact(response.text, secrets=self.secrets),
        )

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """``request`` and decode JSON, raising ``ConnectorError`` on a body that is not."""
        response = self.request(method, path, **kwargs)
        return self.decode(response, f"{method} {self._safe(path)}")

    def decode(self, response: requests.Response, what: str) -> Any:
        """The JSON body of ``response``, or ``ConnectorError`` naming ``what`` was asked."""
        try:
            return response.json()
        except ValueError as err:
            raise ConnectorError(
                f"{self.name}: {what} answered with something that is not "
                f"JSON: {redact(response.text, 120, self.secrets)}",
                connector=self.name,
                status=response.status_code,
            ) from err


# -- pagination ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Where the next page is asked for: a path (relative to the client's base URL) and the
    query parameters or GraphQL variables to send with it (``None``: the path says it all)."""

    path: str
    params: Mapping[str, Any] | None = None


class Paginator(ABC):
    """A pagination style, as a small strategy: after each page, :meth:`update_state` reads
    where the next one is from the answer and :meth:`update_request` turns the request for
    this page into the request for the next. ``has_next_page`` says when to stop."""

    def __init__(self) -> None:
        self.has_next_page = True

    def init_request(self, request: PageRequest) -> PageRequest:
        """The request for the first page."""
        return request

    @abstractmethod
    def update_state(self, data: Any, headers: Mapping[str, str]) -> None:
        """Read the answer for one page: its decoded ``data`` and its ``headers``."""

    @abstractmethod
    def update_request(self, request: PageRequest) -> PageRequest:
        """The request for the next page."""


class CursorPaginator(Paginator):
    """GraphQL connections: ``pageInfo { hasNextPage endCursor }``; the cursor goes into the
    ``after`` variable. ``data`` is the connection object."""

    def __init__(
        self, *, variable: str = "after", what: str = "the server", connector: str | None = None
    ) -> None:
        super().__init__()
        self.variable = variable
        self.what = what
        self.connector = connector
        self.cursor: str | None = None

    def update_state(self, data: Any, headers: Mapping[str, str]) -> None:
        page = data.get("pageInfo") if isinstance(data, Mapping) else None
        if not isinstance(page, Mapping) or not page.get("hasNextPage"):
            self.has_next_page = False
            return
        cursor = page.get("endCursor")
        if not isinstance(cursor, str):
            raise ConnectorError(
                f"{self.what} said there is a next page but gave no cursor",
                connector=self.connector,
            )
        self.cursor = cursor

    def update_request(self, request: PageRequest) -> PageRequest:
        return replace(request, params={**(request.params or {}), self.variable: self.cursor})


class HeaderLinkPaginator(Paginator):
    """``Link: <…>; rel="next"`` (RFC 8288). The next request sends exactly the query of the
    link, against the first request's path (so a proxy ``base_url`` keeps working): Shopify
    refuses a ``page_info`` request that repeats the first request's filters."""

    def __init__(self) -> None:
        super().__init__()
        self.query: str | None = None

    def update_state(self, data: Any, headers: Mapping[str, str]) -> None:
        self.query = None
        for link in requests.utils.parse_header_links(headers.get("Link") or ""):
            if "next" in link.get("rel", "").split() and link.get("url"):
                self.query = urllib.parse.urlsplit(link["url"]).query
        self.has_next_page = self.query is not None

    def update_request(self, request: PageRequest) -> PageRequest:
        path = request.path.split("?")[0]
        return PageRequest(f"{path}?{self.query}", None)


class PageNumberPaginator(Paginator):
    """Numbered pages (WordPress: ``page`` and ``X-WP-TotalPages``). Without a readable total
    a page shorter than ``per_page`` is the last; an empty page always is."""

    def __init__(
        self,
        per_page: int,
        *,
        page: int = 1,
        param: str = "page",
        total_header: str = "X-WP-TotalPages",
    ) -> None:
        super().__init__()
        self.per_page = per_page
        self.page = page
        self.param = param
        self.total_header = total_header

    def init_request(self, request: PageRequest) -> PageRequest:
        return self.update_request(request)

    def update_state(self, data: Any, headers: Mapping[str, str]) -> None:
        try:
            total: int | None = int(headers.get(self.total_header, ""))
        except ValueError:
            total = None
        size = len(data) if isinstance(data, list) else 0
        last = self.page >= total if total is not None else size < self.per_page
        self.has_next_page = bool(size) and not last
        if self.has_next_page:
            self.page += 1

    def update_request(self, request: PageRequest) -> PageRequest:
        return replace(request, params={**(request.params or {}), self.param: self.page})


def paginate(
    fetch: Callable[[PageRequest], tuple[Any, Mapping[str, str]]],
    paginator: Paginator,
    first: PageRequest,
) -> Iterator[Any]:
    """Yield the decoded data of each page: ``fetch`` sends one request and returns
    (data, headers); ``paginator`` says where the next page is."""
    request = paginator.init_request(first)
    while True:
        data, headers = fetch(request)
        yield data
        paginator.update_state(data, headers)
        if not paginator.has_next_page:
            return
        request = paginator.update_request(request)


def header_map(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names lower-cased, for lookups that must ignore case."""
    return {k.lower(): v for k, v in headers.items()}
