"""Stores: the store protocols (split by job, see :mod:`cartrescue.store.base`), the
embedded SQLite default, and ``PostgresStore`` (``cartrescue.store.postgres``, with the
``cartrescue[postgres]`` extra) for many workers."""

from .base import (
    CheckoutStore,
    ConversationEntry,
    ConversationStore,
    ConversionKind,
    LinkRecord,
    LinkStore,
    OptOut,
    OptOutStore,
    OutboxEntry,
    OutboxStatus,
    OutboxStore,
    ReportStore,
    Stats,
    Store,
)
from .sqlite import SCHEMA_VERSION, SQLiteStore

__all__ = [
    "SCHEMA_VERSION",
    "CheckoutStore",
    "ConversationEntry",
    "ConversationStore",
    "ConversionKind",
    "LinkRecord",
    "LinkStore",
    "OptOut",
    "OptOutStore",
    "OutboxEntry",
    "OutboxStatus",
    "OutboxStore",
    "ReportStore",
    "SQLiteStore",
    "Stats",
    "Store",
]
