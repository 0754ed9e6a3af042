"""Shared helpers for the WooCommerce connector tests (no tests here): real-shaped orders."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cartrescue.connectors.woocommerce import WooCommerceConnector

FIXTURES = Path(__file__).parent.parent / "fixtures" / "woocommerce"
SHOP = "https://shop.example"
REST = f"{SHOP}/wp-json"
ORDERS = f"{REST}/wc/v3/orders"
COUPONS = f"{REST}/wc/v3/coupons"
KEY = "ck_9f3b2c1d4e5f60718293a4b5c6d7e8f901234567"
SECRET = "cs_a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
OPTIN = "_wc_other/acme/sms-optin"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def order(order_id: int = 4512, modified: str = "2025-03-14T09:02:15", **changes: Any) -> Any:
    """The pending checkout order of the fixtures, with another id, modification time (GMT;
    the local field is Oslo winter time, UTC+1) and any other fields changed."""
    data = copy.deepcopy(fixture("order_pending_checkout.json"))
    data["id"] = order_id
    data["number"] = str(order_id)
    data["date_modified_gmt"] = modified
    data["date_modified"] = (datetime.fromisoformat(modified) + timedelta(hours=1)).isoformat()
    for name, value in changes.items():
        if name in ("billing", "shipping"):
            data[name] = {**data[name], **value}
        else:
            data[name] = value
    return data


def error(name: str) -> Any:
    return fixture("errors.json")[name]


def params(call: Any) -> dict[str, str]:
    """The query of a recorded ``responses`` call, one value per name."""
    return {k: v[-1] for k, v in parse_qs(urlsplit(call.request.url).query).items()}


def connector(waits: list[float] | None = None, **options: Any) -> WooCommerceConnector:
    options.setdefault("consent_meta", {"sms": OPTIN})
    return WooCommerceConnector(
        SHOP,
        KEY,
        SECRET,
        sleep=(waits if waits is not None else []).append,
        **options,
    )
