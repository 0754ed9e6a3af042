"""Overlapping cron runs and crashes, with real ``cartrescue run`` processes."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _open_zone() -> str:
    """An Etc/GMT zone where it is now early afternoon, so quiet hours never interfere."""
    hour = datetime.now(UTC).hour
    offset = 13 - hour  # local = utc + offset
    offset = (offset + 12) % 24 - 12
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def write_shop(tmp_path: Path, count: int, channels: str) -> Path:
    zone = _open_zone()
    checkouts = [
        {
            "id": f"c{n}",
            "minutes_ago": 70,
            "currency": "NOK",
            "total": "100.00",
            "items": [{"title": "Socks", "quantity": 1, "price": "100.00"}],
            "customer": {
                "first_name": "Kari",
                "email": f"kari{n}@example.no",
                "phone": f"+479{n:07d}",
                "sms_consent": True,
                "email_consent": True,
                "timezone": zone,
            },
        }
        for n in range(count)
    ]
    (tmp_path / "shop.json").write_text(
        json.dumps({"shop": {"name": "Test"}, "checkouts": checkouts})
    )
    config = tmp_path / "cartrescue.toml"
    config.write_text(
        f"""
[shop]
name = "Test"
[connector]
type = "cartrescue.demo:DemoConnector"
data = "{tmp_path / "shop.json"}"
[store]
path = "store.sqlite3"
{channels}
"""
    )
    return config


def cartrescue(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "cartrescue.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        **kw,
    )


def test_two_overlapping_runs_send_every_key_exactly_once(tmp_path):
    count = 150
    config = write_shop(
        tmp_path, count, '[channels.sms]\ntype = "tests.helpers:EchoChannel"\ndelay = 0.02'
    )
    procs = [cartrescue("-q", "run", "--config", str(config)) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    keys = re.findall(r"^sent (c\d+:1:sms)$", "".join(out for out, _ in outputs), re.M)
    assert sorted(keys) == sorted(f"c{n}:1:sms" for n in range(count))
    per_process = [len(re.findall(r"^sent ", out, re.M)) for out, _ in outputs]
    assert sum(per_process) == count
    assert all(per_process), f"the runs did not overlap: {per_process}"


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_process_killed_after_claiming_never_sends_that_key_again(tmp_path):
    marker = tmp_path / "sending"
    blocking = f'[channels.sms]\ntype = "tests.helpers:BlockingChannel"\nmarker = "{marker}"'
    config = write_shop(tmp_path, 1, blocking)
    proc = cartrescue("-q", "run", "--config", str(config))
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert marker.read_text() == "c0:1:sms"

    console = '[channels.sms]\ntype = "console"\nmask = false'
    config = write_shop(tmp_path, 1, console)
    again = cartrescue("-q", "run", "--config", str(config))
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert "c0:1:sms" not in out
    stats = cartrescue("stats", "--json", "--config", str(config))
    out, err = stats.communicate(timeout=60)
    messages = json.loads(out)["messages"]
    assert messages == [{"step": 1, "channel": "sms", "status": "unknown", "count": 1}]


class _SlowProvider(ThreadingHTTPServer):
    """A loopback Twilio that notes each message's recipient as it arrives, then answers
    ``delay`` seconds later."""

    daemon_threads = True

    def __init__(self, delay: float) -> None:
        super().__init__(("127.0.0.1", 0), _SlowTwilio)
        self.delay = delay
        self.lock = threading.Lock()
        self.arrived: list[str] = []


class _SlowTwilio(BaseHTTPRequestHandler):
    server: _SlowProvider

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        (to,) = parse_qs(body.decode())["To"]
        with self.server.lock:
            self.server.arrived.append(to)
            n = len(self.server.arrived)
        time.sleep(self.server.delay)
        answer = json.dumps({"sid": f"SM{n:032x}", "status": "queued"}).encode()
        try:
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
        except OSError:
            pass  # the client was killed

    def log_message(self, format: str, *args: object) -> None:
        pass


def _arrivals(provider: _SlowProvider) -> int:
    with provider.lock:
        return len(provider.arrived)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_pass_killed_at_any_point_leaves_at_most_concurrency_unknown_and_all_attempted(
    tmp_path, monkeypatch
):
    concurrency = 4
    provider = _SlowProvider(delay=1.0)
    server = threading.Thread(
        target=provider.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    server.start()
    proc: subprocess.Popen | None = None
    monkeypatch.setenv("CARTRESCUE_TEST_TWILIO_TOKEN", "test-token-0123456789")
    twilio = (
        '[channels.sms]\ntype = "twilio"\naccount_sid = "AC' + "0" * 32 + '"\n'
        'auth_token_env = "CARTRESCUE_TEST_TWILIO_TOKEN"\nfrom_number = "+4790000000"\n'
        f'base_url = "http://127.0.0.1:{provider.server_address[1]}"\n'
        f"concurrency = {concurrency}\nrate_limit = 0\nattempts = 1\n"
    )
    config = write_shop(tmp_path, 40, twilio)
    store = tmp_path / "store.sqlite3"
    try:
        unknown_before: set[str] = set()
        # successive passes over the same shop, each killed at another point of its sends:
        # in the first wave, at a wave's end, just after a wave began, in the middle
        for kill_after in (1, 4, 5, 7, 2):
            start = _arrivals(provider)
            proc = cartrescue("-q", "run", "--config", str(config))
            deadline = time.monotonic() + 60
            while _arrivals(provider) < start + kill_after:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the provider got too few requests"
                time.sleep(0.01)
            # let the requests of this wave arrive (none is answered for a second yet)
            seen = _arrivals(provider)
            while True:
                time.sleep(0.25)
                if _arrivals(provider) == seen:
                    break
                seen = _arrivals(provider)
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)

            db = sqlite3.connect(store)
            rows = db.execute(
                "SELECT key, recipient FROM outbox WHERE status IN ('claimed', 'unknown')"
            ).fetchall()
            db.close()
            unknown = {recipient for _key, recipient in rows}
            new_unknown = unknown - unknown_before
            with provider.lock:
                arrived = list(provider.arrived)
            assert len(new_unknown) <= concurrency, (kill_after, sorted(new_unknown))
            assert unknown <= set(arrived), f"never attempted: {sorted(unknown - set(arrived))}"
            assert len(arrived) == len(set(arrived)), "a message was sent twice"
            unknown_before = unknown
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
        provider.shutdown()
        provider.server_close()
