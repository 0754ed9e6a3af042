"""A :class:`LoopbackProvider` for the dispatch benchmarks, in a child process by default.

A real provider answers from another machine. In the benchmark's own process the fake's
HTTP parsing (a fifth of the CPU of a send) would hold the GIL the send threads measured
need, so with 16 sends in flight the figure would be the fake's as much as cartrescue's.
``in_process=True`` keeps it in a thread of this process, as before.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType

from cartrescue_testing.contracts import LoopbackProvider, Recorded, Reply


def _serve(respond: Callable[[Recorded], Reply], latency: float, pipe: Connection) -> None:
    with LoopbackProvider(respond, latency=latency) as provider:
        pipe.send(provider.url)
        pipe.recv()  # asked how many requests came
        pipe.send(len(provider.requests))


def spawn(target: Callable[..., None], *args: object) -> tuple[Connection, BaseProcess]:
    """Start ``target(*args, pipe)`` in a fresh child process (spawned: no fork of a
    threaded process); return this side's end of the pipe and the child. A child that dies
    before it answers is an ``EOFError`` on the pipe, not a hang."""
    context = multiprocessing.get_context("spawn")
    pipe, theirs = context.Pipe()
    child = context.Process(target=target, args=(*args, theirs), daemon=True)
    child.start()
    theirs.close()
    return pipe, child


class BenchProvider:
    """``url`` while open; :meth:`count` is the number of requests it answered."""

    def __init__(
        self, respond: Callable[[Recorded], Reply], latency: float, *, in_process: bool = False
    ) -> None:
        self.respond = respond
        self.latency = latency
        self.in_process = in_process
        self.url = ""
        self._local: LoopbackProvider | None = None
        self._pipe: Connection | None = None
        self._child: BaseProcess | None = None

    def __enter__(self) -> BenchProvider:
        if self.in_process:
            self._local = LoopbackProvider(self.respond, latency=self.latency).start()
            self.url = self._local.url
            return self
        self._pipe, self._child = spawn(_serve, self.respond, self.latency)
        self.url = self._pipe.recv()
        return self

    def count(self) -> int:
        if self._local is not None:
            return len(self._local.requests)
        assert self._pipe is not None
        self._pipe.send("count")
        return int(self._pipe.recv())

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._local is not None:
            self._local.stop()
        if self._child is not None:
            if self._child.is_alive():
                self._child.terminate()
            self._child.join(5)
