"""The server store: PostgreSQL, for many workers on many hosts (``cartrescue[postgres]``).

The same promises as :class:`~cartrescue.store.sqlite.SQLiteStore`, held by the server
instead of a file lock:

- **A claim is atomic.** :meth:`PostgresStore.claim` is one ``INSERT … ON CONFLICT`` on the
  outbox key that returns a row only when this call took the key (new, or released for retry);
  a second worker's insert waits on the key's unique index and then finds it taken.
- **The frequency cap holds across workers.** Before the insert, the claim takes a
  transaction-scoped advisory lock on a hash of each contact (in a fixed order, so two claims
  never deadlock), then checks the cap and inserts in a statement that starts after the lock
  was granted. Two workers messaging one person at once are serialised on that person only;
  the lock needs no row to exist (a first message has none to ``SELECT … FOR UPDATE``), leaves
  no row naming the contact behind, and is released by the commit.
- **Migrations are versioned and run forward**: plain SQL files in ``pg_migrations/``
  (``NNNN_name.sql``), applied in order inside one transaction under an advisory lock, each
  recorded in ``cartrescue_schema``. A database written by a newer cartrescue is refused.
  Plain files, not a migration tool: the schema is a dozen tables owned by this module alone,
  the files read as the schema itself, and the library keeps no ORM dependency for them.
- **forget erases every row** naming the contact in one transaction; an opt-out survives as a
  hash keyed with the operator's secret (``hash_key``), as in SQLite. Deleted rows stay in
  PostgreSQL's dead tuples until (auto)vacuum reclaims them, and in WAL and backups for as
  long as those are kept.

Every row carries the shop (``shop``, ``""`` by default) at the head of every key, so one
database serves many shops and one handle sees only its own.

Threads share one handle: every call takes its own connection from a pool (psycopg_pool),
in autocommit mode, and a write that needs more than one statement runs in one transaction.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from typing import Any, cast

import psycopg
from psycopg import sql as pgsql
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import BadPayloadError, StoreError
from ..models import Checkout, Purchase
from ._signals import COUNTS, RANK, counts_from
from .base import (
    RELEASED,
    AttributionWindows,
    ConversationEntry,
    ConversionKind,
    Histories,
    LinkRecord,
    LookAgain,
    OptOut,
    OutboxEntry,
    OutboxStatus,
    ReportFacts,
    Signal,
    SignalCounts,
    SignalOutcome,
    Stats,
    Unchanged,
)
from .sqlite import DELIVERY_MEMORY, _contact_forms, _facts, _window_cases

log = logging.getLogger("cartrescue.store")
__all__ = ["PostgresStore", "migrations"]

_SENT_LIKE = ["claimed", "sent", "unknown"]
# Tables whose rows belong to one checkout, and the column that names it.
_BY_CHECKOUT = (
    ("checkouts", "id"),
    ("skipped_steps", "checkout_id"),
    ("conversions", "checkout_id"),
    ("events", "checkout_id"),
    ("links", "checkout_id"),
    ("clicks", "checkout_id"),
    ("assignments", "checkout_id"),
    ("conversation", "checkout_id"),
    ("pauses", "checkout_id"),
    ("reasons", "checkout_id"),
    ("bad_checkouts", "id"),
)
# The frequency cap's locks: one per contact, taken in the order given (sorted keys), held
# until the claim's transaction ends.
_LOCK_SQL = (
    "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) WITH ORDINALITY AS t(k, n)"
    " ORDER BY n"
)
# The cap check and the insert are one statement, whose snapshot is taken after the locks
# were granted: it sees every claim committed before. A row comes back only when this call
# took the key: new, or released for retry; touches record who was messaged, for the cap.
_CLAIM_SQL = (
    "WITH ins AS ("
    " INSERT INTO outbox AS o (shop, key, checkout_id, step, channel, recipient,"
    "  status, run_id, claimed_at, experiment, arm)"
    " SELECT %(shop)s, %(key)s, %(checkout_id)s, %(step)s, %(channel)s,"
    "  %(recipient)s, 'claimed', %(run_id)s, %(at)s, a.experiment, a.arm"
    # The entry carries the arm of the A/B test covering its step, for the report.
    " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT experiment, arm FROM assignments"
    "  WHERE shop = %(shop)s AND checkout_id = %(checkout_id)s AND experiment <> 'holdout'"
    "  AND (step IS NULL OR step = %(step)s) ORDER BY at DESC, experiment LIMIT 1) a ON true"
    " WHERE NOT %(capped)s OR NOT EXISTS ("
    "  SELECT 1 FROM touches t JOIN outbox x ON x.shop = t.shop AND x.key = t.key"
    "  WHERE t.shop = %(shop)s AND t.contact = ANY(%(contacts)s::text[])"
    "  AND t.at >= %(cap_since)s AND x.status = ANY(%(sent_like)s::text[]))"
    " ON CONFLICT (shop, key) DO UPDATE SET status = 'claimed',"
    "  attempts = o.attempts + 1, run_id = excluded.run_id,"
    "  claimed_at = excluded.claimed_at, finished_at = NULL, error = NULL,"
    "  provider_id = NULL, experiment = excluded.experiment, arm = excluded.arm"
    " WHERE o.status = ANY(%(released)s::text[])"
    " RETURNING o.key),"
    " touched AS ("
    " INSERT INTO touches (shop, contact, key, at)"
    " SELECT %(shop)s, c, ins.key, %(at)s FROM ins, unnest(%(contacts)s::text[]) c"
    " ON CONFLICT (shop, contact, key) DO UPDATE SET at = excluded.at)"
    " SELECT count(*) FROM ins"
)
# A page of checkouts from arrays, one row each. An older version (a late webhook, a
# re-poll) never overwrites a newer one; a version that does drops the look-again time.
_UPSERT_SQL = (
    "INSERT INTO checkouts (shop, id, data, email, phone, abandoned_at, updated_at,"
    " first_seen, last_seen)"
    " SELECT %s, i, d, e, p, a, u, %s::timestamptz, %s::timestamptz"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[],"
    "  %s::timestamptz[]) WITH ORDINALITY AS t(i, d, e, p, a, u, n) ORDER BY n"
    " ON CONFLICT (shop, id) DO UPDATE SET data = excluded.data,"
    " email = excluded.email, phone = excluded.phone,"
    " abandoned_at = excluded.abandoned_at, updated_at = excluded.updated_at,"
    " last_seen = excluded.last_seen, look_at = NULL, look_token = NULL"
    " WHERE checkouts.updated_at <= excluded.updated_at"
)
# pg_advisory_xact_lock key for migrations: "cartresc" as a big-endian integer.
_MIGRATION_LOCK = int.from_bytes(b"cartresc", "big", signed=True)


def migrations() -> list[tuple[int, str, str]]:
    """The schema's migrations as (version, name, SQL), oldest first."""
    found = []
    for entry in (
        resources.files(__package__ or "cartrescue.store").joinpath("pg_migrations").iterdir()
    ):
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort()
    if [v for v, _, _ in found] != list(range(1, len(found) + 1)):
        raise StoreError("the PostgreSQL migrations are not numbered 0001, 0002, … without gaps")
    return found


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("store times must be timezone-aware")
    return value


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _lower(contacts: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(c.lower() for c in contacts if c))


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET TIME ZONE 'UTC'")


class PostgresStore:
    """A :class:`~cartrescue.store.base.Store` in a PostgreSQL database.

    ``url`` is a libpq connection string or URL (``postgresql://user@host/db``). ``shop``
    names the shop whose rows this handle reads and writes. ``max_size`` bounds the pool:
    one connection per thread that uses the store at once. Opening migrates the schema
    forward; :class:`~cartrescue.errors.StoreError` when the server cannot be reached within
    ``timeout`` seconds or its schema is newer than this cartrescue.
    """

    def __init__(
        self,
        url: str,
        *,
        shop: str = "",
        hash_key: str | bytes | None = None,
        min_size: int = 1,
        max_size: int = 8,
        timeout: float = 30.0,
    ) -> None:
        self.shop = shop
        self._key = hash_key.encode() if isinstance(hash_key, str) else hash_key
        self._where = _redacted(url)
        try:
            # One direct connection first: its error says why (refused, no such database,
            # authentication), where the pool would only time out.
            psycopg.connect(url, connect_timeout=max(1, int(timeout))).close()
        except psycopg.Error as err:
            reason = _redacted(str(err).strip().splitlines()[0] if str(err).strip() else "")
            raise StoreError(f"cannot connect to the store {self._where}: {reason}") from None
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max(min_size, max_size),
            timeout=timeout,
            kwargs={"autocommit": True},
            configure=_configure,
            open=False,
            name="cartrescue",
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except PoolTimeout as err:
            self._pool.close()
            raise StoreError(f"cannot connect to the store {self._where}: {err}") from None
        self._owns_pool = True
        try:
            self._migrate()
            self._salt = self._meta("salt") or ""
        except BaseException:
            self._pool.close()
            raise

    def for_shop(self, shop: str) -> PostgresStore:
        """A handle on another shop's rows in the same database, sharing this handle's pool
        and hash key. Closing it closes nothing: the pool closes with this handle."""
        other = copy.copy(self)
        other.shop = shop
        other._owns_pool = False
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (shop, key, value) VALUES (%s, 'salt', %s)"
                " ON CONFLICT (shop, key) DO NOTHING",
                (shop, secrets.token_hex(16)),
            )
        other._salt = other._meta("salt") or ""
        return other

    # -- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction on one pooled connection."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield conn
        except (psycopg.Error, PoolTimeout) as err:
            raise StoreError(f"store {self._where}: {err}") from err

    def _query(
        self, sql: str, params: Sequence[object] | Mapping[str, object] = ()
    ) -> list[tuple[Any, ...]]:
        try:
            with self._pool.connection() as conn:
                return conn.execute(sql, params).fetchall()
        except (psycopg.Error, PoolTimeout) as err:
            raise StoreError(f"store {self._where}: {err}") from err

    def _run(self, sql: str, params: Sequence[object] = ()) -> int:
        """One statement in its own (implicit) transaction; the rows it changed."""
        try:
            with self._pool.connection() as conn:
                return conn.execute(sql, params).rowcount
        except (psycopg.Error, PoolTimeout) as err:
            raise StoreError(f"store {self._where}: {err}") from err

    def _migrate(self) -> None:
        steps = migrations()
        with self._tx() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            db.execute(
                "CREATE TABLE IF NOT EXISTS cartrescue_schema (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            row = db.execute("SELECT coalesce(max(version), 0) FROM cartrescue_schema").fetchone()
            version = int(row[0]) if row else 0
            if version > len(steps):
                raise StoreError(
                    f"store {self._where} has schema version {version}, newer than this "
                    f"cartrescue understands ({len(steps)}); upgrade cartrescue"
                )
            for number, name, sql in steps[version:]:
                db.execute(cast(Any, sql))
                db.execute(
                    "INSERT INTO cartrescue_schema (version, name) VALUES (%s, %s)", (number, name)
                )
            db.execute(
                "INSERT INTO meta (shop, key, value) VALUES (%s, 'salt', %s)"
                " ON CONFLICT (shop, key) DO NOTHING",
                (self.shop, secrets.token_hex(16)),
            )

    def _meta_once(self, key: str, value: str) -> str:
        """The shop's ``key``, set to ``value`` by the first caller ever. Two statements: a
        conflicting insert committed by another process after this statement's snapshot is
        not visible to it, but is to the next one."""
        rows = self._query(
            "INSERT INTO meta (shop, key, value) VALUES (%s, %s, %s)"
            " ON CONFLICT (shop, key) DO NOTHING RETURNING value",
            (self.shop, key, value),
        )
        return str(rows[0][0]) if rows else self._meta(key) or value

    def _meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE shop = %s AND key = %s", (self.shop, key))
        return str(rows[0][0]) if rows else None

    def schema_version(self) -> int:
        return int(self._query("SELECT coalesce(max(version), 0) FROM cartrescue_schema")[0][0])

    def ping(self) -> None:
        """Raise :class:`StoreError` unless the server answers a query."""
        self._query("SELECT 1")

    @property
    def pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        """The connection pool (for its stats and health checks)."""
        return self._pool

    def close(self) -> None:
        if self._owns_pool:
            self._pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- passes -----------------------------------------------------------------------------
    def begin_run(self, at: datetime) -> int:
        rows = self._query(
            "INSERT INTO runs (shop, started_at) VALUES (%s, %s) RETURNING id",
            (self.shop, _aware(at)),
        )
        return int(rows[0][0])

    def finish_run(
        self, run_id: int, at: datetime, counts: Mapping[str, int], error: str | None
    ) -> None:
        self._run(
            "UPDATE runs SET finished_at = %s, counts = %s, error = %s WHERE shop = %s AND id = %s",
            (_aware(at), json.dumps(dict(counts), sort_keys=True), error, self.shop, run_id),
        )

    def start_at(self, default: datetime) -> datetime:
        return datetime.fromisoformat(
            self._meta_once("start_at", _aware(default).astimezone(UTC).isoformat())
        )

    def watermark(self, connector: str) -> datetime | None:
        rows = self._query(
            "SELECT at FROM watermarks WHERE shop = %s AND connector = %s", (self.shop, connector)
        )
        return _utc(rows[0][0]) if rows else None

    def set_watermark(self, connector: str, at: datetime) -> None:
        self._run(
            "INSERT INTO watermarks (shop, connector, at) VALUES (%s, %s, %s)"
            " ON CONFLICT (shop, connector) DO UPDATE SET at = excluded.at",
            (self.shop, connector, _aware(at)),
        )

    # -- checkouts --------------------------------------------------------------------------
    def upsert_checkout(self, checkout: Checkout, at: datetime) -> None:
        self.upsert_checkouts([checkout], at)

    def upsert_checkouts(self, checkouts: Sequence[Checkout], at: datetime) -> dict[str, str]:
        """The page in one statement and one round trip: ``BEGIN``, the upsert of every row
        (from arrays), the bad-payload marks dropped, the statuses read and ``COMMIT`` go in
        one pipeline."""
        newest: dict[str, Checkout] = {}
        for checkout in checkouts:
            # One row per id in the statement (ON CONFLICT cannot touch a row twice): the
            # version a one-by-one upsert would leave, the last of the newest.
            kept = newest.get(checkout.id)
            if kept is None or _aware(kept.updated_at) <= _aware(checkout.updated_at):
                newest[checkout.id] = checkout
        if not newest:
            return {}
        columns: tuple[list[Any], ...] = ([], [], [], [], [], [])
        # Rows go in in id order, whose locks two processes' overlapping pages then take in
        # the same order: they wait for each other, never deadlock.
        for checkout_id in sorted(newest):
            checkout = newest[checkout_id]
            customer = checkout.customer
            row = (
                checkout.id,
                json.dumps(checkout.to_dict(), sort_keys=True),
                customer.email.lower() if customer and customer.email else None,
                customer.phone if customer else None,
                _aware(checkout.abandoned_at),
                _aware(checkout.updated_at),
            )
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        ids = columns[0]
        try:
            with self._pool.connection() as db:
                with db.pipeline():
                    db.execute("BEGIN")
                    db.execute(_UPSERT_SQL, (self.shop, _aware(at), _aware(at), *columns))
                    db.execute(
                        "DELETE FROM bad_checkouts WHERE shop = %s AND id = ANY(%s::text[])",
                        (self.shop, ids),
                    )
                    found = db.execute(
                        "SELECT id, status FROM checkouts WHERE shop = %s AND id = ANY(%s::text[])",
                        (self.shop, ids),
                    )
                    db.execute("COMMIT")
                rows = found.fetchall()
        except (psycopg.Error, PoolTimeout) as err:
            raise StoreError(f"store {self._where}: {err}") from err
        return {str(r[0]): str(r[1]) for r in rows}

    def histories(self, checkout_ids: Sequence[str], contacts: Sequence[str]) -> Histories:
        """A page's histories in one round trip: a query per kind of fact, for every
        checkout and contact of the page at once, sent together in one pipeline."""
        ids = list(dict.fromkeys(checkout_ids))
        contacts = _lower(contacts)
        hashes = {h: c for c in contacts for h in self._hashes(c)}
        shop = self.shop
        try:
            with self._pool.connection() as db:
                with db.pipeline():
                    outbox = db.execute(
                        "SELECT checkout_id, step, channel, status FROM outbox"
                        " WHERE shop = %s AND checkout_id = ANY(%s::text[])"
                        " ORDER BY claimed_at, key",
                        (shop, ids),
                    )
                    skips = db.execute(
                        "SELECT checkout_id, step FROM skipped_steps"
                        " WHERE shop = %s AND checkout_id = ANY(%s::text[])",
                        (shop, ids),
                    )
                    touches = db.execute(
                        "SELECT t.contact, max(t.at) FROM touches t"
                        " JOIN outbox o ON o.shop = t.shop AND o.key = t.key"
                        " WHERE t.shop = %s AND t.contact = ANY(%s::text[])"
                        " AND o.status = ANY(%s::text[]) GROUP BY t.contact",
                        (shop, contacts, _SENT_LIKE),
                    )
                    given = db.execute(
                        "SELECT contact, max(at) FROM discounts"
                        " WHERE shop = %s AND contact = ANY(%s::text[]) GROUP BY contact",
                        (shop, contacts),
                    )
                    opted = db.execute(
                        "SELECT contact, channel, false FROM optouts"
                        " WHERE shop = %s AND contact = ANY(%s::text[])"
                        " UNION ALL SELECT hash, channel, true FROM optout_hashes"
                        " WHERE shop = %s AND hash = ANY(%s::text[])",
                        (shop, contacts, shop, list(hashes)),
                    )
                results = (
                    outbox.fetchall(),
                    skips.fetchall(),
                    touches.fetchall(),
                    given.fetchall(),
                    opted.fetchall(),
                )
        except (psycopg.Error, PoolTimeout) as err:
            raise StoreError(f"store {self._where}: {err}") from err
        outbox_rows, skip_rows, touch_rows, discount_rows, optout_rows = results
        steps: dict[str, list[tuple[int, str, OutboxStatus]]] = {}
        for checkout_id, step, channel, status in outbox_rows:
            steps.setdefault(str(checkout_id), []).append(
                (int(step), str(channel), cast(OutboxStatus, str(status)))
            )
        skipped: dict[str, set[int]] = {}
        for checkout_id, step in skip_rows:
            skipped.setdefault(str(checkout_id), set()).add(int(step))
        optouts: dict[str, set[str]] = {}
        for name, channel, hashed in optout_rows:
            # A hashed opt-out comes back as its hash: the contact it was looked up for.
            contact = hashes[str(name)] if hashed else str(name)
            optouts.setdefault(contact, set()).add(str(channel))
        return Histories(
            steps={k: tuple(v) for k, v in steps.items()},
            skipped={k: frozenset(v) for k, v in skipped.items()},
            last_contacted={str(c): at.astimezone(UTC) for c, at in touch_rows},
            last_discount={str(c): at.astimezone(UTC) for c, at in discount_rows},
            optouts={k: frozenset(v) for k, v in optouts.items()},
        )

    def record_delivery(self, source: str, delivery_id: str, at: datetime) -> bool:
        with self._tx() as db:
            db.execute(
                "DELETE FROM deliveries WHERE shop = %s AND at < %s",
                (self.shop, _aware(at - DELIVERY_MEMORY)),
            )
            inserted = db.execute(
                "INSERT INTO deliveries (shop, source, id, at) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (shop, source, id) DO NOTHING",
                (self.shop, source, delivery_id, _aware(at)),
            ).rowcount
        return bool(inserted)

    def record_bad_checkout(self, checkout_id: str, reason: str, at: datetime) -> None:
        self._run(
            "INSERT INTO bad_checkouts (shop, id, reason, at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (shop, id) DO UPDATE SET reason = excluded.reason, at = excluded.at",
            (self.shop, checkout_id, reason, _aware(at)),
        )

    def bad_checkouts(self) -> list[tuple[str, str]]:
        rows = self._query(
            "SELECT id, reason FROM bad_checkouts WHERE shop = %s ORDER BY at", (self.shop,)
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    def active_checkouts(self, abandoned_after: datetime) -> Iterator[Checkout]:
        for item in self._open_checkouts(abandoned_after, None, "", ""):
            assert isinstance(item, Checkout)
            yield item

    def checkouts_to_decide(
        self, abandoned_after: datetime, now: datetime, config: str, token: str
    ) -> Iterator[Checkout | Unchanged]:
        return self._open_checkouts(abandoned_after, _aware(now), config, token)

    def _open_checkouts(
        self, abandoned_after: datetime, now: datetime | None, config: str, token: str
    ) -> Iterator[Checkout | Unchanged]:
        rows = self._query(
            "SELECT id, CASE WHEN look_at > %s AND look_config = %s THEN NULL ELSE data END,"
            " look_count FROM checkouts WHERE shop = %s AND status = 'open'"
            " AND look_token IS DISTINCT FROM %s AND abandoned_at >= %s"
            " ORDER BY abandoned_at, id",
            (now, config, self.shop, token, _aware(abandoned_after)),
        )
        for checkout_id, data, count in rows:
            if data is None:
                yield Unchanged(str(checkout_id), str(count))
                continue
            try:
                yield Checkout.from_dict(json.loads(str(data)))
            except (BadPayloadError, ValueError, RecursionError) as err:
                # As in SQLite: a row that no longer reads is a bad payload, not a stopped pass.
                reason = f"stored data cannot be read: {' '.join(str(err).split())[:200]}"
                log.warning("store: checkout %s skipped, %s", checkout_id, reason)
                now = datetime.now(UTC)
                self.record_bad_checkout(str(checkout_id), reason, now)
                self.close_checkout(str(checkout_id), "stopped", "bad payload", now)

    def arm_look_again(self, checkout_ids: Sequence[str], token: str) -> None:
        self._run(
            "UPDATE checkouts SET look_token = %s WHERE shop = %s AND id = ANY(%s::text[])",
            (token, self.shop, list(checkout_ids)),
        )

    def set_look_again(self, entries: Sequence[LookAgain], config: str, token: str) -> None:
        keys = sorted({e.key for e in entries if e.key})
        with self._tx() as db:
            # The keys' rows are locked first: a finish that would drop a time waits until
            # this transaction ends (and its trigger then drops it), or has already
            # committed (and the status below sees it).
            sent = {
                str(r[0])
                for r in db.execute(
                    "SELECT key FROM outbox WHERE shop = %s AND key = ANY(%s::text[])"
                    " AND status = ANY(%s::text[]) ORDER BY key FOR SHARE",
                    (self.shop, keys, _SENT_LIKE),
                ).fetchall()
            }
            rows = [
                (_aware(e.at), e.count, config, self.shop, e.checkout_id, token)
                for e in entries
                if e.key is None or e.key in sent
            ]
            with db.cursor() as cur:
                cur.executemany(
                    "UPDATE checkouts SET look_at = %s, look_count = %s, look_config = %s"
                    " WHERE shop = %s AND id = %s AND look_token = %s",
                    rows,
                )

    def checkout(self, checkout_id: str) -> Checkout | None:
        rows = self._query(
            "SELECT data FROM checkouts WHERE shop = %s AND id = %s", (self.shop, checkout_id)
        )
        return Checkout.from_dict(json.loads(str(rows[0][0]))) if rows else None

    def checkout_status(self, checkout_id: str) -> str | None:
        rows = self._query(
            "SELECT status FROM checkouts WHERE shop = %s AND id = %s", (self.shop, checkout_id)
        )
        return str(rows[0][0]) if rows else None

    def close_checkout(self, checkout_id: str, status: str, reason: str, at: datetime) -> None:
        # A checkout whose steps are all done can still convert later.
        self._run(
            "UPDATE checkouts SET status = %s, reason = %s, closed_at = %s"
            " WHERE shop = %s AND id = %s"
            " AND (status = 'open' OR (status = 'done' AND %s LIKE 'converted%%'))",
            (status, reason, _aware(at), self.shop, checkout_id, status),
        )

    # -- outbox -----------------------------------------------------------------------------
    def outbox_for(self, checkout_id: str) -> list[OutboxEntry]:
        rows = self._query(
            "SELECT key, checkout_id, step, channel, status, claimed_at, finished_at, error"
            " FROM outbox WHERE shop = %s AND checkout_id = %s ORDER BY claimed_at, key",
            (self.shop, checkout_id),
        )
        return [
            OutboxEntry(
                key=str(r[0]),
                checkout_id=str(r[1]),
                step=int(r[2]),
                channel=str(r[3]),
                status=cast(OutboxStatus, str(r[4])),
                claimed_at=r[5].astimezone(UTC),
                finished_at=_utc(r[6]),
                error=None if r[7] is None else str(r[7]),
            )
            for r in rows
        ]

    def skipped_steps(self, checkout_id: str) -> set[int]:
        rows = self._query(
            "SELECT step FROM skipped_steps WHERE shop = %s AND checkout_id = %s",
            (self.shop, checkout_id),
        )
        return {int(r[0]) for r in rows}

    def skip_step(self, checkout_id: str, step: int, reason: str, at: datetime) -> None:
        self._run(
            "INSERT INTO skipped_steps (shop, checkout_id, step, reason, at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (self.shop, checkout_id, step, reason, _aware(at)),
        )

    def _lock_keys(self, contacts: Sequence[str]) -> list[int]:
        """64-bit advisory lock keys for the contacts of this shop, sorted: every claim
        takes its locks in the same order, so two claims cannot deadlock."""
        keys = {
            int.from_bytes(
                hashlib.blake2b(f"{self.shop}\0{c}".encode(), digest_size=8).digest(),
                "big",
                signed=True,
            )
            for c in contacts
        }
        return sorted(keys)

    def claim(
        self,
        key: str,
        *,
        checkout_id: str,
        step: int,
        channel: str,
        recipient: str,
        contacts: Sequence[str],
        at: datetime,
        cap_since: datetime | None,
        run_id: int | None,
    ) -> bool:
        contacts = _lower(contacts)
        capped = cap_since is not None and bool(contacts)
        params = {
            "shop": self.shop,
            "key": key,
            "checkout_id": checkout_id,
            "step": step,
            "channel": channel,
            "recipient": recipient,
            "run_id": run_id,
            "at": _aware(at),
            "capped": capped,
            "contacts": contacts,
            "cap_since": cap_since,
            "sent_like": _SENT_LIKE,
            "released": list(RELEASED),
        }
        # One round trip: BEGIN, the locks, the claim and COMMIT go in one pipeline and the
        # server answers them together. On an error the transaction is left failed and the
        # pool rolls the connection back when it is returned.
        try:
            with self._pool.connection() as db:
                with db.pipeline():
                    db.execute("BEGIN")
                    if capped:
                        db.execute(_LOCK_SQL, (self._lock_keys(contacts),))
                    taken = db.execute(_CLAIM_SQL, params)
                    db.execute("COMMIT")
                row = taken.fetchone()
        except (psycopg.Error, PoolTimeout) as err:
            raise StoreError(f"store {self._where}: {err}") from err
        return bool(row and row[0] == 1)

    def finish(
        self,
        key: str,
        status: OutboxStatus,
        at: datetime,
        *,
        provider_id: str | None = None,
        error: str | None = None,
    ) -> None:
        self._run(
            "UPDATE outbox SET status = %s, finished_at = %s, provider_id = %s, error = %s"
            " WHERE shop = %s AND key = %s",
            (status, _aware(at), provider_id, error, self.shop, key),
        )

    def record_signal(self, provider_id: str, signal: Signal, at: datetime) -> SignalOutcome:
        with self._tx() as db:
            moved = db.execute(
                cast(
                    Any,
                    "UPDATE outbox SET signal = %s, signal_at = %s"
                    f" WHERE shop = %s AND provider_id = %s AND {RANK} < %s",
                ),
                (signal.value, _aware(at), self.shop, provider_id, signal.rank),
            ).rowcount
            if moved:
                return SignalOutcome.RECORDED
            known = db.execute(
                "SELECT 1 FROM outbox WHERE shop = %s AND provider_id = %s LIMIT 1",
                (self.shop, provider_id),
            ).fetchone()
        return SignalOutcome.UNCHANGED if known else SignalOutcome.UNKNOWN

    def signal_counts(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, SignalCounts]:
        if since is None or until is None:
            return counts_from(
                self._query(COUNTS.format(join="", where=" AND o.shop = %s"), (self.shop,))
            )
        return counts_from(
            self._query(
                COUNTS.format(
                    join=" JOIN checkouts c ON c.shop = o.shop AND c.id = o.checkout_id",
                    where=" AND o.shop = %s AND c.abandoned_at >= %s AND c.abandoned_at < %s",
                ),
                (self.shop, _aware(since), _aware(until)),
            )
        )

    def last_contacted(self, contacts: Sequence[str]) -> datetime | None:
        contacts = _lower(contacts)
        if not contacts:
            return None
        rows = self._query(
            "SELECT max(t.at) FROM touches t JOIN outbox o ON o.shop = t.shop AND o.key = t.key"
            " WHERE t.shop = %s AND t.contact = ANY(%s::text[]) AND o.status = ANY(%s::text[])",
            (self.shop, contacts, _SENT_LIKE),
        )
        return _utc(rows[0][0])

    def record_discount(
        self, checkout_id: str, contacts: Sequence[str], code: str, at: datetime
    ) -> None:
        self._run(
            "INSERT INTO discounts (shop, contact, checkout_id, code, at)"
            " SELECT %s, c, %s, %s, %s FROM unnest(%s::text[]) c",
            (self.shop, checkout_id, code, _aware(at), _lower(contacts)),
        )

    def last_discount(self, contacts: Sequence[str]) -> datetime | None:
        contacts = _lower(contacts)
        if not contacts:
            return None
        rows = self._query(
            "SELECT max(at) FROM discounts WHERE shop = %s AND contact = ANY(%s::text[])",
            (self.shop, contacts),
        )
        return _utc(rows[0][0])

    # -- opt-outs ---------------------------------------------------------------------------
    @property
    def keyed(self) -> bool:
        """True when opt-out hashes are keyed with a secret kept outside the database."""
        return bool(self._key)

    def _hashes(self, contact: str) -> list[str]:
        """The hashes a forgotten opt-out of ``contact`` may be kept under: first the one
        written now (an HMAC keyed with the operator's secret, ``hmac:`` prefix, or without
        a key a hash salted with a salt kept in the database), then the salted one, still
        honoured after a key is configured."""
        salted = hashlib.sha256(f"{self._salt}:{contact.lower()}".encode()).hexdigest()
        if not self._key:
            return [salted]
        digest = hmac.new(self._key, contact.lower().encode(), hashlib.sha256).hexdigest()
        return [f"hmac:{digest}", salted]

    def add_optout(self, contact: str, channel: str, source: str, at: datetime) -> None:
        self._run(
            "INSERT INTO optouts (shop, contact, channel, source, at) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (shop, contact, channel) DO UPDATE SET source = excluded.source,"
            " at = excluded.at",
            (self.shop, contact.lower(), channel, source, _aware(at)),
        )

    def remove_optout(self, contact: str, channel: str = "*") -> int:
        every = channel == "*"
        with self._tx() as db:
            removed = db.execute(
                "DELETE FROM optouts WHERE shop = %s AND contact = %s AND (%s OR channel = %s)",
                (self.shop, contact.lower(), every, channel),
            ).rowcount
            removed += db.execute(
                "DELETE FROM optout_hashes WHERE shop = %s AND hash = ANY(%s::text[])"
                " AND (%s OR channel = %s)",
                (self.shop, self._hashes(contact), every, channel),
            ).rowcount
            return removed

    def optouts_for(self, contacts: Sequence[str]) -> set[str]:
        contacts = _lower(contacts)
        if not contacts:
            return set()
        hashes = [h for c in contacts for h in self._hashes(c)]
        rows = self._query(
            "SELECT channel FROM optouts WHERE shop = %s AND contact = ANY(%s::text[])"
            " UNION SELECT channel FROM optout_hashes WHERE shop = %s AND hash = ANY(%s::text[])",
            (self.shop, contacts, self.shop, hashes),
        )
        return {str(r[0]) for r in rows}

    def list_optouts(self, channel: str | None = None) -> list[OptOut]:
        where, params = "", [self.shop]
        if channel not in (None, "*"):
            where, params = " AND channel IN (%s, '*')", [self.shop, str(channel)]
        rows = self._query(
            "SELECT contact, channel, source, at FROM optouts WHERE shop = %s"
            + where
            + " ORDER BY at, contact",
            params,
        )
        return [OptOut(str(r[0]), str(r[1]), str(r[2]), r[3].astimezone(UTC)) for r in rows]

    # -- outcomes ---------------------------------------------------------------------------
    def record_conversion(
        self,
        checkout_id: str,
        kind: ConversionKind,
        purchase: Purchase | None,
        at: datetime,
        attribution_since: datetime,
    ) -> str | None:
        window = (self.shop, checkout_id, _aware(attribution_since), _aware(at))
        with self._tx() as db:
            # The message whose link was clicked last wins; else the last message sent.
            row = (
                db.execute(
                    "SELECT o.key FROM clicks c JOIN outbox o ON o.shop = c.shop"
                    " AND o.checkout_id = c.checkout_id AND o.step = c.step"
                    " AND o.channel = c.channel"
                    " WHERE c.shop = %s AND c.checkout_id = %s AND c.at >= %s AND c.at <= %s"
                    " AND o.status IN ('sent', 'unknown') ORDER BY c.at DESC, c.id DESC LIMIT 1",
                    window,
                ).fetchone()
                or db.execute(
                    "SELECT key FROM outbox WHERE shop = %s AND checkout_id = %s"
                    " AND status IN ('sent', 'unknown') AND claimed_at >= %s"
                    " AND claimed_at <= %s ORDER BY claimed_at DESC LIMIT 1",
                    window,
                ).fetchone()
            )
            key = str(row[0]) if row else None
            db.execute(
                "INSERT INTO conversions (shop, checkout_id, kind, order_id, total, currency,"
                " at, attributed_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (
                    self.shop,
                    checkout_id,
                    kind,
                    purchase.order_id if purchase else None,
                    str(purchase.total) if purchase and purchase.total is not None else None,
                    purchase.currency if purchase else None,
                    _aware(at),
                    key,
                ),
            )
            return key

    def record_event(
        self,
        kind: str,
        at: datetime,
        *,
        checkout_id: str | None = None,
        step: int | None = None,
        channel: str | None = None,
        detail: str | None = None,
    ) -> None:
        self._run(
            "INSERT INTO events (shop, at, kind, checkout_id, step, channel, detail)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (self.shop, _aware(at), kind, checkout_id, step, channel, detail),
        )

    def events(self, checkout_id: str | None = None) -> list[tuple[str, str | None]]:
        """(kind, detail) of recorded events, oldest first; for one checkout if given."""
        rows = self._query(
            "SELECT kind, detail FROM events WHERE shop = %s"
            " AND (%s::text IS NULL OR checkout_id = %s) ORDER BY id",
            (self.shop, checkout_id, checkout_id),
        )
        return [(str(r[0]), None if r[1] is None else str(r[1])) for r in rows]

    def stats(self, now: datetime) -> Stats:
        shop = (self.shop,)
        by_status = {
            str(s): int(n)
            for s, n in self._query(
                "SELECT status, count(*) FROM checkouts WHERE shop = %s GROUP BY status", shop
            )
        }
        messages: Counter[tuple[int, str, str]] = Counter()
        for step, channel, status, n in self._query(
            "SELECT step, channel, status, count(*) FROM outbox WHERE shop = %s"
            " GROUP BY step, channel, status",
            shop,
        ):
            shown = "unknown" if status == "claimed" else str(status)
            messages[(int(step), str(channel), shown)] += int(n)
        counts = self._query(
            "SELECT"
            " (SELECT count(DISTINCT checkout_id) FROM outbox WHERE shop = %(s)s"
            "  AND status IN ('sent', 'unknown', 'claimed')),"
            " (SELECT count(*) FROM clicks WHERE shop = %(s)s),"
            " (SELECT count(*) FROM optouts WHERE shop = %(s)s),"
            " (SELECT count(*) FROM bad_checkouts WHERE shop = %(s)s),"
            " (SELECT max(finished_at) FROM runs WHERE shop = %(s)s"
            "  AND finished_at IS NOT NULL AND error IS NULL),"
            " (SELECT count(*) FROM runs WHERE shop = %(s)s"
            "  AND finished_at IS NOT NULL AND error IS NULL),"
            " (SELECT count(*) FROM outbox WHERE shop = %(s)s AND status = 'not_rendered')",
            {"s": self.shop},
        )[0]
        messaged, clicks, opt_outs, bad, last_done, passes_completed, not_rendered = counts
        conversions = {
            str(k): int(n)
            for k, n in self._query(
                "SELECT kind, count(*) FROM conversions WHERE shop = %s GROUP BY kind", shop
            )
        }
        revenue: dict[str, Decimal] = {}
        recovered = 0
        for total, currency in self._query(
            "SELECT total, currency FROM conversions WHERE shop = %s"
            " AND attributed_key IS NOT NULL",
            shop,
        ):
            recovered += 1
            if total is not None and currency is not None:
                revenue[str(currency)] = revenue.get(str(currency), Decimal(0)) + Decimal(
                    str(total)
                )
        last_start = self._query(
            "SELECT started_at, error FROM runs WHERE shop = %s ORDER BY id DESC LIMIT 1", shop
        )
        skips: Counter[str] = Counter()
        for reason, n in self._query(
            "SELECT reason, count(*) FROM checkouts WHERE shop = %s AND status = 'stopped'"
            " GROUP BY reason",
            shop,
        ):
            skips[str(reason)] += int(n)
        for reason, n in self._query(
            "SELECT reason, count(*) FROM skipped_steps WHERE shop = %s GROUP BY reason", shop
        ):
            skips[f"step skipped: {reason}"] += int(n)
        return Stats(
            checkouts_seen=sum(by_status.values()),
            checkouts_by_status=by_status,
            messages=dict(messages),
            messaged_checkouts=int(messaged),
            conversions=conversions,
            recovered=recovered,
            revenue_recovered=revenue,
            clicks=int(clicks),
            opt_outs=int(opt_outs),
            bad_payloads=int(bad),
            last_pass_completed=_utc(last_done),
            last_pass_started=_utc(last_start[0][0]) if last_start else None,
            last_pass_error=None
            if not last_start or last_start[0][1] is None
            else str(last_start[0][1]),
            skip_reasons=dict(skips),
            passes_completed=int(passes_completed),
            not_rendered=int(not_rendered),
        )

    def forget(self, contact: str) -> int:
        """Erase every row of this shop naming ``contact``, in one transaction; an opt-out
        survives as a keyed hash. Return how many rows were removed."""
        forms = _contact_forms(contact)
        shop = self.shop
        with self._tx() as db:
            ids = [
                str(r[0])
                for r in db.execute(
                    "SELECT id FROM checkouts WHERE shop = %s"
                    " AND (email = ANY(%s::text[]) OR phone = ANY(%s::text[]))",
                    (shop, forms, forms),
                )
            ]
            keys = [
                str(r[0])
                for r in db.execute(
                    "SELECT key FROM outbox WHERE shop = %s"
                    " AND (lower(recipient) = ANY(%s::text[]) OR checkout_id = ANY(%s::text[]))"
                    " UNION SELECT key FROM touches WHERE shop = %s AND contact = ANY(%s::text[])",
                    (shop, forms, ids, shop, forms),
                )
            ]
            # Keep honouring the opt-out without keeping the address: a keyed hash.
            db.execute(
                "INSERT INTO optout_hashes (shop, hash, channel, at)"
                " SELECT shop, %s, channel, max(at) FROM optouts"
                " WHERE shop = %s AND contact = ANY(%s::text[]) GROUP BY shop, channel"
                " ON CONFLICT (shop, hash, channel) DO UPDATE SET at = excluded.at",
                (self._hashes(forms[0])[0], shop, forms),
            )
            removed = 0
            for sql, params in (
                ("DELETE FROM optouts WHERE shop = %s AND contact = ANY(%s::text[])", (forms,)),
                (
                    "DELETE FROM discounts WHERE shop = %s"
                    " AND (contact = ANY(%s::text[]) OR checkout_id = ANY(%s::text[]))",
                    (forms, ids),
                ),
                (
                    "DELETE FROM touches WHERE shop = %s"
                    " AND (contact = ANY(%s::text[]) OR key = ANY(%s::text[]))",
                    (forms, keys),
                ),
                ("DELETE FROM outbox WHERE shop = %s AND key = ANY(%s::text[])", (keys,)),
                *(
                    (f"DELETE FROM {table} WHERE shop = %s AND {column} = ANY(%s::text[])", (ids,))
                    for table, column in _BY_CHECKOUT
                ),
            ):
                removed += db.execute(cast(Any, sql), (shop, *params)).rowcount
            return removed

    def rows_naming(self, contact: str) -> int:
        """How many rows still name ``contact`` in any column (used to check forget)."""
        contact = contact.strip().lower()
        columns = self._query(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name <> 'cartrescue_schema'"
        )
        total = 0
        for table, column in columns:
            query = pgsql.SQL(
                "SELECT count(*) FROM {} WHERE position(%s in lower({}::text)) > 0"
            ).format(pgsql.Identifier(table), pgsql.Identifier(column))
            try:
                with self._pool.connection() as conn:
                    row = conn.execute(query, (contact,)).fetchone()
            except psycopg.Error as err:
                raise StoreError(f"store {self._where}: {err}") from err
            total += int(row[0]) if row else 0
        return total

    # -- short links ------------------------------------------------------------------------
    _LINK_COLUMNS = (
        "code, checkout_id, step, channel, destination, home_url, created_at, expires_at"
    )

    def save_link(self, link: LinkRecord) -> None:
        self._run(
            "INSERT INTO links (shop, code, checkout_id, step, channel, destination, home_url,"
            " created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                self.shop,
                link.code,
                link.checkout_id,
                link.step,
                link.channel,
                link.destination,
                link.home_url,
                _aware(link.created_at),
                link.expires_at,
            ),
        )

    @staticmethod
    def _link_from(rows: list[tuple[Any, ...]]) -> LinkRecord | None:
        if not rows:
            return None
        r = rows[0]
        return LinkRecord(
            code=str(r[0]),
            checkout_id=str(r[1]),
            step=int(r[2]),
            channel=str(r[3]),
            destination=str(r[4]),
            home_url=None if r[5] is None else str(r[5]),
            created_at=r[6].astimezone(UTC),
            expires_at=_utc(r[7]),
        )

    def link(self, code: str) -> LinkRecord | None:
        return self._link_from(
            self._query(
                f"SELECT {self._LINK_COLUMNS} FROM links WHERE shop = %s AND code = %s",
                (self.shop, code),
            )
        )

    def link_for(self, checkout_id: str, step: int, channel: str) -> LinkRecord | None:
        return self._link_from(
            self._query(
                f"SELECT {self._LINK_COLUMNS} FROM links WHERE shop = %s AND checkout_id = %s"
                " AND step = %s AND channel = %s",
                (self.shop, checkout_id, step, channel),
            )
        )

    def record_click(self, code: str, at: datetime) -> None:
        self._run(
            "INSERT INTO clicks (shop, code, checkout_id, step, channel, at)"
            " SELECT shop, code, checkout_id, step, channel, %s FROM links"
            " WHERE shop = %s AND code = %s",
            (_aware(at), self.shop, code),
        )

    # -- experiments ------------------------------------------------------------------------
    def assignment_key(self) -> bytes:
        return self._meta_once("assignment_key", secrets.token_hex(32)).encode()

    def assignments(self, checkout_id: str) -> dict[str, str]:
        rows = self._query(
            "SELECT experiment, arm FROM assignments WHERE shop = %s AND checkout_id = %s",
            (self.shop, checkout_id),
        )
        return {str(r[0]): str(r[1]) for r in rows}

    def record_assignments(
        self,
        checkout_id: str,
        arms: Sequence[tuple[str, str, int | None]],
        at: datetime,
    ) -> None:
        if not arms:
            return
        self._run(
            "INSERT INTO assignments (shop, checkout_id, experiment, arm, step, at)"
            " SELECT %s, %s, e, a, s, %s"
            " FROM unnest(%s::text[], %s::text[], %s::integer[]) AS t(e, a, s)"
            " ON CONFLICT (shop, checkout_id, experiment) DO NOTHING",
            (
                self.shop,
                checkout_id,
                _aware(at),
                [e for e, _, _ in arms],
                [a for _, a, _ in arms],
                [s for _, _, s in arms],
            ),
        )

    def arm_counts(self, experiment: str) -> dict[str, tuple[int, int]]:
        rows = self._query(
            "SELECT a.arm, count(*), count(k.checkout_id) FROM assignments a"
            " LEFT JOIN conversions k ON k.shop = a.shop AND k.checkout_id = a.checkout_id"
            " WHERE a.shop = %s AND a.experiment = %s GROUP BY a.arm",
            (self.shop, experiment),
        )
        return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def report_facts(
        self, since: datetime, until: datetime, windows: AttributionWindows
    ) -> ReportFacts:
        """The same figures as :meth:`SQLiteStore.report_facts`, computed by the server in a
        few aggregate queries of this shop's rows."""
        with self._tx() as db:
            # One snapshot for every figure, and hash joins: these are aggregates over the
            # whole span, and a table filled since it was last analysed looks empty to the
            # planner, whose nested loops then grow with the square of the rows.
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            db.execute("SET LOCAL enable_nestloop = off")

            def read(query: str, params: Mapping[str, object]) -> list[tuple[Any, ...]]:
                return db.execute(cast(Any, query), params).fetchall()

            return self._report_facts(read, since, until, windows)

    def _report_facts(
        self,
        read: Callable[[str, Mapping[str, object]], list[tuple[Any, ...]]],
        since: datetime,
        until: datetime,
        windows: AttributionWindows,
    ) -> ReportFacts:
        span = {"s": self.shop, "since": _aware(since), "until": _aware(until)}
        click_days, send_days = _window_cases(windows)
        # A message qualifies for a purchase when the purchase came within its channel's
        # send window after it was sent, or within the click window after its link was
        # clicked; the last qualifying message before the purchase gets the credit.
        qualifies = (
            "(o{n}.status IN ('sent', 'unknown', 'claimed') AND o{n}.claimed_at <= k.at AND ("
            f"k.at - o{{n}}.claimed_at <= {send_days.format(c='o{n}')} * interval '1 day'"
            " OR EXISTS (SELECT 1 FROM clicks l WHERE l.shop = o{n}.shop"
            " AND l.checkout_id = o{n}.checkout_id AND l.step = o{n}.step"
            " AND l.channel = o{n}.channel AND l.at <= k.at AND"
            f" k.at - l.at <= {click_days.format(c='o{n}')} * interval '1 day')))"
        )
        q1, q2 = qualifies.format(n=1), qualifies.format(n=2)
        attributed_checkout = (
            "EXISTS (SELECT 1 FROM outbox o1 WHERE o1.shop = c.shop"
            f" AND o1.checkout_id = c.id AND {q1})"
        )
        opted = (
            "EXISTS (SELECT 1 FROM optouts p WHERE p.shop = c.shop AND (p.contact = c.email"
            " OR p.contact = lower(c.phone)))"
        )
        # Every query reads the checkouts once, joined by key to what it groups by; a
        # subquery joined to another table may be computed again for each row it meets.
        base = (
            "SELECT c.id AS id, c.abandoned_at AS abandoned_at, k.at AS conv_at, c.data AS data,"
            "{columns}"
            " (k.checkout_id IS NOT NULL)::int AS converted,"
            " coalesce(k.total::float8, 0) AS total,"
            f" (k.checkout_id IS NOT NULL AND {attributed_checkout})::int AS attributed,"
            " EXISTS (SELECT 1 FROM outbox m WHERE m.shop = c.shop AND m.checkout_id = c.id"
            " AND m.status IN ('sent', 'unknown', 'claimed'))::int AS messaged,"
            " EXISTS (SELECT 1 FROM clicks l WHERE l.shop = c.shop"
            " AND l.checkout_id = c.id)::int AS clicked,"
            f" {opted}::int AS opted"
            " FROM checkouts c{join} LEFT JOIN conversions k ON k.shop = c.shop"
            " AND k.checkout_id = c.id"
            " WHERE c.shop = %(s)s AND c.abandoned_at >= %(since)s AND c.abandoned_at < %(until)s"
        )
        checkouts = base.format(columns="", join="")
        assigned = base.format(
            columns=" a.experiment AS experiment, a.arm AS arm, a.at AS assigned_at,",
            join=" JOIN assignments a ON a.shop = c.shop AND a.checkout_id = c.id",
        )
        totals = read(
            "SELECT count(*), coalesce(sum((b.data::jsonb ->> 'total')::float8), 0),"
            " coalesce(sum((SELECT sum((i ->> 'quantity')::bigint)"
            " FROM jsonb_array_elements(coalesce(b.data::jsonb -> 'line_items', '[]')) i)), 0),"
            " coalesce(sum(b.converted), 0), coalesce(sum(b.total), 0),"
            " coalesce(sum(b.attributed), 0),"
            " coalesce(sum(CASE WHEN b.attributed = 1 THEN b.total ELSE 0 END), 0),"
            " avg(CASE WHEN b.attributed = 1 THEN"
            " extract(epoch FROM b.conv_at - b.abandoned_at) / 3600 END)"
            f" FROM ({checkouts}) b",
            span,
        )[0]
        currency = read(
            "SELECT data::jsonb ->> 'currency' AS cur, count(*) AS n FROM checkouts"
            " WHERE shop = %(s)s AND abandoned_at >= %(since)s AND abandoned_at < %(until)s"
            " GROUP BY cur ORDER BY n DESC, cur LIMIT 1",
            span,
        )
        groups = read(
            "SELECT b.experiment, b.arm, count(*), sum(b.messaged), sum(b.clicked),"
            " sum(b.converted), sum(b.attributed), sum(b.total), sum(b.total * b.total),"
            f" sum(b.opted) FROM ({assigned}) b"
            " GROUP BY b.experiment, b.arm ORDER BY b.experiment, b.arm",
            span,
        )
        credited = (
            f"(k.checkout_id IS NOT NULL AND {q1} AND NOT EXISTS (SELECT 1 FROM outbox o2"
            " WHERE o2.shop = o1.shop AND o2.checkout_id = o1.checkout_id"
            f" AND o2.claimed_at > o1.claimed_at AND {q2}))"
        )
        breakdown = read(
            "SELECT o1.step, o1.channel,"
            " coalesce(c.data::jsonb -> 'customer' ->> 'locale', '') AS locale,"
            " o1.experiment, o1.arm, count(*),"
            " count(DISTINCT (o1.recipient, (o1.claimed_at AT TIME ZONE 'UTC')::date)),"
            " sum(EXISTS (SELECT 1 FROM clicks l WHERE l.shop = o1.shop"
            " AND l.checkout_id = o1.checkout_id"
            " AND l.step = o1.step AND l.channel = o1.channel)::int),"
            f" sum({credited}::int),"
            f" sum(CASE WHEN {credited} THEN coalesce(k.total::float8, 0) ELSE 0 END),"
            f" sum({opted}::int)"
            " FROM outbox o1 JOIN checkouts c ON c.shop = o1.shop AND c.id = o1.checkout_id"
            " LEFT JOIN conversions k ON k.shop = o1.shop AND k.checkout_id = o1.checkout_id"
            " WHERE o1.shop = %(s)s AND o1.status IN ('sent', 'unknown', 'claimed')"
            " AND c.abandoned_at >= %(since)s AND c.abandoned_at < %(until)s"
            " GROUP BY o1.step, o1.channel, locale, o1.experiment, o1.arm"
            " ORDER BY o1.step, o1.channel, locale, o1.experiment, o1.arm",
            span,
        )
        attributed_days = read(
            "SELECT to_char(b.conv_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, count(*),"
            f" sum(b.total) FROM ({checkouts}) b WHERE b.attributed = 1 GROUP BY day",
            span,
        )
        holdout_days = read(
            "SELECT to_char(b.assigned_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, b.arm,"
            f" count(*), sum(b.total) FROM ({assigned}) b WHERE b.experiment = 'holdout'"
            " GROUP BY day, b.arm",
            span,
        )
        return _facts(
            since, until, totals, currency, groups, breakdown, attributed_days, holdout_days
        )

    # -- conversations ----------------------------------------------------------------------
    def checkout_for_contact(self, contact: str) -> Checkout | None:
        rows = self._query(
            "SELECT data FROM checkouts WHERE shop = %s AND (phone = %s OR email = %s)"
            " ORDER BY status = 'open' DESC, abandoned_at DESC, id DESC LIMIT 1",
            (self.shop, contact, contact.lower()),
        )
        try:
            return Checkout.from_dict(json.loads(str(rows[0][0]))) if rows else None
        except (BadPayloadError, ValueError, RecursionError):
            return None

    def add_conversation_entry(self, entry: ConversationEntry, message_id: str | None) -> bool:
        # The unique (shop, source, message_id) makes a redelivered reply a no-op, however
        # many processes take it at once; entries without an id are all kept.
        return bool(
            self._run(
                "INSERT INTO conversation (shop, checkout_id, at, channel, direction, text,"
                " source, message_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (
                    self.shop,
                    entry.checkout_id,
                    _aware(entry.at),
                    entry.channel,
                    entry.direction,
                    entry.text,
                    entry.source,
                    message_id,
                ),
            )
        )

    def conversation(self, checkout_id: str) -> list[ConversationEntry]:
        rows = self._query(
            "SELECT at, channel, direction, text, source FROM conversation"
            " WHERE shop = %s AND checkout_id = %s ORDER BY id",
            (self.shop, checkout_id),
        )
        return [
            ConversationEntry(
                checkout_id,
                at.astimezone(UTC),
                str(channel),
                "out" if direction == "out" else "in",
                str(text),
                str(source),
            )
            for at, channel, direction, text, source in rows
        ]

    def pause_checkout(self, checkout_id: str, until: datetime | None, at: datetime) -> None:
        self._run(
            "INSERT INTO pauses (shop, checkout_id, until, at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (shop, checkout_id) DO UPDATE SET until = excluded.until,"
            " at = excluded.at",
            (self.shop, checkout_id, None if until is None else _aware(until), _aware(at)),
        )

    def paused_until(self, checkout_id: str) -> datetime | None:
        return self.pauses([checkout_id]).get(checkout_id)

    def pauses(self, checkout_ids: Sequence[str]) -> dict[str, datetime]:
        ids = list(dict.fromkeys(checkout_ids))
        if not ids:
            return {}
        rows = self._query(
            "SELECT checkout_id, until FROM pauses WHERE shop = %s AND checkout_id = ANY(%s)",
            (self.shop, ids),
        )
        forever = datetime.max.replace(tzinfo=UTC)
        return {
            str(cid): forever if until is None else until.astimezone(UTC) for cid, until in rows
        }

    def record_reason(self, checkout_id: str, reason: str, at: datetime) -> None:
        self._run(
            "INSERT INTO reasons (shop, checkout_id, reason, at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (shop, checkout_id) DO UPDATE SET reason = excluded.reason,"
            " at = excluded.at",
            (self.shop, checkout_id, reason, _aware(at)),
        )

    def abandonment_reason(self, checkout_id: str) -> str | None:
        return self.reasons([checkout_id]).get(checkout_id)

    def reasons(self, checkout_ids: Sequence[str]) -> Mapping[str, str]:
        ids = list(dict.fromkeys(checkout_ids))
        if not ids:
            return {}
        rows = self._query(
            "SELECT checkout_id, reason FROM reasons WHERE shop = %s AND checkout_id = ANY(%s)",
            (self.shop, ids),
        )
        return {str(cid): str(reason) for cid, reason in rows}

    def reason_counts(self) -> dict[str, int]:
        rows = self._query(
            "SELECT reason, count(*) FROM reasons WHERE shop = %s GROUP BY reason", (self.shop,)
        )
        return {str(reason): int(n) for reason, n in rows}


def _redacted(url: str) -> str:
    """The URL or connection string without its password, for messages and logs."""
    url = re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", url, flags=re.IGNORECASE)
