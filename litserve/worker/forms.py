"""Forms from a body that lies in shared memory, without copying the file parts.

``multipart/form-data`` is split with regular expressions run directly over the
memoryview of the front's arena (``re`` searches any bytes-like object), so a 25 MB file
part costs one scan and no copy: its ``UploadFile.file`` is a ``MemoryFile`` over the
arena bytes.  ``file.read()`` makes the one copy a caller asks for; ``file.getbuffer()``
gives the zero-copy view.  Both are the request's own (``worker/inputs.py``): a file kept
past the response keeps its bytes (they are copied once, when the request ends).
"""

from __future__ import annotations

import io
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import FormData, Headers, UploadFile

_CRLF2 = re.compile(rb"\r\n\r\n")
_LINE_END = re.compile(rb"[ \t]*\r\n")
_PARAM = re.compile(r';\s*([\w*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


class FormError(ValueError):
    """A malformed form body; the message says what is wrong."""


class MemoryFile(io.RawIOBase):
    """A read-only, seekable file over a memoryview (no copy until ``read``)."""

    _rolled = False  # Starlette reads "in-memory" files without a thread pool

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view, self._pos = view, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view),
                                                                   self._pos + size)
        data = bytes(self._view[self._pos : end])
        self._pos = max(self._pos, end)
        return data

    readall = read

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        n = min(len(out), len(self._view) - self._pos)
        out[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def getbuffer(self) -> memoryview:
        return self._view


def parse_form(body: Any, content_type: str) -> FormData:
    """A Starlette ``FormData`` (fields as str, files as ``UploadFile``) from a body."""
    ctype, params = options(content_type)
    if ctype == "application/x-www-form-urlencoded":
        pairs = parse_qsl(bytes(body).decode("latin-1"), keep_blank_values=True)
        return FormData([(k, v) for k, v in pairs])
    boundary = params.get("boundary")
    if not boundary:
        raise FormError("multipart body without a boundary in its Content-Type")
    items: list[tuple[str, str | UploadFile]] = []
    for headers, content in split_multipart(memoryview(body), boundary.encode("latin-1")):
        _, disp = options(headers.get("content-disposition", ""))
        name, filename = disp.get("name", ""), disp.get("filename")
        if filename is None:
            items.append((name, bytes(content).decode("utf-8", "replace")))
        else:
            items.append((name, UploadFile(MemoryFile(content), size=len(content),  # type: ignore[arg-type]
                                           filename=filename, headers=Headers(headers))))
    return FormData(items)


def split_multipart(body: memoryview, boundary: bytes) -> list[tuple[dict[str, str], memoryview]]:
    """(headers, content view) of every part, in order."""
    delim = b"--" + boundary
    first = re.compile(re.escape(delim)).search(body)
    if first is None:
        raise FormError("multipart body does not contain its boundary")
    next_delim = re.compile(rb"\r\n" + re.escape(delim))
    parts = []
    pos = first.end()
    while bytes(body[pos : pos + 2]) != b"--":  # "--boundary--" closes the body
        line = _LINE_END.match(body, pos)
        if line is None:
            raise FormError("multipart boundary line is not followed by CRLF")
        pos = line.end()
        if bytes(body[pos : pos + 2]) == b"\r\n":  # a part without headers
            head, start = b"", pos + 2
        else:
            end = _CRLF2.search(body, pos)
            if end is None:
                raise FormError("multipart part headers are not terminated")
            head, start = bytes(body[pos : end.start()]), end.end()
        stop = next_delim.search(body, start)
        if stop is None:
            raise FormError("multipart part is not terminated by its boundary")
        parts.append((_headers(head), body[start : stop.start()]))
        pos = stop.end()
    return parts


def _headers(head: bytes) -> dict[str, str]:
    out = {}
    for line in head.split(b"\r\n"):
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def options(header: str) -> tuple[str, dict[str, str]]:
    """A header's main value (lower case) and its ``; key=value`` parameters."""
    main, _, rest = header.partition(";")
    params = {}
    for key, value in _PARAM.findall(";" + rest):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key.lower()] = value
    return main.strip().lower(), params
