"""Test doubles for cartrescue, for its own suite and for integrators: fake Shopify and
WooCommerce servers on loopback, an in-memory channel, and the conformance kit.

Installed as the ``cartrescue-testing`` distribution, apart from the library, so production
installs carry none of it. It is a pytest plugin (:mod:`cartrescue_testing.plugin`): once
installed, the ``fake_shopify``, ``fake_woocommerce`` and ``memory_channel`` fixtures are
available in every test without an import.

The fakes are imported from their own modules (``cartrescue_testing.fake_shopify``, …) so a
test that needs only the memory channel does not load the fake Shopify's GraphQL machinery.
"""

from .memory import MemoryChannel

__all__ = ["MemoryChannel"]
