"""A real PostgreSQL for the store tests: one database made for the session and dropped after
it, one schema per test.

The server is the one on 127.0.0.1:5432 (user ``postgres``), or the admin URL in
``CARTRESCUE_TEST_PG_URL``. When it does not answer the tests skip, saying how to run them,
unless ``CARTRESCUE_REQUIRE_SERVICES=1`` (CI) turns that into a failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

PG_URL = os.environ.get("CARTRESCUE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _unavailable(reason: str) -> None:
    message = (
        f"PostgreSQL is not reachable ({reason}); start it (bash .ci/services starts it) or set "
        "CARTRESCUE_TEST_PG_URL to an admin URL if it is not on 127.0.0.1:5432"
    )
    if os.environ.get("CARTRESCUE_REQUIRE_SERVICES") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The conninfo of a database made for this session (dropped afterwards)."""
    try:
        import psycopg
        from psycopg import sql
        from psycopg.conninfo import make_conninfo
    except ImportError:
        _unavailable("psycopg is not installed: pip install -e '.[postgres]'")
        raise
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        _unavailable(str(err).strip().splitlines()[0])
        raise
    name = f"cartrescue_test_{os.getpid()}_{secrets.token_hex(4)}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield make_conninfo(PG_URL, dbname=name)
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """A conninfo whose tables land in a schema of their own, for one test."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield make_conninfo(pg_database, options=f"-c search_path={schema}")
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
