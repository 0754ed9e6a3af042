"""A pass's progress as one updating line on a terminal, and nothing at all elsewhere (cron)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from .engine import RunCount, RunReport

__all__ = ["TerminalProgress", "terminal_progress"]


class TerminalProgress:
    """Rewrites one line on ``stream`` (``fetched 1200 · decided 300 · sent 25``), at most
    every ``interval`` seconds, so thousands of checkouts cost a few hundred writes;
    :meth:`close` prints the last figures and ends the line."""

    def __init__(
        self,
        stream: TextIO,
        *,
        interval: float = 0.1,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.interval = interval
        self.monotonic = monotonic
        self._next = 0.0
        self._last: tuple[int, int, int] | None = None
        self._written = False

    def __call__(self, report: RunReport, decided: int) -> None:
        self._last = (report.fetched, decided, report.counts[RunCount.SENT])
        now = self.monotonic()
        if now >= self._next:
            self._next = now + self.interval
            self._write()

    def _write(self) -> None:
        if self._last is None:
            return
        fetched, decided, sent = self._last
        # \r returns to the start of the line and \x1b[K clears what a longer line left.
        self.stream.write(f"\r\x1b[Kfetched {fetched} · decided {decided} · sent {sent}")
        self.stream.flush()
        self._written = True

    def close(self) -> None:
        self._write()
        if self._written:
            self.stream.write("\n")
            self.stream.flush()


def terminal_progress(stream: TextIO) -> TerminalProgress | None:
    """A :class:`TerminalProgress` on ``stream`` when it is a terminal; else None, so a
    pass under cron prints nothing extra."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return None
    return TerminalProgress(stream) if tty else None
