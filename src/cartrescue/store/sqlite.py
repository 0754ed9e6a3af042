"""The embedded default store: one SQLite file per shop, in WAL mode.

Several processes may use the same file at once (overlapping cron runs): every write is one
short transaction, and :meth:`SQLiteStore.claim` runs in a ``BEGIN IMMEDIATE`` transaction so
that the existence check, the frequency cap and the insert are one atomic step.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from ..errors import BadPayloadError, StoreError
from ..models import Checkout, Purchase, normalize_phone
from ._signals import COUNTS, RANK, counts_from
from .base import (
    RELEASED,
    AttributionWindows,
    BreakdownFacts,
    ConversationEntry,
    ConversionKind,
    DayFacts,
    GroupFacts,
    Histories,
    LinkRecord,
    OptOut,
    OutboxEntry,
    OutboxStatus,
    ReportFacts,
    Signal,
    SignalCounts,
    SignalOutcome,
    Stats,
)

__all__ = ["SCHEMA_VERSION", "SQLiteStore", "store_error"]

log = logging.getLogger(__name__)

log = logging.getLogger("cartrescue.store")

_MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        counts TEXT,
        error TEXT
    );
    CREATE TABLE watermarks (connector TEXT PRIMARY KEY, at TEXT NOT NULL);
    CREATE TABLE checkouts (
        id TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        email TEXT,
        phone TEXT,
        abandoned_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open',
        reason TEXT,
        closed_at TEXT
    );
    CREATE INDEX checkouts_active ON checkouts (status, abandoned_at);
    CREATE INDEX checkouts_email ON checkouts (email);
    CREATE INDEX checkouts_phone ON checkouts (phone);
    CREATE TABLE bad_checkouts (
        id TEXT PRIMARY KEY, reason TEXT NOT NULL, at TEXT NOT NULL
    );
    CREATE TABLE outbox (
        key TEXT PRIMARY KEY,
        checkout_id TEXT NOT NULL,
        step INTEGER NOT NULL,
        channel TEXT NOT NULL,
        recipient TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        run_id INTEGER,
        claimed_at TEXT NOT NULL,
        finished_at TEXT,
        provider_id TEXT,
        error TEXT
    );
    CREATE INDEX outbox_checkout ON outbox (checkout_id);
    CREATE TABLE touches (
        contact TEXT NOT NULL, key TEXT NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (contact, key)
    );
    CREATE INDEX touches_key ON touches (key);
    CREATE TABLE skipped_steps (
        checkout_id TEXT NOT NULL, step INTEGER NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (checkout_id, step)
    );
    CREATE TABLE discounts (
        contact TEXT NOT NULL, checkout_id TEXT NOT NULL, code TEXT NOT NULL, at TEXT NOT NULL
    );
    CREATE INDEX discounts_contact ON discounts (contact);
    CREATE TABLE optouts (
        contact TEXT NOT NULL, channel TEXT NOT NULL, source TEXT NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (contact, channel)
    );
    CREATE TABLE optout_hashes (
        hash TEXT NOT NULL, channel TEXT NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (hash, channel)
    );
    CREATE TABLE conversions (
        checkout_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        order_id TEXT,
        total TEXT,
        currency TEXT,
        at TEXT NOT NULL,
        attributed_key TEXT
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        checkout_id TEXT,
        step INTEGER,
        channel TEXT,
        detail TEXT
    );
    CREATE INDEX events_checkout ON events (checkout_id);
    CREATE TABLE links (
        code TEXT PRIMARY KEY,
        checkout_id TEXT NOT NULL,
        step INTEGER NOT NULL,
        channel TEXT NOT NULL,
        destination TEXT NOT NULL,
        home_url TEXT,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        UNIQUE (checkout_id, step, channel)
    );
    CREATE TABLE clicks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        code TEXT NOT NULL,
        checkout_id TEXT NOT NULL,
        step INTEGER NOT NULL,
        channel TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX clicks_checkout ON clicks (checkout_id);
    """,
    # 2: inbound deliveries already taken (webhook and message ids), for deduplication.
    """
    CREATE TABLE deliveries (
        source TEXT NOT NULL, id TEXT NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (source, id)
    );
    CREATE INDEX deliveries_at ON deliveries (at);
    """,
    # 3: experiments: the arm of each checkout, and on each outbox entry.
    """
    ALTER TABLE outbox ADD COLUMN experiment TEXT;
    ALTER TABLE outbox ADD COLUMN arm TEXT;
    CREATE TABLE assignments (
        checkout_id TEXT NOT NULL,
        experiment TEXT NOT NULL,
        arm TEXT NOT NULL,
        step INTEGER,
        at TEXT NOT NULL,
        PRIMARY KEY (checkout_id, experiment)
    );
    CREATE INDEX assignments_arm ON assignments (experiment, arm);
    """,
    # 4: conversations: what buyers replied, and the pause a reply puts on the reminders.
    """
    CREATE TABLE conversation (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        checkout_id TEXT NOT NULL,
        at TEXT NOT NULL,
        channel TEXT NOT NULL,
        direction TEXT NOT NULL,
        text TEXT NOT NULL,
        source TEXT NOT NULL,
        message_id TEXT,
        UNIQUE (source, message_id)
    );
    CREATE INDEX conversation_checkout ON conversation (checkout_id, id);
    CREATE TABLE pauses (
        checkout_id TEXT PRIMARY KEY, until TEXT, at TEXT NOT NULL
    );
    CREATE TABLE reasons (
        checkout_id TEXT PRIMARY KEY, reason TEXT NOT NULL, at TEXT NOT NULL
    );
    """,
    # 5: engagement signals: what the provider's status callbacks said about each message,
    # found by the provider's message id.
    """
    ALTER TABLE outbox ADD COLUMN signal TEXT;
    ALTER TABLE outbox ADD COLUMN signal_at TEXT;
    CREATE INDEX outbox_provider_id ON outbox (provider_id);
    """,
)
DELIVERY_MEMORY = timedelta(days=7)
"""How long a delivery id is remembered: platforms retry for 48 hours (Shopify) or less."""

SCHEMA_VERSION = len(_MIGRATIONS)
_SENT_LIKE = ("claimed", "sent", "unknown")
_CHUNK = 400
"""Values bound in one ``IN (…)`` list (SQLite allows 32766 from 3.32, 999 before)."""
_ACTIVE_BATCH = 500
"""Rows :meth:`SQLiteStore.active_checkouts` reads at a time."""


def _ts(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("store times must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _broken(err: sqlite3.Error) -> bool:
    """Whether ``err`` means the store cannot be used (locked, read-only, full, corrupt), as
    opposed to one value it cannot take."""
    return isinstance(err, sqlite3.OperationalError | sqlite3.InternalError) or (
        type(err) is sqlite3.DatabaseError
    )


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _contact_forms(contact: str) -> list[str]:
    """Every form a contact may be stored in: the address as given (lower case), and for a
    phone number its E.164 form, with and without ``+`` (WhatsApp ids have none)."""
    contact = contact.strip().lower()
    forms = [contact]
    if "@" not in contact:
        try:
            e164 = normalize_phone(contact if contact.startswith("+") else f"+{contact}")
        except ValueError:
            e164 = None
        if e164:
            forms = [e164, e164[1:], *forms]
    return list(dict.fromkeys(forms))


# What SQLite (or the file system) says → what happened, and what the operator can do.
_FAULTS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("locked", "busy"),
        "is locked by another process",
        "let the other cartrescue run finish (or stop what holds the file open), then run again",
    ),
    (
        ("readonly", "read-only", "read only", "permission denied", "not permitted"),
        "is read-only",
        "make the file, its folder and its -wal and -shm files writable by the user "
        "running cartrescue",
    ),
    (
        ("disk is full", "no space left"),
        "cannot be written because the disk is full",
        "free space on the disk that holds it, then run again (nothing sent is sent twice)",
    ),
    (
        ("not a database", "malformed", "corrupt"),
        "is damaged or is not a cartrescue store",
        "restore it from a backup, or move it aside so that a new store is created",
    ),
    (
        ("unable to open", "cannot open"),
        "cannot be opened",
        "check that its folder exists and is writable by the user running cartrescue",
    ),
    (
        ("i/o error", "input/output error"),
        "could not be read or written (I/O error)",
        "check the disk that holds it, then run again",
    ),
)


def _writable(path: Path) -> bool:
    target = path if path.exists() else path.parent
    return not target.exists() or os.access(target, os.W_OK)


def store_error(path: str, err: BaseException) -> StoreError:
    """One line for the operator: which store, what happened, what to do. SQLite's own
    text stays on the chained cause."""
    text = str(err).lower()
    if isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        text += " read-only"
    elif isinstance(err, OSError) and err.errno == errno.ENOSPC:
        text += " disk is full"
    elif "unable to open" in text and path != ":memory:" and not _writable(Path(path)):
        text += " read-only"  # SQLite says only that it could not open the file
    for needles, what, fix in _FAULTS:
        if any(needle in text for needle in needles):
            return StoreError(f"store {path} {what}: {fix}")
    detail = " ".join(str(err).split())[:120]
    return StoreError(f"store {path} failed ({detail}): run cartrescue doctor")


class SQLiteStore:
    """The default :class:`~cartrescue.store.base.Store`: a file, or ``":memory:"``.

    The schema carries a version (``PRAGMA user_version``); opening an older file migrates
    it forward, and a file written by a newer cartrescue is refused rather than damaged.
    """

    def __init__(
        self, path: str | Path, *, timeout: float = 30.0, hash_key: str | bytes | None = None
    ) -> None:
        self.path = str(path)
        self._timeout = timeout
        self._key = hash_key.encode() if isinstance(hash_key, str) else hash_key
        self._lock = threading.RLock()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except (sqlite3.Error, OSError) as err:
            raise store_error(self.path, err) from err
        try:
            with self._errors():
                self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
                # Deleted rows are overwritten with zeros, whatever SQLite was built with.
                self._db.execute("PRAGMA secure_delete = ON")
                if self.path != ":memory:":
                    self._enable_wal(timeout)
                self._db.execute("PRAGMA synchronous = NORMAL")
                self._migrate()
                self._salt = self._meta("salt") or ""
        except BaseException:
            self._db.close()
            raise

    # -- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def _errors(self) -> Iterator[None]:
        """The store's one boundary for SQLite errors: one that means the store cannot be
        used (locked, read-only, full, damaged) becomes a :class:`StoreError` naming the file,
        what happened and the fix."""
        try:
            yield
        except sqlite3.Error as err:
            if not _broken(err):  # one value the store cannot take: the caller's to handle
                raise
            raise store_error(self.path, err) from err

    def _rollback(self) -> None:
        # SQLite may already have rolled back (disk full, I/O error): never fail on that.
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    @contextmanager
    def _tx(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            self._db.execute(f"BEGIN {mode}")
            try:
                yield self._db
            except BaseException:
                self._rollback()
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._rollback()
                raise

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        with self._lock, self._errors():
            return list(self._db.execute(sql, params))

    def _enable_wal(self, timeout: float) -> None:
        # Switching a new file to WAL needs an exclusive lock and ignores busy_timeout, so a
        # second process opening the file at the same moment retries instead of failing.
        deadline = time.monotonic() + timeout
        while True:
            try:
                mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise store_error(self.path, err) from err
                time.sleep(0.05)

    def _migrate(self) -> None:
        with self._tx() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"store {self.path} has schema version {version}, newer than this "
                    f"cartrescue understands ({SCHEMA_VERSION}); upgrade cartrescue"
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
                if number == 0:
                    db.execute(
                        "INSERT INTO meta (key, value) VALUES ('salt', ?)", (secrets.token_hex(16),)
                    )
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def schema_version(self) -> int:
        return int(self._query("PRAGMA user_version")[0][0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- passes -----------------------------------------------------------------------------
    def begin_run(self, at: datetime) -> int:
        with self._tx() as db:
            cur = db.execute("INSERT INTO runs (started_at) VALUES (?)", (_ts(at),))
            return int(cur.lastrowid or 0)

    def finish_run(
        self, run_id: int, at: datetime, counts: Mapping[str, int], error: str | None
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, counts = ?, error = ? WHERE id = ?",
                (_ts(at), json.dumps(dict(counts), sort_keys=True), error, run_id),
            )

    def start_at(self, default: datetime) -> datetime:
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'start_at'").fetchone()
            if row:
                return datetime.fromisoformat(row[0])
            db.execute("INSERT INTO meta (key, value) VALUES ('start_at', ?)", (_ts(default),))
            return default.astimezone(UTC)

    def watermark(self, connector: str) -> datetime | None:
        rows = self._query("SELECT at FROM watermarks WHERE connector = ?", (connector,))
        return _dt(str(rows[0][0])) if rows else None

    def set_watermark(self, connector: str, at: datetime) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO watermarks (connector, at) VALUES (?, ?) "
                "ON CONFLICT (connector) DO UPDATE SET at = excluded.at",
                (connector, _ts(at)),
            )

    # -- checkouts --------------------------------------------------------------------------
    _UPSERT = (
        "INSERT INTO checkouts (id, data, email, phone, abandoned_at, updated_at,"
        " first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET data = excluded.data, email = excluded.email,"
        " phone = excluded.phone, abandoned_at = excluded.abandoned_at,"
        " updated_at = excluded.updated_at, last_seen = excluded.last_seen"
        # An older version (a webhook delivered late, an overlapping poll) never overwrites
        # a newer one.
        " WHERE excluded.updated_at >= checkouts.updated_at"
    )

    @staticmethod
    def _checkout_row(checkout: Checkout, at: str) -> tuple[object, ...]:
        customer = checkout.customer
        return (
            checkout.id,
            json.dumps(checkout.to_dict(), sort_keys=True),
            customer.email.lower() if customer and customer.email else None,
            customer.phone if customer else None,
            _ts(checkout.abandoned_at),
            _ts(checkout.updated_at),
            at,
            at,
        )

    def upsert_checkout(self, checkout: Checkout, at: datetime) -> None:
        row = self._checkout_row(checkout, _ts(at))
        with self._tx() as db:
            db.execute(self._UPSERT, row)
            db.execute("DELETE FROM bad_checkouts WHERE id = ?", (checkout.id,))

    def upsert_checkouts(self, checkouts: Sequence[Checkout], at: datetime) -> dict[str, str]:
        stamp = _ts(at)
        rows = [self._checkout_row(c, stamp) for c in checkouts]
        ids = [c.id for c in checkouts]
        statuses: dict[str, str] = {}
        with self._tx() as db:
            db.executemany(self._UPSERT, rows)
            for chunk in _chunks(ids):
                db.execute(f"DELETE FROM bad_checkouts WHERE id IN ({_marks(chunk)})", chunk)
                statuses.update(
                    db.execute(
                        f"SELECT id, status FROM checkouts WHERE id IN ({_marks(chunk)})", chunk
                    )
                )
        return statuses

    def record_delivery(self, source: str, delivery_id: str, at: datetime) -> bool:
        with self._tx() as db:
            db.execute("DELETE FROM deliveries WHERE at < ?", (_ts(at - DELIVERY_MEMORY),))
            inserted = db.execute(
                "INSERT INTO deliveries (source, id, at) VALUES (?, ?, ?) "
                "ON CONFLICT (source, id) DO NOTHING",
                (source, delivery_id, _ts(at)),
            ).rowcount
        return bool(inserted)

    def record_bad_checkout(self, checkout_id: str, reason: str, at: datetime) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO bad_checkouts (id, reason, at) VALUES (?, ?, ?) ON CONFLICT (id) "
                "DO UPDATE SET reason = excluded.reason, at = excluded.at",
                (checkout_id, reason, _ts(at)),
            )

    def bad_checkouts(self) -> list[tuple[str, str]]:
        rows = self._query("SELECT id, reason FROM bad_checkouts ORDER BY at")
        return [(str(r[0]), str(r[1])) for r in rows]

    def active_checkouts(self, abandoned_after: datetime) -> Iterator[Checkout]:
        # Keyset pages rather than one open cursor: the connection is shared with the
        # engine's send threads, and a batch at a time keeps memory flat.
        columns = "SELECT abandoned_at, id, data FROM checkouts WHERE status = 'open'"
        rows = self._query(
            f"{columns} AND abandoned_at >= ? ORDER BY abandoned_at, id LIMIT ?",
            (_ts(abandoned_after), _ACTIVE_BATCH),
        )
        while rows:
            for _, checkout_id, data in rows:
                try:
                    yield Checkout.from_dict(json.loads(str(data)))
                except (BadPayloadError, ValueError, RecursionError) as err:
                    # Data that no longer reads (a year 9999, a total of 1e999999, written by
                    # an older cartrescue or handed over by a connector): one such row must
                    # not end every pass. It is recorded as a bad payload, not worked on again.
                    self._unreadable(str(checkout_id), err)
            if len(rows) < _ACTIVE_BATCH:
                return
            at, last = str(rows[-1][0]), str(rows[-1][1])
            rows = self._query(
                f"{columns} AND (abandoned_at > ? OR (abandoned_at = ? AND id > ?))"
                " ORDER BY abandoned_at, id LIMIT ?",
                (at, at, last, _ACTIVE_BATCH),
            )

    def _unreadable(self, checkout_id: str, err: Exception) -> None:
        reason = f"stored data cannot be read: {' '.join(str(err).split())[:200]}"
        log.warning("store: checkout %s skipped, %s", checkout_id, reason)
        now = datetime.now(UTC)
        self.record_bad_checkout(checkout_id, reason, now)
        self.close_checkout(checkout_id, "stopped", "bad payload", now)

    def checkout(self, checkout_id: str) -> Checkout | None:
        rows = self._query("SELECT data FROM checkouts WHERE id = ?", (checkout_id,))
        return Checkout.from_dict(json.loads(str(rows[0][0]))) if rows else None

    # -- conversations ----------------------------------------------------------------------
    def checkout_for_contact(self, contact: str) -> Checkout | None:
        rows = self._query(
            "SELECT data FROM checkouts WHERE phone = ? OR email = ? "
            "ORDER BY status = 'open' DESC, abandoned_at DESC LIMIT 1",
            (contact, contact.lower()),
        )
        try:
            return Checkout.from_dict(json.loads(str(rows[0][0]))) if rows else None
        except (BadPayloadError, ValueError, RecursionError):
            return None

    def add_conversation_entry(self, entry: ConversationEntry, message_id: str | None) -> bool:
        with self._tx() as db:
            inserted = db.execute(
                "INSERT INTO conversation (checkout_id, at, channel, direction, text, source,"
                " message_id) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    entry.checkout_id,
                    _ts(entry.at),
                    entry.channel,
                    entry.direction,
                    entry.text,
                    entry.source,
                    message_id,
                ),
            ).rowcount
        return bool(inserted)

    def conversation(self, checkout_id: str) -> list[ConversationEntry]:
        rows = self._query(
            "SELECT at, channel, direction, text, source FROM conversation"
            " WHERE checkout_id = ? ORDER BY id",
            (checkout_id,),
        )
        return [
            ConversationEntry(
                checkout_id,
                datetime.fromisoformat(str(at)),
                str(channel),
                "out" if direction == "out" else "in",
                str(text),
                str(source),
            )
            for at, channel, direction, text, source in rows
        ]

    def pause_checkout(self, checkout_id: str, until: datetime | None, at: datetime) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO pauses (checkout_id, until, at) VALUES (?, ?, ?)"
                " ON CONFLICT (checkout_id) DO UPDATE SET until = excluded.until, at = excluded.at",
                (checkout_id, None if until is None else _ts(until), _ts(at)),
            )

    def record_reason(self, checkout_id: str, reason: str, at: datetime) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO reasons (checkout_id, reason, at) VALUES (?, ?, ?)"
                " ON CONFLICT (checkout_id) DO UPDATE SET reason = excluded.reason,"
                " at = excluded.at",
                (checkout_id, reason, _ts(at)),
            )

    def abandonment_reason(self, checkout_id: str) -> str | None:
        rows = self._query("SELECT reason FROM reasons WHERE checkout_id = ?", (checkout_id,))
        return str(rows[0][0]) if rows else None

    def reasons(self, checkout_ids: Sequence[str]) -> Mapping[str, str]:
        found: dict[str, str] = {}
        for chunk in _chunks(list(dict.fromkeys(checkout_ids))):
            found.update(
                (str(checkout_id), str(reason))
                for checkout_id, reason in self._query(
                    f"SELECT checkout_id, reason FROM reasons WHERE checkout_id IN"
                    f" ({_marks(chunk)})",
                    chunk,
                )
            )
        return found

    def reason_counts(self) -> dict[str, int]:
        rows = self._query("SELECT reason, count(*) FROM reasons GROUP BY reason")
        return {str(reason): int(n) for reason, n in rows}

    def pauses(self, checkout_ids: Sequence[str]) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        for chunk in _chunks(list(dict.fromkeys(checkout_ids))):
            for checkout_id, until in self._query(
                f"SELECT checkout_id, until FROM pauses WHERE checkout_id IN ({_marks(chunk)})",
                chunk,
            ):
                found[str(checkout_id)] = (
                    datetime.max.replace(tzinfo=UTC)
                    if until is None
                    else datetime.fromisoformat(str(until))
                )
        return found

    def paused_until(self, checkout_id: str) -> datetime | None:
        rows = self._query("SELECT until FROM pauses WHERE checkout_id = ?", (checkout_id,))
        if not rows:
            return None
        until = rows[0][0]
        return datetime.max.replace(tzinfo=UTC) if until is None else _dt(str(until))

    def checkout_status(self, checkout_id: str) -> str | None:
        rows = self._query("SELECT status FROM checkouts WHERE id = ?", (checkout_id,))
        return str(rows[0][0]) if rows else None

    def close_checkout(self, checkout_id: str, status: str, reason: str, at: datetime) -> None:
        with self._tx() as db:
            # A checkout whose steps are all done can still convert later.
            db.execute(
                "UPDATE checkouts SET status = ?, reason = ?, closed_at = ? WHERE id = ? AND "
                "(status = 'open' OR (status = 'done' AND ? LIKE 'converted%'))",
                (status, reason, _ts(at), checkout_id, status),
            )

    # -- outbox -----------------------------------------------------------------------------
    def outbox_for(self, checkout_id: str) -> list[OutboxEntry]:
        rows = self._query(
            "SELECT key, checkout_id, step, channel, status, claimed_at, finished_at, error "
            "FROM outbox WHERE checkout_id = ? ORDER BY claimed_at",
            (checkout_id,),
        )
        return [
            OutboxEntry(
                key=str(r[0]),
                checkout_id=str(r[1]),
                step=int(r[2]),
                channel=str(r[3]),
                status=cast(OutboxStatus, str(r[4])),
                claimed_at=datetime.fromisoformat(str(r[5])),
                finished_at=_dt(r[6]),
                error=None if r[7] is None else str(r[7]),
            )
            for r in rows
        ]

    def skipped_steps(self, checkout_id: str) -> set[int]:
        rows = self._query("SELECT step FROM skipped_steps WHERE checkout_id = ?", (checkout_id,))
        return {int(r[0]) for r in rows}

    def histories(self, checkout_ids: Sequence[str], contacts: Sequence[str]) -> Histories:
        ids = list(dict.fromkeys(checkout_ids))
        contacts = list(dict.fromkeys(c.lower() for c in contacts if c))
        steps: dict[str, list[tuple[int, str, OutboxStatus]]] = {}
        skipped: dict[str, set[int]] = {}
        contacted: dict[str, datetime] = {}
        discounts: dict[str, datetime] = {}
        optouts: dict[str, set[str]] = {}
        rekey = False
        with self._tx("DEFERRED") as db:
            for chunk in _chunks(ids):
                marks = _marks(chunk)
                for checkout_id, step, channel, status in db.execute(
                    "SELECT checkout_id, step, channel, status FROM outbox"
                    f" WHERE checkout_id IN ({marks}) ORDER BY claimed_at",
                    chunk,
                ):
                    steps.setdefault(checkout_id, []).append((int(step), str(channel), status))
                for checkout_id, step in db.execute(
                    f"SELECT checkout_id, step FROM skipped_steps WHERE checkout_id IN ({marks})",
                    chunk,
                ):
                    skipped.setdefault(checkout_id, set()).add(int(step))
            for chunk in _chunks(contacts):
                marks = _marks(chunk)
                for contact, at in db.execute(
                    "SELECT t.contact, max(t.at) FROM touches t JOIN outbox o ON o.key = t.key"
                    f" WHERE t.contact IN ({marks}) AND o.status IN ({_marks(_SENT_LIKE)})"
                    " GROUP BY t.contact",
                    (*chunk, *_SENT_LIKE),
                ):
                    contacted[contact] = datetime.fromisoformat(at)
                for contact, at in db.execute(
                    f"SELECT contact, max(at) FROM discounts WHERE contact IN ({marks})"
                    " GROUP BY contact",
                    chunk,
                ):
                    discounts[contact] = datetime.fromisoformat(at)
                for contact, channel in db.execute(
                    f"SELECT contact, channel FROM optouts WHERE contact IN ({marks})", chunk
                ):
                    optouts.setdefault(contact, set()).add(str(channel))
                hashes = {self._hash(c): c for c in chunk}
                for digest, channel in db.execute(
                    f"SELECT hash, channel FROM optout_hashes WHERE hash IN ({_marks(chunk)})",
                    list(hashes),
                ):
                    optouts.setdefault(hashes[digest], set()).add(str(channel))
                if self._key:
                    legacy = [self._legacy_hash(c) for c in chunk]
                    rekey = rekey or bool(
                        db.execute(
                            f"SELECT 1 FROM optout_hashes WHERE hash IN ({_marks(legacy)}) LIMIT 1",
                            legacy,
                        ).fetchone()
                    )
        for chunk in _chunks(contacts) if rekey else ():
            for contact, channel in self._rekey(chunk):
                optouts.setdefault(contact, set()).add(channel)
        return Histories(
            steps={k: tuple(v) for k, v in steps.items()},
            skipped={k: frozenset(v) for k, v in skipped.items()},
            last_contacted=contacted,
            last_discount=discounts,
            optouts={k: frozenset(v) for k, v in optouts.items()},
        )

    def skip_step(self, checkout_id: str, step: int, reason: str, at: datetime) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO skipped_steps (checkout_id, step, reason, at) "
                "VALUES (?, ?, ?, ?)",
                (checkout_id, step, reason, _ts(at)),
            )

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
        contacts = [c.lower() for c in contacts if c]
        values = (key, checkout_id, step, channel, recipient, run_id, _ts(at))
        # The frequency cap, the take and the touches in one short transaction, in as few
        # statements as SQLite allows: send threads wait for each other here.
        cap = ""
        cap_params: tuple[object, ...] = ()
        if cap_since is not None and contacts:
            cap = (
                " WHERE NOT EXISTS (SELECT 1 FROM touches t JOIN outbox o ON o.key = t.key"
                f" WHERE t.contact IN ({_marks(contacts)}) AND t.at >= ?"
                f" AND o.status IN ({_marks(_SENT_LIKE)}))"
            )
            cap_params = (*contacts, _ts(cap_since), *_SENT_LIKE)
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO outbox (key, checkout_id, step, channel, recipient, status,"
                f" run_id, claimed_at) SELECT ?, ?, ?, ?, ?, 'claimed', ?, ?{cap or ' WHERE 1'}"
                " ON CONFLICT (key) DO UPDATE SET status = 'claimed',"
                " attempts = attempts + 1, run_id = excluded.run_id,"
                " claimed_at = excluded.claimed_at, finished_at = NULL, error = NULL"
                f" WHERE outbox.status IN ({_marks(RELEASED)})",
                (*values, *cap_params, *RELEASED),
            )
            if cur.rowcount != 1:
                return False
            db.execute(
                "UPDATE outbox SET (experiment, arm) = (SELECT experiment, arm FROM assignments"
                " WHERE checkout_id = ? AND experiment != 'holdout' AND (step IS NULL OR"
                " step = ?) ORDER BY at DESC LIMIT 1) WHERE key = ?",
                (checkout_id, step, key),
            )
            if contacts:
                db.execute(
                    "INSERT OR REPLACE INTO touches (contact, key, at) VALUES "
                    + ",".join("(?, ?, ?)" for _ in contacts),
                    [v for c in contacts for v in (c, key, values[-1])],
                )
            return True

    def finish(
        self,
        key: str,
        status: OutboxStatus,
        at: datetime,
        *,
        provider_id: str | None = None,
        error: str | None = None,
    ) -> None:
        # One statement is atomic on its own: no BEGIN/COMMIT round trips.
        self._query(
            "UPDATE outbox SET status = ?, finished_at = ?, provider_id = ?, error = ? "
            "WHERE key = ?",
            (status, _ts(at), provider_id, error, key),
        )

    def record_signal(self, provider_id: str, signal: Signal, at: datetime) -> SignalOutcome:
        with self._tx() as db:
            moved = db.execute(
                f"UPDATE outbox SET signal = ?, signal_at = ? WHERE provider_id = ? AND {RANK} < ?",
                (signal.value, _ts(at), provider_id, signal.rank),
            ).rowcount
            if moved:
                return SignalOutcome.RECORDED
            known = db.execute(
                "SELECT 1 FROM outbox WHERE provider_id = ? LIMIT 1", (provider_id,)
            ).fetchone()
        return SignalOutcome.UNCHANGED if known else SignalOutcome.UNKNOWN

    def signal_counts(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, SignalCounts]:
        if since is None or until is None:
            return counts_from(self._query(COUNTS.format(join="", where="")))
        return counts_from(
            self._query(
                COUNTS.format(
                    join=" JOIN checkouts c ON c.id = o.checkout_id",
                    where=" AND c.abandoned_at >= ? AND c.abandoned_at < ?",
                ),
                (_ts(since), _ts(until)),
            )
        )

    def last_contacted(self, contacts: Sequence[str]) -> datetime | None:
        contacts = [c.lower() for c in contacts if c]
        if not contacts:
            return None
        rows = self._query(
            "SELECT max(t.at) FROM touches t JOIN outbox o ON o.key = t.key "
            f"WHERE t.contact IN ({_marks(contacts)}) AND o.status IN ({_marks(_SENT_LIKE)})",
            (*contacts, *_SENT_LIKE),
        )
        return _dt(rows[0][0])

    def record_discount(
        self, checkout_id: str, contacts: Sequence[str], code: str, at: datetime
    ) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT INTO discounts (contact, checkout_id, code, at) VALUES (?, ?, ?, ?)",
                [(c.lower(), checkout_id, code, _ts(at)) for c in contacts if c],
            )

    def last_discount(self, contacts: Sequence[str]) -> datetime | None:
        contacts = [c.lower() for c in contacts if c]
        if not contacts:
            return None
        rows = self._query(
            f"SELECT max(at) FROM discounts WHERE contact IN ({_marks(contacts)})", contacts
        )
        return _dt(rows[0][0])

    # -- opt-outs ---------------------------------------------------------------------------
    @property
    def keyed(self) -> bool:
        """True when opt-out hashes are keyed with a secret kept outside the file."""
        return bool(self._key)

    def _legacy_hash(self, contact: str) -> str:
        # Salted with a salt stored in this file: kept only to honour old opt-outs.
        return hashlib.sha256(f"{self._salt}:{contact.lower()}".encode()).hexdigest()

    def _hash(self, contact: str) -> str:
        """The hash kept for a forgotten opt-out: an HMAC keyed with the operator's secret
        (``hmac:`` prefix), or without a key the legacy salted hash."""
        if not self._key:
            return self._legacy_hash(contact)
        digest = hmac.new(self._key, contact.lower().encode(), hashlib.sha256).hexdigest()
        return f"hmac:{digest}"

    def add_optout(self, contact: str, channel: str, source: str, at: datetime) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO optouts (contact, channel, source, at) VALUES (?, ?, ?, ?)",
                (contact.lower(), channel, source, _ts(at)),
            )

    def remove_optout(self, contact: str, channel: str = "*") -> int:
        with self._tx() as db:
            where = "" if channel == "*" else " AND channel = ?"
            params: tuple[str, ...] = () if channel == "*" else (channel,)
            removed = db.execute(
                f"DELETE FROM optouts WHERE contact = ?{where}", (contact.lower(), *params)
            ).rowcount
            removed += db.execute(
                f"DELETE FROM optout_hashes WHERE hash IN (?, ?){where}",
                (self._hash(contact), self._legacy_hash(contact), *params),
            ).rowcount
            return removed

    def optouts_for(self, contacts: Sequence[str]) -> set[str]:
        contacts = [c.lower() for c in contacts if c]
        if not contacts:
            return set()
        rows = self._query(
            f"SELECT channel FROM optouts WHERE contact IN ({_marks(contacts)})", contacts
        )
        hashes = [self._hash(c) for c in contacts]
        rows += self._query(
            f"SELECT channel FROM optout_hashes WHERE hash IN ({_marks(hashes)})", hashes
        )
        if self._key:
            rows += [(channel,) for _, channel in self._rekey(contacts)]
        return {str(r[0]) for r in rows}

    def _rekey(self, contacts: Sequence[str]) -> list[tuple[str, str]]:
        """Opt-outs forgotten before a key was configured carry the salted hash; when one of
        ``contacts`` matches such a row, it is re-keyed (the contact is known right now)."""
        legacy = {self._legacy_hash(c): c for c in contacts}
        rows = self._query(
            f"SELECT hash, channel, at FROM optout_hashes WHERE hash IN ({_marks(list(legacy))})",
            list(legacy),
        )
        if rows:
            with self._tx() as db:
                for old, channel, at in rows:
                    db.execute(
                        "INSERT OR REPLACE INTO optout_hashes (hash, channel, at) VALUES (?, ?, ?)",
                        (self._hash(legacy[str(old)]), channel, at),
                    )
                    db.execute(
                        "DELETE FROM optout_hashes WHERE hash = ? AND channel = ?", (old, channel)
                    )
        return [(legacy[str(r[0])], str(r[1])) for r in rows]

    def list_optouts(self, channel: str | None = None) -> list[OptOut]:
        where, params = (
            ("", ()) if channel in (None, "*") else (" WHERE channel IN (?, '*')", (channel,))
        )
        rows = self._query(
            f"SELECT contact, channel, source, at FROM optouts{where} ORDER BY at", params
        )
        return [
            OptOut(str(r[0]), str(r[1]), str(r[2]), datetime.fromisoformat(str(r[3]))) for r in rows
        ]

    # -- outcomes ---------------------------------------------------------------------------
    def record_conversion(
        self,
        checkout_id: str,
        kind: ConversionKind,
        purchase: Purchase | None,
        at: datetime,
        attribution_since: datetime,
    ) -> str | None:
        window = (checkout_id, _ts(attribution_since), _ts(at))
        with self._tx() as db:
            # The message whose link was clicked last wins; else the last message sent.
            row = (
                db.execute(
                    "SELECT o.key FROM clicks c JOIN outbox o ON o.checkout_id = c.checkout_id"
                    " AND o.step = c.step AND o.channel = c.channel"
                    " WHERE c.checkout_id = ? AND c.at >= ? AND c.at <= ?"
                    " AND o.status IN ('sent', 'unknown') ORDER BY c.at DESC LIMIT 1",
                    window,
                ).fetchone()
                or db.execute(
                    "SELECT key FROM outbox WHERE checkout_id = ? AND status IN ('sent', 'unknown')"
                    " AND claimed_at >= ? AND claimed_at <= ? ORDER BY claimed_at DESC LIMIT 1",
                    window,
                ).fetchone()
            )
            key = str(row[0]) if row else None
            db.execute(
                "INSERT OR IGNORE INTO conversions (checkout_id, kind, order_id, total,"
                " currency, at, attributed_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    checkout_id,
                    kind,
                    purchase.order_id if purchase else None,
                    str(purchase.total) if purchase and purchase.total is not None else None,
                    purchase.currency if purchase else None,
                    _ts(at),
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
        with self._tx() as db:
            db.execute(
                "INSERT INTO events (at, kind, checkout_id, step, channel, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (_ts(at), kind, checkout_id, step, channel, detail),
            )

    def events(self, checkout_id: str | None = None) -> list[tuple[str, str | None]]:
        """(kind, detail) of recorded events, oldest first; for one checkout if given."""
        if checkout_id is None:
            rows = self._query("SELECT kind, detail FROM events ORDER BY id")
        else:
            rows = self._query(
                "SELECT kind, detail FROM events WHERE checkout_id = ? ORDER BY id",
                (checkout_id,),
            )
        return [(str(r[0]), None if r[1] is None else str(r[1])) for r in rows]

    def stats(self, now: datetime) -> Stats:
        by_status = {
            str(s): int(n)
            for s, n in self._query("SELECT status, count(*) FROM checkouts GROUP BY status")
        }
        messages: Counter[tuple[int, str, str]] = Counter()
        for step, channel, status, n in self._query(
            "SELECT step, channel, status, count(*) FROM outbox GROUP BY step, channel, status"
        ):
            shown = "unknown" if status == "claimed" else str(status)
            messages[(int(step), str(channel), shown)] += int(n)
        messaged = self._query(
            "SELECT count(DISTINCT checkout_id) FROM outbox WHERE status IN ('sent', 'unknown',"
            " 'claimed')"
        )[0][0]
        conversions = {
            str(k): int(n)
            for k, n in self._query("SELECT kind, count(*) FROM conversions GROUP BY kind")
        }
        revenue: dict[str, Decimal] = {}
        recovered = 0
        for total, currency in self._query(
            "SELECT total, currency FROM conversions WHERE attributed_key IS NOT NULL"
        ):
            recovered += 1
            if total is not None and currency is not None:
                revenue[str(currency)] = revenue.get(str(currency), Decimal(0)) + Decimal(
                    str(total)
                )
        last_done, passes_completed = self._query(
            "SELECT max(finished_at), count(*) FROM runs"
            " WHERE finished_at IS NOT NULL AND error IS NULL"
        )[0]
        last_start = self._query("SELECT started_at, error FROM runs ORDER BY id DESC LIMIT 1")
        skips: Counter[str] = Counter()
        for reason, n in self._query(
            "SELECT reason, count(*) FROM checkouts WHERE status = 'stopped' GROUP BY reason"
        ):
            skips[str(reason)] += int(n)
        for reason, n in self._query("SELECT reason, count(*) FROM skipped_steps GROUP BY reason"):
            skips[f"step skipped: {reason}"] += int(n)
        return Stats(
            checkouts_seen=sum(by_status.values()),
            checkouts_by_status=by_status,
            messages=dict(messages),
            messaged_checkouts=int(messaged),
            conversions=conversions,
            recovered=recovered,
            revenue_recovered=revenue,
            clicks=int(self._query("SELECT count(*) FROM clicks")[0][0]),
            opt_outs=int(self._query("SELECT count(*) FROM optouts")[0][0]),
            bad_payloads=int(self._query("SELECT count(*) FROM bad_checkouts")[0][0]),
            last_pass_completed=_dt(last_done),
            last_pass_started=_dt(str(last_start[0][0])) if last_start else None,
            last_pass_error=None
            if not last_start or last_start[0][1] is None
            else str(last_start[0][1]),
            skip_reasons=dict(skips),
            passes_completed=int(passes_completed),
            not_rendered=int(
                self._query("SELECT count(*) FROM outbox WHERE status = 'not_rendered'")[0][0]
            ),
        )

    def forget(self, contact: str) -> int:
        """Erase every row naming ``contact`` (an opt-out survives as a keyed hash), then
        checkpoint and truncate the write-ahead log so no copy stays in any file."""
        removed = self._forget(contact)
        self.checkpoint()
        return removed

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the main file and truncate it to zero bytes.

        A reader in the middle of a transaction (``serve``) holds the log back; the
        checkpoint is retried until ``timeout``, then :class:`StoreError` says so."""
        if self.path == ":memory:":
            return
        deadline = time.monotonic() + self._timeout
        while True:
            with self._lock:
                busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                return
            if time.monotonic() > deadline:
                raise StoreError(
                    f"store {self.path}: another process kept the write-ahead log busy; "
                    "the erased data stays in the -wal file until the next checkpoint "
                    "(run 'cartrescue forget' again when serve is idle)"
                )
            time.sleep(0.05)

    def _forget(self, contact: str) -> int:
        forms = _contact_forms(contact)
        marks = _marks(forms)
        if self._key:
            self._rekey(forms)
        with self._tx() as db:
            ids = [
                str(r[0])
                for r in db.execute(
                    f"SELECT id FROM checkouts WHERE email IN ({marks}) OR phone IN ({marks})",
                    (*forms, *forms),
                )
            ]
            keys = [
                str(r[0])
                for r in db.execute(
                    f"SELECT key FROM outbox WHERE lower(recipient) IN ({marks}) OR checkout_id IN "
                    f"({_marks(ids)})",
                    (*forms, *ids),
                )
            ]
            keys += [
                str(r[0])
                for r in db.execute(f"SELECT key FROM touches WHERE contact IN ({marks})", forms)
            ]
            removed = 0
            for channel, at in list(
                db.execute(f"SELECT channel, at FROM optouts WHERE contact IN ({marks})", forms)
            ):
                # Keep honouring the opt-out without keeping the address: a keyed hash.
                db.execute(
                    "INSERT OR REPLACE INTO optout_hashes (hash, channel, at) VALUES (?, ?, ?)",
                    (self._hash(forms[0]), channel, at),
                )
            removed += db.execute(f"DELETE FROM optouts WHERE contact IN ({marks})", forms).rowcount
            removed += db.execute(
                f"DELETE FROM discounts WHERE contact IN ({marks})", forms
            ).rowcount
            removed += db.execute(
                f"DELETE FROM touches WHERE contact IN ({marks}) OR key IN ({_marks(keys)})",
                (*forms, *keys),
            ).rowcount
            removed += db.execute(
                f"DELETE FROM outbox WHERE key IN ({_marks(keys)})", keys
            ).rowcount
            for table, column in (
                ("checkouts", "id"),
                ("skipped_steps", "checkout_id"),
                ("discounts", "checkout_id"),
                ("conversions", "checkout_id"),
                ("events", "checkout_id"),
                ("links", "checkout_id"),
                ("clicks", "checkout_id"),
                ("assignments", "checkout_id"),
                ("conversation", "checkout_id"),
                ("pauses", "checkout_id"),
                ("reasons", "checkout_id"),
                ("bad_checkouts", "id"),
            ):
                removed += db.execute(
                    f"DELETE FROM {table} WHERE {column} IN ({_marks(ids)})", ids
                ).rowcount
            return removed

    def rows_naming(self, contact: str) -> int:
        """How many rows still name ``contact`` in any text column (used to check forget)."""
        contact = contact.strip().lower()
        total = 0
        tables = [
            str(r[0]) for r in self._query("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        for table in tables:
            columns = [str(r[1]) for r in self._query(f"PRAGMA table_info({table})")]
            for column in columns:
                total += int(
                    self._query(
                        f"SELECT count(*) FROM {table} "
                        f"WHERE instr(lower(CAST({column} AS TEXT)), ?)",
                        (contact,),
                    )[0][0]
                )
        return total

    # -- short links ------------------------------------------------------------------------
    def save_link(self, link: LinkRecord) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO links (code, checkout_id, step, channel, destination, home_url,"
                " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    link.code,
                    link.checkout_id,
                    link.step,
                    link.channel,
                    link.destination,
                    link.home_url,
                    _ts(link.created_at),
                    _ts(link.expires_at) if link.expires_at else None,
                ),
            )

    def _link_from(self, rows: list[Any]) -> LinkRecord | None:
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
            created_at=datetime.fromisoformat(str(r[6])),
            expires_at=_dt(r[7]),
        )

    _LINK_COLUMNS = (
        "code, checkout_id, step, channel, destination, home_url, created_at, expires_at"
    )

    def link(self, code: str) -> LinkRecord | None:
        return self._link_from(
            self._query(f"SELECT {self._LINK_COLUMNS} FROM links WHERE code = ?", (code,))
        )

    def link_for(self, checkout_id: str, step: int, channel: str) -> LinkRecord | None:
        return self._link_from(
            self._query(
                f"SELECT {self._LINK_COLUMNS} FROM links WHERE checkout_id = ? AND step = ?"
                " AND channel = ?",
                (checkout_id, step, channel),
            )
        )

    def record_click(self, code: str, at: datetime) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO clicks (code, checkout_id, step, channel, at) "
                "SELECT code, checkout_id, step, channel, ? FROM links WHERE code = ?",
                (_ts(at), code),
            )

    # -- experiments ------------------------------------------------------------------------
    def assignment_key(self) -> bytes:
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'assignment_key'").fetchone()
            if row:
                return str(row[0]).encode()
            value = secrets.token_hex(32)
            db.execute("INSERT INTO meta (key, value) VALUES ('assignment_key', ?)", (value,))
            return value.encode()

    def assignments(self, checkout_id: str) -> dict[str, str]:
        rows = self._query(
            "SELECT experiment, arm FROM assignments WHERE checkout_id = ?", (checkout_id,)
        )
        return {str(r[0]): str(r[1]) for r in rows}

    def record_assignments(
        self,
        checkout_id: str,
        arms: Sequence[tuple[str, str, int | None]],
        at: datetime,
    ) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO assignments (checkout_id, experiment, arm, step, at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(checkout_id, e, a, step, _ts(at)) for e, a, step in arms],
            )

    def arm_counts(self, experiment: str) -> dict[str, tuple[int, int]]:
        rows = self._query(
            "SELECT a.arm, count(*), count(k.checkout_id) FROM assignments a"
            " LEFT JOIN conversions k ON k.checkout_id = a.checkout_id"
            " WHERE a.experiment = ? GROUP BY a.arm",
            (experiment,),
        )
        return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def report_facts(
        self, since: datetime, until: datetime, windows: AttributionWindows
    ) -> ReportFacts:
        span = (_ts(since), _ts(until))
        click_days, send_days = _window_cases(windows)
        # A message qualifies for a purchase when the purchase came within its channel's
        # send window after it was sent, or within the click window after its link was
        # clicked; the last qualifying message before the purchase gets the credit.
        qualifies = (
            "(o{n}.status IN ('sent', 'unknown', 'claimed') AND o{n}.claimed_at <= k.at AND ("
            f"julianday(k.at) - julianday(o{{n}}.claimed_at) <= {send_days.format(c='o{n}')}"
            " OR EXISTS (SELECT 1 FROM clicks l WHERE l.checkout_id = o{n}.checkout_id"
            " AND l.step = o{n}.step AND l.channel = o{n}.channel AND l.at <= k.at AND"
            f" julianday(k.at) - julianday(l.at) <= {click_days.format(c='o{n}')})))"
        )
        q1, q2 = qualifies.format(n=1), qualifies.format(n=2)
        attributed_checkout = (
            f"EXISTS (SELECT 1 FROM outbox o1 WHERE o1.checkout_id = c.id AND {q1})"
        )
        opted = (
            "EXISTS (SELECT 1 FROM optouts p WHERE p.contact = c.email OR p.contact ="
            " lower(c.phone))"
        )
        base = (
            "SELECT c.id AS id, c.abandoned_at AS abandoned_at, k.at AS conv_at,"
            " k.checkout_id IS NOT NULL AS converted,"
            " coalesce(CAST(k.total AS REAL), 0) AS total,"
            f" (k.checkout_id IS NOT NULL AND {attributed_checkout}) AS attributed,"
            " EXISTS (SELECT 1 FROM outbox m WHERE m.checkout_id = c.id AND m.status IN"
            " ('sent', 'unknown', 'claimed')) AS messaged,"
            " EXISTS (SELECT 1 FROM clicks l WHERE l.checkout_id = c.id) AS clicked,"
            f" {opted} AS opted"
            " FROM checkouts c LEFT JOIN conversions k ON k.checkout_id = c.id"
            " WHERE c.abandoned_at >= ? AND c.abandoned_at < ?"
        )
        totals = self._query(
            "SELECT count(*), coalesce(sum(CAST(json_extract(c.data, '$.total') AS REAL)), 0),"
            " coalesce(sum((SELECT sum(CAST(json_extract(i.value, '$.quantity') AS INTEGER))"
            " FROM json_each(c.data, '$.line_items') i)), 0),"
            " coalesce(sum(b.converted), 0), coalesce(sum(b.total), 0),"
            " coalesce(sum(b.attributed), 0),"
            " coalesce(sum(CASE WHEN b.attributed THEN b.total ELSE 0 END), 0),"
            " avg(CASE WHEN b.attributed THEN"
            " (julianday(b.conv_at) - julianday(b.abandoned_at)) * 24 END)"
            f" FROM ({base}) b JOIN checkouts c ON c.id = b.id",
            span,
        )[0]
        currency = self._query(
            "SELECT json_extract(data, '$.currency') AS cur, count(*) AS n FROM checkouts"
            " WHERE abandoned_at >= ? AND abandoned_at < ? GROUP BY cur ORDER BY n DESC LIMIT 1",
            span,
        )
        groups = self._query(
            "SELECT a.experiment, a.arm, count(*), sum(b.messaged), sum(b.clicked),"
            " sum(b.converted), sum(b.attributed), sum(b.total), sum(b.total * b.total),"
            f" sum(b.opted) FROM assignments a JOIN ({base}) b ON b.id = a.checkout_id"
            " GROUP BY a.experiment, a.arm ORDER BY a.experiment, a.arm",
            span,
        )
        credited = (
            f"(k.checkout_id IS NOT NULL AND {q1} AND NOT EXISTS (SELECT 1 FROM outbox o2"
            f" WHERE o2.checkout_id = o1.checkout_id AND o2.claimed_at > o1.claimed_at AND {q2}))"
        )
        breakdown = self._query(
            "SELECT o1.step, o1.channel,"
            " coalesce(json_extract(c.data, '$.customer.locale'), '') AS locale,"
            " o1.experiment, o1.arm, count(*),"
            " count(DISTINCT o1.recipient || date(o1.claimed_at)),"
            " sum(EXISTS (SELECT 1 FROM clicks l WHERE l.checkout_id = o1.checkout_id"
            " AND l.step = o1.step AND l.channel = o1.channel)),"
            f" sum({credited}),"
            f" sum(CASE WHEN {credited} THEN coalesce(CAST(k.total AS REAL), 0) ELSE 0 END),"
            f" sum({opted})"
            " FROM outbox o1 JOIN checkouts c ON c.id = o1.checkout_id"
            " LEFT JOIN conversions k ON k.checkout_id = o1.checkout_id"
            " WHERE o1.status IN ('sent', 'unknown', 'claimed')"
            " AND c.abandoned_at >= ? AND c.abandoned_at < ?"
            " GROUP BY o1.step, o1.channel, locale, o1.experiment, o1.arm"
            " ORDER BY o1.step, o1.channel, locale, o1.experiment, o1.arm",
            span,
        )
        attributed_days = self._query(
            "SELECT date(b.conv_at), count(*), sum(b.total) FROM"
            f" ({base}) b WHERE b.attributed GROUP BY date(b.conv_at)",
            span,
        )
        holdout_days = self._query(
            "SELECT date(a.at), a.arm, count(*), sum(b.total) FROM assignments a"
            f" JOIN ({base}) b ON b.id = a.checkout_id WHERE a.experiment = 'holdout'"
            " GROUP BY date(a.at), a.arm",
            span,
        )
        return _facts(
            since, until, totals, currency, groups, breakdown, attributed_days, holdout_days
        )


def _days(delta: Any) -> str:
    return repr(delta.total_seconds() / 86400)


def _window_cases(windows: AttributionWindows) -> tuple[str, str]:
    """SQL expressions (with ``{c}`` standing for the outbox alias) for the click and send
    windows in days of the message's channel. The windows are numbers from the settings,
    written into the SQL as literals."""
    for kind in windows.channels:
        if not kind.isidentifier():
            raise ValueError(f"not a channel kind: {kind!r}")
    click = [f"WHEN '{kind}' THEN {_days(c)}" for kind, (c, _) in windows.channels.items()]
    send = [f"WHEN '{kind}' THEN {_days(s)}" for kind, (_, s) in windows.channels.items()]
    if not click:
        return _days(windows.click), _days(windows.send)
    return (
        f"(CASE {{c}}.channel {' '.join(click)} ELSE {_days(windows.click)} END)",
        f"(CASE {{c}}.channel {' '.join(send)} ELSE {_days(windows.send)} END)",
    )


Rows = Sequence[Sequence[Any]]


def _facts(
    since: datetime,
    until: datetime,
    totals: Sequence[Any],
    currency: Rows,
    groups: Rows,
    breakdown: Rows,
    attributed_days: Rows,
    holdout_days: Rows,
) -> ReportFacts:
    """:class:`ReportFacts` from the rows of the report's queries, which both stores ask in
    their own SQL and answer in the same columns: ``totals`` (abandoned, value, items,
    converted, converted revenue, attributed, attributed revenue, hours to recovery), the
    most common ``currency``, ``groups`` and ``breakdown`` in :class:`GroupFacts` and
    :class:`BreakdownFacts` order, and (day, n, revenue) of attributed purchases and (day,
    arm, n, revenue) of the holdout's assignments."""
    by_day: dict[str, list[float]] = {}
    for day, n, revenue in attributed_days:
        by_day.setdefault(str(day), [0, 0, 0, 0, 0, 0])[0:2] = [int(n), float(revenue)]
    for day, arm, n, revenue in holdout_days:
        row = by_day.setdefault(str(day), [0, 0, 0, 0, 0, 0])
        at = 2 if arm == "treated" else 4
        row[at : at + 2] = [int(n), float(revenue)]
    abandoned, value, items, converted, converted_revenue, attributed, revenue, hours = totals
    return ReportFacts(
        since=since,
        until=until,
        abandoned=int(abandoned),
        abandoned_value=float(value),
        abandoned_items=int(items),
        converted=int(converted),
        converted_revenue=float(converted_revenue),
        attributed=int(attributed),
        attributed_revenue=float(revenue),
        hours_to_recovery=None if hours is None else float(hours),
        currency=str(currency[0][0]) if currency and currency[0][0] else None,
        groups=tuple(
            GroupFacts(
                experiment=str(r[0]),
                arm=str(r[1]),
                eligible=int(r[2]),
                messaged=int(r[3]),
                clicked=int(r[4]),
                converted=int(r[5]),
                attributed=int(r[6]),
                revenue=float(r[7]),
                revenue_squares=float(r[8]),
                opted_out=int(r[9]),
            )
            for r in groups
        ),
        breakdown=tuple(
            BreakdownFacts(
                step=int(r[0]),
                channel=str(r[1]),
                locale=str(r[2]),
                experiment=None if r[3] is None else str(r[3]),
                arm=None if r[4] is None else str(r[4]),
                sent=int(r[5]),
                recipients_days=int(r[6]),
                clicked=int(r[7]),
                attributed=int(r[8]),
                revenue=float(r[9]),
                opted_out=int(r[10]),
            )
            for r in breakdown
        ),
        days=tuple(
            DayFacts(
                day=day,
                attributed=int(r[0]),
                attributed_revenue=r[1],
                treated=int(r[2]),
                treated_revenue=r[3],
                held_out=int(r[4]),
                held_out_revenue=r[5],
            )
            for day, r in sorted(by_day.items())
        ),
    )
