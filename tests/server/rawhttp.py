"""A raw HTTP/1.1 client for the fuzz tests: bytes exactly as given go on the socket (so
broken framing is possible), and every wait is bounded.

``Conn.request`` writes bytes while reading (an early answer ends the sending), and
``Conn.read`` returns the next final response (1xx interim responses are skipped), or says
the connection was closed or reset before a response (CLOSED), stayed silent until the
deadline (SILENT), or ended in the middle of a response (TRUNCATED).
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass, field

CLOSED = "closed"  # end of stream (or reset) before a response began
SILENT = "silent"  # nothing complete arrived before the deadline; the connection is open
TRUNCATED = "truncated"  # the connection ended in the middle of a response


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name.lower()), None)

    @property
    def keeps_alive(self) -> bool:
        return (self.header(b"connection") or b"").lower() != b"close"

    def __str__(self) -> str:
        return f"{self.status} {self.body[:300]!r}"


@dataclass
class Conn:
    """One TCP connection to ``(host, port)``."""

    host: str
    port: int
    sock: socket.socket = field(init=False)
    buf: bytearray = field(init=False, default_factory=bytearray)
    eof: bool = field(init=False, default=False)
    sent_all: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        self.sock.close()

    def request(self, data: bytes, send_s: float, wait_s: float, head: bool = False
                ) -> Response | str:
        """Send ``data`` (reading all the while: a server may answer before the body is
        all sent), then wait up to ``wait_s`` for the answer.  Sending ends early when
        the server closes, or when it neither reads nor answers within ``send_s``;
        ``sent_all`` says whether every byte went out."""
        view = memoryview(data)
        deadline = time.monotonic() + send_s
        while view and not self.eof and time.monotonic() < deadline:
            readable, writable, _ = select.select(
                [self.sock], [self.sock], [], max(deadline - time.monotonic(), 0))
            if readable:
                self._fill(deadline)
            elif writable:
                view = view[self._send(view) :]
        self.sent_all = not view
        if view and not self.eof and _parse(bytearray(self.buf), head) is None:
            return SILENT  # neither reading nor answering
        return self.read(time.monotonic() + wait_s, head)

    def _send(self, view: memoryview) -> int:
        self.sock.setblocking(False)
        try:
            return self.sock.send(view[: 1 << 20])
        except BlockingIOError:
            return 0
        except OSError:  # EPIPE, ECONNRESET: the server closed; what it said is in buf
            self.eof = True
            return 0
        finally:
            self.sock.setblocking(True)

    def read(self, deadline: float, head: bool = False) -> Response | str:
        """The next final response (``head``: to a HEAD request, so without a body)."""
        while True:
            got = _parse(self.buf, head)
            if isinstance(got, Response):
                if 100 <= got.status < 200:
                    continue
                return got
            if got == "error":
                return TRUNCATED
            if self.eof or not self._fill(deadline):
                if not self.eof:
                    return SILENT
                last = _parse(self.buf, head, at_eof=True)
                return last if isinstance(last, Response) else TRUNCATED if self.buf else CLOSED

    def _fill(self, deadline: float) -> bool:
        """Read more into buf; False at the deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 20)
        except TimeoutError:
            return False
        except OSError:  # ECONNRESET
            chunk = b""
        if not chunk:
            self.eof = True
        self.buf += chunk
        return True


def _parse(buf: bytearray, head: bool, at_eof: bool = False) -> Response | str | None:
    """Take one response off the front of buf, or None when more bytes are needed
    ("error" when buf does not hold an HTTP/1.x response; ``at_eof``: the connection has
    ended, which ends a body framed by neither length nor chunking)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return "error"
    headers = [(k.strip().lower(), v.strip()) for k, _, v in (ln.partition(b":")
                                                              for ln in lines[1:])]
    response = Response(int(parts[1]), headers, b"")
    body_start = end + 4
    if head or response.status in (204, 304) or 100 <= response.status < 200:
        del buf[:body_start]
        return response
    if (response.header(b"transfer-encoding") or b"").lower() == b"chunked":
        return _take_chunked(buf, body_start, response)
    length = response.header(b"content-length")
    if length is None or not length.isdigit():
        if not at_eof:
            return None  # the body runs until the connection closes
        length = b"%d" % (len(buf) - body_start)
    if len(buf) < body_start + int(length):
        return None
    response.body = bytes(buf[body_start : body_start + int(length)])
    del buf[: body_start + int(length)]
    return response


def _take_chunked(buf: bytearray, pos: int, response: Response) -> Response | str | None:
    body = bytearray()
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        try:
            size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
        except ValueError:
            return "error"
        if size == 0:
            trailer_end = buf.find(b"\r\n\r\n", line_end)
            if buf[line_end : line_end + 4] == b"\r\n\r\n":
                trailer_end = line_end
            if trailer_end < 0:
                return None
            response.body = bytes(body)
            del buf[: trailer_end + 4]
            return response
        if len(buf) < line_end + 2 + size + 2:
            return None
        body += buf[line_end + 2 : line_end + 2 + size]
        pos = line_end + 2 + size + 2
