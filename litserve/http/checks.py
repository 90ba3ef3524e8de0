"""The front's checks of a request's headers and body: done here so that workers only
ever see well-formed requests, and so that every malformed one is a 4xx that names the
header (or the body) and what it accepts."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from .. import jsonx, wire
from .. import protocol as P
from .replies import Refused

log = logging.getLogger("litserve.front")
FORM_TYPES = (b"multipart/form-data", b"application/x-www-form-urlencoded")
Headers = dict[bytes, bytes]


def bad(detail: str) -> Refused:
    return Refused(400, detail)


def kind_and_meta(headers: Headers) -> tuple[int, dict[str, Any]]:
    """The body kind of a predict request and the meta the worker needs to read it."""
    ctype = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
    if ctype == b"application/octet-stream":
        return P.OCTET, _octet_meta(headers)
    if ctype == b"application/x-npy":
        return P.NPY, {}
    if ctype == b"application/x-litserve-tensors":
        return P.BUNDLE, {}
    if ctype in FORM_TYPES:
        return P.FORM, {"content_type": headers[b"content-type"].decode("latin-1")}
    return P.JSON, {}


def _octet_meta(headers: Headers) -> dict[str, Any]:
    dtype = headers.get(b"x-tensor-dtype")
    shape = headers.get(b"x-tensor-shape")
    if dtype is None:
        raise bad("an application/octet-stream body needs an X-Tensor-Dtype header, for "
                  "example 'float32'")
    try:
        dt = wire.parse_dtype(dtype.decode("latin-1"))
        dims = None if shape is None else wire.parse_shape(shape.decode("latin-1"))
    except wire.WireError as exc:
        raise bad(str(exc)) from None
    return {"dtype": dt.str, "shape": dims}


def size_of(raw: bytes) -> int | None:
    """A Content-Length value as a number of bytes; None when it is not one."""
    return int(raw) if raw.isdigit() and len(raw) <= 18 else None


def content_length(headers: Headers) -> int | None:
    """The declared body size, None for a body of unknown length (chunked)."""
    raw = headers.get(b"content-length")
    if raw is None:
        return None
    size = size_of(raw)
    if size is None:
        raise bad(f"Content-Length {raw.decode('latin-1')!r} is not valid; send the body "
                  "size in bytes as a non-negative integer")
    return size


def looks_like_json(meta: dict[str, Any], body: Any) -> bool:
    """A urlencoded "form" that is really JSON (``curl -d '{...}'`` sets that type)."""
    urlencoded = meta["content_type"].startswith("application/x-www-form-urlencoded")
    return urlencoded and bytes(body[:1]) in (b"{", b"[")


def validate(kind: int, body: Any, meta: dict[str, Any], model: Any) -> None:
    """The body checks of each kind; ``Refused`` (400 / 415 / 422) when malformed."""
    if model is not None and kind != P.JSON:
        raise Refused(415, f"this route takes a JSON body ({model.__name__}); send it with "
                           "Content-Type: application/json")
    try:
        if kind == P.JSON:
            _check_json(body, model)
        elif kind == P.OCTET:
            shape = None if meta["shape"] is None else wire.format_shape(meta["shape"])
            wire.octet_meta(meta["dtype"], shape, len(body))
        elif kind == P.NPY:
            wire.npy_meta(body[:65536], len(body))
        elif kind == P.BUNDLE:
            wire.bundle_meta(body[:65536], len(body))
    except orjson.JSONDecodeError as exc:
        raise bad(f"request body is not valid JSON: {exc}") from None
    except wire.WireError as exc:
        raise bad(str(exc)) from None
    except ValueError as exc:  # pydantic.ValidationError
        errors = exc.errors(include_url=False) if hasattr(exc, "errors") else str(exc)
        raise Refused(422, errors) from None
    except Exception as exc:  # a parser tripped over input it did not foresee
        log.warning("refused a malformed request body (%s)", type(exc).__name__, exc_info=exc)
        raise bad(f"the request body could not be read as {_KIND_NAMES.get(kind, 'sent')}"
                  ) from None


_KIND_NAMES = {P.JSON: "JSON", P.OCTET: "a tensor", P.NPY: "a .npy file",
               P.BUNDLE: "a tensor bundle"}


def _check_json(body: Any, model: Any) -> None:
    if model is not None:
        model.model_validate_json(bytes(body))
    elif len(body):
        jsonx.loads(body)


# -- Accept -------------------------------------------------------------------------------
_BINARY = ((b"application/octet-stream", P.ACCEPT_OCTET), (b"application/x-npy", P.ACCEPT_NPY),
           (b"application/x-litserve-tensors", P.ACCEPT_BUNDLE))


def accept_flags(accept: bytes) -> int:
    """Binary response formats the client asks for: each one it names with q > 0 that
    it does not like less than JSON."""
    if not accept or accept == b"*/*":
        return 0
    prefs = media_prefs(accept)
    json_q = prefs.get(b"application/json", prefs.get(b"application/*", prefs.get(b"*/*", 0.0)))
    flags = 0
    for media, flag in _BINARY:
        q = prefs.get(media, 0.0)
        if q > 0 and q >= json_q:
            flags |= flag
    return flags


def media_prefs(accept: bytes) -> dict[bytes, float]:
    """{media range: q} of an Accept header (malformed q values count as 0)."""
    prefs: dict[bytes, float] = {}
    for item in accept.lower().split(b","):
        media, *params = (p.strip() for p in item.split(b";"))
        q = 1.0
        for param in params:
            if param.startswith(b"q="):
                q = _qvalue(param[2:])
        if media:
            prefs[media] = max(q, prefs.get(media, 0.0))
    return prefs


def _qvalue(raw: bytes) -> float:
    try:
        q = float(raw)
    except ValueError:
        return 0.0
    return q if 0.0 <= q <= 1.0 else 0.0
