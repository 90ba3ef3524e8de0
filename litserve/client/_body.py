"""What goes on the wire for a ``predict(x)``, and what a response body turns into.

Requests: a NumPy array or torch tensor becomes ``application/octet-stream`` with
``X-Tensor-Dtype``/``X-Tensor-Shape`` (or ``application/x-npy`` when asked); a dict
whose values are all arrays becomes an ``application/x-litserve-tensors`` bundle;
anything else is JSON.  Array bytes are sent from memoryviews of the array itself:
no base64, no JSON, and no copy unless the array is not C-contiguous or is
big-endian (then one C-ordered little-endian copy is made, as the docs say).

NumPy is imported only when an array is actually sent or received, so importing
the client stays cheap.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import numpy as np

JSON: Final = "application/json"
OCTET: Final = "application/octet-stream"
NPY: Final = "application/x-npy"
BUNDLE: Final = "application/x-litserve-tensors"
TENSOR_FORMATS: Final = {"octet": OCTET, "npy": NPY}
ACCEPT_BINARY: Final = f"{OCTET}, {BUNDLE}, {NPY};q=0.9, {JSON};q=0.5"


@dataclass
class Body:
    """A request body as headers plus buffers to send one after another."""

    content_type: str
    pieces: list[Any] = field(default_factory=list)  # bytes / memoryviews
    headers: list[tuple[str, str]] = field(default_factory=list)
    is_tensor: bool = False

    @property
    def length(self) -> int:
        return sum(memoryview(p).nbytes for p in self.pieces)


def is_array(obj: Any) -> bool:
    """True for NumPy arrays and torch tensors, without importing either."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, np.ndarray):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def encode(x: Any, tensor_format: str = "octet") -> Body:
    """The request body for ``x`` (see the module docstring)."""
    if is_array(x):
        return _encode_array(x, tensor_format)
    if isinstance(x, dict) and x and all(is_array(v) for v in x.values()):
        return _encode_bundle(x)
    if isinstance(x, (bytes, bytearray, memoryview)):
        raw = memoryview(x).cast("B")
        return Body(OCTET, [raw], [("X-Tensor-Dtype", "uint8")], is_tensor=True)
    return Body(JSON, [dumps(x)])


def dumps(x: Any) -> bytes:
    return json.dumps(x, separators=(",", ":"), default=_json_default).encode()


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):  # pydantic models
        return obj.model_dump()
    if is_array(obj):
        return obj.tolist()
    if hasattr(obj, "item") and callable(obj.item):  # NumPy scalars
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable; send a dict, list, "
                    "number or string, or a NumPy array for the binary format")


def wire_array(x: Any) -> np.ndarray:
    """``x`` as a C-contiguous, little-endian array of a dtype the wire carries."""
    import numpy as np

    from litserve import wire

    try:
        arr = wire.as_array(x)
    except TypeError as exc:  # e.g. torch.bfloat16, which NumPy lacks
        raise TypeError(f"cannot send a tensor of dtype {getattr(x, 'dtype', '?')} in the "
                        f"binary format ({exc}); convert it first, e.g. t.float()") from exc
    if arr is None:
        raise TypeError(f"expected a NumPy array or torch tensor, got {type(x).__name__}")
    if arr.dtype.kind not in wire.ACCEPTED_KINDS or arr.dtype.fields is not None:
        raise TypeError(
            f"arrays of dtype {arr.dtype} cannot be sent in the binary format; use a "
            "numeric or bool dtype (int*, uint*, float*, complex*, bool), or send JSON"
        )
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and sys.byteorder == "big"):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr if arr.flags.c_contiguous else np.array(arr, order="C")  # keeps 0-d arrays


def _raw(arr: np.ndarray) -> memoryview:
    return memoryview(arr.reshape(-1).view("u1"))  # type: ignore[arg-type]


def _encode_array(x: Any, tensor_format: str) -> Body:
    from litserve import wire

    arr = wire_array(x)
    if tensor_format == "npy":
        return Body(NPY, [wire.npy_header(arr), _raw(arr)], is_tensor=True)
    headers = [("X-Tensor-Dtype", arr.dtype.str), ("X-Tensor-Shape", wire.format_shape(arr.shape))]
    return Body(OCTET, [_raw(arr)], headers, is_tensor=True)


def _encode_bundle(arrays: dict[str, Any]) -> Body:
    from litserve import wire

    head, pieces = wire.bundle_parts({str(k): wire_array(v) for k, v in arrays.items()})
    out: list[Any] = [head]
    pos = len(head)
    for off, arr in pieces:
        if off > pos:
            out.append(bytes(off - pos))  # alignment padding
        out.append(_raw(arr))
        pos = off + arr.nbytes
    return Body(BUNDLE, out, is_tensor=True)


def tensor_buffer(content_type: str, headers: dict[str, str], length: int) -> Any:
    """A writable buffer to receive a binary tensor body of ``length`` bytes into:
    the result array itself for octet-stream, a bytearray otherwise."""
    if content_type == OCTET and "x-tensor-dtype" in headers:
        import numpy as np

        from litserve import wire

        meta = wire.octet_meta(headers.get("x-tensor-dtype"), headers.get("x-tensor-shape"),
                               length)
        return np.empty(meta.shape, meta.dtype)
    return bytearray(length)


def decode(content_type: str, headers: dict[str, str], buf: Any) -> Any:
    """The Python value of a complete response body held in ``buf``."""
    if content_type == JSON or content_type.endswith("+json"):
        return json.loads(buf) if len(buf) else None
    if content_type in (OCTET, NPY, BUNDLE):
        return _decode_tensor(content_type, headers, buf)
    if content_type.startswith("text/"):
        return bytes(buf).decode(_charset(headers))
    return bytes(buf)


def _decode_tensor(content_type: str, headers: dict[str, str], buf: Any) -> Any:
    import numpy as np

    from litserve import wire

    if isinstance(buf, np.ndarray):
        return buf
    if content_type == BUNDLE:
        return wire.decode_bundle(buf)
    if content_type == NPY:
        mv = memoryview(buf)
        return wire.view(buf, wire.npy_meta(mv[:65536], len(mv)))
    if "x-tensor-dtype" not in headers:
        return bytes(buf)  # a plain binary body, not a tensor
    meta = wire.octet_meta(headers["x-tensor-dtype"], headers.get("x-tensor-shape"), len(buf))
    return wire.view(buf, meta)


def _charset(headers: dict[str, str]) -> str:
    for part in headers.get("content-type", "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


def error_detail(content_type: str, body: bytes) -> str:
    """The server's error message: ``{"detail": ...}`` when it sent one, else the text."""
    if content_type == JSON or body[:1] in (b"{", b"["):
        try:
            value = json.loads(body)
        except ValueError:
            value = None
        if isinstance(value, dict) and "detail" in value:
            detail = value["detail"]
            return detail if isinstance(detail, str) else json.dumps(detail)
    return body.decode("utf-8", "replace").strip()
