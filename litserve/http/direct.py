"""uvicorn's httptools protocol, taught to read large bodies straight into shared memory.

For a POST whose body the front wants in its arena, the app reserves the arena block
while the headers are parsed (``Front.place_direct``).  From then on the socket is read
with ``get_buffer``/``buffer_updated`` (``asyncio.BufferedProtocol``) directly into that
block: the kernel copies the bytes into shared memory and no user-space copy is made.
Bytes that arrived together with the headers are copied once from the parser's chunk.
When the block is full, the request is complete: a fresh parser takes over the
connection for the next request, and the app's ``receive()`` sees the end of the body.

Everything else (small bodies, other routes, pipelining, upgrades) is uvicorn's own path.
Reads that do not go to an arena block go into one buffer that every connection of the
process shares, so an idle connection costs uvicorn's own state and no read buffer.

Each connection also reports to the front's ``Guard`` (``http/guard.py``) when it is
waiting for headers or for body bytes, so slow clients meet deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .checks import size_of
from .guard import APP, BODY, HEADERS, IDLE, Guard

READ_SIZE = 256 * 1024
MAX_HEAD = 64 * 1024  # request line + headers; more is a 431
LINGER_S = 2.0  # how long a refused connection's incoming bytes are read and dropped
SCOPE_KEY = "litserve.direct"
_read_buffer: list[memoryview] = []  # one per process: every connection reads into it


def _shared_buffer() -> memoryview:
    """The read buffer of this process's connections.  One is enough: the event loop
    hands each read to the parser before the next read, and the parser copies out what
    it keeps, so an idle connection costs no buffer of its own."""
    if not _read_buffer:
        _read_buffer.append(memoryview(bytearray(READ_SIZE)))
    return _read_buffer[0]


class Direct:
    """Where one request's body goes: ``view`` (arena bytes), filled up to ``pos``."""

    __slots__ = ("view", "pos", "end", "bypass", "ticket")

    def __init__(self, view: memoryview, ticket: Any) -> None:
        self.view, self.pos, self.end = view, 0, len(view)
        self.bypass = False
        self.ticket = ticket  # the app's reservation (a body.DirectTicket)


Placer = Callable[[dict[str, Any], int], Direct | None]


def protocol_class(placer: Placer, guard: Guard, private_max: int
                   ) -> type[asyncio.BufferedProtocol]:
    """A uvicorn HTTP protocol class whose large bodies go where ``placer`` says, and
    whose header and body reads are watched by ``guard``.  A body over ``private_max``
    bytes (or of unknown length) counts as holding arena room while it arrives."""
    shared = _shared_buffer()

    class Connection(HttpToolsProtocol):
        """uvicorn's protocol with our reads: fed by ``DirectBodyProtocol`` below."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._direct: Direct | None = None
            self.phase, self.since = IDLE, 0.0
            self.body_start, self.body_got, self.holds = 0.0, 0, False
            self._head_bytes = 0
            self._lingering = False

        # -- what the guard watches ----------------------------------------------------
        def _enter(self, phase: int) -> None:
            self.phase, self.since = phase, time.monotonic()

        def time_out(self, why: str) -> None:
            if self.transport.is_closing() or self._lingering:
                return
            if self.cycle is None or not self.cycle.response_started:
                return self._refuse(408, why)
            self.transport.close()

        def _refuse(self, status: int, why: str) -> None:
            """Answer ``status`` and end the connection.  What the client is still sending
            is read and dropped for a moment first (a "lingering close"), since closing a
            socket with unread bytes resets it and the client may lose the answer."""
            body = orjson.dumps({"detail": why})
            self.transport.write(b"".join([
                b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
                b"content-type: application/json\r\n",
                b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body), body]))
            self._lingering = True
            self._direct = None
            if self.cycle is not None:
                self.cycle.disconnected = True  # the app's request is over
                self.cycle.message_event.set()
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            guard.conns.add(self)
            self._enter(HEADERS)

        def connection_lost(self, exc: Exception | None) -> None:
            guard.conns.discard(self)
            super().connection_lost(exc)

        # -- reading -------------------------------------------------------------------
        def get_buffer(self, sizehint: int) -> memoryview:
            d = self._direct
            if d is not None and d.bypass:
                return d.view[d.pos :]
            return shared

        def buffer_updated(self, nbytes: int) -> None:
            if self._lingering:
                return  # dropped: the connection is ending
            d = self._direct
            if d is not None and d.bypass:
                d.pos += nbytes
                self._body_progress(nbytes)
                if d.pos >= d.end:
                    self._direct_complete()
                return
            if self.phase == IDLE:
                self._enter(HEADERS)
            elif self.phase == BODY:
                self._body_progress(nbytes)
            self.data_received(shared[:nbytes])  # type: ignore[arg-type]
            if self.phase == HEADERS and not self.transport.is_closing():
                self._head_bytes += nbytes
                if self._head_bytes > MAX_HEAD:
                    self._refuse(431, f"request line and headers exceed {MAX_HEAD} bytes")

        def _body_progress(self, nbytes: int) -> None:
            self.since = time.monotonic()
            self.body_got += nbytes

        # -- parser callbacks --------------------------------------------------------------
        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self.phase != HEADERS:
                self._enter(HEADERS)
            self._head_bytes = 0

        def on_headers_complete(self) -> None:
            if self.parser.should_upgrade():
                # We take no upgrade, and httptools would stop reading HTTP/1.1 here: its
                # body would be lost and the connection out of step. Refuse it plainly.
                upgrade = dict(self.headers).get(b"upgrade", b"").decode("latin-1")[:40]
                return self._refuse(400, f"Upgrade: {upgrade!r} is not supported here; "
                                         "send the request without an Upgrade header")
            super().on_headers_complete()
            self._enter(BODY)
            self.body_start, self.body_got = self.since, 0
            length = _content_length(self.headers)
            self.holds = length is None or length > private_max
            if self.scope.get("method") != "POST" or self.cycle.scope is not self.scope:
                return
            if length:
                d = placer(self.scope, length)  # type: ignore[arg-type]  # HTTPScope is a dict
                if d is not None:
                    d.bypass = True  # what the parser has not seen goes straight to d.view
                    self._direct = d
                    self.scope[SCOPE_KEY] = d  # type: ignore[literal-required]

        def on_body(self, body: bytes) -> None:
            if self._lingering:
                return None
            d = self._direct
            if d is None:
                return super().on_body(body)
            n = len(body)
            d.view[d.pos : d.pos + n] = body
            d.pos += n
            return None

        def on_message_complete(self) -> None:
            if self._lingering:
                return
            self._direct = None  # the parser saw the whole body
            self._settle()
            super().on_message_complete()

        def _direct_complete(self) -> None:
            # The parser never saw these body bytes: give the connection a fresh parser.
            self._direct = None
            self.parser = httptools.HttpRequestParser(self)
            with contextlib.suppress(AttributeError):  # older httptools lack it
                self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
            self._settle()
            super().on_message_complete()

        def _settle(self) -> None:
            """The body is complete: the app has the request, or it already answered."""
            done = self.cycle is None or self.cycle.response_complete
            self.phase = IDLE if done else APP

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.phase == APP:
                self.phase = IDLE

    class DirectBodyProtocol(asyncio.BufferedProtocol):
        """What the event loop talks to.  Not an ``asyncio.Protocol``: uvloop reads into
        ``get_buffer`` only for protocols that are not (it feeds ``data_received`` bytes
        to every ``asyncio.Protocol``, which would cost the direct path its zero copy)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.conn = conn = Connection(*args, **kwargs)
            # the hot pair, called by the loop on every read: no forwarding call
            self.get_buffer = conn.get_buffer  # type: ignore[method-assign]
            self.buffer_updated = conn.buffer_updated  # type: ignore[method-assign]

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.conn.connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            self.conn.connection_lost(exc)

        def eof_received(self) -> None:
            self.conn.eof_received()

        def pause_writing(self) -> None:
            self.conn.pause_writing()

        def resume_writing(self) -> None:
            self.conn.resume_writing()

        def get_buffer(self, sizehint: int) -> memoryview:
            return self.conn.get_buffer(sizehint)

        def buffer_updated(self, nbytes: int) -> None:
            self.conn.buffer_updated(nbytes)

    return DirectBodyProtocol


_REASONS = {400: b"Bad Request", 408: b"Request Timeout",
            431: b"Request Header Fields Too Large"}


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The declared length, None for a body of unknown length (chunked), 0 if none."""
    for name, value in headers:
        if name == b"content-length":
            return size_of(value) or 0  # (the app answers a bad one with a 400)
        if name == b"transfer-encoding":
            return None
    return 0
