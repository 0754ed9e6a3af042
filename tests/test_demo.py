"""The demo: the bundled shop through the demo connector, and the same shop through the real
Shopify connector against FakeShopify, so the connector's code path stays exercised."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from cartrescue.clock import FrozenClock
from cartrescue.connectors.base import Connector
from cartrescue.connectors.shopify import ShopifyConnector
from cartrescue.demo import DemoConnector, demo_shop
from cartrescue.engine import Recovery, RunReport
from cartrescue.links import SelfHostedLinks
from cartrescue.store.sqlite import SQLiteStore
from cartrescue_testing import MemoryChannel
from cartrescue_testing.demo_shopify import demo_orders, demo_shopify_records
from cartrescue_testing.fake_shopify import FakeShopify

NOW = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)


def one_pass(connector: Connector, clock: FrozenClock) -> tuple[RunReport, list[str]]:
    """One pass set up as ``cartrescue demo`` sets it up; the messages, with the random
    parts (short link codes, discount codes) blanked."""
    shop = demo_shop()
    channels = [MemoryChannel(kind) for kind in ("sms", "whatsapp", "email")]
    with SQLiteStore(":memory:") as store:
        store.start_at(clock() - timedelta(days=3))
        links = SelfHostedLinks(
            "https://nordlys-design.example/r/", store, home_url=shop.home_url, clock=clock
        )
        report = Recovery(connector, channels, store, clock=clock, shop=shop, links=links).run()
    sent = [
        f"{m.key} {m.to} {m.content.subject} {m.content.text}"
        for channel in channels
        for m in channel.sent
    ]
    blanked = [re.sub(r"/r/[0-9A-Za-z]{8}|BACK10-[0-9A-F]+", "<random>", text) for text in sent]
    return report, sorted(blanked)


def test_the_real_shopify_connector_reads_the_demo_shop_as_the_demo_connector_does():
    clock = FrozenClock(NOW)
    demo_report, demo_messages = one_pass(DemoConnector(clock=clock), clock)

    shop = demo_shop()
    fake = FakeShopify(
        demo_shopify_records(clock()),
        shop="nordlys-design.myshopify.com",
        shop_name=shop.name,
        timezone=shop.timezone or "UTC",
        throttle=False,
    )
    for email, placed_at in demo_orders(clock()):
        fake.add_order(email=email, created_at=placed_at)
    with fake:
        connector = ShopifyConnector(fake.shop, fake.token, base_url=fake.base_url, clock=clock)
        shopify_report, shopify_messages = one_pass(connector, clock)
        assert fake.stats["graphql"] >= 1  # the connector really went over HTTP

    assert shopify_report.summary() == demo_report.summary()
    assert shopify_messages == demo_messages
    # The demo shows every kind of outcome; a change to the data that loses them shows here.
    assert demo_report.counts["sent"] == 4
    assert demo_report.counts["bad payload"] == 1
    assert demo_report.counts["held: quiet hours"] == 1
    assert demo_report.counts["converted elsewhere"] == 1
    assert any("Kuponkód: <random>" in text for text in demo_messages)  # step 3 made a code


def test_cartrescue_demo_loads_no_test_double_and_no_graphql():
    code = (
        "import io, sys\n"
        "from cartrescue.cli import main\n"
        "out = io.StringIO()\n"
        "assert main(['demo'], out=out) == 0, out.getvalue()\n"
        "assert 'sent: 4' in out.getvalue()\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('graphql', 'cartrescue_testing', 'pytest', '_pytest'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
