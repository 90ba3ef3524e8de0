"""``Client``: a blocking client with keep-alive connections.

Tensor bodies go out with ``sendall`` on memoryviews of the array and come back
with ``recv_into`` straight into the result array: no user-space copy either way
for C-contiguous little-endian arrays.  ``timeout`` bounds a whole ``predict``
call (connect, send, wait, receive); for ``stream`` it bounds the wait for each item.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from litserve.client import _body
from litserve.client._common import DEFAULT, MAX_ERROR_BODY, BaseClient, Deadline, Endpoint
from litserve.client._http1 import END, Head, Parser
from litserve.client._stream import StreamDecoder
from litserve.client.errors import ConnectError, HTTPStatusError

SCRATCH = 256 * 1024


class _Conn:
    """One HTTP/1.1 connection: a socket, a response parser and a receive buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = Parser()
        self.scratch = memoryview(bytearray(SCRATCH))

    @classmethod
    def open(cls, ep: Endpoint, deadline: Deadline, ssl_context: Any) -> _Conn:
        try:
            sock = socket.create_connection((ep.host, ep.port), timeout=deadline.left())
        except TimeoutError:
            raise deadline.expired() from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {ep.origin}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ep.scheme == "https":
            sock = _tls(sock, ep, ssl_context)
        return cls(sock)

    def stale(self) -> bool:
        """An idle connection with something to read was closed by the server."""
        if self.sock.fileno() < 0:
            return True
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def close(self) -> None:
        self.sock.close()

    def send(self, head: bytes, pieces: list[Any], deadline: Deadline) -> None:
        self.parser.start()
        self.sock.settimeout(deadline.left())
        self.sock.sendall(head)
        for piece in pieces:
            self.sock.settimeout(deadline.left())
            self.sock.sendall(piece)

    def event(self, deadline: Deadline) -> Any:
        while (ev := self.parser.next_event()) is None:
            self._fill(deadline)
        return ev

    def _fill(self, deadline: Deadline) -> None:
        self.sock.settimeout(deadline.left())
        n = self.sock.recv_into(self.scratch)
        if n:
            self.parser.feed(self.scratch[:n])
        else:
            self.parser.feed_eof()

    def read_sized(self, buf: memoryview, deadline: Deadline) -> None:
        """Receive the rest of a Content-Length body into ``buf`` (its exact size)."""
        first = self.parser.take(len(buf))
        buf[: len(first)] = first
        pos = len(first)
        while pos < len(buf):
            self.sock.settimeout(deadline.left())
            n = self.sock.recv_into(buf[pos:])
            if n == 0:
                raise ConnectError("the server closed the connection in the middle of a body")
            pos += n
        self.parser.skip_body(pos - len(first))

    def read_body(self, head: Head, deadline: Deadline, limit: int | None = None) -> Any:
        """The whole body: into a tensor buffer when it is sized, else collected."""
        if head.length is not None and head.length > 0 and limit is None:
            buf = _body.tensor_buffer(head.content_type, head.headers, head.length)
            self.read_sized(memoryview(buf).cast("B"), deadline)
            if self.event(deadline) is not END:
                raise ConnectError("response body longer than its Content-Length")
            return buf
        out = bytearray()
        while (ev := self.event(deadline)) is not END:
            if limit is None or len(out) < limit:
                out += ev.data
        return out


def _tls(sock: socket.socket, ep: Endpoint, ctx: Any) -> socket.socket:
    import ssl

    ctx = ctx or ssl.create_default_context()
    try:
        return ctx.wrap_socket(sock, server_hostname=ep.host)  # type: ignore[no-any-return]
    except OSError as exc:
        sock.close()
        raise ConnectError(f"TLS handshake with {ep.origin} failed: {exc}") from exc


class Client(BaseClient):
    """A blocking client for a litserve server (or any server speaking its formats).

        client = Client("http://127.0.0.1:8000")            # POST /predict
        client.predict({"input": 4})                         # -> {"output": 16}
        client.predict(np.zeros((1080, 1920, 3), np.uint8))  # binary, both ways
        for chunk in client.stream({"prompt": "hi"}): ...

    ``url`` may carry the route (``http://host:8000/v1/embed``), or give it as
    ``api_path``.  ``api_key`` defaults to env ``LIT_SERVER_API_KEY`` and is sent as
    ``X-API-Key``.  ``timeout`` (seconds, or None) bounds each call.  The client is
    safe to share between threads; each call uses its own pooled connection.
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", *, ssl_context: Any = None,
                 **options: Any) -> None:
        super().__init__(url, **options)
        self.ssl_context = ssl_context
        self._idle: list[_Conn] = []
        self._lock = threading.Lock()

    def __del__(self) -> None:
        for conn in getattr(self, "_idle", ()):  # pooled sockets go with the client
            conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the idle connections (the client can still be used afterwards)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def predict(self, x: Any, *, path: str | None = None, binary: bool | None = None,
                timeout: Any = DEFAULT, headers: dict[str, str] | None = None) -> Any:
        """POST ``x`` and return the answer.

        ``x``: a NumPy array or torch tensor (sent in binary), a dict of arrays (a
        tensor bundle), or anything JSON-serialisable.  Returns the parsed JSON, a
        NumPy array for a binary answer (a dict of arrays for a bundle), text for
        ``text/*``, else bytes.  ``binary`` asks for a binary answer (default: when
        sending tensors).  Raises ``HTTPStatusError`` for 4xx/5xx answers, ``Timeout``
        and ``ConnectError``.
        """
        head_bytes, pieces = self._predict_request(x, path, binary, headers)
        deadline = Deadline(self._timeout(timeout), f"POST {path or self.endpoint.path}")
        return self._call(head_bytes, pieces, deadline, path)

    def stream(self, x: Any, *, path: str | None = None, timeout: Any = DEFAULT,
               headers: dict[str, str] | None = None) -> Iterator[Any]:
        """POST ``x`` to a streaming route and yield each item the server sends
        (parsed JSON where it parses, else text; see ``litserve.client._stream``).
        ``timeout`` bounds the wait for each item.  Errors are raised when iterating.
        """
        head_bytes, pieces = self._stream_request(x, path, headers)
        return self._stream(head_bytes, pieces, self._timeout(timeout), path)

    def health(self, timeout: float | None = 5.0) -> bool:
        """True when GET /health answers 200; False on any other answer or no answer."""
        head_bytes, _ = self._request("GET", "/health", None, "*/*", None)
        try:
            self._call(head_bytes, [], Deadline(timeout, "GET /health"), "/health")
        except (HTTPStatusError, ConnectError, TimeoutError):
            return False
        return True

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.05) -> None:
        """Poll /health until it answers 200, or raise ``Timeout``."""
        deadline = Deadline(timeout, f"waiting for {self.endpoint.origin}/health to answer 200")
        while not self.health(timeout=min(5.0, deadline.left() or 5.0)):
            time.sleep(min(interval, deadline.left() or interval))

    # -- connections -----------------------------------------------------------------

    def _checkout(self, deadline: Deadline) -> _Conn:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return _Conn.open(self.endpoint, deadline, self.ssl_context)
            if not conn.stale():
                return conn
            conn.close()

    def _checkin(self, conn: _Conn, head: Head) -> None:
        with self._lock:
            if head.keep_alive and len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def _start(self, conn: _Conn, head_bytes: bytes, pieces: list[Any], deadline: Deadline,
               path: str | None) -> Head:
        """Send the request and read the answer's head; an error answer is read in full,
        the connection put back, and raised."""
        with _io_errors(deadline, self.endpoint):
            conn.send(head_bytes, pieces, deadline)
            head = conn.event(deadline)
            assert isinstance(head, Head)
            if head.status < 300:
                return head
            body = bytes(conn.read_body(head, deadline, MAX_ERROR_BODY))
        self._checkin(conn, head)
        raise self._error(head, body, path)

    def _call(self, head_bytes: bytes, pieces: list[Any], deadline: Deadline,
              path: str | None) -> Any:
        conn = self._checkout(deadline)
        try:
            head = self._start(conn, head_bytes, pieces, deadline, path)
            with _io_errors(deadline, self.endpoint):
                buf = conn.read_body(head, deadline)
        except HTTPStatusError:
            raise  # the connection is fine and back in the pool
        except BaseException:
            conn.close()
            raise
        self._checkin(conn, head)
        return _body.decode(head.content_type, head.headers, buf)

    def _stream(self, head_bytes: bytes, pieces: list[Any], timeout: float | None,
                path: str | None) -> Iterator[Any]:
        what = f"waiting for the next item of POST {path or self.endpoint.path}"
        deadline = Deadline(timeout, what)
        conn = self._checkout(deadline)
        try:
            head = self._start(conn, head_bytes, pieces, deadline, path)
            decoder = StreamDecoder(head.content_type, head.chunked)
            while True:
                deadline = Deadline(timeout, what)
                with _io_errors(deadline, self.endpoint):
                    ev = conn.event(deadline)
                if ev is END:
                    break
                yield from decoder.feed(ev.data, ev.chunk_end)
            yield from decoder.finish()
        except HTTPStatusError:
            raise  # the connection is fine and back in the pool
        except BaseException:
            conn.close()
            raise
        self._checkin(conn, head)


@contextmanager
def _io_errors(deadline: Deadline, ep: Endpoint) -> Iterator[None]:
    """Socket errors as the client's own: ``Timeout`` and ``ConnectError``."""
    try:
        yield
    except TimeoutError:
        raise deadline.expired() from None
    except ConnectError:
        raise
    except OSError as exc:
        raise ConnectError(f"connection to {ep.origin} broke: {exc}") from exc
