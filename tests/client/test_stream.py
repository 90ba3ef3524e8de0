"""Turning streamed bodies into the items the server's API yielded."""

from __future__ import annotations

from litserve.client._stream import StreamDecoder


def feed_all(dec: StreamDecoder, chunks: list[tuple[bytes, bool]]) -> list[object]:
    out: list[object] = []
    for data, end in chunks:
        out += dec.feed(data, end)
    return out + dec.finish()


def test_chunked_ndjson_and_text() -> None:
    dec = StreamDecoder("application/x-ndjson", chunked=True)
    got = feed_all(dec, [(b'{"a"', False), (b": 1}\n", True), (b"hello", True),
                         (b"[1]\n[2]\n", True), (b"not json\n", True)])
    assert got == [{"a": 1}, "hello", [1], [2], "not json\n"]


def test_unchunked_stream_gives_lines() -> None:
    dec = StreamDecoder("application/x-ndjson", chunked=False)
    assert feed_all(dec, [(b'{"i": 0}\n{"i"', False), (b': 1}\n{"i": 2}', False)]) == [
        {"i": 0}, {"i": 1}, {"i": 2}]


def test_sse_events_split_anywhere_and_done() -> None:
    raw = (b'data: {"x": 1}\r\n\r\n: comment\n\ndata: plain text\n\n'
           b"data: [DONE]\n\ndata: {\"late\": 1}\n\n")
    for cut in range(len(raw)):
        dec = StreamDecoder("text/event-stream", chunked=True)
        assert feed_all(dec, [(raw[:cut], False), (raw[cut:], True)]) == [{"x": 1},
                                                                          "plain text"]
        assert dec.done
