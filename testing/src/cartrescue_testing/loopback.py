"""A real HTTP server on a loopback port, served from a background thread: the plumbing
shared by the fake shops and the fake providers."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["LoopbackServer"]


class LoopbackServer:
    """Serves ``handler`` on ``127.0.0.1`` at a port the system picks, until :meth:`stop`.

    ``server_class`` may be a ``ThreadingHTTPServer`` subclass carrying state for the
    handler (reached as ``self.server`` in the handler).
    """

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer,
        poll_interval: float = 0.02,
    ) -> None:
        self.server = server_class(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop serving, close the socket and wait for the serving thread."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
