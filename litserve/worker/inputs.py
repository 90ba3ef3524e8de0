"""Turn a claimed request record into what ``decode_request`` receives.

Inputs are the user's: the bytes of a body that yields views (a tensor, a ``.npy``, a
bundle, a form) are this request's alone and never change afterwards, even when the API
keeps them past its response, and a write into them never reaches bytes another request
owns.  A small body is copied (cheaper than a mapping).  A large one is lent: its block
of the front's arena, which no one else touches while the request runs, is mapped on its
own for this request (``ipc.segment.Loan``), and the runner settles the loan before it
posts the request's last record, since the front reuses the block as soon as it sees
that record: the mapping is dropped, or, if the user still holds any of it, given a
private copy in place.  Bodies parsed into fresh objects (JSON, pydantic, specs) are
read straight from the worker's shared mapping of the arena.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from .. import jsonx, wire
from .. import protocol as P
from ..ipc.arena import Arena
from ..ipc.segment import Loan
from .forms import parse_form

VIEW_KINDS = frozenset({P.OCTET, P.NPY, P.BUNDLE, P.FORM})  # decoded as views of the body
# Bodies of a view kind below this size are copied: a copy of 64 KiB costs about 1 us,
# a mapping of its own about 15 us (map, page faults, unmap; docs/architecture.md).
COPY_BELOW = 64 << 10


def payload(rec: P.RequestRecord, arena: Arena | None
            ) -> tuple[dict[str, Any], Any, Loan | None]:
    """(meta dict, body buffer, the body's loan to settle, or None)."""
    if rec.block == P.NO_BLOCK:
        raw: Any = memoryview(rec.inline)
        body = raw[rec.meta_len : rec.meta_len + rec.data_len]
        meta = _meta(raw[: rec.meta_len])
        return meta, bytearray(body) if rec.kind in VIEW_KINDS else body, None
    if arena is None:
        raise ValueError(f"request in arena block {rec.block} but no arena was given")
    meta = _meta(arena.buf[rec.block : rec.block + rec.meta_len])
    start = rec.block + P.align64(rec.meta_len)
    if rec.kind not in VIEW_KINDS:
        return meta, arena.buf[start : start + rec.data_len], None
    if rec.data_len < COPY_BELOW:
        return meta, bytearray(arena.buf[start : start + rec.data_len]), None
    loan = arena.loan(start, rec.data_len)
    return meta, loan.view, loan


def _meta(raw: Any) -> dict[str, Any]:
    return pickle.loads(raw) if len(raw) else {}


def request_object(rec: P.RequestRecord, meta: dict[str, Any], body: Any, model: Any) -> Any:
    """The object handed to decode_request for this body kind."""
    kind = rec.kind
    if kind == P.JSON:
        if model is not None:
            return model.model_validate_json(bytes(body))
        return jsonx.loads(body) if len(body) else None
    if kind == P.OCTET:
        shape = meta["shape"]
        if shape is None:  # no X-Tensor-Shape header: 1-D
            shape = (len(body) // np.dtype(meta["dtype"]).itemsize,)
        return wire.view(body, wire.TensorMeta(meta["dtype"], tuple(shape)))
    if kind == P.NPY:
        return wire.view(body, wire.npy_meta(body[:65536], len(body)))
    if kind == P.BUNDLE:
        return wire.decode_bundle(body)
    if kind == P.FORM:
        return parse_form(body, meta["content_type"])
    raise ValueError(f"unknown request kind {kind}")
