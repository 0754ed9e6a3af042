"""The web endpoint on a real socket, with both servers: slow and malformed clients never stop
it, and nothing an unauthenticated caller sends gives a 500."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from cartrescue.clock import FrozenClock
from cartrescue.inbound import InboundRequest, InboundResponse
from cartrescue.store.sqlite import SQLiteStore
from cartrescue.unsubscribe import UnsubscribeLinks
from cartrescue.web import make_app, serve
from cartrescue.web_server import Server, waitress_installed

PUBLIC = "https://shop.example/cartrescue"
TWILIO_TOKEN = "tw-auth-token-0123456789abcdef"
APP_SECRET = "meta-app-secret-0123456789"
VERIFY = "verify-me-0123"
NOW = datetime(2025, 6, 18, 12, 0, tzinfo=UTC)

SERVERS = [
    "wsgiref",
    pytest.param(
        "waitress",
        marks=pytest.mark.skipif(not waitress_installed(), reason="cartrescue[waitress]"),
    ),
]


class Broken:
    route = "/broken"
    methods = ("GET",)

    def handle(self, request: InboundRequest) -> InboundResponse:
        raise RuntimeError("lookup of kari.nordmann@example.no failed")


def start(app, name: str) -> tuple[Server, threading.Thread]:
    started = threading.Event()
    holder: dict[str, Server] = {}

    def ready(server: Server) -> None:
        holder["server"] = server
        started.set()

    thread = threading.Thread(
        target=serve,
        args=(app, "127.0.0.1", 0),
        kwargs={"ready": ready, "server": name, "threads": 4, "timeout": 2.0},
        daemon=True,
    )
    thread.start()
    assert started.wait(5)
    return holder["server"], thread


@pytest.fixture(params=SERVERS)
def port(request: pytest.FixtureRequest) -> Iterator[int]:
    with SQLiteStore(":memory:") as store:
        app = make_app(
            store,
            public_url=PUBLIC,
            twilio_auth_token=TWILIO_TOKEN,
            whatsapp_app_secret=APP_SECRET,
            whatsapp_verify_token=VERIFY,
            clock=FrozenClock(NOW),
            handlers=[Broken()],
        )
        server, thread = start(app, request.param)
        try:
            yield server.server_port
        finally:
            server.shutdown()
            thread.join(10)
            assert not thread.is_alive()


def raw(port: int, data: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    """Send bytes as they are; return the status code and the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def request(
    method: str, path: str | bytes, headers: dict[str, bytes] | None = None, body: bytes = b""
) -> bytes:
    target = path.encode() if isinstance(path, str) else path
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [name.encode() + b": " + value for name, value in (headers or {}).items()]
    lines.append(b"Content-Length: " + str(len(body)).encode())
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def test_healthz_answers_while_100_connections_hang(port: int) -> None:
    before = threading.active_count()
    hanging = []
    try:
        for n in range(100):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            if n % 2:
                sock.sendall(b"POST /twilio/sms HTTP/1.1\r\nContent-Length: 50\r\n\r\nBody=ST")
            hanging.append(sock)
        started = time.monotonic()
        assert raw(port, request("GET", "/healthz")) == (200, b"ok\n")
        assert time.monotonic() - started < 3
        # A fixed pool: the hanging connections took no thread each.
        assert threading.active_count() - before < 10
    finally:
        for sock in hanging:
            sock.close()


def test_a_connection_that_sends_nothing_is_closed_after_the_timeout(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        started = time.monotonic()
        while sock.recv(1024):
            pass
        # channel_timeout is whole seconds for waitress, checked every cleanup_interval.
        assert time.monotonic() - started < 8


@pytest.mark.parametrize(
    "line",
    [b"GARBAGE", b"GET / HTTP/1.1 extra", b"\xff\xfe HTTP/1.1", b"GET /a b c d", b"GET / HTTP/x"],
)
def test_a_malformed_request_line_is_400(port: int, line: bytes) -> None:
    assert raw(port, line + b"\r\nHost: x\r\n\r\n")[0] == 400


def test_a_bad_content_length_is_400(port: int) -> None:
    data = b"POST /twilio/sms HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\nBody=STOP"
    assert raw(port, data)[0] == 400


@pytest.mark.parametrize(
    ("method", "path", "headers", "body"),
    [
        ("POST", "/twilio/sms", {"X-Twilio-Signature": "sjökort".encode()}, b"Body=STOP"),
        ("POST", "/twilio/sms", {"X-Twilio-Signature": b"\xe9\xe9\xff"}, b"Body=STOP"),
        ("POST", "/whatsapp", {"X-Hub-Signature-256": "sha256=ø".encode()}, b"{}"),
        ("POST", "/whatsapp", {"X-Hub-Signature-256": b"sha256=\xff"}, b"{}"),
        ("GET", "/whatsapp?hub.mode=subscribe&hub.verify_token=%C3%B8&hub.challenge=1", {}, b""),
        ("GET", b"/whatsapp?hub.mode=subscribe&hub.verify_token=\xff&hub.challenge=1", {}, b""),
    ],
)
def test_non_ascii_signatures_and_tokens_are_refused(port, method, path, headers, body) -> None:
    status, _ = raw(port, request(method, path, headers, body))
    # waitress refuses a raw byte over 0x7f in the request target itself: 400.
    assert status == 403 or (status == 400 and isinstance(path, bytes))


def test_a_handler_error_is_500_without_a_traceback_and_logged_masked(port, caplog) -> None:
    with caplog.at_level("DEBUG", logger="cartrescue"):
        status, body = raw(port, request("GET", "/broken"))
    assert (status, body) == (500, b"internal error\n")
    lines = [r.getMessage() for r in caplog.records if r.name == "cartrescue.web"]
    assert any("RuntimeError" in line and "test_web_server.py" in line for line in lines)
    assert not any("kari.nordmann@example.no" in line for line in lines)
    assert not any(r.exc_info for r in caplog.records)


@pytest.fixture
def wsgiref_port() -> Iterator[int]:
    with SQLiteStore(":memory:") as store:
        server, thread = start(make_app(store, public_url=PUBLIC), "wsgiref")
        try:
            yield server.server_port
        finally:
            server.shutdown()
            thread.join(10)


def test_lines_ending_in_lf_alone_are_read(wsgiref_port: int) -> None:
    assert raw(wsgiref_port, b"GET /healthz HTTP/1.0\nHost: x\n\n") == (200, b"ok\n")


def test_a_head_that_never_ends_is_refused(wsgiref_port: int) -> None:
    data = b"GET /healthz HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\n"
    assert raw(wsgiref_port, data)[0] == 431


@pytest.mark.parametrize("name", SERVERS)
def test_cartrescue_serve_runs_the_chosen_server_for_the_shop(tmp_path, name) -> None:
    secret = "unsubscribe-secret-0123456789"
    config = tmp_path / "cartrescue.toml"
    config.write_text(
        '[shop]\nname = "Nordlys Design"\nlocale = "nb"\n'
        '[connector]\ntype = "cartrescue.demo:DemoConnector"\n'
        '[channels.email]\ntype = "cartrescue_testing:MemoryChannel"\n'
        f'[web]\npublic_url = "{PUBLIC}"\nunsubscribe_secret_env = "CR_UNSUB"\n',
        encoding="utf-8",
    )
    command = [
        sys.executable,
        "-c",
        "import sys; from cartrescue.cli import main; sys.exit(main())",
        "serve",
        "--config",
        str(config),
        "--port",
        "0",
        "--server",
        name,
    ]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env={**os.environ, "CR_UNSUB": secret},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"with {name}" in line, line
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1))  # type: ignore[union-attr]
        link = UnsubscribeLinks(PUBLIC, secret)("kari@example.no", "email")
        path = link.removeprefix("https://shop.example")  # the proxy passes /cartrescue on
        status, body = raw(port, request("GET", path))
        assert status == 200
        assert b'<html lang="nb"' in body
        assert b"Nordlys Design" in body
    finally:
        process.terminate()
        process.wait(10)
