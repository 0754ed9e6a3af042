"""The bundled demo shop (:mod:`cartrescue.demo`) as a Shopify shop would serve it: raw REST
``checkouts.json`` records and the orders its buyers placed elsewhere, to load into
:class:`~cartrescue_testing.fake_shopify.FakeShopify` so the real Shopify connector reads the
same checkouts the demo connector yields."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cartrescue.demo import demo_data

__all__ = ["demo_orders", "demo_shopify_records"]


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def demo_shopify_records(now: datetime, path: str | Path | None = None) -> list[dict[str, Any]]:
    """The demo checkouts as Shopify's REST ``checkouts.json`` records at ``now``, raw: an
    invalid phone number or a price that is not a number reaches the connector as it would
    from a real shop. ``bought_elsewhere_minutes_ago`` is left to the caller (an order)."""
    records = []
    for number, raw in enumerate(demo_data(path)["checkouts"]):
        created = now - timedelta(minutes=float(raw["minutes_ago"]))
        completed = raw.get("completed_minutes_ago")
        completed_at = None if completed is None else now - timedelta(minutes=float(completed))
        token = f"{number:04x}c0ffee{number:04x}5eed{number:04x}"
        customer = raw.get("customer")
        record: dict[str, Any] = {
            "id": int(raw["id"]),
            "token": token,
            "name": f"#{raw['id']}",
            "created_at": _iso(created),
            "updated_at": _iso(completed_at or created),
            "completed_at": None if completed_at is None else _iso(completed_at),
            "abandoned_checkout_url": (
                f"https://nordlys-design.myshopify.com/71234567890/checkouts/ac/{token}/recover"
                f"?key=9f3b2c71e0a4d5b6c8e1f2a3b4c5d6e7&locale=en-US"
            ),
            "currency": raw["currency"],
            "presentment_currency": raw["currency"],
            "total_price": raw["total"],
            "line_items": [
                {
                    "title": li["title"],
                    "variant_title": li.get("variant"),
                    "quantity": li["quantity"],
                    "price": li["price"],
                }
                for li in raw.get("items", ())
            ],
            "customer": None,
        }
        if customer is not None:
            country = customer.get("country")
            record.update(
                email=customer.get("email"),
                phone=customer.get("phone"),
                customer_locale=customer.get("locale"),
                buyer_accepts_marketing=bool(customer.get("email_consent")),
                buyer_accepts_sms_marketing=bool(customer.get("sms_consent")),
                sms_marketing_phone=customer.get("phone") if customer.get("sms_consent") else None,
                billing_address={"country_code": country} if country else None,
                customer={
                    "id": 6000 + number,
                    "first_name": customer.get("first_name"),
                    "last_name": customer.get("last_name"),
                    "email": customer.get("email"),
                    "phone": customer.get("phone"),
                    "email_marketing_consent": {
                        "state": "subscribed" if customer.get("email_consent") else "not_subscribed"
                    },
                    "sms_marketing_consent": {
                        "state": "subscribed" if customer.get("sms_consent") else "not_subscribed"
                    }
                    if customer.get("phone")
                    else None,
                },
            )
        records.append(record)
    return records


def demo_orders(now: datetime, path: str | Path | None = None) -> list[tuple[str, datetime]]:
    """(email, placed at) of orders the demo's buyers placed through another checkout."""
    orders = []
    for raw in demo_data(path)["checkouts"]:
        minutes = raw.get("bought_elsewhere_minutes_ago")
        customer = raw.get("customer") or {}
        if minutes is not None and customer.get("email"):
            orders.append((str(customer["email"]), now - timedelta(minutes=float(minutes))))
    return orders
