from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta

import pytest

from cartrescue.errors import StoreError
from cartrescue.store import SCHEMA_VERSION, SQLiteStore

from ..conftest import NOON, make_checkout


@pytest.fixture
def store(tmp_path):
    with SQLiteStore(tmp_path / "s.sqlite3") as s:
        yield s


def claim(store, key, contacts=("kari@example.no",), at=NOON, cap_since=None):
    checkout_id, step, channel = key.split(":")
    return store.claim(
        key,
        checkout_id=checkout_id,
        step=int(step),
        channel=channel,
        recipient=contacts[0],
        contacts=contacts,
        at=at,
        cap_since=cap_since,
        run_id=None,
    )


def test_wal_and_schema_version(tmp_path):
    path = tmp_path / "s.sqlite3"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.sqlite3"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(path)


def test_reopening_keeps_data(tmp_path):
    path = tmp_path / "s.sqlite3"
    with SQLiteStore(path) as s:
        s.upsert_checkout(make_checkout(), NOON)
        s.set_watermark("demo", NOON)
    with SQLiteStore(path) as s:
        assert s.checkout("c1") == make_checkout()
        assert s.watermark("demo") == NOON


def test_claim_is_once_per_key(store):
    assert claim(store, "c1:1:sms")
    assert not claim(store, "c1:1:sms")
    store.finish("c1:1:sms", "sent", NOON)
    assert not claim(store, "c1:1:sms")


def test_retry_releases_the_key(store):
    assert claim(store, "c1:1:sms")
    store.finish("c1:1:sms", "retry", NOON, error="429")
    assert claim(store, "c1:1:sms")
    store.finish("c1:1:sms", "unknown", NOON)
    assert not claim(store, "c1:1:sms")


def test_claim_checks_the_frequency_cap_atomically(store):
    assert claim(store, "c1:1:sms", contacts=("+4791234567", "kari@example.no"))
    # another checkout of the same person, by email only: capped
    assert not claim(
        store, "c2:1:email", contacts=("KARI@example.no",), cap_since=NOON - timedelta(hours=20)
    )
    # a failed send does not count towards the cap
    store.finish("c1:1:sms", "failed", NOON)
    assert claim(
        store, "c2:1:email", contacts=("kari@example.no",), cap_since=NOON - timedelta(hours=20)
    )


def test_concurrent_claims_from_threads_and_connections(tmp_path):
    path = tmp_path / "s.sqlite3"
    SQLiteStore(path).close()
    wins = []
    barrier = threading.Barrier(8)

    def worker():
        with SQLiteStore(path) as s:
            barrier.wait()
            for n in range(50):
                if claim(s, f"c{n}:1:sms", contacts=(f"p{n}@example.no",)):
                    wins.append(n)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == list(range(50))


def test_active_checkouts_and_close(store):
    store.upsert_checkout(make_checkout("a", abandoned_at=NOON - timedelta(days=10)), NOON)
    store.upsert_checkout(make_checkout("b"), NOON)
    store.upsert_checkout(make_checkout("c"), NOON)
    store.close_checkout("c", "converted", "completed", NOON)
    assert [c.id for c in store.active_checkouts(NOON - timedelta(days=4))] == ["b"]
    # an update from the shop does not reopen a closed checkout
    store.upsert_checkout(make_checkout("c"), NOON)
    assert store.checkout_status("c") == "converted"


def test_start_at_is_set_once(store):
    assert store.start_at(NOON) == NOON
    assert store.start_at(NOON + timedelta(days=1)) == NOON


def test_conversion_attributed_to_last_message_in_window(store):
    from decimal import Decimal

    from cartrescue.models import Purchase

    store.upsert_checkout(make_checkout(), NOON)
    claim(store, "c1:1:sms", at=NOON + timedelta(hours=1))
    store.finish("c1:1:sms", "sent", NOON + timedelta(hours=1))
    purchase = Purchase("o1", NOON + timedelta(hours=2), Decimal("499.00"), "NOK")
    key = store.record_conversion("c1", "converted", purchase, NOON + timedelta(hours=2), NOON)
    assert key == "c1:1:sms"
    stats = store.stats(NOON)
    assert stats.recovered == 1
    assert stats.revenue_recovered == {"NOK": Decimal("499.00")}
    assert stats.recovery_rate == 1.0


def test_claimed_without_result_counts_as_unknown(store):
    claim(store, "c1:1:sms")
    assert store.stats(NOON).messages == {(1, "sms", "unknown"): 1}


def test_optouts(store):
    store.add_optout("Kari@Example.no", "*", "cli", NOON)
    assert store.optouts_for(["kari@example.no"]) == {"*"}
    assert store.remove_optout("kari@example.no") == 1
    assert store.optouts_for(["kari@example.no"]) == set()


def test_forget_removes_every_row_naming_the_contact_but_keeps_the_opt_out(store):
    store.upsert_checkout(make_checkout("c1"), NOON)
    store.upsert_checkout(make_checkout("other", email="ola@example.no", phone=None), NOON)
    claim(store, "c1:1:sms", contacts=("+4791234567", "kari@example.no"))
    store.finish("c1:1:sms", "sent", NOON)
    store.record_discount("c1", ["kari@example.no"], "BACK10", NOON)
    store.add_optout("+4791234567", "sms", "twilio", NOON)
    store.record_event("sent", NOON, checkout_id="c1")
    assert store.rows_naming("+4791234567") > 0
    assert store.forget("+4791234567") > 0
    assert store.rows_naming("+4791234567") == 0
    assert store.rows_naming("kari@example.no") == 0  # the checkout named both
    assert store.checkout("other") is not None
    # still suppressed, through a salted hash
    assert store.optouts_for(["+4791234567"]) == {"sms"}


def test_a_clicked_link_wins_the_attribution_over_a_later_message(store):
    from decimal import Decimal

    from cartrescue.models import Purchase
    from cartrescue.store import LinkRecord

    store.upsert_checkout(make_checkout(), NOON)
    for key, hours in (("c1:1:sms", 1), ("c1:2:email", 24)):
        claim(store, key, at=NOON + timedelta(hours=hours))
        store.finish(key, "sent", NOON + timedelta(hours=hours))
    store.save_link(
        LinkRecord("AbCdEf12", "c1", 1, "sms", "https://shop.example/c1", None, NOON, None)
    )
    store.record_click("AbCdEf12", NOON + timedelta(hours=2))
    purchase = Purchase("o1", NOON + timedelta(hours=25), Decimal("499.00"), "NOK")
    key = store.record_conversion("c1", "converted", purchase, NOON + timedelta(hours=25), NOON)
    assert key == "c1:1:sms"
    assert store.stats(NOON).clicks == 1


def test_upsert_checkouts_stores_a_page_and_returns_each_status(store):
    store.upsert_checkout(make_checkout("c1"), NOON)
    store.close_checkout("c1", "done", "all steps done", NOON)
    store.record_bad_checkout("c2", "bad price", NOON)
    page = [make_checkout("c1"), make_checkout("c2"), make_checkout("c3", first_name="Ola")]
    statuses = store.upsert_checkouts(page, NOON + timedelta(hours=1))
    assert statuses == {"c1": "done", "c2": "open", "c3": "open"}
    assert store.bad_checkouts() == []
    assert store.checkout("c3") == page[2]


def test_histories_answer_for_a_page_what_the_single_reads_do(store):
    a, b = "kari@example.no", "+4791234567"
    claim(store, "c1:1:sms", contacts=(b, a))
    store.finish("c1:1:sms", "sent", NOON)
    claim(store, "c1:2:email", contacts=(a,), at=NOON + timedelta(hours=1))
    store.finish("c1:2:email", "retry", NOON + timedelta(hours=1))
    store.skip_step("c2", 1, "overdue", NOON)
    store.record_discount("c2", [a], "BACK10", NOON)
    store.add_optout(b, "sms", "STOP", NOON)
    known = store.histories(["c1", "c2", "c3"], [a.upper(), b, "nobody@example.no"])
    assert known.steps == {"c1": ((1, "sms", "sent"), (2, "email", "retry"))}
    assert known.skipped == {"c2": frozenset({1})}
    assert known.last_contacted == {a: store.last_contacted([a]), b: store.last_contacted([b])}
    assert known.last_discount == {a: NOON}
    assert known.optouts == {b: frozenset({"sms"})}


def test_histories_see_forgotten_opt_outs_by_their_hash(tmp_path):
    with SQLiteStore(tmp_path / "k.sqlite3", hash_key="secret") as store:
        store.add_optout("kari@example.no", "*", "STOP", NOON)
        store.forget("kari@example.no")
        known = store.histories([], ["Kari@example.no"])
        assert known.optouts == {"kari@example.no": frozenset({"*"})}


def test_active_checkouts_are_read_in_batches_oldest_first(store, monkeypatch):
    from cartrescue.store import sqlite

    monkeypatch.setattr(sqlite, "_ACTIVE_BATCH", 3)
    same = NOON + timedelta(minutes=5)
    ids = [f"c{n}" for n in range(8)]
    store.upsert_checkouts(
        [
            make_checkout(i, abandoned_at=same if n % 2 else NOON + timedelta(minutes=n))
            for n, i in enumerate(ids)
        ],
        NOON,
    )
    store.close_checkout("c4", "stopped", "opted out", NOON)
    seen = [c.id for c in store.active_checkouts(NOON)]
    assert sorted(seen) == sorted(set(ids) - {"c4"})
    assert len(seen) == len(set(seen))
    assert [c.abandoned_at for c in store.active_checkouts(NOON)] == sorted(
        c.abandoned_at for c in store.active_checkouts(NOON)
    )
