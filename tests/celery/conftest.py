"""Real servers for the Celery tests: Redis (broker, locks, rate limits), RabbitMQ (the other
broker) and PostgreSQL (the shared store, fixtures from tests/store).

When a server does not answer the tests skip, saying how to start it, unless
``CARTRESCUE_REQUIRE_SERVICES=1`` (CI) turns that into a failure.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cartrescue_testing.loopback import LoopbackServer
from tests.store.conftest import pg_database, pg_url  # noqa: F401  (fixtures)

REDIS_URL = os.environ.get("CARTRESCUE_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
AMQP_URL = os.environ.get("CARTRESCUE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def unavailable(what: str, reason: str) -> None:
    message = (
        f"{what} is not reachable ({reason}); start it (bash .ci/services starts it), or set "
        f"CARTRESCUE_TEST_{'REDIS' if what == 'Redis' else 'AMQP'}_URL; "
        "pip install -e '.[celery]' for the client libraries"
    )
    if os.environ.get("CARTRESCUE_REQUIRE_SERVICES") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture
def redis_url() -> str:
    """A Redis database of its own, emptied before the test."""
    try:
        import redis
    except ImportError:
        unavailable("Redis", "the redis package is not installed")
        raise
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.flushdb()
    except redis.exceptions.RedisError as err:
        unavailable("Redis", str(err))
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def amqp_url() -> str:
    parsed = urllib.parse.urlsplit(AMQP_URL)
    try:
        socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5672), 3).close()
    except OSError as err:
        unavailable("RabbitMQ", str(err))
    return AMQP_URL


class _Provider(ThreadingHTTPServer):
    sends: list[tuple[float, str, str]]
    lock: threading.Lock


class _TextbeltHandler(BaseHTTPRequestHandler):
    server: _Provider

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        arrived = time.time()
        with self.server.lock:
            self.server.sends.append((arrived, form["phone"][0], form["message"][0]))
            number = len(self.server.sends)
        body = json.dumps({"success": True, "textId": str(number), "quotaRemaining": 999})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeTextbelt:
    """A Textbelt on loopback that notes when each message arrives (measured here, at the
    provider, not in the client)."""

    def __init__(self) -> None:
        self._server = LoopbackServer(_TextbeltHandler, server_class=_Provider)
        self._server.server.sends = []  # type: ignore[attr-defined]
        self._server.server.lock = threading.Lock()  # type: ignore[attr-defined]
        self.url = self._server.url

    @property
    def sends(self) -> list[tuple[float, str, str]]:
        with self._server.server.lock:  # type: ignore[attr-defined]
            return list(self._server.server.sends)  # type: ignore[attr-defined]

    def count(self) -> int:
        with self._server.server.lock:  # type: ignore[attr-defined]
            return len(self._server.server.sends)  # type: ignore[attr-defined]

    def max_in_one_second(self) -> int:
        """The most messages that arrived in any 1-second window (sliding, not aligned)."""
        times = sorted(t for t, _, _ in self.sends)
        most, start = 0, 0
        for end, moment in enumerate(times):
            while moment - times[start] >= 1.0:
                start += 1
            most = max(most, end - start + 1)
        return most

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture
def textbelt() -> Iterator[FakeTextbelt]:
    fake = FakeTextbelt()
    yield fake
    fake.stop()
