"""An example third-party connector: abandoned carts from a CSV export.

Columns: ``id, created_at, updated_at, completed_at, currency, total, recovery_url, email,
phone, country, first_name, locale, email_consent, sms_consent, items`` — times in ISO 8601
with an offset, ``items`` as ``2 x Mug @ 12.50; 1 x Plate @ 8.00``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path

from cartrescue.plugin import (
    BadCheckout,
    BadPayloadError,
    Checkout,
    ConfigError,
    Customer,
    LineItem,
    normalize_email,
    normalize_phone,
    parse_money,
    parse_time,
)

__all__ = ["CsvShopConnector"]

_TRUE = {"1", "true", "yes", "y"}


def _items(raw: str, item: str) -> tuple[LineItem, ...]:
    lines = []
    for part in filter(None, (p.strip() for p in raw.split(";"))):
        try:
            quantity, rest = part.split(" x ", 1)
            title, price = rest.rsplit(" @ ", 1)
            lines.append(LineItem(title.strip(), int(quantity), parse_money(price, item=item)))
        except ValueError:
            raise BadPayloadError(f"cannot read item {part!r}", item=item) from None
    return tuple(lines)


def _checkout(row: Mapping[str, str]) -> Checkout:
    item = row.get("id") or "?"
    problems: list[str] = []
    phone = None
    try:
        phone = normalize_phone(row.get("phone"), row.get("country"))
    except ValueError as err:
        problems.append(f"invalid phone number: {err}")
    try:
        email = normalize_email(row.get("email"))
    except ValueError as err:
        problems.append(f"invalid email: {err}")
        email = None
    completed = row.get("completed_at")
    return Checkout(
        id=item,
        abandoned_at=parse_time(row.get("created_at"), item=item),
        updated_at=parse_time(row.get("updated_at"), item=item),
        completed_at=parse_time(completed, item=item) if completed else None,
        recovery_url=row["recovery_url"],
        currency=row["currency"],
        total=parse_money(row.get("total"), item=item),
        line_items=_items(row.get("items", ""), item),
        customer=Customer(
            first_name=row.get("first_name") or None,
            email=email,
            phone=phone,
            locale=row.get("locale") or None,
            email_consent=(row.get("email_consent") or "").lower() in _TRUE,
            sms_consent=(row.get("sms_consent") or "").lower() in _TRUE,
        ),
        name=f"#{item}",
        problems=tuple(problems),
    )


class CsvShopConnector:
    """Reads abandoned carts from the CSV file at ``path`` (config: ``path``)."""

    name = "csvshop"

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"{path} is not a file", key="path")

    def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout | BadCheckout]:
        with self.path.open(newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    checkout = _checkout(row)
                except BadPayloadError as err:
                    yield BadCheckout(id=row.get("id") or f"line {number}", reason=err.detail)
                    continue
                except (KeyError, TypeError, ValueError) as err:
                    yield BadCheckout(id=row.get("id") or f"line {number}", reason=str(err))
                    continue
                if since is None or checkout.updated_at >= since:
                    yield checkout
