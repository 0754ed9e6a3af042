"""HTTP plumbing shared by connectors and channels: sessions, timeouts, ``Retry-After``,
redaction of response snippets, and a retrying client for idempotent calls."""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import requests
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
    "HttpClient",
    "RetryableHTTPError",
    "header_map",
    "new_session",
    "parse_retry_after",
    "redact",
]

DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)
"""(connect, read) seconds for every call unless configured otherwise."""
USER_AGENT = f"cartrescue/{__version__}"

log = logging.getLogger("cartrescue.http")

_SECRETS = re.compile(
    r"(?i)(\"?(?:access_?token|token|password|secret|api_?key|consumer_(?:key|secret)|"
    r"authorization)\"?\s*[:=]\s*\"?)([^\"&\s,]+)"
)


def new_session() -> requests.Session:
    """A session with cartrescue's User-Agent; one per connector or channel."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
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


class RetryableHTTPError(Exception):
    """Internal: a response or failure worth another try, with the wait the server asked."""

    def __init__(self, message: str, *, status: int | None, wait: float | None) -> None:
        super().__init__(message)
        self.status = status
        self.wait = wait


class HttpClient:
    """Calls one platform's API through one ``requests.Session``.

    Every call has a timeout. ``request`` retries 429, 5xx and connection errors with
    exponential backoff (tenacity), honouring ``Retry-After``; only for methods in
    ``retry_methods`` (GET by default), since retrying a write may repeat it. 401 and 403
    raise :class:`~cartrescue.errors.ConnectorAuthError` with ``auth_hint``; other errors
    raise :class:`~cartrescue.errors.ConnectorError`, with a redacted snippet and never a
    credential. ``sleep`` is injectable so tests need not wait.
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
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.session = session or new_session()
        self.timeout = timeout
        self.attempts = attempts
        self.max_wait = max_wait
        self.retry_methods = retry_methods
        self.auth_hint = auth_hint
        self.secrets = secrets
        self.sleep = sleep

    def url(self, path: str) -> str:
        return (
            path
            if path.startswith(("http://", "https://"))
            else f"{self.base_url}/{path.lstrip('/')}"
        )

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(multiplier=0.5, max=self.max_wait)(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableHTTPError) and error.wait is not None:
            return min(self.max_wait, error.wait)
        return backoff

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
        retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=self._wait,
            retry=retry_if_exception_type(RetryableHTTPError),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
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
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.session.request(method, self.url(path), **kwargs)
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
        if status == 429 or status >= 500:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            raise RetryableHTTPError(
                f"HTTP {status}: {redact(response.text, secrets=self.secrets)}",
                status=status,
                wait=wait,
            )
        if status in (401, 403):
            raise ConnectorAuthError(
                f"{self.name}: {method} {self._safe(path)} was refused (HTTP {status}): "
                f"{self.auth_hint}",
                connector=self.name,
                status=status,
                snippet=redact(response.text, secrets=self.secrets),
            )
        if status >= 400:
            raise ConnectorError(
                f"{self.name}: {method} {self._safe(path)} failed (HTTP {status}): "
                f"{redact(response.text, secrets=self.secrets)}",
                connector=self.name,
                status=status,
                snippet=redact(response.text, secrets=self.secrets),
            )
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """``request`` and decode JSON, raising ``ConnectorError`` on a body that is not."""
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as err:
            raise ConnectorError(
                f"{self.name}: {method} {self._safe(path)} answered with something that is not "
                f"JSON: {redact(response.text, 120, self.secrets)}",
                connector=self.name,
                status=response.status_code,
            ) from err


def header_map(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names lower-cased, for lookups that must ignore case."""
    return {k.lower(): v for k, v in headers.items()}
