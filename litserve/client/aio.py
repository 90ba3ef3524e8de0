"""``AsyncClient``: the asyncio twin of ``Client``.

Each connection is an ``asyncio.BufferedProtocol``: the event loop receives a large
sized body straight into the result array (``get_buffer`` hands out the array's own
memory), so tensors arrive without a user-space copy.  Large bodies are written in
slices, waiting for the transport to drain, so sending never buffers a second copy
of a big array.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from litserve.client import _body
from litserve.client._common import DEFAULT, MAX_ERROR_BODY, BaseClient, Deadline, Endpoint
from litserve.client._http1 import END, Head, Parser
from litserve.client._stream import StreamDecoder
from litserve.client.errors import ConnectError, HTTPStatusError

SCRATCH = 256 * 1024
SLICE = 1 << 20  # bytes written before waiting for the transport to drain
PAUSE_AT = 4 << 20  # parsed-but-unread bytes at which reading pauses


class _Proto(asyncio.BufferedProtocol):
    """One HTTP/1.1 connection on the event loop."""

    def __init__(self) -> None:
        self.parser = Parser()
        self.scratch = memoryview(bytearray(SCRATCH))
        self.transport: Any = None  # asyncio's or uvloop's transport
        self.direct: memoryview | None = None  # a body buffer the loop receives into
        self.direct_pos = 0
        self.lost = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._paused = False

    # -- protocol callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.direct is not None:
            return self.direct[self.direct_pos :]
        return self.scratch

    def buffer_updated(self, nbytes: int) -> None:
        if self.direct is not None:
            self.direct_pos += nbytes
            if self.direct_pos == len(self.direct):
                self.direct = None
                self._wake()
            return
        self.parser.feed(self.scratch[:nbytes])
        if self.parser.buffered > PAUSE_AT and self.transport is not None:
            self.transport.pause_reading()
            self._paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.parser.feed_eof()
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.parser.feed_eof()
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- used by the client ----------------------------------------------------------

    async def _wait(self) -> None:
        if self.lost and self.direct is not None:
            raise ConnectError("the server closed the connection in the middle of a body")
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def send(self, head: bytes, pieces: list[Any]) -> None:
        if self.lost or self.transport is None:
            raise ConnectError("the connection was closed before the request was sent")
        self.parser.start()
        self.transport.write(head)
        for piece in pieces:
            view = memoryview(piece).cast("B")
            for start in range(0, len(view), SLICE):
                if self.lost:
                    raise ConnectError("the server closed the connection during the upload")
                self.transport.write(view[start : start + SLICE])
                if self._drain is not None:
                    await self._drain

    async def event(self) -> Any:
        while (ev := self.parser.next_event()) is None:
            if self._paused and self.parser.buffered < PAUSE_AT // 2 and self.transport:
                self.transport.resume_reading()
                self._paused = False
            await self._wait()
        return ev

    async def read_body(self, head: Head, limit: int | None = None) -> Any:
        if head.length is not None and head.length > 0 and limit is None:
            buf = _body.tensor_buffer(head.content_type, head.headers, head.length)
            await self._read_sized(memoryview(buf).cast("B"))
            if await self.event() is not END:
                raise ConnectError("response body longer than its Content-Length")
            return buf
        out = bytearray()
        while (ev := await self.event()) is not END:
            if limit is None or len(out) < limit:
                out += ev.data
        return out

    async def _read_sized(self, buf: memoryview) -> None:
        first = self.parser.take(len(buf))
        buf[: len(first)] = first
        if len(first) == len(buf):
            return
        self.direct, self.direct_pos = buf[len(first) :], 0
        if self._paused and self.transport is not None:
            self.transport.resume_reading()
            self._paused = False
        try:
            while self.direct is not None:
                await self._wait()
        finally:
            got, self.direct = self.direct_pos, None
        self.parser.skip_body(len(buf) - len(first))
        assert got == len(buf) - len(first)


class AsyncClient(BaseClient):
    """The asyncio version of ``litserve.Client``; same options and answers.

        async with AsyncClient("http://127.0.0.1:8000") as client:
            y = await client.predict(np.ones((3, 224, 224), np.float32))
            async for item in client.stream({"prompt": "hi"}): ...

    Calls may run concurrently; each uses its own pooled keep-alive connection.
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", *, ssl_context: Any = None,
                 **options: Any) -> None:
        super().__init__(url, **options)
        self.ssl_context = ssl_context
        self._idle: list[_Proto] = []

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the idle connections (the client can still be used afterwards)."""
        idle, self._idle = self._idle, []
        for proto in idle:
            proto.close()

    async def predict(self, x: Any, *, path: str | None = None, binary: bool | None = None,
                      timeout: Any = DEFAULT, headers: dict[str, str] | None = None) -> Any:
        """POST ``x`` and return the answer; see ``litserve.Client.predict``."""
        head_bytes, pieces = self._predict_request(x, path, binary, headers)
        deadline = Deadline(self._timeout(timeout), f"POST {path or self.endpoint.path}")
        return await self._bounded(self._call(head_bytes, pieces, path), deadline)

    async def stream(self, x: Any, *, path: str | None = None, timeout: Any = DEFAULT,
                     headers: dict[str, str] | None = None) -> AsyncIterator[Any]:
        """POST ``x`` to a streaming route and yield each item; ``timeout`` bounds the
        wait for each item.  See ``litserve.Client.stream``."""
        head_bytes, pieces = self._stream_request(x, path, headers)
        timeout = self._timeout(timeout)
        what = f"waiting for the next item of POST {path or self.endpoint.path}"
        proto = await self._bounded(self._checkout(), Deadline(timeout, what))
        try:
            head = await self._bounded(self._start(proto, head_bytes, pieces, path),
                                       Deadline(timeout, what))
            decoder = StreamDecoder(head.content_type, head.chunked)
            while (ev := await self._bounded(proto.event(), Deadline(timeout, what))) is not END:
                for item in decoder.feed(ev.data, ev.chunk_end):
                    yield item
            for item in decoder.finish():
                yield item
        except HTTPStatusError:
            raise  # the connection is fine and back in the pool
        except BaseException:
            proto.close()
            raise
        self._checkin(proto, head)

    async def health(self, timeout: float | None = 5.0) -> bool:
        """True when GET /health answers 200; False on any other answer or no answer."""
        head_bytes, _ = self._request("GET", "/health", None, "*/*", None)
        try:
            await self._bounded(self._call(head_bytes, [], "/health"),
                                Deadline(timeout, "GET /health"))
        except (HTTPStatusError, ConnectError, TimeoutError):
            return False
        return True

    async def wait_ready(self, timeout: float = 60.0, interval: float = 0.05) -> None:
        """Poll /health until it answers 200, or raise ``Timeout``."""
        deadline = Deadline(timeout, f"waiting for {self.endpoint.origin}/health to answer 200")
        while not await self.health(timeout=min(5.0, deadline.left() or 5.0)):
            await asyncio.sleep(min(interval, deadline.left() or interval))

    # -- internals -------------------------------------------------------------------

    @staticmethod
    async def _bounded(coro: Any, deadline: Deadline) -> Any:
        try:
            return await asyncio.wait_for(coro, deadline.timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise deadline.expired() from None

    async def _checkout(self) -> _Proto:
        while self._idle:
            proto = self._idle.pop()
            closing = proto.transport is None or proto.transport.is_closing()
            if not (proto.lost or closing or proto.parser.buffered):
                return proto
            proto.close()
        return await _open(self.endpoint, self.ssl_context)

    def _checkin(self, proto: _Proto, head: Head) -> None:
        closing = proto.transport is None or proto.transport.is_closing()
        if head.keep_alive and not (proto.lost or closing) and len(self._idle) < self.max_idle:
            self._idle.append(proto)
        else:
            proto.close()

    async def _start(self, proto: _Proto, head_bytes: bytes, pieces: list[Any],
                     path: str | None) -> Head:
        """Send the request and read the answer's head; an error answer is read in full,
        the connection put back, and raised."""
        await proto.send(head_bytes, pieces)
        head = await proto.event()
        assert isinstance(head, Head)
        if head.status >= 300:
            body = bytes(await proto.read_body(head, MAX_ERROR_BODY))
            self._checkin(proto, head)
            raise self._error(head, body, path)
        return head

    async def _call(self, head_bytes: bytes, pieces: list[Any], path: str | None) -> Any:
        proto = await self._checkout()
        try:
            head = await self._start(proto, head_bytes, pieces, path)
            buf = await proto.read_body(head)
        except HTTPStatusError:
            raise  # the connection is fine and back in the pool
        except BaseException:
            proto.close()
            raise
        self._checkin(proto, head)
        return _body.decode(head.content_type, head.headers, buf)


async def _open(ep: Endpoint, ssl_context: Any) -> _Proto:
    ssl: Any = None
    if ep.scheme == "https":
        import ssl as ssl_module

        ssl = ssl_context or ssl_module.create_default_context()
    loop = asyncio.get_running_loop()
    try:
        _, proto = await loop.create_connection(_Proto, ep.host, ep.port, ssl=ssl)
    except OSError as exc:
        raise ConnectError(f"cannot connect to {ep.origin}: {exc}") from exc
    return proto
