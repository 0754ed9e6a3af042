"""Channels used by tests that run ``cartrescue`` in a separate process (loaded by dotted
path), and small helpers tests share."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import requests

from cartrescue.models import ChannelKind, Message, Receipt


class BlockingChannel:
    """Announces each send by writing ``marker`` and then hangs, so a test can kill the
    process between claiming a key and recording its result."""

    def __init__(self, marker: str, kind: ChannelKind = "sms", seconds: float = 600) -> None:
        self.kind: ChannelKind = kind
        self.marker = Path(marker)
        self.seconds = seconds

    def send(self, message: Message) -> Receipt:
        self.marker.write_text(message.key)
        time.sleep(self.seconds)
        return Receipt(provider="blocking")

    def close(self) -> None:
        pass


class EchoChannel:
    """Prints each key on standard output after ``delay`` seconds, like a slow provider."""

    def __init__(self, kind: ChannelKind = "sms", delay: float = 0.01) -> None:
        self.kind: ChannelKind = kind
        self.delay = delay

    def send(self, message: Message) -> Receipt:
        time.sleep(self.delay)
        print(f"sent {message.key}", flush=True)
        return Receipt(provider="echo")

    def close(self) -> None:
        pass


def record_checkout_query_costs(session: requests.Session) -> list[tuple[int, int]]:
    """Hook ``session`` so that each ``AbandonedCheckouts`` query answered adds (``first``,
    the ``requestedQueryCost`` Shopify reported) to the returned list."""
    costs: list[tuple[int, int]] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        body = json.loads(response.request.body or b"{}")
        if body.get("query", "").startswith("query AbandonedCheckouts("):
            requested = response.json()["extensions"]["cost"]["requestedQueryCost"]
            costs.append((body["variables"]["first"], requested))

    session.hooks["response"].append(hook)
    return costs


def stocked_woocommerce(shop: Any, clock: Any, **options: Any) -> Any:
    """A WooCommerce connector for a ``FakeWooCommerce`` that reads stock, with email
    consent on every order."""
    from cartrescue.connectors.woocommerce import WooCommerceConnector

    return WooCommerceConnector(
        shop.base_url,
        shop.consumer_key,
        shop.consumer_secret,
        consent=["email"],
        clock=clock,
        check_stock=True,
        **options,
    )
