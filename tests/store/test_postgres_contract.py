"""PostgresStore passes the store conformance suite, against a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cartrescue.store import Store
from cartrescue_testing.store_contract import StoreContract


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def open_store(self, pg_url: str) -> Callable[[], Store]:
        from cartrescue.store.postgres import PostgresStore

        return lambda: PostgresStore(pg_url, hash_key=self.hash_key, max_size=4)
