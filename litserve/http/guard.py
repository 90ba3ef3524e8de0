"""Slow and idle clients: the deadlines of a connection's reads.

uvicorn bounds the idle time between requests (``timeout_keep_alive``) but not the time
a client takes to send its headers or its body.  Every connection of a front reports its
phase here (``Watched``: the protocol in ``http/direct.py``), and one timer per front
looks at all of them every ``SWEEP_S``:

    phase     since                       closed with 408 when
    HEADERS   the request's first byte    headers take longer than ``header_timeout``
    BODY      the last body byte          no body byte for ``body_timeout``
    (others)  -                           never (uvicorn's keep-alive rule applies)

When a request finds no slot or arena room, ``evict_stalled`` also closes the uploads
that hold room but do not use it: no body byte for ``STALL_S``, or fewer than
``MIN_RATE`` bytes a second after ``STALL_S``.  A slow upload never keeps room from
requests that could use it; a fast one is never cut.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

IDLE, HEADERS, BODY, APP = 0, 1, 2, 3
SWEEP_S = 0.5
STALL_S = 1.0
MIN_RATE = 64 * 1024  # bytes per second an upload holding room must keep up

log = logging.getLogger("litserve.front")


class Watched(Protocol):
    phase: int
    since: float  # when the phase began, or (BODY) when the last body byte came
    body_start: float
    body_got: int
    holds: bool  # the request holds arena room while its body arrives

    def time_out(self, why: str) -> None: ...


class Guard:
    def __init__(self, header_timeout: float, body_timeout: float) -> None:
        self.header_timeout, self.body_timeout = header_timeout, body_timeout
        self.conns: set[Watched] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._timer = loop.call_later(SWEEP_S, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _tick(self) -> None:
        try:
            self.sweep(time.monotonic())
        finally:
            assert self._loop is not None
            self._timer = self._loop.call_later(SWEEP_S, self._tick)

    def sweep(self, now: float) -> None:
        """Close the connections past their header or body deadline."""
        for conn in list(self.conns):
            try:
                if conn.phase == HEADERS and now - conn.since > self.header_timeout:
                    conn.time_out(f"request headers took longer than {self.header_timeout:g} s")
                elif conn.phase == BODY and now - conn.since > self.body_timeout:
                    conn.time_out(f"no request body bytes for {self.body_timeout:g} s")
            except Exception:  # one broken connection must not stop the others' sweep
                log.exception("could not time out a connection; no longer watching it")
                self.conns.discard(conn)

    def evict_stalled(self) -> int:
        """Close the uploads that hold room without using it; how many."""
        now = time.monotonic()
        evicted = 0
        for conn in list(self.conns):
            if conn.phase == BODY and conn.holds and _stalled(conn, now):
                conn.time_out("the request body stalled while the server needed its room")
                evicted += 1
        return evicted


def _stalled(conn: Watched, now: float) -> bool:
    if now - conn.since > STALL_S:
        return True
    elapsed = now - conn.body_start
    return elapsed > STALL_S and conn.body_got < MIN_RATE * elapsed
