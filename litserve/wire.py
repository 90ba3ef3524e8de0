"""The binary tensor formats on the wire, shared by the HTTP front, the worker and
the clients.  Depends on NumPy only.  The formats are described in docs/wire.md.

Request and response bodies:

* ``application/octet-stream`` with ``X-Tensor-Dtype`` (a NumPy dtype: ``float32``,
  ``uint8``, ``<f4``, ``>i8`` ...) and ``X-Tensor-Shape`` (``1080,1920,3``; empty for
  a 0-d array; absent means 1-D).  The body is the array's bytes in C order.
* ``application/x-npy``: a NumPy ``.npy`` file (format 1.0, 2.0 or 3.0).
* ``application/x-litserve-tensors``: several named arrays in one body (a "bundle"):

      offset  size  field
      0       4     magic b"LSVT"
      4       4     header length H, unsigned little-endian
      8       H     UTF-8 JSON: {"tensors": [{"name", "dtype", "shape", "offset", "nbytes"}]}
      ...           array bytes, C order, each at its "offset" (a multiple of 64
                    from the start of the body)
"""

from __future__ import annotations

import ast
import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

OCTET = "application/octet-stream"
NPY = "application/x-npy"
BUNDLE = "application/x-litserve-tensors"
TENSOR_TYPES = (OCTET, NPY, BUNDLE)
DTYPE_HEADER = "x-tensor-dtype"
SHAPE_HEADER = "x-tensor-shape"
BUNDLE_MAGIC = b"LSVT"
ALIGN = 64
ACCEPTED_KINDS = "biufc"  # bool, signed, unsigned, float, complex
MAX_NDIM = 32


class WireError(ValueError):
    """A tensor body or its headers are malformed; the message says which and why."""


@dataclass(frozen=True)
class TensorMeta:
    """Where one array lies inside a body: enough to make a zero-copy view."""

    dtype: str
    shape: tuple[int, ...]
    offset: int = 0
    fortran: bool = False
    name: str = ""

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


def parse_dtype(text: str) -> np.dtype:
    try:
        dtype = np.dtype(text.strip())
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in ACCEPTED_KINDS or dtype.fields is not None:
        raise WireError(
            f"X-Tensor-Dtype {text!r} is not supported; use a NumPy numeric or bool dtype "
            "such as 'float32', 'float16', 'int64', 'uint8', 'bool', 'complex64', "
            "optionally with byte order ('<f4', '>i8')"
        )
    return dtype


def parse_shape(text: str) -> tuple[int, ...]:
    text = text.strip()
    if text in ("", "()"):
        return ()
    parts = [p.strip() for p in text.strip("()[]").replace("x", ",").split(",") if p.strip()]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = (-1,)
    if any(d < 0 for d in shape) or len(shape) > MAX_NDIM:
        raise WireError(
            f"X-Tensor-Shape {text!r} is not valid; use comma-separated non-negative "
            f"integers such as '1080,1920,3' (empty for a 0-d array, at most {MAX_NDIM} dims)"
        )
    return shape


def format_shape(shape: tuple[int, ...]) -> str:
    return ",".join(str(int(d)) for d in shape)


def _check_size(meta: TensorMeta, available: int, what: str) -> TensorMeta:
    if meta.nbytes != available:
        raise WireError(
            f"{what} has {available} bytes but dtype {meta.dtype} and shape "
            f"{list(meta.shape)} need {meta.nbytes}"
        )
    return meta


def octet_meta(dtype: str | None, shape: str | None, body_len: int) -> TensorMeta:
    """Check the headers of an ``application/octet-stream`` tensor body."""
    if dtype is None:
        raise WireError(
            "an application/octet-stream body needs an X-Tensor-Dtype header "
            "(for example 'float32'); send JSON with Content-Type application/json instead"
        )
    dt = parse_dtype(dtype)
    if shape is None:
        if body_len % dt.itemsize:
            raise WireError(
                f"body of {body_len} bytes is not a whole number of {dt.name} items"
            )
        dims: tuple[int, ...] = (body_len // dt.itemsize,)
    else:
        dims = parse_shape(shape)
    return _check_size(TensorMeta(dt.str, dims), body_len, "body")


def npy_meta(head: bytes | memoryview, body_len: int) -> TensorMeta:
    """Parse the header of a ``.npy`` body (its first bytes suffice)."""
    head = bytes(head)
    if head[:6] != b"\x93NUMPY" or len(head) < 10:
        raise WireError("application/x-npy body does not start with the .npy magic")
    major = head[6]
    if major == 1:
        hlen, start = struct.unpack_from("<H", head, 8)[0], 10
    elif major in (2, 3):
        hlen, start = struct.unpack_from("<I", head, 8)[0], 12
    else:
        raise WireError(f".npy format version {major} is not supported (use 1, 2 or 3)")
    try:
        info = ast.literal_eval(head[start : start + hlen].decode("latin1"))
        dt = parse_dtype(info["descr"]) if isinstance(info["descr"], str) else None
        shape = tuple(int(d) for d in info["shape"])
        fortran = bool(info["fortran_order"])
    except (ValueError, SyntaxError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise WireError(f".npy header is malformed: {exc}") from None
    if dt is None:
        raise WireError(".npy bodies with structured dtypes are not supported")
    meta = TensorMeta(dt.str, shape, start + hlen, fortran)
    return _check_size(meta, body_len - meta.offset, ".npy data")


def bundle_meta(head: bytes | memoryview, body_len: int) -> list[TensorMeta]:
    """Parse the header of a tensor bundle; check every array lies inside the body."""
    head = bytes(head)
    if head[:4] != BUNDLE_MAGIC or len(head) < 8:
        raise WireError("application/x-litserve-tensors body does not start with b'LSVT'")
    hlen = struct.unpack_from("<I", head, 4)[0]
    try:
        entries = json.loads(head[8 : 8 + hlen])["tensors"]
        metas = [
            TensorMeta(parse_dtype(e["dtype"]).str, tuple(int(d) for d in e["shape"]),
                       int(e["offset"]), False, str(e["name"]))
            for e in entries
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise WireError(f"tensor bundle header is malformed: {exc}") from None
    for m in metas:
        if m.offset < 8 + hlen or m.offset + m.nbytes > body_len or any(d < 0 for d in m.shape):
            raise WireError(f"tensor {m.name!r} of the bundle lies outside the body")
    return metas


def view(buf: Any, meta: TensorMeta) -> np.ndarray:
    """A zero-copy array over ``buf`` as ``meta`` describes (read-only when buf is)."""
    return np.ndarray(
        meta.shape, np.dtype(meta.dtype), buffer=buf, offset=meta.offset,
        order="F" if meta.fortran else "C",
    )


def as_array(obj: Any) -> np.ndarray | None:
    """NumPy view of a NumPy array or torch tensor (moved to CPU), else None."""
    if isinstance(obj, np.ndarray):
        return obj
    if type(obj).__module__.startswith("torch") and hasattr(obj, "detach"):
        arr: np.ndarray = obj.detach().cpu().numpy()
        return arr
    return None


def npy_header(arr: np.ndarray) -> bytes:
    """The .npy (1.0) header for a C-ordered copy of ``arr``."""
    d = {"descr": np.lib.format.dtype_to_descr(arr.dtype), "fortran_order": False,
         "shape": tuple(arr.shape)}
    text = repr(d).encode("latin1")
    pad = ALIGN - (10 + len(text) + 1) % ALIGN
    text += b" " * (pad % ALIGN) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def bundle_parts(arrays: dict[str, np.ndarray]) -> tuple[bytes, list[tuple[int, np.ndarray]]]:
    """Header bytes and (offset, C-contiguous array) pieces of a bundle body."""
    items = [(str(k), np.asarray(v, order="C")) for k, v in arrays.items()]
    # the header length depends on the offsets; two passes settle it
    hlen = 0
    for _ in range(2):
        off = _align(8 + hlen)
        entries, pieces = [], []
        for name, a in items:
            entries.append({"name": name, "dtype": a.dtype.str, "shape": list(a.shape),
                            "offset": off, "nbytes": a.nbytes})
            pieces.append((off, a))
            off = _align(off + a.nbytes)
        header = json.dumps({"tensors": entries}, separators=(",", ":")).encode()
        if len(header) <= hlen:
            break
        hlen = len(header) + 32
    header = header.ljust(hlen)
    return BUNDLE_MAGIC + struct.pack("<I", hlen) + header, pieces


def encode_bundle(arrays: dict[str, np.ndarray]) -> bytes:
    head, pieces = bundle_parts(arrays)
    total = _align(pieces[-1][0] + pieces[-1][1].nbytes) if pieces else len(head)
    out = bytearray(total)
    out[: len(head)] = head
    for off, a in pieces:
        out[off : off + a.nbytes] = a.reshape(-1).view(np.uint8).data if a.size else b""
    return bytes(out)


def decode_bundle(buf: Any) -> dict[str, np.ndarray]:
    mv = memoryview(buf)
    return {m.name: view(mv, m) for m in bundle_meta(mv[:65536], len(mv))}


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN
