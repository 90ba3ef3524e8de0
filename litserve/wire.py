"""The binary tensor formats on the wire, shared by the HTTP front, the worker and
the clients.  Depends on NumPy only.

Request and response bodies:

* ``application/octet-stream`` with ``X-Tensor-Dtype`` (a NumPy dtype: ``float32``,
  ``uint8``, ``<f4``, ``>i8`` ...) and ``X-Tensor-Shape`` (``1080,1920,3``; empty for
  a 0-d array; absent means 1-D).  The body is the array's bytes in C order.
* ``application/x-npy``: a NumPy ``.npy`` file (format 1.0, 2.0 or 3.0).
* ``application/x-litserve-tensors``: several named arrays in one body (a "bundle"):

      offset  size  field
      0       4     magic b"LSVT"
      4       4     header length H, unsigned little-endian (at most MAX_BUNDLE_HEADER)
      8       H     UTF-8 JSON: {"tensors": [{"name", "dtype", "shape", "offset", "nbytes"}]}
      ...           array bytes, C order, each at its "offset" (a multiple of 64
                    from the start of the body)

What a reader accepts (anything else is a ``WireError``, which the front answers 400):

* dtypes: a NumPy bool, integer, float or complex type, by name (``float32``) or code
  (``f4``, ``<f4``, ``|u1``, ``?``); never strings, objects, datetimes or structured.
* shapes: at most ``MAX_NDIM`` non-negative dims, each a plain decimal integer, whose
  array (zero dims aside) NumPy can address: at most ``MAX_BYTES`` bytes.  Sizes are
  exact Python integers; a product never wraps around.
* ``.npy``: format 1.0, 2.0 or 3.0; a header of at most ``MAX_NPY_HEADER`` bytes that
  is exactly the dict NumPy writes, ``{'descr': ..., 'fortran_order': ..., 'shape':
  (...), }`` (each key once, any order, Python literal syntax, no other keys); then
  exactly the array's bytes.
* bundles: a header of at most ``MAX_BUNDLE_HEADER`` bytes of UTF-8 JSON, an object
  with only ``"tensors"``, a list of objects with exactly the five keys above (no key
  twice), unique string names, integer (not bool) offsets, dims and ``nbytes`` equal to
  what dtype and shape need.  Each array starts at a multiple of ``ALIGN`` at or after
  the header's end, lies inside the body and overlaps no other array; gaps (padding)
  between and after the arrays are allowed.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import struct
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

OCTET = "application/octet-stream"
NPY = "application/x-npy"
BUNDLE = "application/x-litserve-tensors"
TENSOR_TYPES = (OCTET, NPY, BUNDLE)
DTYPE_HEADER = "x-tensor-dtype"
SHAPE_HEADER = "x-tensor-shape"
BUNDLE_MAGIC = b"LSVT"
NPY_MAGIC = b"\x93NUMPY"
ALIGN = 64
ACCEPTED_KINDS = "biufc"  # bool, signed, unsigned, float, complex
MAX_NDIM = 32  # NumPy 1.x's limit (2.x allows 64)
MAX_BYTES = 2**63 - 1  # the largest array NumPy can address (its size counts no zero dim)
HEAD_BYTES = 65536  # readers pass a body's first HEAD_BYTES bytes to npy_meta/bundle_meta
MAX_NPY_HEADER = 10000  # as np.load's default max_header_size
MAX_BUNDLE_HEADER = HEAD_BYTES - 8


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
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


# -- dtypes ---------------------------------------------------------------------------
_DTYPE_HINT = ("use a NumPy numeric or bool dtype such as 'float32', 'float16', 'int64', "
               "'uint8', 'bool', 'complex64', optionally as a code with byte order "
               "('<f4', '>i8')")


@cache
def _dtype_table() -> dict[str, np.dtype[Any]]:
    """Every accepted dtype spelling: a closed table, so no text reaches np.dtype's parser
    (which raises SyntaxError for '01' and warns for 'a')."""
    table: dict[str, np.dtype[Any]] = {}
    for name, scalar in np.sctypeDict.items():
        if isinstance(name, str) and name.isidentifier():
            table[name] = np.dtype(scalar)
    codes = [c for c in np.typecodes["All"] if c.isalpha() or c == "?"]
    codes += [k + str(n) for k in ACCEPTED_KINDS for n in (1, 2, 4, 8, 16, 32)]
    for code in codes:
        for order in ("", "<", ">", "=", "|"):
            with contextlib.suppress(TypeError, ValueError):  # e.g. '<bool', 'f3'
                table[order + code] = np.dtype(order + code)
    return {k: v for k, v in table.items() if v.kind in ACCEPTED_KINDS and v.fields is None}


def parse_dtype(text: object, what: str = "X-Tensor-Dtype") -> np.dtype[Any]:
    """The dtype ``text`` names; ``what`` names the header or field in the error."""
    dtype = _dtype_table().get(text.strip()) if isinstance(text, str) else None
    if dtype is None:
        raise WireError(f"{what} {_show(text)} is not supported; {_DTYPE_HINT}")
    return dtype


# -- shapes ---------------------------------------------------------------------------
_SHAPE_HINT = ("use comma-separated non-negative integers such as '1080,1920,3' (empty for "
               f"a 0-d array, at most {MAX_NDIM} dims)")
_DIM = r"-?[0-9]+"  # negative dims parse, so that the error can say what is wrong
_DIMS = re.compile(rf"[ \t]*(?:{_DIM}(?:[ \t]*[,x][ \t]*{_DIM})*(?:[ \t]*,)?)?[ \t]*")
_BRACKETS = {"(": ")", "[": "]"}


def parse_shape(text: str, what: str = "X-Tensor-Shape") -> tuple[int, ...]:
    """Dims from a header such as ``1080,1920,3`` (also ``(2, 3)``, ``[2,3]``, ``2x3``)."""
    inner = text.strip(" \t")
    if inner[:1] in _BRACKETS and inner[-1:] == _BRACKETS[inner[:1]]:
        inner = inner[1:-1]
    if len(inner) > 32 * MAX_NDIM or not _DIMS.fullmatch(inner):
        raise WireError(f"{what} {_show(text)} is not valid; {_SHAPE_HINT}")
    dims = tuple(int(d) for d in re.findall(_DIM, inner))
    return check_shape(dims, 1, f"{what} {_show(text)}")


def check_shape(dims: Any, itemsize: int, what: str) -> tuple[int, ...]:
    """``dims`` as a shape NumPy can view: at most MAX_NDIM ints >= 0, at most MAX_BYTES
    bytes of ``itemsize``-byte items (zero dims aside); ``what`` names it in errors."""
    if not isinstance(dims, (list, tuple)) or not all(_is_int(d) for d in dims):
        raise WireError(f"{what} is not a list of integers; {_SHAPE_HINT}")
    if len(dims) > MAX_NDIM:
        raise WireError(f"{what} has {len(dims)} dims; at most {MAX_NDIM} are accepted")
    if any(d < 0 for d in dims):
        raise WireError(f"{what} has a negative dim; {_SHAPE_HINT}")
    if math.prod(d for d in dims if d) * itemsize > MAX_BYTES:
        raise WireError(f"{what} describes an array larger than NumPy can address "
                        f"({MAX_BYTES} bytes)")
    return tuple(dims)


def _show(value: object) -> str:
    """repr of a value for an error message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def format_shape(shape: tuple[int, ...]) -> str:
    return ",".join(str(int(d)) for d in shape)


def _check_size(meta: TensorMeta, available: int, what: str) -> TensorMeta:
    if meta.nbytes != available:
        raise WireError(
            f"{what} has {available} bytes but dtype {meta.dtype} and shape "
            f"{list(meta.shape)} need {meta.nbytes}"
        )
    return meta


# -- application/octet-stream ---------------------------------------------------------
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
        dims = check_shape(parse_shape(shape), dt.itemsize, f"X-Tensor-Shape {_show(shape)}")
    return _check_size(TensorMeta(dt.str, dims), body_len, "body")


# -- application/x-npy ----------------------------------------------------------------
# The header NumPy writes: a Python dict literal, e.g.
#   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
# read by a flat tokenizer (no eval, no recursion): strings, ints, True/False, punctuation.
_NPY_TOKEN = re.compile(
    r"[ \t\r\n]*(?:'([^'\\\n]*)'|\"([^\"\\\n]*)\"|(-?(?:0|[1-9][0-9]{0,18}))(?![0-9])"
    r"|(True|False)(?![A-Za-z0-9_])|([{}():,\[]))")
_NPY_KEYS = ("descr", "fortran_order", "shape")
_NPY_HINT = ("the dict NumPy writes, such as {'descr': '<f4', 'fortran_order': False, "
             "'shape': (3, 4), }")


def npy_meta(head: bytes | memoryview, body_len: int) -> TensorMeta:
    """Parse the header of a ``.npy`` body (its first HEAD_BYTES bytes suffice)."""
    head = bytes(head[:HEAD_BYTES])
    start, hlen, encoding = _npy_preamble(head, body_len)
    try:
        text = head[start : start + hlen].decode(encoding)
    except UnicodeDecodeError:
        raise WireError(f".npy header is not valid {encoding}") from None
    info = _npy_dict(text)
    dt = parse_dtype(info["descr"], "the .npy header's 'descr'")
    shape = check_shape(info["shape"], dt.itemsize, "the .npy header's 'shape'")
    meta = TensorMeta(dt.str, shape, start + hlen, bool(info["fortran_order"]))
    return _check_size(meta, body_len - meta.offset, ".npy data")


def _npy_preamble(head: bytes, body_len: int) -> tuple[int, int, str]:
    """(header start, header length, header encoding) from magic, version and length."""
    if head[:6] != NPY_MAGIC or len(head) < 8:
        raise WireError("application/x-npy body does not start with the .npy magic "
                        "b'\\x93NUMPY'")
    version = (head[6], head[7])
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise WireError(f".npy format version {version[0]}.{version[1]} is not supported "
                        "(use 1.0, 2.0 or 3.0)")
    start = 10 if version[0] == 1 else 12
    if len(head) < start:
        raise WireError(f".npy body of {body_len} bytes ends inside its preamble")
    hlen = struct.unpack_from("<H" if version[0] == 1 else "<I", head, 8)[0]
    if hlen > MAX_NPY_HEADER:
        raise WireError(f".npy header of {hlen} bytes is longer than the "
                        f"{MAX_NPY_HEADER} bytes accepted")
    if start + hlen > min(len(head), body_len):
        raise WireError(f".npy body of {body_len} bytes ends inside its {hlen}-byte header")
    return start, hlen, "utf-8" if version[0] == 3 else "latin-1"


def _npy_dict(text: str) -> dict[str, Any]:
    """The header dict: exactly the keys NumPy writes, values of the right types."""
    tokens = _npy_tokens(text)
    if tokens[:1] != [("{", "{")]:
        raise WireError(f".npy header is malformed; expected {_NPY_HINT}")
    info: dict[str, Any] = {}
    pos = 1
    while tokens[pos:pos + 1] != [("}", "}")]:
        key, value, pos = _npy_item(tokens, pos)
        if key not in _NPY_KEYS or key in info:
            raise WireError(f".npy header has an unexpected or repeated key {key!r}; "
                            f"expected {_NPY_HINT}")
        info[key] = value
    if pos + 1 != len(tokens) or len(info) != len(_NPY_KEYS):
        raise WireError(f".npy header is malformed; expected {_NPY_HINT}")
    if not isinstance(info["descr"], str) or not isinstance(info["fortran_order"], bool):
        raise WireError(f".npy header has a value of the wrong type; expected {_NPY_HINT}")
    return info


def _npy_tokens(text: str) -> list[tuple[str, Any]]:
    """(kind, value) tokens: kind "s" string, "i" int, "b" bool, else the punctuation."""
    tokens: list[tuple[str, Any]] = []
    pos, end = 0, len(text.rstrip(" \t\r\n"))
    while pos < end:
        m = _NPY_TOKEN.match(text, pos)
        if m is None:
            raise WireError(f".npy header is malformed at byte {pos}; expected {_NPY_HINT}")
        single, double, number, boolean, punct = m.groups()
        if punct == "[":
            raise WireError(".npy header holds a list: structured dtypes (a list 'descr') "
                            "are not supported, and 'shape' must be a tuple")
        if number is not None:
            tokens.append(("i", int(number)))
        elif boolean is not None:
            tokens.append(("b", boolean == "True"))
        elif punct is not None:
            tokens.append((punct, punct))
        else:
            tokens.append(("s", single if single is not None else double))
        pos = m.end()
    return tokens


def _npy_item(tokens: list[tuple[str, Any]], pos: int) -> tuple[str, Any, int]:
    """One ``'key': value`` and the comma or closing brace after it."""
    kinds = [k for k, _ in tokens[pos : pos + 3]]
    if kinds[:2] != ["s", ":"] or len(kinds) < 3:
        raise WireError(f".npy header is malformed; expected {_NPY_HINT}")
    key = tokens[pos][1]
    if kinds[2] == "(":
        value, pos = _npy_tuple(tokens, pos + 3)
    elif kinds[2] in ("s", "b"):
        value, pos = tokens[pos + 2][1], pos + 3
    else:
        raise WireError(f".npy header's {key!r} is malformed; expected {_NPY_HINT}")
    if tokens[pos:pos + 1] == [(",", ",")]:
        pos += 1
    elif tokens[pos:pos + 1] != [("}", "}")]:
        raise WireError(f".npy header is malformed after {key!r}; expected {_NPY_HINT}")
    return key, value, pos


def _npy_tuple(tokens: list[tuple[str, Any]], pos: int) -> tuple[tuple[int, ...], int]:
    """The ints of a tuple literal after its '(' (``(3,)``, ``(2, 3)``, ``()``); the
    position after its ')'.  ``(3)`` is an int in Python, not a tuple: refused."""
    dims: list[int] = []
    trailing_comma = False
    while tokens[pos:pos + 1] != [(")", ")")]:
        if tokens[pos:pos + 1] == [] or tokens[pos][0] != "i":
            raise WireError(f".npy header's 'shape' is not a tuple of integers; "
                            f"expected {_NPY_HINT}")
        dims.append(tokens[pos][1])
        trailing_comma = tokens[pos + 1 : pos + 2] == [(",", ",")]
        pos += 2 if trailing_comma else 1
        if not trailing_comma and tokens[pos:pos + 1] != [(")", ")")]:
            raise WireError(f".npy header's 'shape' is missing a comma; expected {_NPY_HINT}")
    if len(dims) == 1 and not trailing_comma:
        raise WireError(f".npy header's 'shape' (dims) is not a tuple; expected {_NPY_HINT}")
    return tuple(dims), pos + 1


# -- application/x-litserve-tensors ---------------------------------------------------
_ENTRY_KEYS = {"name", "dtype", "shape", "offset", "nbytes"}


def bundle_meta(head: bytes | memoryview, body_len: int) -> list[TensorMeta]:
    """Parse the header of a tensor bundle (its first HEAD_BYTES bytes suffice); check
    every array lies inside the body, aligned, apart from the others."""
    head = bytes(head[:HEAD_BYTES])
    if head[:4] != BUNDLE_MAGIC or len(head) < 8:
        raise WireError("application/x-litserve-tensors body does not start with b'LSVT' "
                        "and a 4-byte header length")
    hlen = struct.unpack_from("<I", head, 4)[0]
    if hlen > MAX_BUNDLE_HEADER:
        raise WireError(f"tensor bundle header of {hlen} bytes is longer than the "
                        f"{MAX_BUNDLE_HEADER} bytes accepted")
    if 8 + hlen > min(len(head), body_len):
        raise WireError(f"tensor bundle of {body_len} bytes ends inside its "
                        f"{hlen}-byte header")
    entries = _bundle_entries(head[8 : 8 + hlen])
    metas = [_bundle_entry(i, e, 8 + hlen, body_len) for i, e in enumerate(entries)]
    _check_apart(metas)
    return metas


def _bundle_entries(raw: bytes) -> list[Any]:
    """The "tensors" list of the JSON header."""
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise WireError(f"tensor bundle header is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != {"tensors"}:
        raise WireError('tensor bundle header must be a JSON object {"tensors": [...]} '
                        "with no other key")
    if not isinstance(doc["tensors"], list):
        raise WireError('tensor bundle header\'s "tensors" must be a list')
    return doc["tensors"]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a key appears twice in one object")
    return out


def _bundle_entry(index: int, entry: Any, data_start: int, body_len: int) -> TensorMeta:
    """One tensor of the bundle, checked against the body it lies in."""
    what = f"tensor bundle entry {index}"
    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
        raise WireError(f"{what} must be an object with exactly the keys "
                        f"{sorted(_ENTRY_KEYS)}")
    name = entry["name"]
    if not isinstance(name, str):
        raise WireError(f"{what}: 'name' must be a string, not {_show(name)}")
    what = f"{what} ({_show(name)})"
    dt = parse_dtype(entry["dtype"], f"{what}: 'dtype'")
    shape = check_shape(entry["shape"], dt.itemsize, f"{what}: 'shape' {_show(entry['shape'])}")
    meta = TensorMeta(dt.str, shape, entry["offset"], False, name)
    if not _is_int(entry["nbytes"]) or entry["nbytes"] != meta.nbytes:
        raise WireError(f"{what}: 'nbytes' is {_show(entry['nbytes'])} but dtype {meta.dtype} and "
                        f"shape {list(shape)} need {meta.nbytes}")
    if not _is_int(meta.offset) or meta.offset % ALIGN or meta.offset < data_start:
        raise WireError(f"{what}: 'offset' {_show(meta.offset)} must be a multiple of {ALIGN} "
                        f"at or after the header's end ({data_start})")
    if meta.offset + meta.nbytes > body_len:
        raise WireError(f"{what} lies outside the body: bytes {meta.offset} to "
                        f"{meta.offset + meta.nbytes} of {body_len}")
    return meta


def _check_apart(metas: list[TensorMeta]) -> None:
    """No two arrays share a byte, and no two share a name."""
    names = [m.name for m in metas]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise WireError(f"tensor bundle names {dup!r} more than once; names must be unique")
    spans = sorted((m.offset, m.offset + m.nbytes, m.name) for m in metas if m.nbytes)
    for (_, end, a), (start, _, b) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise WireError(f"tensors {a!r} and {b!r} of the bundle overlap")


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
    # the header length depends on the offsets, which depend on it: repeat until it fits
    hlen = 0
    while True:
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
    if hlen > MAX_BUNDLE_HEADER:
        raise WireError(f"a tensor bundle of {len(items)} arrays needs a {hlen}-byte header, "
                        f"over the {MAX_BUNDLE_HEADER} bytes readers accept; send fewer arrays")
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
    return {m.name: view(mv, m) for m in bundle_meta(mv[:HEAD_BYTES], len(mv))}


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN
