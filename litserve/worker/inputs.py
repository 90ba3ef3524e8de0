"""Turn a claimed request record into what ``decode_request`` receives."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from .. import jsonx, wire
from .. import protocol as P
from .forms import parse_form


def payload(rec: P.RequestRecord, arena_buf: memoryview | None) -> tuple[dict[str, Any], Any]:
    """(meta dict, body buffer) of a request: inline bytes or a view of the front's arena."""
    if rec.block == P.NO_BLOCK:
        raw: Any = memoryview(rec.inline)
        meta_end = rec.meta_len
    else:
        assert arena_buf is not None
        raw = arena_buf[rec.block : rec.block + P.align64(rec.meta_len) + rec.data_len]
        meta_end = P.align64(rec.meta_len)
    meta = pickle.loads(raw[: rec.meta_len]) if rec.meta_len else {}
    return meta, raw[meta_end : meta_end + rec.data_len]


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
