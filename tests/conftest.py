from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cartrescue.models import Checkout, Customer, LineItem

FIXTURES = Path(__file__).parent / "fixtures"

# A Wednesday, 12:00 UTC: inside the send window in Europe/Oslo (13:00).
NOON = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)


def make_checkout(
    id: str = "c1",
    *,
    abandoned_at: datetime = NOON,
    email: str | None = "kari@example.no",
    phone: str | None = "+4791234567",
    email_consent: bool = True,
    sms_consent: bool = True,
    timezone: str | None = "Europe/Oslo",
    completed_at: datetime | None = None,
    first_name: str = "Kari",
    locale: str | None = "en",
    problems: tuple[str, ...] = (),
    customer: bool = True,
) -> Checkout:
    return Checkout(
        id=id,
        abandoned_at=abandoned_at,
        updated_at=abandoned_at + timedelta(minutes=1),
        recovery_url=f"https://shop.example/checkouts/{id}/recover?key=k{id}",
        currency="NOK",
        total=Decimal("499.00"),
        line_items=(LineItem("Wool socks", 1, Decimal("499.00"), variant="M"),),
        customer=Customer(
            first_name=first_name,
            email=email,
            phone=phone,
            locale=locale,
            email_consent=email_consent,
            sms_consent=sms_consent,
            timezone=timezone,
        )
        if customer
        else None,
        completed_at=completed_at,
        problems=problems,
    )


@pytest.fixture
def checkout_factory():
    return make_checkout


def load_fixture(name: str):
    """A real-shaped payload from tests/fixtures, decoded when it is JSON."""
    path = FIXTURES / name
    return json.loads(path.read_text()) if path.suffix == ".json" else path.read_bytes()


@pytest.fixture
def waits():
    """A stand-in for time.sleep that records the waits instead of sleeping."""
    return []


@contextmanager
def restored_logging() -> Iterator[None]:
    """``cartrescue.cli.main`` sets logger levels and adds a handler, as a program should;
    put them back afterwards so one test's command line does not change what the next test
    logs."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    names = ("cartrescue", "urllib3", "requests", "shopify", "woocommerce")
    levels = {name: logging.getLogger(name).level for name in names}
    root_level = root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers and getattr(handler, "cartrescue", False):
                root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        root.setLevel(root_level)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with restored_logging():
        yield


class LogScan:
    """Every log record of a test, scanned for secrets and unmasked contacts.

    Records are kept as they are emitted and scanned at the end of the test (or by
    :meth:`check`), when every handler has seen them, so a redacting filter on the program's
    handler has done its work: what is scanned is what the program writes."""

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []
        self.texts: list[str] = []
        self.secrets: set[str] = set()
        self.contacts: set[str] = set()
        self.only = ""
        """When set, only records of loggers under this name are scanned."""

    def watch(self, *, secrets: Iterable[str] = (), contacts: Iterable[str] = ()) -> None:
        self.secrets.update(s for s in secrets if s)
        for contact in contacts:
            if contact:
                self.contacts.update(_contact_forms(contact))

    def add_text(self, text: str) -> None:
        """Scan more output (e.g. what the command wrote to stderr)."""
        self.texts.extend(text.splitlines())

    def lines(self) -> list[str]:
        formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
        out: list[str] = []
        for record in self.records:
            if self.only and not record.name.startswith(self.only):
                continue
            out.extend(formatter.format(record).splitlines())
        return out + self.texts

    def leaks(self) -> list[str]:
        found = []
        for line in self.lines():
            lowered = line.lower()
            if any(s in line for s in self.secrets) or any(c in lowered for c in self.contacts):
                found.append(line)
        return found

    def check(self) -> int:
        """Fail on any line holding a secret or a contact; return how many were scanned."""
        leaks = self.leaks()
        assert not leaks, f"{len(leaks)} log lines hold a secret or a contact:\n" + "\n".join(
            leaks[:20]
        )
        return len(self.lines())


def _contact_forms(contact: str) -> set[str]:
    from urllib.parse import quote

    contact = contact.lower()
    if "@" in contact:
        return {contact, quote(contact, safe="").lower()}
    digits = contact.lstrip("+")
    return {contact, digits, quote(contact, safe="").lower()}


class _Keep(logging.Handler):
    def __init__(self, scan: LogScan) -> None:
        super().__init__(logging.DEBUG)
        self.scan = scan

    def emit(self, record: logging.LogRecord) -> None:
        self.scan.records.append(record)


@pytest.fixture
def log_scan() -> Iterator[LogScan]:
    """Logs everything at DEBUG for the test, then fails it if any line holds a watched
    secret or an unmasked watched contact (``log_scan.watch(secrets=..., contacts=...)``)."""
    scan = LogScan()
    root = logging.getLogger()
    handler = _Keep(scan)
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield scan
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    scan.check()


# The contacts and secrets the suite's own fixtures use (make_checkout, the fakes, the channel
# fixtures): no line cartrescue logs may hold them unmasked.
TEST_CONTACTS = ("kari@example.no", "+4791234567", "ola@example.no")
TEST_SECRETS = ("shpat_fake_token",)


@pytest.fixture
def scanned_logs(log_scan: LogScan) -> LogScan:
    """:func:`log_scan` watching the suite's usual contacts and secrets in cartrescue's own
    log lines (other libraries' DEBUG lines are the program's handler filter's job, which
    tests/test_log_safety.py checks end to end)."""
    log_scan.only = "cartrescue"
    log_scan.watch(secrets=TEST_SECRETS, contacts=TEST_CONTACTS)
    return log_scan
