"""The Channel protocol, the optional batch capability, and :class:`HttpChannel`, the base class
that owns everything an HTTP provider needs besides its request and response shapes.

A channel from another package registers under the entry-point group ``cartrescue.channels``
and is configured as ``[channels.sms] type = "mychannel"``; the other keys of the table are
passed to its constructor (``*_env`` keys read from the environment).
"""

from __future__ import annotations

import inspect
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypedDict, runtime_checkable

import requests
from tenacity import RetryCallState

from ..doctor import Problem
from ..errors import (
    ConfigError,
    PermanentSendError,
    RetryableSendError,
    SendError,
    SendOutcomeUnknown,
    TransientSendError,
)
from ..http import HttpClient, Verdict, never_sent, redact
from ..logmask import mask_contact, mask_text
from ..models import CHANNEL_KINDS, ChannelKind, Message, Receipt
from ..sms import is_gsm

__all__ = [
    "KINDS",
    "Acquirer",
    "BatchChannel",
    "Channel",
    "HttpChannel",
    "HttpOptions",
    "HttpRequest",
    "RateLimiter",
    "SendResult",
    "is_gsm7",
]

KINDS: tuple[ChannelKind, ...] = CHANNEL_KINDS
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")

SendResult = Receipt | SendError
"""What :meth:`BatchChannel.send_batch` returns for one message."""

log = logging.getLogger("cartrescue.channels")

_REQUEST_FIELDS = frozenset({"params", "data", "headers", "cookies", "files", "auth", "json"})
"""The options of :meth:`requests.Session.request` that shape the request itself."""


@runtime_checkable
class Channel(Protocol):
    """Delivers messages of one kind.

    ``kind`` is ``"sms"``, ``"whatsapp"`` or ``"email"``: it decides which rendered content
    the channel receives and which consent the engine checks.

    ``send(message)`` delivers one message and returns a :class:`~cartrescue.models.Receipt`.
    It raises :class:`~cartrescue.errors.PermanentSendError` when retrying cannot help
    (invalid number, unsubscribed; set ``opted_out=True`` when the provider says the
    recipient opted out), :class:`~cartrescue.errors.TransientSendError` when the provider
    certainly did not accept it and a later try may (after its own safe retries), and
    :class:`~cartrescue.errors.SendOutcomeUnknown` when the request may have been accepted
    (a timeout after sending): that message is never sent again. It never returns a failure
    silently.

    ``concurrency`` (optional, an ``int``): how many messages the engine may send through
    this channel at once, each from its own thread (``send`` must then be thread-safe);
    without it the engine sends one at a time.

    ``close()`` is called at the end of a pass; release connections there. A channel must
    still send after ``close()`` (a long-lived ``Recovery`` runs many passes).
    """

    kind: ChannelKind

    def send(self, message: Message) -> Receipt: ...

    def close(self) -> None: ...


@runtime_checkable
class BatchChannel(Channel, Protocol):
    """Capability: deliver many messages concurrently, within the channel's rate limit.

    ``send_batch(messages)`` returns one result per message, in the same order: the
    :class:`~cartrescue.models.Receipt`, or the :class:`~cartrescue.errors.SendError` that
    :meth:`Channel.send` would have raised for it. It does not raise for one message; any
    other exception for a message is reported as ``SendOutcomeUnknown`` (it may have been
    sent). The engine does not batch: it calls ``send`` from up to ``concurrency`` threads.
    """

    def send_batch(self, messages: Sequence[Message]) -> list[SendResult]: ...


def is_gsm7(text: str) -> bool:
    """Whether ``text`` can be sent in the GSM 03.38 alphabet (basic set and extension table);
    anything else makes an SMS UCS-2. The same test :mod:`cartrescue.sms` measures with."""
    return is_gsm(text)


class Acquirer(Protocol):
    """What :attr:`HttpChannel.rate_limiter` needs: ``acquire()`` returns when the next call
    may go."""

    def acquire(self) -> None: ...


class RateLimiter:
    """Spaces calls at least ``1 / rate`` seconds apart, across threads.

    ``rate`` is in calls per second; ``None`` means no limit. ``clock`` and ``sleep`` are
    injectable so tests need not wait.
    """

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self._interval = 0.0 if not rate else 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One provider call: ``path`` is joined to the channel's base URL (or is absolute);
    ``options`` go to :meth:`requests.Session.request` (``data``, ``json``, ``headers``,
    ``auth``)."""

    path: str
    method: str = "POST"
    options: dict[str, Any] = field(default_factory=dict)


class HttpOptions(TypedDict, total=False):
    """Settings every :class:`HttpChannel` takes, as keyword arguments or config keys.

    ``rate_limit``: messages per second (``0`` for no limit). ``concurrency``: requests in
    flight at once in :meth:`HttpChannel.send_batch`. ``timeout``: seconds to wait for an
    answer, or ``[connect, read]``. ``attempts``: tries for what is safe to retry.
    ``base_url``: another endpoint (proxy, region, tests). ``session``, ``sleep`` and
    ``clock`` are for Python callers and tests.
    """

    session: requests.Session | None
    base_url: str | None
    timeout: float | Sequence[float]
    rate_limit: float | None
    concurrency: int
    attempts: int
    max_wait: float
    sleep: Callable[[float], None]
    clock: Callable[[], float]


def _setting_number(value: object, key: str, *, minimum: float, integer: bool = False) -> float:
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"expected {kind}, got {value!r}", key=key)
    if integer and not isinstance(value, int):
        raise ConfigError(f"expected {kind}, got {value!r}", key=key)
    if value < minimum:
        raise ConfigError(f"must be at least {minimum:g}, got {value!r}", key=key)
    return float(value)


def _timeout(value: float | Sequence[float]) -> tuple[float, float]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ConfigError("expected seconds, or [connect, read] seconds", key="timeout")
        connect, read = (_setting_number(v, "timeout", minimum=0.001) for v in value)
        return connect, read
    read = _setting_number(value, "timeout", minimum=0.001)
    return min(5.0, read), read


def require(value: object, key: str) -> str:
    """A non-empty string setting, or a ConfigError naming ``key``."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("expected a non-empty string", key=key)
    return value.strip()


class HttpChannel:
    """Base class for channels that call an HTTP API; a provider fills in two hooks.

    Subclasses set ``provider`` (a short name for logs and errors), ``default_base_url`` and
    ``kinds`` (the channel kinds they can send), and implement:

    * :meth:`build_request` — the :class:`HttpRequest` for one message;
    * :meth:`parse_response` — the :class:`~cartrescue.models.Receipt` from a 2xx answer
      (raise a ``SendError`` when the provider reports a failure inside a 2xx, as Vonage
      does);

    and may override :meth:`validate` (refuse a message before any request) and
    :meth:`error_for` (map a non-2xx answer to a ``SendError``; :meth:`default_error`
    for the rest). Their ``__init__`` takes their own settings plus ``**options`` (see
    :class:`HttpOptions`) and passes ``secrets`` (values never to show in errors or logs).

    The session (injectable; one per channel), timeouts, the classification of statuses
    (``self.http.classify``) and the tenacity retry engine come from a
    :class:`~cartrescue.http.HttpClient` (``self.http``), the layer connectors use too. This
    class owns the rate limit (messages per second, shared by all threads), ``send_batch``
    with ``concurrency`` requests in flight, which failures are safe to retry, and the
    mapping of failures to the three outcomes:

    * HTTP 429 / 408, a refused connection or a connect timeout: the request never reached
      the provider (or it says it did not process it) → retried with backoff honouring
      ``Retry-After``, then :class:`~cartrescue.errors.TransientSendError`;
    * a read timeout, a connection dropped after sending, or a 5xx: the provider may have
      accepted the message → :class:`~cartrescue.errors.SendOutcomeUnknown`, never retried —
      unless ``idempotent`` is true (the provider deduplicates on ``message.key``), then they
      are retried like a 429;
    * 401/403: the credentials were refused; nothing was sent → ``TransientSendError``
      (the key is released for a later pass);
    * any other 4xx → :class:`~cartrescue.errors.PermanentSendError`;
    * a request that cannot be built or encoded (text no encoder accepts, a header that is
      not Latin-1): nothing left the machine, and the same message would fail the same way →
      ``PermanentSendError`` naming the provider and the cause, never an unknown outcome.

    Log lines and error messages mask the recipient and never contain ``secrets``.
    """

    provider: ClassVar[str] = "http"
    default_base_url: ClassVar[str | None] = None
    kinds: ClassVar[tuple[ChannelKind, ...]] = KINDS
    credentials_hint: ClassVar[str] = "check the credentials"
    idempotent: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Config checks keys against the constructor's signature; show it the real one, with
        # the shared options in place of **options, so a misspelt key is still named.
        super().__init_subclass__(**kwargs)
        own = [
            p
            for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        names = {p.name for p in own}
        shared = [
            p
            for p in list(inspect.signature(HttpChannel.__init__).parameters.values())[2:]
            if p.name in HttpOptions.__annotations__ and p.name not in names
        ]
        setattr(cls, "__signature__", inspect.Signature([*own, *shared]))  # noqa: B010

    def __init__(
        self,
        kind: ChannelKind,
        *,
        secrets: Sequence[str] = (),
        session: requests.Session | None = None,
        base_url: str | None = None,
        timeout: float | Sequence[float] = 30.0,
        rate_limit: float | None = 10.0,
        concurrency: int = 4,
        attempts: int = 4,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if kind not in self.kinds:
            raise ConfigError(
                f"{self.provider} sends {' or '.join(self.kinds)}, not {kind!r}; configure it "
                f"under {' or '.join(f'[channels.{k}]' for k in self.kinds)}",
                key="kind",
            )
        self.kind: ChannelKind = kind
        url = base_url or self.default_base_url
        if not url or not url.startswith(("https://", "http://")):
            raise ConfigError(
                f"expected an http(s) URL for {self.provider}, got {url!r}", key="base_url"
            )
        timeouts = _timeout(timeout)
        rate = None if rate_limit is None else _setting_number(rate_limit, "rate_limit", minimum=0)
        self.rate_limit = rate or None
        self.concurrency = int(_setting_number(concurrency, "concurrency", minimum=1, integer=True))
        self.attempts = int(_setting_number(attempts, "attempts", minimum=1, integer=True))
        self.max_wait = _setting_number(max_wait, "max_wait", minimum=0)
        self.secrets = tuple(s for s in secrets if s)
        self.http = HttpClient(
            self.provider,
            url,
            session=session,
            timeout=timeouts,
            attempts=self.attempts,
            max_wait=self.max_wait,
            auth_hint=self.credentials_hint,
            secrets=self.secrets,
            sleep=sleep,
            pool_size=self.concurrency,
            retry_statuses=(408, 429),
        )
        self.rate_limiter: Acquirer = RateLimiter(self.rate_limit, clock=clock, sleep=sleep)
        """Waits before each provider call; replace it (anything with ``acquire()``) to share
        the limit with other processes, as :mod:`cartrescue.celery` does through Redis."""

    @property
    def base_url(self) -> str:
        return self.http.base_url

    @property
    def session(self) -> requests.Session:
        return self.http.session

    @property
    def timeout(self) -> tuple[float, float]:
        timeout = self.http.timeout
        return timeout if isinstance(timeout, tuple) else (timeout, timeout)

    # -- hooks ----------------------------------------------------------------------------
    def validate(self, message: Message) -> None:
        """Refuse ``message`` before any request: raise ``PermanentSendError`` naming why."""

    def build_request(self, message: Message) -> HttpRequest:
        """The provider call that sends ``message``."""
        raise NotImplementedError

    def check_request(self) -> HttpRequest | None:
        """A read-only call that succeeds only with working credentials, for
        ``cartrescue doctor``; ``None`` when the provider has none."""
        return None

    def parse_response(self, message: Message, response: requests.Response) -> Receipt:
        """The receipt from a 2xx answer; raise a ``SendError`` if it reports a failure."""
        return Receipt(provider=self.provider)

    def error_for(self, message: Message, response: requests.Response) -> SendError:
        """The error a non-2xx answer means. Providers map their own codes and return
        :meth:`default_error` for the rest."""
        return self.default_error(message, response)

    def default_error(
        self,
        message: Message,
        response: requests.Response,
        *,
        code: str | int | None = None,
        detail: str | None = None,
    ) -> SendError:
        """The generic mapping of an HTTP status; ``code`` and ``detail`` are the provider's
        error code and text when the caller found them."""
        verdict = self.http.classify(response)
        if verdict is Verdict.RETRY:
            return self.error(RetryableSendError, "asked to slow down", response, code=code)
        if verdict is Verdict.AUTH:
            return self.refused_credentials(response, code=code, detail=detail)
        if verdict is Verdict.UNKNOWN:
            return self._maybe_sent(message, "failed on its side", response)
        return self.error(
            PermanentSendError, "refused the message", response, code=code, detail=detail
        )

    # -- helpers for providers ------------------------------------------------------------
    def require_phone(self, message: Message) -> None:
        """Refuse a recipient that is not an E.164 phone number."""
        if not _E164.match(message.to):
            raise self.error(PermanentSendError, "the recipient is not an E.164 phone number")

    def refused_credentials(
        self,
        response: requests.Response | None,
        *,
        code: str | int | None = None,
        detail: str | None = None,
    ) -> SendError:
        """The credentials were refused: nothing was sent, a later pass may send it."""
        return self.error(
            TransientSendError,
            f"refused the credentials ({self.credentials_hint}); nothing was sent",
            response,
            code=code,
            detail=detail,
        )

    def error(
        self,
        cls: type[SendError],
        what: str,
        response: requests.Response | None = None,
        *,
        code: str | int | None = None,
        detail: str | None = None,
        **flags: Any,
    ) -> SendError:
        """A ``cls`` error naming the provider, HTTP status and provider code, with a
        redacted snippet of the answer; ``flags`` are passed on (``opted_out``,
        ``skip_step``, ``wait``; a retryable error waits what ``Retry-After`` asks)."""
        status = None if response is None else response.status_code
        where = ", ".join(
            part
            for part in (
                f"HTTP {status}" if status is not None else "",
                f"code {code}" if code is not None else "",
            )
            if part
        )
        text = f"{self.provider}: {what}"
        if detail:
            text += f": {redact(detail, 200, self.secrets)}"
        if where:
            text += f" ({where})"
        snippet = None if response is None else redact(response.text, secrets=self.secrets)
        if issubclass(cls, RetryableSendError) and response is not None:
            flags.setdefault("wait", self.http.wait_after(response))
        return cls(text, provider=self.provider, status=status, code=code, snippet=snippet, **flags)

    def _maybe_sent(
        self, message: Message, what: str, response: requests.Response | None = None
    ) -> SendError:
        if self.idempotent:
            return self.error(RetryableSendError, what, response)
        return self.error(
            SendOutcomeUnknown,
            f"{what}; the message may have been sent, so it is not sent again",
            response,
        )

    def json_body(self, response: requests.Response) -> Any:
        """The decoded JSON body, or ``None`` when it is not JSON."""
        try:
            return response.json()
        except ValueError:
            return None

    # -- sending --------------------------------------------------------------------------
    def send(self, message: Message) -> Receipt:
        if message.channel != self.kind:
            raise PermanentSendError(
                f"{self.provider}: this channel sends {self.kind}, not {message.channel}",
                provider=self.provider,
            )
        self.validate(message)
        request, prepared = self._built(message)
        extra = {k: v for k, v in request.options.items() if k not in _REQUEST_FIELDS}
        retrying = self.http.retrying(
            self.attempts,
            retry_on=RetryableSendError,
            before_sleep=lambda state: self._log_retry(message, state),
        )
        for attempt in retrying:
            with attempt:
                receipt = self._once(message, prepared, extra)
        log.debug(
            "%s accepted key=%s to=%s id=%s",
            self.provider,
            message.key,
            mask_contact(message.to),
            receipt.provider_id,
        )
        return receipt

    def _built(self, message: Message) -> tuple[HttpRequest, requests.PreparedRequest]:
        """The request for ``message``, prepared once here so that whatever cannot be built or
        encoded fails before anything goes on the wire, as a permanent error; every attempt
        sends this prepared request."""
        try:
            request = self.build_request(message)
            fields = {k: v for k, v in request.options.items() if k in _REQUEST_FIELDS}
            prepared = self.session.prepare_request(
                requests.Request(request.method, self.http.url(request.path), **fields)
            )
            for name, value in prepared.headers.items():
                if isinstance(value, str):
                    value.encode("latin-1")  # what http.client will do with it
                else:
                    bytes(value)
                name.encode("latin-1")
        except SendError:
            raise
        except Exception as err:
            raise self.not_built(err) from err
        return request, prepared

    def not_built(self, err: Exception) -> PermanentSendError:
        """The error for a message whose request could not be built or encoded: nothing was
        sent, and sending the same content again would fail the same way."""
        error = self.error(
            PermanentSendError,
            f"the request could not be built, nothing was sent ({type(err).__name__}: "
            f"{mask_text(str(err))[:200]})",
        )
        assert isinstance(error, PermanentSendError)
        return error

    def _log_retry(self, message: Message, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s key=%s to=%s attempt %d failed, retrying: %s",
            self.provider,
            message.key,
            mask_contact(message.to),
            state.attempt_number,
            mask_text(str(error)),
        )

    def _once(
        self, message: Message, prepared: requests.PreparedRequest, extra: dict[str, Any]
    ) -> Receipt:
        self.rate_limiter.acquire()
        try:
            response = self.http.send_prepared(prepared, **extra)
        except requests.RequestException as err:
            raise self._transport_error(message, err) from err
        except UnicodeError as err:
            # http.client and urllib3 encode the request line, headers and body before the
            # first byte is written: an encoding error means nothing was sent.
            raise self.not_built(err) from err
        if 200 <= response.status_code < 300:
            return self.parse_response(message, response)
        raise self.error_for(message, response)

    def _transport_error(self, message: Message, err: requests.RequestException) -> SendError:
        name = type(err).__name__
        if isinstance(err, requests.exceptions.SSLError):
            return self.error(
                TransientSendError,
                f"TLS failed ({mask_text(str(err))[:200]}); check base_url and certificates; "
                "nothing was sent",
            )
        if never_sent(err):
            return self.error(RetryableSendError, f"could not connect ({name})")
        if isinstance(err, requests.Timeout | requests.ConnectionError):
            return self._maybe_sent(message, f"no answer ({name})")
        return self.error(
            TransientSendError, f"the request could not be made ({name}: {mask_text(str(err))})"
        )

    def _send_one(self, message: Message) -> SendResult:
        try:
            return self.send(message)
        except SendError as err:
            return err
        except Exception as err:  # a bug may strike after sending: never resend blindly
            log.exception("%s key=%s raised", self.provider, message.key)
            unknown = SendOutcomeUnknown(
                f"{self.provider}: unexpected {type(err).__name__}: {mask_text(str(err))}",
                provider=self.provider,
            )
            unknown.__cause__ = err
            return unknown

    def send_batch(self, messages: Sequence[Message]) -> list[SendResult]:
        """Send ``messages`` with up to ``concurrency`` requests in flight, within
        ``rate_limit``; one result per message, in order (see :class:`BatchChannel`)."""
        if not messages:
            return []
        workers = min(self.concurrency, len(messages))
        if workers == 1:
            return [self._send_one(m) for m in messages]
        with ThreadPoolExecutor(workers, thread_name_prefix=f"cartrescue-{self.provider}") as pool:
            return list(pool.map(self._send_one, messages))

    def check(self) -> list[Problem]:
        """``cartrescue doctor``'s read-only check (see :class:`~cartrescue.doctor.SelfCheck`):
        make :meth:`check_request` and report what is wrong. Sends no message."""
        request = self.check_request()
        if request is None:
            return []
        area = f"channels.{self.kind}"
        try:
            response = self.http.transmit(request.method, request.path, **request.options)
        except requests.RequestException as err:
            return [
                Problem(
                    area,
                    f"{self.provider}: cannot reach {self.base_url} ({type(err).__name__})",
                    "check base_url, DNS and outbound HTTPS from this machine",
                )
            ]
        status = response.status_code
        verdict = self.http.classify(response)
        if verdict is Verdict.AUTH:
            return [
                Problem(
                    area,
                    f"{self.provider} refused the credentials (HTTP {status})",
                    self.credentials_hint,
                )
            ]
        if verdict is not Verdict.OK:
            snippet = redact(response.text, 200, self.secrets)
            return [
                Problem(
                    area,
                    f"{self.provider} answered HTTP {status} to a read-only check: {snippet}",
                    "check the account in the provider's console",
                )
            ]
        return []

    def close(self) -> None:
        """Release pooled connections (a session passed in is left to its owner)."""
        self.http.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, base_url={self.base_url!r})"
