"""The bundled demo shop: made-up checkouts, served without any network.

``DemoConnector`` is a complete connector (purchases, discounts, shop time zone) over a JSON
file of checkouts whose times are given relative to now, so a pass always finds something
due. ``cartrescue demo`` runs it; ``[connector] type = "cartrescue.demo:DemoConnector"``
uses it from config. It is not a registered plugin: the registries list only connectors that
talk to a real shop. (The test suite runs the same data through the real Shopify connector
against ``cartrescue_testing.fake_shopify.FakeShopify``.)
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from .channels.console import ConsoleChannel
from .clock import Clock, FrozenClock, utc_now
from .conversations import Conversations, Forward, Reply
from .errors import BadPayloadError
from .experiments import Arm, Experiment, ExperimentPlan
from .inbound import record_signal
from .logmask import mask_contact
from .models import (
    BadCheckout,
    Checkout,
    Customer,
    Discount,
    DiscountOffer,
    LineItem,
    Purchase,
    ShopInfo,
    image_url,
    normalize_email,
    normalize_phone,
    parse_money,
)
from .stats import engagement_lines
from .store.base import Signal
from .store.sqlite import SQLiteStore

__all__ = [
    "DemoConnector",
    "demo_checkouts",
    "demo_conversation",
    "demo_data",
    "demo_experiments",
    "demo_shop",
]


def demo_experiments(now: datetime) -> ExperimentPlan:
    """The demo's small experiment: does the last reminder need its 10 % offer? Half the
    people get it (the control), half the same reminder without a code."""
    return ExperimentPlan(
        experiments=(
            Experiment(
                "last-reminder-offer",
                (Arm("10% off"), Arm("no offer", no_discount=True)),
                start=now - timedelta(days=7),
                step=3,
            ),
        )
    )


def demo_data(path: str | Path | None = None) -> dict[str, Any]:
    """The demo shop as JSON data: the bundled one, or the file at ``path``."""
    if path is None:
        text = resources.files("cartrescue").joinpath("data/demo_shop.json").read_text("utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("checkouts"), list):
        raise ValueError("demo data must be an object with a 'checkouts' list")
    return data


def demo_shop(path: str | Path | None = None) -> ShopInfo:
    """The demo shop's name, locale, time zone and free-shipping threshold."""
    shop = demo_data(path).get("shop", {})
    threshold = shop.get("free_shipping_threshold")
    return ShopInfo(
        name=shop.get("name", "Demo shop"),
        locale=shop.get("locale", "en"),
        timezone=shop.get("timezone"),
        home_url=shop.get("home_url"),
        free_shipping_threshold=Decimal(threshold) if threshold is not None else None,
        free_shipping_currency=shop.get("free_shipping_currency"),
    )


def _customer(raw: Mapping[str, Any] | None, problems: list[str]) -> Customer | None:
    if raw is None:
        return None
    phone = None
    try:
        phone = normalize_phone(raw.get("phone"), raw.get("country"))
    except ValueError as err:
        problems.append(f"invalid phone number: {err}")
    return Customer(
        first_name=raw.get("first_name"),
        last_name=raw.get("last_name"),
        email=normalize_email(raw.get("email")),
        phone=phone,
        locale=raw.get("locale"),
        email_consent=bool(raw.get("email_consent", False)),
        sms_consent=bool(raw.get("sms_consent", False)),
        whatsapp_consent=bool(raw.get("whatsapp_consent", False)),
        timezone=raw.get("timezone"),
        orders_count=int(raw.get("orders_count", 0)),
    )


def _checkout(raw: Mapping[str, Any], now: datetime) -> Checkout:
    item = str(raw.get("id", "?"))
    abandoned = now - timedelta(minutes=float(raw["minutes_ago"]))
    completed = raw.get("completed_minutes_ago")
    problems: list[str] = []
    return Checkout(
        id=item,
        abandoned_at=abandoned,
        updated_at=now
        - timedelta(minutes=float(completed if completed is not None else raw["minutes_ago"])),
        recovery_url=f"https://nordlys-design.example/checkouts/{item}/recover?key={item}demo",
        currency=str(raw["currency"]),
        total=parse_money(raw["total"], item=item),
        line_items=tuple(
            LineItem(
                title=str(li["title"]),
                quantity=int(li["quantity"]),
                price=parse_money(li["price"], item=item),
                variant=li.get("variant"),
                image_url=image_url(li.get("image")),
            )
            for li in raw.get("items", ())
        ),
        customer=_customer(raw.get("customer"), problems),
        completed_at=None if completed is None else now - timedelta(minutes=float(completed)),
        name=f"#{item}",
        problems=tuple(problems),
        country=_country(raw.get("customer")),
    )


def _country(raw: Mapping[str, Any] | None) -> str | None:
    country = raw.get("country") if raw is not None else None
    return country.upper() if isinstance(country, str) and country else None


def demo_checkouts(now: datetime, path: str | Path | None = None) -> list[Checkout | BadCheckout]:
    """The demo checkouts as they stand at ``now``."""
    out: list[Checkout | BadCheckout] = []
    for raw in demo_data(path)["checkouts"]:
        try:
            out.append(_checkout(raw, now))
        except BadPayloadError as err:
            out.append(BadCheckout(id=str(raw.get("id", "?")), reason=err.detail))
        except (KeyError, TypeError, ValueError) as err:
            out.append(BadCheckout(id=str(raw.get("id", "?")), reason=f"malformed: {err}"))
    return out


class DemoConnector:
    """A connector over the bundled demo data (or ``data``, a JSON file of the same shape)."""

    name = "demo"

    def __init__(self, data: str | None = None, *, clock: Clock | None = None) -> None:
        self._path = data
        self._clock = clock or utc_now
        self._raw = demo_data(data)
        self.discounts: list[Discount] = []

    def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout | BadCheckout]:
        for item in demo_checkouts(self._clock(), self._path):
            if isinstance(item, BadCheckout) or since is None or item.updated_at >= since:
                yield item

    def shop_timezone(self) -> str | None:
        value = self._raw.get("shop", {}).get("timezone")
        return None if value is None else str(value)

    def find_purchase(self, checkout: Checkout) -> Purchase | None:
        for raw in self._raw["checkouts"]:
            if (
                str(raw.get("id")) == checkout.id
                and raw.get("bought_elsewhere_minutes_ago") is not None
            ):
                return Purchase(
                    order_id=f"D-{checkout.id}",
                    placed_at=self._clock()
                    - timedelta(minutes=float(raw["bought_elsewhere_minutes_ago"])),
                    total=checkout.total,
                    currency=checkout.currency,
                )
        return None

    def create_discount(self, checkout: Checkout, offer: DiscountOffer) -> Discount:
        label = int(offer.percent) if offer.percent is not None else "SHIP"
        if offer.amount is not None:
            label = int(offer.amount)
        code = f"BACK{label}-{secrets.token_hex(3).upper()}"
        discount = Discount.of(
            offer,
            code,
            self._clock() + timedelta(seconds=offer.valid_for_seconds),
            f"{checkout.recovery_url}&discount={code}",
        )
        self.discounts.append(discount)
        return discount


class _PrintedForward:
    """The demo's forward: the webhook's JSON body, printed instead of posted."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def forward(self, forward: Forward) -> None:
        body = json.dumps(forward.payload()["data"], indent=2, ensure_ascii=False)
        self.out.write(f"Forwarded to the shop (the webhook's data):\n{body}\n")


def demo_signals(
    store: SQLiteStore, channels: Sequence[ConsoleChannel], clock: Clock, out: TextIO
) -> None:
    """The providers' status callbacks for the messages the pass sent, as ``cartrescue
    serve`` records them: every message delivered, the WhatsApp ones read, the last SMS
    failed; then the delivery and read rates ``cartrescue stats`` shows."""
    later = clock() + timedelta(minutes=5)
    for channel in channels:
        for n in range(1, channel.sent + 1):
            signal = Signal.READ if channel.kind == "whatsapp" else Signal.DELIVERED
            if channel.kind == "sms" and n == channel.sent and n > 1:
                signal = Signal.FAILED
            record_signal(
                store, FrozenClock(later), "console", f"console-{channel.kind}-{n}", signal
            )
    out.write(
        "\nThe providers' status callbacks (cartrescue serve verifies and records them):\n"
        + "\n".join(engagement_lines(store.signal_counts()))
        + "\n"
    )


def demo_conversation(store: SQLiteStore, clock: Clock, out: TextIO) -> str | None:
    """One conversation after the pass: the first buyer who got an SMS writes back; the
    reply is recorded, acknowledged once in their language ([conversations] acknowledge),
    forwarded (printed) and their checkout's reminders are held. Returns
    the checkout's id (None when no SMS went out)."""
    now = clock()
    for checkout in store.active_checkouts(now - timedelta(days=30)):
        customer = checkout.customer
        sent = [e for e in store.outbox_for(checkout.id) if e.channel == "sms"]
        if customer is None or customer.phone is None or not sent:
            continue
        conversations = Conversations(
            store,
            forwarders=[_PrintedForward(out)],
            clock=FrozenClock(now + timedelta(minutes=20)),
            acknowledge={"sms": ConsoleChannel("sms", stream=out)},
        )
        text = "Can I pick it up in the shop?"
        out.write(
            f"\nA reply: {customer.first_name or 'a buyer'} ({mask_contact(customer.phone)}) "
            f'answers the SMS for checkout {checkout.id}: "{text}"\n'
        )
        conversations.reply(Reply("demo", "sms", customer.phone, text, "demo-reply-1"))
        until = store.paused_until(checkout.id)
        out.write(
            f"Checkout {checkout.id}: the next reminders are held (held: conversation) until "
            f"{until:%Y-%m-%d %H:%M} UTC, while the shop answers.\n"
        )
        return checkout.id
    return None
