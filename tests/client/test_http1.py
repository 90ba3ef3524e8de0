"""The sans-IO HTTP/1.1 response parser, fed byte streams split at every position."""

from __future__ import annotations

from typing import Any

import pytest

from litserve.client._http1 import END, Data, Head, Parser, parse_head, request_head
from litserve.client.errors import ConnectError, ProtocolError

SIZED = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
         b'{"a": 123}\n')
CHUNKED = (b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n"
           b"transfer-encoding: chunked\r\n\r\n"
           b"7\r\n{\"i\":0}\r\n8;ext=1\r\n{\"i\":1}\n\r\n0\r\nX-Trailer: t\r\n\r\n")
EOF_BODY = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"


def events(parser: Parser, pieces: list[bytes], eof: bool = False) -> list[Any]:
    out: list[Any] = []
    for piece in pieces:
        parser.feed(piece)
        while (ev := parser.next_event()) is not None:
            out.append(ev)
    if eof:
        parser.feed_eof()
        while (ev := parser.next_event()) is not None:
            out.append(ev)
    return out


def body_and_chunks(evs: list[Any]) -> tuple[Head, bytes, list[bytes]]:
    head = evs[0]
    assert isinstance(head, Head) and evs[-1] is END
    chunks, current, body = [], b"", b""
    for ev in evs[1:-1]:
        assert isinstance(ev, Data)
        body += ev.data
        current += ev.data
        if ev.chunk_end:
            chunks.append(current)
            current = b""
    return head, body, chunks


@pytest.mark.parametrize("raw,body,chunks,eof", [
    (SIZED, b'{"a": 123}\n', [b'{"a": 123}\n'], False),
    (CHUNKED, b'{"i":0}{"i":1}\n', [b'{"i":0}', b'{"i":1}\n'], False),
    (EOF_BODY, b"until the end", [], True),
])
def test_every_split_point_gives_the_same_response(raw: bytes, body: bytes,
                                                   chunks: list[bytes], eof: bool) -> None:
    for cut in range(len(raw) + 1):
        p = Parser()
        p.start()
        head, got_body, got_chunks = body_and_chunks(events(p, [raw[:cut], raw[cut:]], eof))
        assert (got_body, got_chunks) == (body, chunks), f"split at {cut}"
        assert head.status == 200


def test_byte_by_byte_and_two_responses_on_one_connection() -> None:
    p = Parser()
    for raw in (SIZED, CHUNKED):
        p.start()
        evs = events(p, [bytes([b]) for b in raw])
        head, _, _ = body_and_chunks(evs)
        assert head.keep_alive and p.done


def test_head_fields() -> None:
    head = parse_head(b"HTTP/1.1 404 Not Found\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n"
                      b"Content-Type: application/json; charset=utf-8\r\nConnection: close")
    assert head.status == 404 and head.reason == "Not Found"
    assert head.headers["x-a"] == "1, 2" and head.content_type == "application/json"
    assert head.length == 0 and not head.keep_alive and not head.chunked
    http10 = parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 3")
    assert not http10.keep_alive
    assert parse_head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3").keep_alive


def test_interim_responses_are_skipped_and_204_has_no_body() -> None:
    p = Parser()
    p.start()
    evs = events(p, [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"])
    assert isinstance(evs[0], Head) and evs[0].status == 204 and evs[1:] == [END]


def test_body_read_around_the_parser() -> None:
    """A caller reads most of a sized body itself (as the clients do for tensors)."""
    p = Parser()
    p.start()
    p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123")
    head = p.next_event()
    assert isinstance(head, Head) and p.body_left == 10
    assert p.take(100) == b"0123" and p.body_left == 6
    p.skip_body(6)  # the caller received these 6 bytes straight from its socket
    assert p.next_event() is END and p.done


@pytest.mark.parametrize("raw,error", [
    (b"HTTP/1.1 20 OK\r\n\r\n", ProtocolError),
    (b"SPDY/3 200 OK\r\n\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", ProtocolError),
])
def test_malformed_responses_raise(raw: bytes, error: type[Exception]) -> None:
    p = Parser()
    p.start()
    with pytest.raises(error):
        events(p, [raw])


def test_connection_closed_mid_response_raises_connect_error() -> None:
    p = Parser()
    p.start()
    with pytest.raises(ConnectError, match="closed the connection before the response body"):
        events(p, [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n012"], eof=True)


def test_oversized_head_is_refused() -> None:
    p = Parser()
    p.start()
    with pytest.raises(ProtocolError, match="longer than"):
        events(p, [b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * 70000])


def test_request_head_refuses_header_injection() -> None:
    head = request_head("GET", "/", "h:1", [("A", "b")])
    assert head == b"GET / HTTP/1.1\r\nHost: h:1\r\nA: b\r\n\r\n"
    with pytest.raises(ValueError, match="line breaks"):
        request_head("GET", "/", "h", [("A", "b\r\nEvil: 1")])
