"""Test helpers for cartrescue and for integrators: an in-memory channel, the bundled demo
shop, and (in later modules) fake shop servers and a conformance kit."""

from .demo import DemoConnector, demo_checkouts
from .memory import MemoryChannel

__all__ = ["DemoConnector", "MemoryChannel", "demo_checkouts"]
