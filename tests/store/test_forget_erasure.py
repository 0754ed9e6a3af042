"""``forget`` erases for real: no byte of a forgotten contact stays in any store file, even
while another connection keeps the store open (as ``serve`` does)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from cartrescue.errors import StoreError
from cartrescue.store import SQLiteStore

from ..conftest import NOON, make_checkout

EMAIL = "kari.nordmann@example.no"
PHONE = "+4791234567"
FORMS = (EMAIL, EMAIL.upper(), PHONE, PHONE[1:], "912 34 567", "91234567")
KEY = "k" * 32


def fill(store: SQLiteStore) -> None:
    store.upsert_checkout(make_checkout("c1", email=EMAIL, phone=PHONE), NOON)
    store.upsert_checkout(make_checkout("c2", email=EMAIL, phone=PHONE), NOON)
    store.upsert_checkout(make_checkout("other", email="ola@example.no", phone=None), NOON)
    for checkout_id, channel, to in (("c1", "sms", PHONE), ("c2", "email", EMAIL)):
        key = f"{checkout_id}:1:{channel}"
        store.claim(
            key,
            checkout_id=checkout_id,
            step=1,
            channel=channel,
            recipient=to,
            contacts=(PHONE, EMAIL),
            at=NOON,
            cap_since=None,
            run_id=None,
        )
        store.finish(key, "sent", NOON)
    store.record_discount("c1", [EMAIL], "BACK10", NOON)
    store.add_optout(PHONE, "sms", "twilio", NOON)
    store.add_optout(PHONE[1:], "whatsapp", "whatsapp", NOON)  # a WhatsApp id has no "+"
    store.add_optout(EMAIL, "email", "unsubscribe", NOON)
    store.record_event("sent", NOON, checkout_id="c1")


def leftovers(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for suffix in ("", "-wal", "-shm"):
        file = Path(f"{path}{suffix}")
        data = file.read_bytes().lower() if file.exists() else b""
        hits = [form for form in FORMS if form.lower().encode() in data]
        if hits:
            found[file.name] = hits
    return found


@pytest.mark.parametrize("second", ["store", "sqlite3"])
def test_forget_leaves_no_byte_of_the_contact_in_any_file(tmp_path: Path, second: str) -> None:
    path = tmp_path / "store.sqlite3"
    store = SQLiteStore(path, hash_key=KEY)
    fill(store)
    # Another connection keeps the file open and has read it, as serve does.
    other: SQLiteStore | sqlite3.Connection
    if second == "store":
        other = SQLiteStore(path, hash_key=KEY)
        assert other.optouts_for([EMAIL]) == {"email"}
    else:
        other = sqlite3.connect(path)
        assert other.execute("SELECT count(*) FROM checkouts").fetchone()[0] == 3
    assert leftovers(path)  # the test can see the contact before

    assert store.forget(EMAIL) > 0
    assert store.forget(PHONE) > 0

    assert leftovers(path) == {}
    assert store.checkout("other") is not None
    # The opt-outs are still honoured, through the keyed hash, by both connections.
    assert store.optouts_for([PHONE]) == {"sms", "whatsapp"}
    assert store.optouts_for([EMAIL]) == {"email"}
    if isinstance(other, SQLiteStore):
        assert other.optouts_for([EMAIL]) == {"email"}
    other.close()
    store.close()


def test_the_surviving_hash_needs_the_key(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    with SQLiteStore(path, hash_key=KEY) as store:
        store.add_optout(PHONE, "sms", "twilio", NOON)
        store.forget(PHONE)
    db = sqlite3.connect(path)
    salt = db.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()[0]
    stored = {row[0] for row in db.execute("SELECT hash FROM optout_hashes")}
    db.close()
    # What a copied file gives an attacker (salt and hashes) does not find the number ...
    assert hashlib.sha256(f"{salt}:{PHONE}".encode()).hexdigest() not in stored
    # ... and without the key the opt-out is not recognised; with it, it is.
    with SQLiteStore(path, hash_key="another key of enough length!!") as stranger:
        assert stranger.optouts_for([PHONE]) == set()
    with SQLiteStore(path, hash_key=KEY) as store:
        assert store.optouts_for([PHONE]) == {"sms"}


def test_an_opt_out_forgotten_before_the_key_is_kept_and_re_keyed(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    with SQLiteStore(path) as store:  # an older install: no key configured
        store.add_optout(PHONE, "sms", "twilio", NOON)
        store.forget(PHONE)
        assert not store.keyed
    with SQLiteStore(path, hash_key=KEY) as store:
        assert store.keyed
        assert store.optouts_for([PHONE]) == {"sms"}  # not lost
    db = sqlite3.connect(path)
    hashes = [row[0] for row in db.execute("SELECT hash FROM optout_hashes")]
    db.close()
    assert len(hashes) == 1 and hashes[0].startswith("hmac:")  # re-keyed
    with SQLiteStore(path, hash_key=KEY) as store:
        assert store.optouts_for([PHONE]) == {"sms"}


def test_a_reader_holding_the_log_makes_forget_say_so(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store = SQLiteStore(path, timeout=0.3, hash_key=KEY)
    fill(store)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM checkouts").fetchone()
    with pytest.raises(StoreError, match="write-ahead log"):
        store.forget(EMAIL)
    reader.execute("COMMIT")
    store.checkpoint()  # once the reader is done, the next checkpoint erases
    assert EMAIL.encode() not in Path(f"{path}-wal").read_bytes()
    reader.close()
    store.close()
