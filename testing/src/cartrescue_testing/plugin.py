"""The pytest plugin of ``cartrescue-testing``, loaded through the ``pytest11`` entry point.

Fixtures (each fresh per test, servers stopped afterwards):

- ``fake_shopify``: a started :class:`~cartrescue_testing.fake_shopify.FakeShopify` with no
  checkouts (``add_checkout``/``add_order`` fill it), no throttling; connect with
  ``ShopifyConnector(fake.shop, fake.token, base_url=fake.base_url)``.
- ``fake_woocommerce``: a started :class:`~cartrescue_testing.fake_woocommerce.FakeWooCommerce`
  (``add_checkout``/``add_order`` fill it); connect with its ``base_url``, ``consumer_key`` and
  ``consumer_secret``.
- ``memory_channel``: a :class:`~cartrescue_testing.memory.MemoryChannel` of kind ``"sms"``;
  every message sent is in its ``sent`` list.

A test module or ``conftest.py`` that defines a fixture of the same name overrides these.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from .memory import MemoryChannel

if TYPE_CHECKING:
    from .fake_shopify import FakeShopify
    from .fake_woocommerce import FakeWooCommerce

__all__ = ["fake_shopify", "fake_woocommerce", "memory_channel"]


@pytest.fixture
def fake_shopify() -> Iterator[FakeShopify]:
    """A fake Shopify Admin API (GraphQL and REST) on a loopback port."""
    # Imported when used: a suite that never asks for it does not load graphql-core.
    from .fake_shopify import FakeShopify

    with FakeShopify(throttle=False) as fake:
        yield fake


@pytest.fixture
def fake_woocommerce() -> Iterator[FakeWooCommerce]:
    """A fake WooCommerce REST API on a loopback port."""
    from .fake_woocommerce import FakeWooCommerce

    with FakeWooCommerce() as fake:
        yield fake


@pytest.fixture
def memory_channel() -> MemoryChannel:
    """An SMS channel that keeps what it is asked to send."""
    return MemoryChannel("sms")
