"""Overlapping cron runs and crashes, with real ``cartrescue run`` processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

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
