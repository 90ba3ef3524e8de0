"""Encode what ``encode_response`` returned into response bytes and headers."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .. import jsonx, wire
from .. import protocol as P

INTERNAL = "Internal Server Error"  # all a client learns of an unexpected exception
# RFC 9110: a field name is a token; a value is visible ASCII or obs-text (0x80-0xFF),
# with spaces and tabs between.  Anything else (CR, LF, NUL, ...) would end the line.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_NAME = re.compile(_TOKEN)
_LINE = re.compile(_TOKEN + r": [\t\x20-\x7e\x80-\xff]*")


class InvalidHeader(ValueError):
    """A response header that cannot be sent as one header line (the request gets a 500)."""


class Encoded:
    """One response (or stream chunk): status, content-type code, header lines, body."""

    __slots__ = ("status", "ctype", "meta", "parts")

    def __init__(self, status: int, ctype: int, meta: bytes, parts: list[Any]) -> None:
        self.status, self.ctype, self.meta, self.parts = status, ctype, meta, parts

    @property
    def size(self) -> int:
        return sum(memoryview(p).nbytes for p in self.parts)


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    arr = wire.as_array(obj)
    if arr is not None:
        return arr.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def to_json(output: Any) -> bytes:
    try:
        return jsonx.dumps(output, default=_default)
    except TypeError as exc:
        raise TypeError(
            f"encode_response returned {type(output).__name__}, which cannot be sent as "
            f"JSON ({exc}); return dicts, lists, numbers, strings, NumPy arrays or torch "
            "tensors, a pydantic model, or a starlette Response"
        ) from None


def header_lines(headers: list[tuple[str, str]]) -> bytes:
    """``name: value\\r\\n`` for each header; InvalidHeader for one that is not a single
    valid header line."""
    lines = []
    for name, value in headers:
        line = f"{name}: {value}\r\n"
        if _LINE.fullmatch(line, 0, len(line) - 2) is None:  # a name holds no ":"
            raise _invalid(str(name), str(value))
        lines.append(line)
    return "".join(lines).encode("latin-1")


def _invalid(name: str, value: str) -> InvalidHeader:
    if _NAME.fullmatch(name) is None:
        return InvalidHeader(f"response header name {name!r} (value {value!r}) is not valid: "
                             "a name is letters, digits and !#$%&'*+-.^_`|~ only")
    return InvalidHeader(f"response header {name!r} has an invalid value {value!r}: a value "
                         "is visible ASCII or Latin-1 text, spaces and tabs: no CR, LF, NUL "
                         "or other control characters")


def encode(output: Any, flags: int) -> Encoded:
    """A unary response."""
    if _is_response(output):
        return _response(output)
    if flags & (P.ACCEPT_OCTET | P.ACCEPT_NPY | P.ACCEPT_BUNDLE):
        binary = _binary(output, flags)
        if binary is not None:
            return binary
    if hasattr(output, "model_dump_json"):
        return Encoded(200, P.CT_JSON, b"", [output.model_dump_json().encode()])
    return Encoded(200, P.CT_JSON, b"", [to_json(output)])


def encode_chunk(chunk: Any) -> tuple[int, bytes]:
    """(content-type code, bytes) of one stream chunk: text as is, anything else NDJSON."""
    if isinstance(chunk, str):
        return P.CT_TEXT, chunk.encode()
    if isinstance(chunk, bytes | bytearray):
        return P.CT_TEXT, bytes(chunk)
    if hasattr(chunk, "model_dump_json"):
        return P.CT_NDJSON, chunk.model_dump_json().encode() + b"\n"
    return P.CT_NDJSON, to_json(chunk) + b"\n"


def error(status: int, detail: Any, headers: list[tuple[str, str]] | None = None) -> Encoded:
    """An error response whose detail the client may see (an HTTPException's, or ours)."""
    return Encoded(status, P.CT_JSON, header_lines(headers or []), [error_json(detail)])


def internal_error(request_id: str) -> Encoded:
    """The 500 for an unexpected exception: no detail, a request id to find it in the log."""
    return Encoded(500, P.CT_JSON, header_lines([("x-request-id", request_id)]),
                   [error_json(INTERNAL, request_id)])


def error_json(detail: Any, request_id: str = "") -> bytes:
    """``{"detail": ...}`` (plus ``"request_id"`` when given); what JSON cannot hold as str."""
    doc = {"detail": detail, "request_id": request_id} if request_id else {"detail": detail}
    return jsonx.dumps(doc, default=_default_or_str)


def _default_or_str(obj: Any) -> Any:
    try:
        return _default(obj)
    except TypeError:
        return str(obj)


def _binary(output: Any, flags: int) -> Encoded | None:
    if isinstance(output, dict) and flags & P.ACCEPT_BUNDLE:
        arrays = {k: wire.as_array(v) for k, v in output.items()}
        if arrays and all(a is not None for a in arrays.values()):
            head, pieces = wire.bundle_parts(arrays)  # type: ignore[arg-type]
            parts: list[Any] = [head]
            pos = len(head)
            for off, a in pieces:
                parts.append(bytes(off - pos))
                parts.append(_bytes_view(a))
                pos = off + a.nbytes
            return Encoded(200, P.CT_BUNDLE, b"", parts)
    arr = wire.as_array(output)
    if arr is None:
        return None
    arr = np.asarray(arr, order="C")
    if flags & P.ACCEPT_OCTET:
        meta = header_lines([("x-tensor-dtype", arr.dtype.str),
                             ("x-tensor-shape", wire.format_shape(arr.shape))])
        return Encoded(200, P.CT_OCTET, meta, [_bytes_view(arr)])
    if flags & P.ACCEPT_NPY:
        return Encoded(200, P.CT_NPY, b"", [wire.npy_header(arr), _bytes_view(arr)])
    return None


def _bytes_view(arr: np.ndarray) -> memoryview:
    return arr.reshape(-1).view(np.uint8).data if arr.size else memoryview(b"")


def _is_response(output: Any) -> bool:
    """A starlette / FastAPI Response (Response, JSONResponse, PlainTextResponse, ...)."""
    return hasattr(output, "raw_headers") and hasattr(output, "status_code")


def _response(resp: Any) -> Encoded:
    """Its status, headers (content-type included; content-length is ours) and body.
    A response whose body is produced as it is sent (StreamingResponse, FileResponse)
    has no body here: TypeError (the request gets a 500, the log says why)."""
    if not isinstance(getattr(resp, "body", None), bytes | bytearray | memoryview):
        raise TypeError(
            f"encode_response returned a {type(resp).__name__}, whose body is produced "
            "while it is sent; a worker sends whole responses: return a Response with "
            "its content (Response, JSONResponse, PlainTextResponse, ...), or stream "
            "with LitAPI(stream=True) and yield the chunks from predict / encode_response")
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers
               if k.lower() != b"content-length"]
    return Encoded(resp.status_code, P.CT_OTHER, header_lines(headers), [bytes(resp.body)])
