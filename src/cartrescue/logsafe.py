"""Log output that never holds a secret or an unmasked contact.

:class:`RedactingFilter` sits on a logging *handler*, so it sees every record that handler
writes, cartrescue's and third-party libraries' alike (urllib3 logs full URLs, which hold
WooCommerce's ``consumer_secret`` with ``query_string_auth`` and customers' emails in
``search=``). It replaces every registered secret value (also URL-encoded) with ``***`` and
masks emails and phone numbers, in the message, the arguments and the traceback.

:func:`configure` is what the ``cartrescue`` command uses: cartrescue's loggers at the chosen
level, every other library at WARNING unless asked for by name (``--log-level urllib3=DEBUG``
or ``CARTRESCUE_LOG_LEVELS``). :func:`register_secrets` adds values to the filters in place
(``load_config`` registers every ``*_env`` value it reads).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TextIO
from urllib.parse import quote, quote_plus

from .logmask import mask_text

__all__ = [
    "LOG_FORMAT",
    "MIN_SECRET_LENGTH",
    "RedactingFilter",
    "configure",
    "parse_levels",
    "register_secrets",
]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MIN_SECRET_LENGTH = 6
"""Shorter values are not treated as secrets: masking them would garble ordinary words."""

_TRACEBACK_LIMIT = 20_000


class RedactingFilter(logging.Filter):
    """Redacts registered secrets and masks contacts in every record it passes.

    It rewrites the record in place (message formatted with its arguments, traceback text),
    so handlers that run after it see the redacted text too. It never drops a record.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: list[str] = []
        self.add_secrets(secrets)

    def add_secrets(self, values: Iterable[str]) -> None:
        """Register secret values (and their URL-encoded forms); short or empty ones are
        ignored."""
        forms = list(self._secrets)
        for value in values:
            value = value.strip() if isinstance(value, str) else ""
            if len(value) < MIN_SECRET_LENGTH:
                continue
            for form in (value, quote(value, safe=""), quote_plus(value)):
                if form not in forms:
                    forms.append(form)
        # Longest first, so a secret containing another is replaced whole; swapped in one
        # assignment, so a record logged meanwhile by another thread sees a whole list.
        self._secrets = sorted(forms, key=len, reverse=True)

    @property
    def secret_count(self) -> int:
        return len(self._secrets)

    def redact(self, text: str, *, limit: int | None = None) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return mask_text(text, limit=limit)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what can be shown
            message = f"{record.msg!s} {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text, limit=_TRACEBACK_LIMIT)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info, limit=_TRACEBACK_LIMIT)
        return True


def _handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if getattr(h, "cartrescue", False)]


def register_secrets(values: Iterable[str]) -> None:
    """Add secret values to the redacting filter of every handler :func:`configure` set up,
    and to every :class:`RedactingFilter` on the root logger's handlers."""
    values = list(values)
    for handler in logging.getLogger().handlers:
        for item in handler.filters:
            if isinstance(item, RedactingFilter):
                item.add_secrets(values)


def parse_levels(specs: Iterable[str]) -> dict[str, int]:
    """``["urllib3=DEBUG", "shopify=info"]`` → logger name → level. A spec without ``=``
    sets cartrescue's own level; ``root`` (or ``*``) every library's. Raises ``ValueError``
    naming a bad spec."""
    levels: dict[str, int] = {}
    for spec in specs:
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            name, _, level = item.rpartition("=")
            number = logging.getLevelNamesMapping().get(level.strip().upper())
            if number is None:
                raise ValueError(
                    f"{item!r}: expected NAME=LEVEL with LEVEL one of DEBUG, INFO, WARNING, "
                    "ERROR (e.g. urllib3=DEBUG)"
                )
            levels[name.strip() or "cartrescue"] = number
    return levels


def configure(
    level: int,
    *,
    stream: TextIO,
    levels: Mapping[str, int] | None = None,
    secrets: Iterable[str] = (),
) -> RedactingFilter:
    """Log cartrescue's records at ``level`` to ``stream`` through a :class:`RedactingFilter`;
    other libraries log at WARNING unless ``levels`` names them. Calling it again replaces
    the handler it set up before. Returns the filter (to register more secrets)."""
    root = logging.getLogger()
    for old in _handlers():
        root.removeHandler(old)
    redacting = RedactingFilter(secrets)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(redacting)
    handler.cartrescue = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("cartrescue").setLevel(level)
    for name, named_level in (levels or {}).items():
        logging.getLogger(None if name in ("root", "*") else name).setLevel(named_level)
    return redacting
