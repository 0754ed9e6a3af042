"""Channels: the Channel protocol and the built-in providers."""

from .base import Channel
from .console import ConsoleChannel

__all__ = ["Channel", "ConsoleChannel"]
