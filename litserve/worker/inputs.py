"""Turn a claimed request record into what ``decode_request`` receives."""

from __future__ import annotations

import io
import pickle
from typing import Any

import orjson

from .. import protocol as P
from .. import wire


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
        return orjson.loads(body) if len(body) else None
    if kind == P.OCTET:
        shape = meta["shape"]
        if shape is None:  # no X-Tensor-Shape header: 1-D
            shape = (len(body) // wire.np.dtype(meta["dtype"]).itemsize,)
        return wire.view(body, wire.TensorMeta(meta["dtype"], tuple(shape)))
    if kind == P.NPY:
        return wire.view(body, wire.npy_meta(body[:65536], len(body)))
    if kind == P.BUNDLE:
        return wire.decode_bundle(body)
    if kind == P.FORM:
        return parse_form(body, meta["content_type"])
    raise ValueError(f"unknown request kind {kind}")


def parse_form(body: Any, content_type: str) -> Any:
    """A Starlette ``FormData`` (fields as str, files as ``UploadFile``) from a body."""
    from python_multipart.multipart import MultipartParser, parse_options_header
    from starlette.datastructures import FormData, Headers, UploadFile

    ctype, params = parse_options_header(content_type)
    if ctype == b"application/x-www-form-urlencoded":
        from urllib.parse import parse_qsl

        pairs: list[tuple[str, str | UploadFile]] = list(
            parse_qsl(bytes(body).decode("latin-1"), keep_blank_values=True))
        return FormData(pairs)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ValueError("multipart body without a boundary in its Content-Type")
    items: list[tuple[str, str | UploadFile]] = []
    state: dict[str, Any] = {}

    def on_part_begin() -> None:
        state.update(headers=[], data=io.BytesIO(), field=b"", value=b"")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"].append((state["field"].decode().lower(), state["value"].decode()))
        state["field"], state["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        state["data"].write(data[start:end])

    def on_part_end() -> None:
        headers = dict(state["headers"])
        _, disp = parse_options_header(headers.get("content-disposition", ""))
        name = disp.get(b"name", b"").decode()
        filename = disp.get(b"filename")
        data = state["data"]
        if filename is None:
            items.append((name, data.getvalue().decode("utf-8", "replace")))
        else:
            data.seek(0)
            items.append((name, UploadFile(data, filename=filename.decode(),
                                           headers=Headers(headers))))

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_part_data": on_part_data, "on_part_end": on_part_end,
    })
    parser.write(bytes(body))
    parser.finalize()
    return FormData(items)

