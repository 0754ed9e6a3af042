"""The built-in connectors pass the same conformance kit an integrator's connector runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cartrescue.connectors.shopify import ShopifyConnector
from cartrescue.connectors.woocommerce import WooCommerceConnector
from cartrescue.demo import demo_checkouts
from cartrescue.models import BadCheckout
from cartrescue_testing.contracts import ConnectorContract
from cartrescue_testing.fake_shopify import FakeShopify
from cartrescue_testing.fake_woocommerce import FakeWooCommerce

NOW = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)


def _good():
    return [c for c in demo_checkouts(NOW) if not isinstance(c, BadCheckout)]


@pytest.mark.parametrize("api", ["graphql", "rest"])
class TestShopify(ConnectorContract):
    @pytest.fixture
    def connector(self, api):
        with FakeShopify.from_checkouts(_good(), throttle=False) as shop:
            yield ShopifyConnector(shop.shop, shop.token, base_url=shop.base_url, api=api)

    @pytest.fixture
    def connector_with_bad_item(self, api):
        with FakeShopify.from_checkouts(demo_checkouts(NOW), throttle=False) as shop:
            yield ShopifyConnector(shop.shop, shop.token, base_url=shop.base_url, api=api)


class TestWooCommerce(ConnectorContract):
    @pytest.fixture
    def shop(self):
        with FakeWooCommerce() as shop:
            # the fake stamps modifications with the real clock
            shop.add_sample_orders(5, start=datetime.now(UTC) - timedelta(hours=2))
            yield shop

    @pytest.fixture
    def connector(self, shop):
        return WooCommerceConnector(
            shop.base_url, shop.consumer_key, shop.consumer_secret, consent=["email"]
        )

    # Unmappable orders are covered by tests/connectors/test_woocommerce.py: the fake
    # refuses to store one, as WooCommerce does.
