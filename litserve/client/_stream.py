"""Turning a streamed response body into the items the server's API yielded.

* ``text/event-stream`` (the OpenAI style): one item per event, from its ``data:``
  lines; JSON where it parses, else text; ``data: [DONE]`` ends the stream.
* anything else sent with chunked transfer encoding (the litserve style: each
  yielded item is one HTTP chunk): a chunk that ends with a newline is NDJSON and
  gives one item per line (JSON where it parses, else the line's text, newline
  kept); any other chunk is one text item.
* a stream without chunks (Content-Length, or read to EOF): one item per line.
"""

from __future__ import annotations

import json
from typing import Any

SSE = "text/event-stream"


def parse_item(text: str) -> Any:
    stripped = text.strip()
    if stripped:
        try:
            return json.loads(stripped)
        except ValueError:
            pass
    return text


class StreamDecoder:
    def __init__(self, content_type: str, chunked: bool) -> None:
        self._sse = content_type == SSE
        self._chunked = chunked and not self._sse
        self._pending = bytearray()
        self.done = False  # an SSE stream sent [DONE]

    def feed(self, data: bytes, chunk_end: bool) -> list[Any]:
        self._pending += data
        if self._sse:
            return self._events(final=False)
        if self._chunked:
            return self._chunk_items() if chunk_end else []
        return self._lines(final=False)

    def finish(self) -> list[Any]:
        if self._sse:
            return self._events(final=True)
        if self._chunked:
            return self._chunk_items()
        return self._lines(final=True)

    def _chunk_items(self) -> list[Any]:
        text = self._pending.decode("utf-8", "replace")
        self._pending.clear()
        if not text:
            return []
        if not text.endswith("\n"):
            return [text]
        return [parse_item(line) if line.strip() else line for line in text.splitlines(True)]

    def _lines(self, final: bool) -> list[Any]:
        end = len(self._pending) if final else self._pending.rfind(b"\n") + 1
        text = self._pending[:end].decode("utf-8", "replace")
        del self._pending[:end]
        return [parse_item(line) for line in text.splitlines(True) if line.strip()]

    def _events(self, final: bool) -> list[Any]:
        raw = self._pending.replace(b"\r\n", b"\n")
        end = len(raw) if final else raw.rfind(b"\n\n") + 2 if b"\n\n" in raw else 0
        self._pending = bytearray(raw[end:])
        items = []
        for event in raw[:end].decode("utf-8", "replace").split("\n\n"):
            data = [ln[5:].removeprefix(" ") for ln in event.split("\n") if ln.startswith("data:")]
            if not data or self.done:
                continue
            if data == ["[DONE]"]:
                self.done = True
                continue
            items.append(parse_item("\n".join(data)))
        return items
