"""A small sans-IO HTTP/1.1 client codec: request heads out, response events in.

Shared by the sync and async clients and by ``litserve bench``.  It does no I/O, so a
caller can read a large body straight into its own buffer (``Parser.skip_body``)
instead of through the parser: that is how tensors arrive without a user-space copy.

Responses come out as a sequence of events, pulled with ``Parser.next_event()``:

    Head     status, reason, lower-cased headers, framing (length / chunked / until EOF)
    Data     a piece of the body; ``chunk_end`` is true where an HTTP chunk (or the
             whole sized body) ends, so callers can keep a server's chunk boundaries
    END      the response is complete; the connection may carry the next one
    None     more bytes are needed (``feed`` them, or ``feed_eof`` at end of stream)

Interim 1xx responses are skipped.  Malformed input raises ``ProtocolError``; a
connection that ends mid-response raises ``ConnectError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

from litserve.client.errors import ConnectError, ProtocolError

MAX_HEAD: Final = 64 * 1024
_CRLF: Final = b"\r\n"


@dataclass(frozen=True)
class Head:
    status: int
    reason: str
    headers: dict[str, str]
    length: int | None  # Content-Length, or None when chunked / read until EOF
    chunked: bool
    keep_alive: bool

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


class Data(NamedTuple):
    data: bytes
    chunk_end: bool


class _End:
    def __repr__(self) -> str:
        return "END"


END: Final = _End()
Event = Head | Data | _End | None

# parser states
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER, _EOF, _FINISH, _DONE = range(9)


def request_head(method: str, target: str, host: str, headers: list[tuple[str, str]]) -> bytes:
    """The bytes of a request line and headers, ending with the blank line."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if any("\r" in line or "\n" in line for line in lines):
        raise ValueError("the request line, header names and values must not contain "
                         f"line breaks: {[ln for ln in lines if chr(10) in ln or chr(13) in ln]}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_head(raw: bytes | bytearray, no_body: bool = False) -> Head:
    """Parse a response head (status line and headers, without the final CRLFCRLF)."""
    lines = bytes(raw).decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"bad status line {lines[0][:100]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(f"bad header line {line[:100]!r}")
        name, value = name.lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return _framing(int(code), reason, headers, version == "HTTP/1.0", no_body)


def _framing(status: int, reason: str, headers: dict[str, str], http10: bool,
             no_body: bool) -> Head:
    conn = headers.get("connection", "").lower()
    keep_alive = "keep-alive" in conn if http10 else "close" not in conn
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    length: int | None = None
    if no_body or status in (204, 304) or 100 <= status < 200:
        length, chunked = 0, False
    elif not chunked and "content-length" in headers:
        text = headers["content-length"].split(",")[0].strip()
        if not text.isdigit():
            raise ProtocolError(f"bad Content-Length {headers['content-length']!r}")
        length = int(text)
    elif not chunked:
        keep_alive = False  # the body runs until the server closes the connection
    return Head(status, reason, headers, length, chunked, keep_alive)


class Parser:
    """Incremental parser of the responses arriving on one connection."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._state = _DONE
        self._left = 0
        self._eof = False
        self._no_body = False

    def start(self, no_body: bool = False) -> None:
        """Expect the response to a new request (``no_body`` for HEAD requests)."""
        if self._state != _DONE:
            raise ProtocolError("the previous response is not complete")
        self._state, self._no_body = _HEAD, no_body

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def feed_eof(self) -> None:
        self._eof = True

    @property
    def buffered(self) -> int:
        """Bytes received but not yet handed out."""
        return len(self._buf) - self._pos

    @property
    def body_left(self) -> int:
        """Bytes of a Content-Length body still to come (0 in other states)."""
        return self._left if self._state == _LENGTH else 0

    def take(self, n: int) -> bytes:
        """Hand out up to ``n`` buffered body bytes of a sized body directly."""
        n = min(n, self.buffered, self.body_left)
        out = bytes(self._buf[self._pos : self._pos + n])
        self.skip_body(n)
        return out

    def skip_body(self, n: int) -> None:
        """Mark ``n`` bytes of a sized body as consumed; bytes beyond what is buffered
        were read by the caller straight from the socket."""
        if n == 0:
            return
        if self._state != _LENGTH or n > self._left:
            raise ProtocolError("skip_body outside a sized body")
        self._pos += min(n, self.buffered)
        self._left -= n
        if self._left == 0:
            self._state = _FINISH

    @property
    def done(self) -> bool:
        """True once the response's END was handed out (or before the first start)."""
        return self._state == _DONE

    def next_event(self) -> Event:
        state = self._state
        if state == _HEAD:
            return self._head()
        if state == _LENGTH:
            return self._sized()
        if state == _EOF:
            return self._until_eof()
        if state == _FINISH:
            self._state = _DONE
            return END
        if state == _DONE:
            return None
        return self._chunked()

    def _head(self) -> Event:
        end = self._buf.find(b"\r\n\r\n", self._pos)
        if end < 0:
            if self.buffered > MAX_HEAD:
                raise ProtocolError(f"response head longer than {MAX_HEAD} bytes")
            return self._need("the response head")
        head = parse_head(self._buf[self._pos : end], self._no_body)
        self._pos = end + 4
        if 100 <= head.status < 200 and head.status != 101:
            return self._head()  # interim response: the real one follows
        if head.chunked:
            self._state = _CHUNK_SIZE
        elif head.length is None:
            self._state = _EOF
        elif head.length:
            self._state, self._left = _LENGTH, head.length
        else:
            self._state = _FINISH
        return head

    def _need(self, what: str) -> Event:
        """None (more bytes needed), or ConnectError when no more bytes will come."""
        if self._eof:
            raise ConnectError(f"the server closed the connection before {what} was complete")
        return None

    def _sized(self) -> Event:
        n = min(self._left, self.buffered)
        if n == 0:
            return self._need("the response body")
        data = self.take(n)
        return Data(data, self._state == _FINISH)

    def _until_eof(self) -> Event:
        if self.buffered:
            data = bytes(self._buf[self._pos :])
            self._pos = len(self._buf)
            return Data(data, False)
        if self._eof:
            self._state = _DONE
            return END
        return None

    def _line(self, what: str) -> bytes | None:
        end = self._buf.find(_CRLF, self._pos)
        if end < 0:
            if self.buffered > MAX_HEAD:
                raise ProtocolError(f"{what} longer than {MAX_HEAD} bytes")
            self._need(what)
            return None
        line = bytes(self._buf[self._pos : end])
        self._pos = end + 2
        return line

    def _chunked(self) -> Event:
        while True:
            state = self._state
            if state == _CHUNK_SIZE:
                line = self._line("a chunk size")
                if line is None:
                    return None
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size line {line[:40]!r}") from None
                self._state, self._left = (_CHUNK_DATA, size) if size else (_TRAILER, 0)
            elif state == _CHUNK_DATA:
                n = min(self._left, self.buffered)
                if n == 0:
                    return self._need("a chunk")
                data = bytes(self._buf[self._pos : self._pos + n])
                self._pos += n
                self._left -= n
                if self._left == 0:
                    self._state = _CHUNK_CRLF
                return Data(data, self._left == 0)
            elif state == _CHUNK_CRLF:
                if self.buffered < 2:
                    return self._need("a chunk")
                if self._buf[self._pos : self._pos + 2] != _CRLF:
                    raise ProtocolError("chunk data not followed by CRLF")
                self._pos += 2
                self._state = _CHUNK_SIZE
            else:  # _TRAILER: skip trailer fields up to the blank line
                line = self._line("the trailer")
                if line is None:
                    return None
                if not line:
                    self._state = _DONE
                    return END
