"""uvicorn's httptools protocol, taught to read large bodies straight into shared memory.

For a POST whose body the front wants in its arena, the app reserves the arena block
while the headers are parsed (``Front.place_direct``).  From then on the socket is read
with ``get_buffer``/``buffer_updated`` (``asyncio.BufferedProtocol``) directly into that
block: the kernel copies the bytes into shared memory and no user-space copy is made.
Bytes that arrived together with the headers are copied once from the parser's chunk.
When the block is full, the request is complete: a fresh parser takes over the
connection for the next request, and the app's ``receive()`` sees the end of the body.

Everything else (small bodies, other routes, pipelining, upgrades) is uvicorn's own path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

READ_SIZE = 256 * 1024
SCOPE_KEY = "litserve.direct"


class Direct:
    """Where one request's body goes: ``view`` (arena bytes), filled up to ``pos``."""

    __slots__ = ("view", "pos", "end", "bypass", "ticket")

    def __init__(self, view: memoryview, ticket: Any) -> None:
        self.view, self.pos, self.end = view, 0, len(view)
        self.bypass = False
        self.ticket = ticket  # the app's reservation (slot, block, kind, meta)


Placer = Callable[[dict[str, Any], int], Direct | None]


def protocol_class(placer: Placer) -> type[asyncio.Protocol]:
    """A uvicorn HTTP protocol class whose large bodies go where ``placer`` says."""

    class DirectBodyProtocol(HttpToolsProtocol, asyncio.BufferedProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._read = memoryview(bytearray(READ_SIZE))
            self._direct: Direct | None = None

        # -- reading -------------------------------------------------------------------
        def get_buffer(self, sizehint: int) -> memoryview:
            d = self._direct
            if d is not None and d.bypass:
                return d.view[d.pos :]
            return self._read

        def buffer_updated(self, nbytes: int) -> None:
            d = self._direct
            if d is not None and d.bypass:
                d.pos += nbytes
                if d.pos >= d.end:
                    self._direct_complete()
                return
            self.data_received(self._read[:nbytes])  # type: ignore[arg-type]

        # -- parser callbacks --------------------------------------------------------------
        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            if self.scope.get("method") != "POST" or self.cycle.scope is not self.scope:
                return
            length = _content_length(self.headers)
            if length:
                d = placer(self.scope, length)  # type: ignore[arg-type]  # HTTPScope is a dict
                if d is not None:
                    d.bypass = True  # what the parser has not seen goes straight to d.view
                    self._direct = d
                    self.scope[SCOPE_KEY] = d  # type: ignore[literal-required]

        def on_body(self, body: bytes) -> None:
            d = self._direct
            if d is None:
                return super().on_body(body)
            n = len(body)
            d.view[d.pos : d.pos + n] = body
            d.pos += n
            return None

        def on_message_complete(self) -> None:
            self._direct = None  # the parser saw the whole body
            super().on_message_complete()

        def _direct_complete(self) -> None:
            # The parser never saw these body bytes: give the connection a fresh parser.
            self._direct = None
            self.parser = httptools.HttpRequestParser(self)
            with contextlib.suppress(AttributeError):  # older httptools lack it
                self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
            super().on_message_complete()

    return DirectBodyProtocol


def _content_length(headers: list[tuple[bytes, bytes]]) -> int:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
        if name == b"transfer-encoding":
            return 0
    return 0
