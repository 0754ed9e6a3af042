"""One exception hierarchy for the whole library.

``CartRescueError`` is the root. Configuration mistakes (``ConfigError``) stand outside the
send-error family on purpose: a send loop that catches ``SendError`` can never swallow a
misconfigured channel. Errors that carry a response keep only a redacted snippet of it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BadPayloadError",
    "CartRescueError",
    "ConfigError",
    "ConfigProblem",
    "ConnectorAuthError",
    "ConnectorError",
    "MessageTooLong",
    "PermanentSendError",
    "PluginError",
    "RenderError",
    "RetryableSendError",
    "SendError",
    "SendOutcomeUnknown",
    "StoreError",
    "TemplateError",
    "TransientSendError",
    "explain_connector_error",
]


class CartRescueError(Exception):
    """Root of every error cartrescue raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One mistake in the configuration: the dotted ``key`` (``policy.steps[1].delay``),
    what is wrong (what was expected, what was found) and the ``fix`` for that mistake."""

    key: str | None
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.key}: {self.message}" if self.key else self.message
        return f"{text} — fix: {self.fix}" if self.fix else text


class ConfigError(CartRescueError):
    """The configuration is wrong. ``problems`` lists every mistake found (one line each when
    printed); ``key`` is the dotted key of the first, ``message`` its text without the key."""

    def __init__(
        self,
        message: str = "",
        *,
        key: str | None = None,
        fix: str = "",
        problems: Sequence[ConfigProblem] = (),
    ) -> None:
        found = tuple(problems) or (ConfigProblem(key, message, fix),)
        self.problems: tuple[ConfigProblem, ...] = found
        self.key = found[0].key
        self.message = found[0].message
        self.fix = found[0].fix
        if len(found) == 1:
            text = str(found[0])
        else:
            lines = "\n".join(f"  {problem}" for problem in found)
            text = f"{message or f'{len(found)} problems in the configuration'}:\n{lines}"
        super().__init__(text)


class PluginError(ConfigError):
    """A connector or channel plugin could not be found or loaded."""

    def __init__(self, message: str, *, key: str | None = None, package: str | None = None):
        super().__init__(message, key=key)
        self.package = package


class StoreError(CartRescueError):
    """The store could not be opened, migrated or written."""


class ConnectorError(CartRescueError):
    """A shop platform call failed after the retries that were safe to make.

    ``connector`` names the connector (``"shopify"``), ``status`` the HTTP status when there
    was one, and ``snippet`` a short, redacted piece of the response body.
    """

    def __init__(
        self,
        message: str,
        *,
        connector: str | None = None,
        status: int | None = None,
        snippet: str | None = None,
    ) -> None:
        super().__init__(message)
        self.connector = connector
        self.status = status
        self.snippet = snippet


class ConnectorAuthError(ConnectorError):
    """The shop refused the credentials or they lack a scope (HTTP 401/403)."""


class BadPayloadError(CartRescueError):
    """One checkout payload could not be mapped; ``item`` names it (an id, or a position)."""

    def __init__(self, message: str, *, item: str | None = None) -> None:
        super().__init__(f"{item}: {message}" if item else message)
        self.item = item
        self.detail = message


class RenderError(CartRescueError):
    """A message could not be rendered."""


class TemplateError(RenderError):
    """A template is missing, does not compile, or failed while rendering."""

    def __init__(self, message: str, *, template: str | None = None) -> None:
        super().__init__(f"{template}: {message}" if template else message)
        self.template = template


class MessageTooLong(RenderError):
    """An SMS could not be fitted into the allowed number of segments."""

    def __init__(self, *, template: str, locale: str, units: int, limit: int, encoding: str):
        super().__init__(
            f"{template} ({locale}) is {units} {encoding} units; "
            f"it must fit in {limit} even after shortening"
        )
        self.template = template
        self.locale = locale
        self.units = units
        self.limit = limit
        self.encoding = encoding


class SendError(CartRescueError):
    """A channel could not deliver a message.

    ``provider`` names the provider (``"twilio"``), ``status`` the HTTP status, ``code`` the
    provider's own error code, ``snippet`` a short redacted piece of the response.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status: int | None = None,
        code: str | int | None = None,
        snippet: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.code = code
        self.snippet = snippet


class PermanentSendError(SendError):
    """Retrying will not help (invalid number, unsubscribed, template rejected).

    ``opted_out`` is true when the provider says the recipient opted out: the engine then adds
    the contact to the store's opt-outs for this channel. ``skip_step`` is true when the error
    concerns this step only (a per-user marketing cap): the step is skipped, and no other
    channel is tried for it.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status: int | None = None,
        code: str | int | None = None,
        snippet: str | None = None,
        opted_out: bool = False,
        skip_step: bool = False,
    ) -> None:
        super().__init__(message, provider=provider, status=status, code=code, snippet=snippet)
        self.opted_out = opted_out
        self.skip_step = skip_step


class TransientSendError(SendError):
    """The provider certainly did not accept the message and a later try may work (429,
    connection refused). The base channel retries these; the engine releases the outbox
    key so a later pass can send it."""


class RetryableSendError(TransientSendError):
    """The provider certainly did not take the message and asks to try again soon (HTTP 429,
    a refused connection). :class:`~cartrescue.channels.HttpChannel` retries these with
    backoff, honouring ``wait`` (seconds, from ``Retry-After``); once the attempts are spent
    it is raised as it is, a :class:`TransientSendError`."""

    def __init__(self, message: str, *, wait: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.wait = wait


class SendOutcomeUnknown(SendError):
    """The request may have reached a provider whose send is not idempotent (a read timeout,
    a 5xx after sending). It is never retried; the outbox records the key as ``unknown``."""


_UNREACHABLE = (
    (("Connection refused", "ConnectionRefused"), "the connection was refused"),
    (
        (
            "Name or service not known",
            "NameResolutionError",
            "Temporary failure in name resolution",
            "nodename nor servname",
            "getaddrinfo failed",
        ),
        "its host name does not resolve",
    ),
    (("CERTIFICATE_VERIFY_FAILED", "SSLError"), "its TLS certificate was not accepted"),
    (("Timeout", "timed out"), "it did not answer in time"),
    (("ConnectionError", "Connection aborted", "Connection reset"), "the connection failed"),
)


def explain_connector_error(err: ConnectorError, *, shop: str, connector: str) -> str:
    """One line for the store owner: which shop, what happened, and what to do.

    The connector's own ``"name: "`` prefix is dropped (the line names the connector once),
    and a connection failure is told in words rather than with the HTTP library's text.
    """
    text = " ".join(str(err).split())
    message = text.removeprefix(f"{connector}: ")
    who = f"shop {shop!r} ({connector})"
    attempts = re.search(r"after (\d+) attempt", message)
    tries = f" after {attempts.group(1)} attempt(s)" if attempts else ""
    if err.status is None:
        for markers, reason in _UNREACHABLE:
            if any(marker in message for marker in markers):
                return (
                    f"{who} could not be reached{tries}: {reason}; check the shop's address "
                    f"in [connector] and that the shop is up; the next run tries again"
                )
    if isinstance(err, ConnectorAuthError):
        return f"{who} refused the credentials: {message}"
    if err.status is not None and (err.status == 429 or err.status >= 500):
        return (
            f"{who} kept failing (HTTP {err.status}){tries}; the shop is down or overloaded: "
            f"the next run tries again; if this lasts, check the shop's status"
        )
    return f"{who}: {message}; 'cartrescue doctor' checks the connection and credentials"
