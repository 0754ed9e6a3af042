"""SQLiteStore passes the store conformance suite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cartrescue.store import SQLiteStore, Store
from cartrescue_testing.store_contract import StoreContract


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def open_store(self, tmp_path: Path) -> Callable[[], Store]:
        return lambda: SQLiteStore(tmp_path / "store.sqlite3", hash_key=self.hash_key)
