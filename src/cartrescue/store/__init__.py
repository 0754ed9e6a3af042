"""Stores: the Store protocol and the embedded SQLite default."""

from .base import ConversionKind, LinkRecord, OptOut, OutboxEntry, OutboxStatus, Stats, Store
from .sqlite import SCHEMA_VERSION, SQLiteStore

__all__ = [
    "SCHEMA_VERSION",
    "ConversionKind",
    "LinkRecord",
    "OptOut",
    "OutboxEntry",
    "OutboxStatus",
    "SQLiteStore",
    "Stats",
    "Store",
]
