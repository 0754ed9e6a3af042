"""The SQLite store when the file is locked, damaged, read-only or on a full disk: one
``StoreError`` line naming the file, what happened and the fix; the CLI prints that line and
exits 1; nothing is sent twice."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from cartrescue.errors import StoreError
from cartrescue.store import SQLiteStore
from cartrescue.store.sqlite import store_error

from ..conftest import NOON, make_checkout
from ..test_processes import cartrescue, write_shop

Mount = Callable[..., Path]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """Mount a small tmpfs (CI runs as root); skipped where that is not allowed."""
    mounted: list[Path] = []

    def mount(size: str = "1m", name: str = "fs") -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root (CI runs as root)")
        where = tmp_path / name
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"mount is not permitted here: {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


def remount(where: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(where)], check=True)


def fill(where: Path) -> Path:
    filler = where / "filler"
    with pytest.raises(OSError, match="No space left"), filler.open("wb") as out:
        while True:
            out.write(b"\0" * 4096)
            out.flush()
    return filler


def assert_one_line(err: StoreError, path: Path, what: str, fix: str) -> None:
    text = str(err)
    assert "\n" not in text
    assert text.startswith(f"store {path} {what}: "), text
    assert fix in text
    for raw in ("sqlite3.", "OperationalError", "DatabaseError", "cannot rollback"):
        assert raw not in text
    assert isinstance(err.__cause__, sqlite3.Error | OSError)  # SQLite's words stay chained


def test_a_locked_store(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with SQLiteStore(path, timeout=0.2) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        other.execute("INSERT INTO meta (key, value) VALUES ('held', 'by another process')")
        try:
            with pytest.raises(StoreError) as caught:
                store.record_event("x", NOON)
            assert_one_line(caught.value, path, "is locked by another process", "run again")
            with pytest.raises(StoreError, match="is locked by another process"):
                SQLiteStore(path, timeout=0.2)
        finally:
            other.execute("ROLLBACK")
            other.close()
        store.record_event("x", NOON)  # usable again once the lock is gone
        assert store.events() == [("x", None)]


@pytest.mark.parametrize("garbage", [b"not a database at all\n" * 300, bytes(range(256)) * 20])
def test_a_damaged_store(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "s.sqlite3"
    path.write_bytes(garbage)
    with pytest.raises(StoreError) as caught:
        SQLiteStore(path)
    assert_one_line(caught.value, path, "is damaged or is not a cartrescue store", "backup")
    assert path.read_bytes() == garbage  # never "repaired" by overwriting


def test_a_store_on_a_read_only_file_system(tmpfs: Mount) -> None:
    where = tmpfs()
    path = where / "s.sqlite3"
    SQLiteStore(path).close()
    remount(where, "ro")
    with pytest.raises(StoreError) as caught:
        SQLiteStore(path)
    assert_one_line(caught.value, path, "is read-only", "writable by the user")
    with pytest.raises(StoreError) as caught:
        SQLiteStore(where / "new" / "s.sqlite3")
    assert_one_line(caught.value, where / "new" / "s.sqlite3", "is read-only", "writable")


def test_a_full_disk_then_space_freed(tmpfs: Mount) -> None:
    where = tmpfs()
    path = where / "s.sqlite3"
    with SQLiteStore(path) as store:
        store.upsert_checkout(make_checkout("c1"), NOON)
        filler = fill(where)
        with pytest.raises(StoreError) as caught:
            for n in range(200):
                store.upsert_checkout(make_checkout(f"big{n}", first_name="K" * 5000), NOON)
        assert_one_line(caught.value, path, "cannot be written because the disk is full", "free")
        assert store.checkout("c1") is not None  # what was recorded is still there
        filler.unlink()
        store.record_event("after", NOON + timedelta(minutes=1))
        assert ("after", None) in store.events()


def _run(config: Path) -> tuple[int, str, str]:
    proc = cartrescue("-q", "run", "--config", str(config))
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def assert_cli_line(err: str, path: Path, what: str) -> None:
    assert "Traceback" not in err, err
    assert "sqlite3." not in err, err
    assert "Error" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("cartrescue: store ")]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"cartrescue: store {path} {what}: "), err


def test_cli_exits_1_with_one_line_for_a_damaged_store(tmp_path: Path) -> None:
    config = write_shop(tmp_path, 1, '[channels.sms]\ntype = "console"')
    store = tmp_path / "store.sqlite3"
    store.write_bytes(b"this is not a database\n" * 100)
    code, _, err = _run(config)
    assert code == 1
    assert_cli_line(err, store, "is damaged or is not a cartrescue store")


def test_cli_exits_1_with_one_line_for_a_read_only_store(tmp_path: Path, tmpfs: Mount) -> None:
    where = tmpfs()
    store = where / "store.sqlite3"
    SQLiteStore(store).close()
    remount(where, "ro")
    config = write_shop(tmp_path, 1, '[channels.sms]\ntype = "console"')
    config.write_text(config.read_text().replace('"store.sqlite3"', f'"{store}"'))
    code, _, err = _run(config)
    assert code == 1
    assert_cli_line(err, store, "is read-only")


def test_a_disk_full_after_a_send_never_sends_it_again(tmp_path: Path, tmpfs: Mount) -> None:
    where = tmpfs()
    store = where / "store.sqlite3"
    sent = tmp_path / "sent.log"
    channel = '[channels.sms]\ntype = "tests.store.fault_channels:FillDiskChannel"\n'
    config = write_shop(tmp_path, 3, channel + f'log = "{sent}"\nfill = "{where}"')
    config.write_text(config.read_text().replace('"store.sqlite3"', f'"{store}"'))
    code, _, err = _run(config)
    assert code == 1
    assert_cli_line(err, store, "cannot be written because the disk is full")
    first = sent.read_text().split()
    assert len(first) == 1  # the pass stopped at the first write after the send

    (where / "filler").unlink()
    config.write_text(config.read_text().replace(f'fill = "{where}"', 'fill = ""'))
    code, _, err = _run(config)
    assert code == 0, err
    keys = sent.read_text().split()
    assert sorted(keys) == ["c0:1:sms", "c1:1:sms", "c2:1:sms"]  # each once, none twice


def test_a_stored_checkout_that_no_longer_reads_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with SQLiteStore(tmp_path / "s.sqlite3") as store:
        store.upsert_checkout(make_checkout("old"), NOON)
        store.upsert_checkout(make_checkout("ok"), NOON + timedelta(seconds=1))
        # What an older cartrescue stored before times were bounded to 1970-2999.
        data = make_checkout("old").to_dict()
        data["updated_at"] = "9999-12-31T23:59:59+00:00"
        raw = sqlite3.connect(tmp_path / "s.sqlite3", isolation_level=None)
        raw.execute("UPDATE checkouts SET data = ? WHERE id = 'old'", (json.dumps(data),))
        raw.close()
        assert [c.id for c in store.active_checkouts(NOON - timedelta(days=1))] == ["ok"]
    assert "checkout old skipped" in caplog.text


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        (sqlite3.OperationalError("attempt to write a readonly database"), "is read-only"),
        (sqlite3.OperationalError("database is locked"), "is locked by another process"),
        (sqlite3.OperationalError("database table is locked"), "is locked by another process"),
        (
            sqlite3.OperationalError("database or disk is full"),
            "cannot be written because the disk is full",
        ),
        (
            sqlite3.DatabaseError("file is not a database"),
            "is damaged or is not a cartrescue store",
        ),
        (
            sqlite3.DatabaseError("database disk image is malformed"),
            "is damaged or is not a cartrescue store",
        ),
        (sqlite3.OperationalError("disk I/O error"), "could not be read or written (I/O error)"),
        (PermissionError(13, "Permission denied"), "is read-only"),
        (OSError(28, "No space left on device"), "cannot be written because the disk is full"),
    ],
)
def test_each_kind_of_fault_has_its_own_line(raw: BaseException, what: str) -> None:
    err = store_error("/var/lib/cartrescue/shop.sqlite3", raw)
    assert str(err).startswith(f"store /var/lib/cartrescue/shop.sqlite3 {what}: ")
    assert "\n" not in str(err)


def test_an_unknown_fault_still_names_the_file_and_a_next_step() -> None:
    err = store_error("/srv/s.sqlite3", sqlite3.OperationalError("something\nnew"))
    assert str(err) == "store /srv/s.sqlite3 failed (something new): run cartrescue doctor"
