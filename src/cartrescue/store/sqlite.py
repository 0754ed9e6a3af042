"""The embedded default store: one SQLite file per shop, in WAL mode.

Several processes may use the same file at once (overlapping cron runs): every write is one
short transaction, and :meth:`SQLiteStore.claim` runs in a ``BEGIN IMMEDIATE`` transaction so
that the existence check, the frequency cap and the insert are one atomic step.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from ..errors import BadPayloadError, StoreError
from ..models import Checkout, Purchase, normalize_phone
from .base import (
    RELEASED,
    ConversionKind,
    Histories,
    LinkRecord,
    OptOut,
    OutboxEntry,
    OutboxStatus,
    Stats,
)

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

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
)

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
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as err:
            raise StoreError(f"cannot open store {self.path}: {err}") from err
        self._lock = threading.RLock()
        self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        # Deleted rows are overwritten with zeros, whatever SQLite was built with.
        self._db.execute("PRAGMA secure_delete = ON")
        if self.path != ":memory:":
            self._enable_wal(timeout)
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._migrate()
        self._salt = self._meta("salt") or ""

    # -- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def _tx(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute(f"BEGIN {mode}")
            except sqlite3.Error as err:
                raise StoreError(f"store {self.path} is unavailable: {err}") from err
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as err:
                with suppress(sqlite3.Error):  # SQLite may have rolled back (full disk, I/O)
                    self._db.execute("ROLLBACK")
                if isinstance(err, sqlite3.Error) and _broken(err):
                    raise StoreError(f"store {self.path} failed: {err}") from err
                raise

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        with self._lock:
            try:
                return list(self._db.execute(sql, params))
            except sqlite3.Error as err:
                if _broken(err):
                    raise StoreError(f"store {self.path} failed: {err}") from err
                raise

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
                    raise StoreError(f"cannot open store {self.path}: {err}") from err
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
            for _, _, data in rows:
                try:
                    yield Checkout.from_dict(json.loads(str(data)))
                except (BadPayloadError, ValueError) as err:  # one row must not stop every pass
                    log.warning("store %s: a stored checkout cannot be read: %s", self.path, err)
            if len(rows) < _ACTIVE_BATCH:
                return
            at, last = str(rows[-1][0]), str(rows[-1][1])
            rows = self._query(
                f"{columns} AND (abandoned_at > ? OR (abandoned_at = ? AND id > ?))"
                " ORDER BY abandoned_at, id LIMIT ?",
                (at, at, last, _ACTIVE_BATCH),
            )

    def checkout(self, checkout_id: str) -> Checkout | None:
        rows = self._query("SELECT data FROM checkouts WHERE id = ?", (checkout_id,))
        return Checkout.from_dict(json.loads(str(rows[0][0]))) if rows else None

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

    def list_optouts(self) -> list[OptOut]:
        rows = self._query("SELECT contact, channel, source, at FROM optouts ORDER BY at")
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
