"""A long pass shows one updating progress line on a terminal, and nothing extra under cron."""

from __future__ import annotations

import copy
import io
import json
import os
import pty
import subprocess
import sys
import threading
from importlib import resources
from pathlib import Path

import pytest

from cartrescue.demo import DemoConnector
from cartrescue.engine import Recovery, RunReport
from cartrescue.progress import TerminalProgress, terminal_progress
from cartrescue.store import SQLiteStore
from cartrescue_testing import MemoryChannel

MANY = 2000


@pytest.fixture
def many(tmp_path) -> Path:
    """A demo shop with ``MANY`` checkouts."""
    data = json.loads(
        resources.files("cartrescue").joinpath("data/demo_shop.json").read_text("utf-8")
    )
    first = data["checkouts"][0]
    checkouts = []
    for n in range(MANY):
        item = copy.deepcopy(first)
        item["id"] = str(100_000 + n)
        item["customer"]["email"] = f"buyer{n}@example.no"
        item["customer"].pop("phone", None)
        checkouts.append(item)
    data["checkouts"] = checkouts
    path = tmp_path / "many.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    config = tmp_path / "cartrescue.toml"
    config.write_text(
        f'[connector]\ntype = "cartrescue.demo:DemoConnector"\ndata = "{path}"\n'
        '[channels.email]\ntype = "console"\n[store]\npath = "store.sqlite3"\n'
    )
    return config


def test_the_engine_reports_progress_to_a_callback(many):
    calls: list[tuple[int, int]] = []

    def progress(report: RunReport, decided: int) -> None:
        calls.append((report.fetched, decided, report.counts["sent"]))

    with SQLiteStore(":memory:") as store:
        connector = DemoConnector(str(many.parent / "many.json"))
        report = Recovery(connector, [MemoryChannel("email")], store).run(progress=progress)
    assert report.fetched == MANY
    assert calls[0] == (1, 0, 0)
    *during, final = calls
    fetched = [f for f, _, _ in during]
    decided = [d for _, d, _ in during]
    # Pages are decided as they arrive: both figures only grow, one call per checkout
    # fetched and one per checkout decided.
    assert fetched == sorted(fetched) and decided == sorted(decided)
    assert fetched[-1] == MANY
    assert len(during) == MANY + decided[-1]
    assert final == (MANY, decided[-1], report.counts["sent"])  # after the last send


def test_terminal_progress_rewrites_one_line_and_stays_cheap():
    class Terminal(io.StringIO):
        writes = 0

        def isatty(self) -> bool:
            return True

        def write(self, text: str) -> int:
            self.writes += 1
            return super().write(text)

    ticks = iter(range(10**6))
    stream = Terminal()
    progress = terminal_progress(stream)
    assert isinstance(progress, TerminalProgress)
    progress.monotonic = lambda: next(ticks) / 1000  # a millisecond per call
    report = RunReport(started_at=None)  # type: ignore[arg-type]
    for n in range(1, 5001):
        report.fetched = n
        progress(report, 0)
    report.counts["sent"] = 7
    progress(report, 5000)
    progress.close()
    text = stream.getvalue()
    assert stream.writes < 100  # 5000 updates, a few dozen writes
    assert "\n" not in text[:-1]  # one line, rewritten in place
    assert text.endswith("\r\x1b[Kfetched 5000 · decided 5000 · sent 7\n")
    assert terminal_progress(io.StringIO()) is None  # not a terminal: nothing


def _run(config: Path, stderr: int) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "cartrescue.cli", "-q", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        check=False,
        timeout=120,
    )


def _read_all(fd: int, into: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal closed
            return
        if not chunk:
            return
        into.append(chunk)


def test_a_pass_on_a_terminal_shows_progress_and_under_cron_does_not(many):
    master, slave = pty.openpty()
    chunks: list[bytes] = []
    reader = threading.Thread(target=_read_all, args=(master, chunks), daemon=True)
    reader.start()
    try:
        result = _run(many, slave)
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    assert result.returncode == 0, result.stdout[-2000:]
    on_terminal = b"".join(chunks).decode()
    assert f"fetched {MANY} · decided " in on_terminal
    assert "\r\x1b[Kfetched" in on_terminal
    (many.parent / "store.sqlite3").unlink()
    under_cron = _run(many, subprocess.PIPE)
    assert under_cron.returncode == 0
    assert b"\r" not in under_cron.stderr
    assert b"decided" not in under_cron.stderr
