"""Serving cartrescue's WSGI app: a bounded standard-library server, or waitress.

The standard library's threaded server gives every connection a thread and waits on it for
ever: a few hundred connections that send nothing hold a few hundred threads, and ``/healthz``
stops answering. :class:`BoundedWSGIServer` reads requests in one thread with a selector (a
connection that has not sent its whole request within ``timeout`` seconds is closed), and runs
the app for complete requests on a fixed pool of ``threads`` worker threads. At most
``max_connections`` connections are open at once; more wait in the listen backlog, and the
kernel refuses them when that is full. No connection ever gets a thread of its own.

``waitress`` (``pip install 'cartrescue[waitress]'``), a production WSGI server in pure Python,
works the same way (an event loop, a thread pool, ``channel_timeout``); :func:`serve` uses it
when it is installed, unless told otherwise.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import queue
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import IO, Any, Literal, Protocol, cast
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer
from wsgiref.types import WSGIApplication

__all__ = [
    "BoundedWSGIServer",
    "Server",
    "ServerName",
    "make_server",
    "serve",
    "waitress_installed",
]

log = logging.getLogger("cartrescue.web")

ServerName = Literal["wsgiref", "waitress"]

TIMEOUT = 10.0
"""Seconds a client has to send its whole request, and to take the answer."""
THREADS = 8
MAX_CONNECTIONS = 512
MAX_HEAD = 64 * 1024
MAX_BODY = 1_000_000
_HEAD_END = b"\r\n\r\n"
_LENGTH = re.compile(rb"\ncontent-length:[ \t]*([0-9]{1,12})[ \t]*\r?\n", re.IGNORECASE)


class Server(Protocol):
    """What :func:`serve` hands to ``ready``: the port it listens on, and how to stop it."""

    @property
    def server_port(self) -> int: ...

    def serve_forever(self) -> None: ...

    def shutdown(self) -> None: ...

    def server_close(self) -> None: ...


def _safe_path(path: str) -> str:
    path = path.split("?")[0]
    if path.startswith("/unsubscribe/") or "/unsubscribe/" in path:
        return path.split("/unsubscribe/")[0] + "/unsubscribe/…"
    return path[:200]


class _Handler(WSGIRequestHandler):
    """wsgiref's handler, fed a request the server has already read in full. Logs through
    ``logging`` with the path cut before tokens and queries and without the client's address
    (with a link code it would name a person)."""

    # An answer to a request line that cannot be parsed still gets a status line.
    default_request_version = "HTTP/1.0"

    def __init__(self, request: Any, client_address: Any, server: Any, data: bytes) -> None:
        self._data = data
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        self.connection = self.request
        self.connection.settimeout(self.server.channel_timeout)  # type: ignore[attr-defined]
        self.rfile = io.BytesIO(self._data)
        self.wfile = self.connection.makefile("wb")

    def handle(self) -> None:
        """wsgiref's ``handle``, with its error page instead of a traceback on stderr."""
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _ServerHandler(
            self.rfile,
            cast("IO[bytes]", self.wfile),
            io.StringIO(),
            self.get_environ(),
            multithread=True,
        )
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.run(self.server.get_app())  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        path = _safe_path(getattr(self, "path", "") or "")
        command = getattr(self, "command", "") or "-"
        if format.startswith("code"):
            log.info("web: %s %s refused: %s", command, path, args[0] if args else "")
            return
        log.info("web: %s %s %s", command, path, args[1] if len(args) > 1 else "")


class _ServerHandler(ServerHandler):
    def log_exception(self, exc_info: Any) -> None:
        log.error("web: the WSGI app failed: %s", exc_info[0].__name__)


class _Connection:
    __slots__ = ("address", "buffer", "deadline", "sock")

    def __init__(self, sock: socket.socket, address: Any, deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.buffer = bytearray()
        self.deadline = deadline

    def head_end(self) -> int:
        """Where the body starts, or -1 while the head is not complete (lines may end in
        CRLF or, from lax clients, in LF alone)."""
        end = self.buffer.find(_HEAD_END)
        if end >= 0:
            return end + len(_HEAD_END)
        end = self.buffer.find(b"\n\n")
        return end + 2 if end >= 0 else -1

    def complete(self) -> bool:
        body = self.head_end()
        if body < 0:
            return False
        match = _LENGTH.search(self.buffer, 0, body)
        length = int(match.group(1)) if match else 0
        # A body over the limit is not waited for: the app answers 413 without reading it.
        return length > MAX_BODY or len(self.buffer) >= body + length


class BoundedWSGIServer(WSGIServer):
    """The standard library's WSGI server with timeouts and a fixed thread pool (see the
    module's docstring). ``serve_forever()`` serves; ``shutdown()`` from another thread
    stops it."""

    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        *,
        threads: int = THREADS,
        timeout: float = TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        super().__init__(address, WSGIRequestHandler)
        self.threads = threads
        self.channel_timeout = timeout
        self.max_connections = max_connections
        self._jobs: queue.Queue[tuple[socket.socket, Any, bytes] | None] = queue.Queue()
        self._open = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    # -- the read loop ------------------------------------------------------------------
    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._stop.clear()
        self._stopped.clear()
        workers = [
            threading.Thread(target=self._work, name=f"cartrescue-web-{n}", daemon=True)
            for n in range(self.threads)
        ]
        for worker in workers:
            worker.start()
        self.socket.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ, None)
        accepting = False
        pending: dict[int, _Connection] = {}
        try:
            while not self._stop.is_set():
                with self._lock:
                    room = self._open < self.max_connections
                if room and not accepting:
                    selector.register(self.socket, selectors.EVENT_READ, self)
                    accepting = True
                elif not room and accepting:
                    selector.unregister(self.socket)
                    accepting = False
                for key, _ in selector.select(min(poll_interval, 0.25)):
                    if key.data is None:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                    elif key.data is self:
                        self._accept(selector, pending)
                    else:
                        self._read(selector, pending, key.data)
                now = time.monotonic()
                for connection in [c for c in pending.values() if c.deadline < now]:
                    self._drop(selector, pending, connection, b"408 Request Timeout")
        finally:
            for connection in list(pending.values()):
                self._drop(selector, pending, connection, None)
            selector.close()
            for _ in workers:
                self._jobs.put(None)
            for worker in workers:
                worker.join(self.channel_timeout + 1)
            self._stopped.set()

    def shutdown(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._stopped.wait()

    def server_close(self) -> None:
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()

    def _accept(self, selector: selectors.BaseSelector, pending: dict[int, _Connection]) -> None:
        for _ in range(64):
            with self._lock:
                if self._open >= self.max_connections:
                    return
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # out of file descriptors, say: keep serving the others
                log.warning("web: accept failed: %s", err)
                return
            sock.setblocking(False)
            connection = _Connection(sock, address, time.monotonic() + self.channel_timeout)
            with self._lock:
                self._open += 1
            pending[sock.fileno()] = connection
            selector.register(sock, selectors.EVENT_READ, connection)

    def _read(
        self,
        selector: selectors.BaseSelector,
        pending: dict[int, _Connection],
        connection: _Connection,
    ) -> None:
        try:
            chunk = connection.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(selector, pending, connection, None)
            return
        connection.buffer += chunk
        if connection.complete():
            selector.unregister(connection.sock)
            del pending[connection.sock.fileno()]
            self._jobs.put((connection.sock, connection.address, bytes(connection.buffer)))
        elif connection.head_end() < 0 and len(connection.buffer) > MAX_HEAD:
            self._drop(selector, pending, connection, b"431 Request Header Fields Too Large")

    def _drop(
        self,
        selector: selectors.BaseSelector,
        pending: dict[int, _Connection],
        connection: _Connection,
        status: bytes | None,
    ) -> None:
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(connection.sock)
        pending.pop(connection.sock.fileno(), None)
        if status is not None:
            with contextlib.suppress(OSError):
                connection.sock.send(
                    b"HTTP/1.0 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
        self._close(connection.sock)

    def _close(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.close()
        with self._lock:
            self._open -= 1
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    # -- the workers --------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            sock, address, data = job
            try:
                sock.setblocking(True)
                _Handler(sock, address, self, data)
            except Exception as err:  # a client that went away; never the worker's end
                log.info("web: connection ended early: %s", type(err).__name__)
            finally:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
                self._close(sock)


def make_server(
    app: WSGIApplication,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    threads: int = THREADS,
    timeout: float = TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
) -> BoundedWSGIServer:
    """A :class:`BoundedWSGIServer` for ``app``; port 0 picks a free port
    (``server.server_port``). Call ``serve_forever()``, and ``shutdown()`` from another
    thread to stop."""
    server = BoundedWSGIServer(
        (host, port), threads=threads, timeout=timeout, max_connections=max_connections
    )
    server.set_app(app)
    return server


# -- waitress -------------------------------------------------------------------------------
def waitress_installed() -> bool:
    return importlib.util.find_spec("waitress") is not None


class _Waitress:
    """waitress's server behind the :class:`Server` interface."""

    def __init__(
        self, app: WSGIApplication, host: str, port: int, *, threads: int, timeout: float
    ) -> None:
        from waitress.server import create_server

        self._server: Any = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            channel_timeout=max(1, round(timeout)),
            cleanup_interval=max(1, round(timeout / 2)),
            connection_limit=MAX_CONNECTIONS,
            max_request_body_size=MAX_BODY,
            max_request_header_size=MAX_HEAD,
            ident="cartrescue",
            expose_tracebacks=False,
        )
        self._done = threading.Event()

    @property
    def server_port(self) -> int:
        return int(self._server.effective_port)

    def serve_forever(self) -> None:
        try:
            self._server.run()
        finally:
            self._server.task_dispatcher.shutdown()
            self._done.set()

    def shutdown(self) -> None:
        server = self._server

        def stop() -> None:
            for dispatcher in list(server._map.values()):
                with contextlib.suppress(OSError):
                    dispatcher.close()

        server.trigger.pull_trigger(stop)
        self._done.wait(10)

    def server_close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.close()


def serve(
    app: WSGIApplication,
    host: str,
    port: int,
    *,
    ready: Callable[[Server], None] | None = None,
    server: ServerName | None = None,
    threads: int = THREADS,
    timeout: float = TIMEOUT,
) -> None:
    """Serve ``app`` until interrupted. ``server`` picks ``"waitress"`` or ``"wsgiref"``
    (the bounded standard-library server); by default waitress when it is installed.
    ``ready`` is called with the server once it listens (its ``server_port`` is the real port
    when ``port`` is 0)."""
    name = server or ("waitress" if waitress_installed() else "wsgiref")
    running: Server
    if name == "waitress":
        running = _Waitress(app, host, port, threads=threads, timeout=timeout)
    else:
        running = make_server(app, host, port, threads=threads, timeout=timeout)
    try:
        if ready is not None:
            ready(running)
        running.serve_forever()
    finally:
        running.server_close()
