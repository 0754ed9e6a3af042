from __future__ import annotations

import json
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
