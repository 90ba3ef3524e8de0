"""Raw HTTP/1.1 requests for the fuzz campaign (tests/server/test_fuzz.py), built by
Hypothesis from parts, each knowing what the oracle may expect of its answer.

A request is a request line (methods, targets, versions; now and then an invalid one),
header lines (Host, the API key sent right, wrong or not at all, a Content-Type matching
the body or not, with parameters and odd casing, tensor dtype/shape headers, Accept with
q-params, encodings, junk, upgrades, many headers), a body (JSON, broken JSON, .npy,
tensor bundles, forms, random bytes, bodies at the size edges, valid or mutated) and a
framing (``FRAMINGS``: Content-Length right, missing, short, long, huge, not a number,
twice; chunked valid and broken; transfer-codings the server does not know).  The
server these are for: ``max_payload_size`` LIMIT, API key KEY, routes ``ROUTED``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from litserve import wire
from litserve.protocol import INLINE_MAX

MiB = 1 << 20
LIMIT = 1 * MiB  # the server's max_payload_size
ARENA = LIMIT + MiB  # its request arena (LitServer adds 1 MiB)
DIRECT_MIN = 64 * 1024  # bodies from here on are read straight into the arena
KEY = "fuzz-key-7f3a"
K = KEY.encode()


# -- the request model ---------------------------------------------------------------
@dataclass(frozen=True)
class Req:
    """One request as bytes on the wire, and what the oracle may expect of its answer."""

    head: bytes  # request line and header lines, up to and including the blank line
    body: bytes  # every byte sent after the head (framing included)
    note: str  # what the body is, for the failure message
    method: bytes
    complete: bool  # all the bytes the server needs were sent: it must answer or close
    whole: bool  # the message, as framed, is all on the wire (a next request may follow)
    well_formed: bool  # valid HTTP/1.1, framing included: it must answer
    trailing: bool  # bytes follow the request (they parse as a broken next request)
    body_len: int | None  # the body's length as framed (None: unknown / not well-formed)
    routed: bool  # POST to a predict route with the right API key

    @property
    def wire(self) -> bytes:
        return self.head + self.body

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis prints this
        printer.text(repr(self))

    def __repr__(self) -> str:
        return f"Req({_squeeze(self.wire)}; body: {self.note})"


def _squeeze(data: bytes) -> str:
    """repr of ``data`` with every run of 16 or more equal bytes written as b'x' * n."""
    runs = re.split(rb"((.)\2{15,})", data, flags=re.DOTALL)
    out = []
    for i in range(0, len(runs), 3):
        if runs[i]:
            out.append(repr(runs[i]))
        if i + 1 < len(runs):
            out.append(f"{runs[i + 2]!r} * {len(runs[i + 1])}")
    return " + ".join(out) or "b''"


@dataclass
class Parts:
    """What the drawing functions decide, before it becomes bytes."""

    method: bytes = b"POST"
    target: bytes = b"/predict"
    version: bytes = b"HTTP/1.1"
    lines: list[bytes] = field(default_factory=list)  # header lines, written as they are
    valid: bool = True  # every part so far is valid HTTP
    authorized: bool = True


def _line(name: bytes, value: bytes, how: int = 0) -> bytes:
    """A header line, its name in one of five casings."""
    cased = [name, name.lower(), name.upper(), name.title(), name.swapcase()][how % 5]
    return cased + b": " + value


# -- bodies ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Payload:
    kind: str  # json, typed, octet, npy, bundle, multipart, urlencoded, text, bytes
    data: bytes
    note: str
    tensor_headers: tuple[tuple[bytes, bytes], ...] = ()
    boundary: bytes = b"XyZ"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=12,
)
BROKEN_JSON = [b"{", b"[1,]", b"NaN", b'{"input": 1}garbage', b"\xff\xfe{}", b"[" * 5000,
               b"{" * 3000, b"1e99999", b"-", b'"\\ud800"', b'{"input": 1, "input": 2}',
               b'{"input": "\x00"}', b"\x00", b"", b" ", b"null", b'{"a":' * 2000]
SIZE_EDGES = [0, 1, INLINE_MAX - 64, INLINE_MAX, INLINE_MAX + 1, DIRECT_MIN - 1, DIRECT_MIN,
              DIRECT_MIN + 1, LIMIT - 1, LIMIT, LIMIT + 1, ARENA - 256, ARENA - 129, ARENA - 64,
              ARENA - 1, ARENA, ARENA + 1]
DTYPES = [b"float32", b"<f4", b">i8", b"uint8", b"bool", b"|b1", b"c4", b"float16",
          b"object", b"a", b"01", b"f4,i4", b"", b"<U3", b"float32 ", b"\xe9", b"V8", b"M8"]
SHAPES = [b"", b"()", b"2,3", b"6", b"(6,)", b"[2, 3]", b"2x3", b"-1", b"18446744073709551616",
          b"274177,67280421310721", b"4294967296,4294967296", b",".join([b"1"] * 33),
          b"a,b", b"3,,2", b"0", b"0,9223372036854775807", b"1" * 400]


@st.composite
def json_payload(draw: st.DrawFn) -> Payload:
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return Payload("json", draw(st.sampled_from(BROKEN_JSON)), "broken JSON")
    if choice == 1:  # valid JSON text, then maybe cut or changed
        text = json.dumps(draw(JSON)).encode()
        cut = draw(st.integers(0, len(text)))
        data = text if draw(st.booleans()) else text[:cut] + draw(st.binary(max_size=3))
        return Payload("json", data, "JSON")
    if choice == 2:  # a JSON document of an exact size (the size edges)
        size = max(draw(st.sampled_from(SIZE_EDGES)), 14)
        return Payload("json", b'{"input": "' + b"a" * (size - 13) + b'"}',
                       f"a {size}-byte JSON document")
    if choice == 3:  # what /typed validates: {"name": str, "count": int}
        doc = draw(st.fixed_dictionaries(
            {}, optional={"name": st.text(max_size=5) | JSON, "count": st.integers() | JSON,
                          "extra": JSON}))
        return Payload("typed", json.dumps(doc).encode(), "typed JSON")
    return Payload("json", json.dumps({"input": draw(JSON)}).encode(), "JSON input")


ARRAYS = st.builds(
    lambda dtype, shape, fortran: (np.asfortranarray if fortran else np.asarray)(
        np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape).astype(dtype)),
    # no complex: Echo cannot return complex numbers as JSON (a 500 of the app, not the
    # front), and no 8-byte dtypes, one mutated byte away from complex ('>i8' -> '>c8')
    st.sampled_from(["<f4", ">i4", "|u1", "|b1", "<f2", "<i2", ">u2"]),
    st.lists(st.integers(0, 4), max_size=3).map(tuple),
    st.booleans(),
)


def _mutate(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, max(len(out) - 1, 0)))
        op = draw(st.integers(0, 2))
        if op == 0 and out:
            out[pos] = draw(st.integers(0, 255))
        elif op == 1:
            out[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        else:
            del out[pos:]
    return bytes(out)


@st.composite
def tensor_payload(draw: st.DrawFn) -> Payload:
    arr = draw(ARRAYS)
    kind = draw(st.sampled_from(["octet", "npy", "bundle"]))
    if kind == "octet":
        data = np.ascontiguousarray(arr).tobytes()
        dtype = draw(st.just(arr.dtype.str.encode()) | st.sampled_from(DTYPES))
        shape = draw(st.just(wire.format_shape(arr.shape).encode()) | st.sampled_from(SHAPES)
                     | st.none())
        headers = [(b"X-Tensor-Dtype", dtype)] if draw(st.integers(0, 9)) else []
        if shape is not None:
            headers.append((b"X-Tensor-Shape", shape))
        return Payload("octet", data, f"{arr.dtype.str} {arr.shape} octets", tuple(headers))
    if kind == "npy":
        buf = io.BytesIO()
        np.save(buf, arr)
        data, note = buf.getvalue(), f".npy of {arr.dtype.str} {arr.shape}"
    else:
        data = wire.encode_bundle({"x": arr, draw(st.text(max_size=3)): arr.reshape(-1)[:1]})
        note = f"bundle of {arr.dtype.str} {arr.shape}"
    if draw(st.booleans()):
        data, note = _mutate(draw, data), "mutated " + note
    return Payload(kind, data, note)


@st.composite
def big_body(draw: st.DrawFn) -> Payload:
    """A body at a size edge: uint8 octets (shape header right, many-dimensional, absent
    or wrong) or a form (its Content-Type, long or short, travels with it)."""
    size = draw(st.sampled_from(SIZE_EDGES))
    note = f"b'\\x07' * {size}"
    if draw(st.integers(0, 3)) == 0:
        boundary = draw(st.sampled_from([b"b" * 100, b"XyZ"]))
        return Payload("multipart", b"\x07" * size, note + " (form)", boundary=boundary)
    shape = draw(st.sampled_from([str(size).encode(), None, str(size + 1).encode(),
                                  b"1," * 31 + str(size).encode()]))
    headers = [(b"X-Tensor-Dtype", b"uint8")] + ([] if shape is None else
                                                 [(b"X-Tensor-Shape", shape)])
    return Payload("octet", b"\x07" * size, note + " (uint8)", tuple(headers))


BOUNDARIES = [b"XyZ", b"----WebKitFormBoundary7MA4YWxkTrZu0gW", b"a" * 70, b"a" * 200,
              b'"quoted b"', b"", b"x y", b"\xff"]


@st.composite
def multipart_payload(draw: st.DrawFn) -> Payload:
    boundary = draw(st.sampled_from(BOUNDARIES))
    delim = b"--" + boundary.strip(b'"')
    parts = []
    for i in range(draw(st.integers(0, 3))):
        disp = draw(st.sampled_from([
            b'form-data; name="f%d"' % i, b'form-data; name="file"; filename="a.bin"',
            b"form-data", b'form-data; name="x"; filename=""', b"attachment; name=\"\xff\"",
        ]))
        content = draw(st.binary(max_size=40))
        parts.append(delim + b"\r\nContent-Disposition: " + disp + b"\r\n\r\n" + content
                     + b"\r\n")
    data = b"".join(parts) + delim + b"--\r\n"
    if draw(st.booleans()):
        data = _mutate(draw, data)
    return Payload("multipart", data, "multipart", boundary=boundary)


@st.composite
def other_payload(draw: st.DrawFn) -> Payload:
    choice = draw(st.integers(0, 2))
    if choice == 0:
        return Payload("urlencoded", draw(st.sampled_from(
            [b"a=1&b=two", b"%", b"a=%zz", b"\xff\xfe=\x00", b"{\"input\": 1}", b"&&&",
             b"a=" + b"b" * 5000])), "urlencoded")
    if choice == 1:
        return Payload("bytes", draw(st.binary(max_size=300)), "random bytes")
    return Payload("text", draw(st.text(max_size=50)).encode(), "text")


PAYLOADS = st.one_of(json_payload(), tensor_payload(), big_body(), multipart_payload(),
                     other_payload())

CONTENT_TYPES = {
    "json": [b"application/json", b"application/json; charset=utf-8", b"Application/JSON",
             b"application/json;charset=latin-1", b" application/json "],
    "typed": [b"application/json"],
    "octet": [b"application/octet-stream", b"APPLICATION/OCTET-STREAM",
              b"application/octet-stream; foo=bar"],
    "npy": [b"application/x-npy", b"Application/X-NPY; v=1"],
    "bundle": [b"application/x-litserve-tensors", b"application/x-litserve-tensors;x=y"],
    "multipart": [b"multipart/form-data; boundary=%s", b"Multipart/Form-Data;boundary=%s",
                  b"multipart/form-data", b"multipart/form-data; boundary=",
                  b'multipart/form-data; boundary="%s"; charset=utf-8'],
    "urlencoded": [b"application/x-www-form-urlencoded",
                   b"application/x-www-form-urlencoded; charset=utf-8"],
}
ODD_TYPES = [b"text/plain", b"", b"garbage", b";;;", b"application/", b"*/*",
             b"application/json\x00", b"image/png", b"application/x-npy, application/json"]


def _content_type(draw: st.DrawFn, payload: Payload) -> bytes | None:
    if draw(st.integers(0, 9)) == 0:
        return None
    if payload.kind in CONTENT_TYPES and draw(st.integers(0, 5)):
        ctype = draw(st.sampled_from(CONTENT_TYPES[payload.kind]))
        return ctype.replace(b"%s", payload.boundary.strip(b'"'))
    return draw(st.sampled_from(ODD_TYPES + [v for vs in CONTENT_TYPES.values() for v in vs
                                             if b"%s" not in v]))


# -- request line and headers --------------------------------------------------------
METHODS = [b"POST"] * 12 + [b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"]
BAD_METHODS = [b"post", b"FOO", b"P\x00ST", b"", b"POST POST", b"G\xffT"]
TARGETS = [b"/predict"] * 8 + [b"/typed"] * 3 + [
    b"/predict?x=1&y", b"/pre%64ict", b"http://127.0.0.1/predict", b"/health", b"/",
    b"/nope", b"//predict", b"/predict/", b"/PREDICT", b"/predict%00", b"/" + b"a" * 5000,
    b"*", b"/predict#frag", b"/%zz"]
ROUTED = {b"/predict", b"/typed", b"/predict?x=1&y", b"/pre%64ict",  # reach a LitAPI
          b"http://127.0.0.1/predict"}
BAD_TARGETS = [b"/pred ict", b"/\x01", b"", b"predict", b"/\xff\xfe"]
VERSIONS = [b"HTTP/1.1"] * 20 + [b"HTTP/1.0"]
BAD_VERSIONS = [b"HTTP/2.0", b"HTTP/1.2", b"", b"HTTP/1", b"http/1.1", b"HTTP/1.1 x"]
ACCEPTS = [b"*/*", b"application/json", b"application/octet-stream", b"application/x-npy",
           b"application/x-litserve-tensors", b"application/x-npy;q=0.5, application/json;q=0.9",
           b"text/html", b"application/*", b"", b"application/octet-stream;q=0",
           b"application/json;q=abc", b"*/*;q=0.1, application/x-litserve-tensors"]
ENCODINGS = [b"gzip", b"deflate", b"br", b"identity", b"x-unknown", b"gzip, br", b""]
K = KEY.encode()
AUTH = {  # how the API key is sent, and whether it is right
    "x-api-key": ([b"X-API-Key: " + K], True),
    "bearer": ([b"Authorization: Bearer " + K], True),
    "bearer-lower": ([b"authorization: bearer " + K], True),
    "padded": ([b"X-API-Key:   " + K + b"\t"], True),
    "wrong": ([b"X-API-Key: wrong"], False),
    "empty": ([b"X-API-Key:"], False),
    "none": ([], False),
    "basic": ([b"Authorization: Basic " + K], False),
    "both-wrong-key": ([b"X-API-Key: nope", b"Authorization: Bearer " + K], False),
    "prefix": ([b"X-API-Key: " + K[:-1]], False),
    "non-ascii": ([b"X-API-Key: " + K + b"\xe9"], False),
}
AUTH_CHOICES = ["x-api-key"] * 10 + sorted(AUTH)
JUNK_HEADERS = [  # (header line, valid HTTP)
    (b"X-Junk: " + b"v" * 10000, True), (b"X-Empty:", True), (b"X-Latin: caf\xe9", True),
    (b"Expect: 100-continue", True), (b"Connection: close", True),
    (b"Connection: keep-alive", True), (b"Connection: upgrade\r\nUpgrade: websocket", True),
    (b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQA",
     True), (b"Cookie: a=b; c", True), (b"Range: bytes=0-1", True),
    (b"Bad Header: x", False), (b": novalue", False), (b"X-A : spaced", False),
    (b"X-Nul: a\x00b", False), (b"X-Fold: a\r\n folded", False), (b"NoColon", False),
    (b"X-CR: a\rb", False), (b"\x7f: del", False),
]


def _request_line(draw: st.DrawFn, parts: Parts) -> None:
    if draw(st.integers(0, 19)):
        parts.method = draw(st.sampled_from(METHODS))
    else:
        parts.method, parts.valid = draw(st.sampled_from(BAD_METHODS)), False
    if draw(st.integers(0, 19)):
        parts.target = draw(st.sampled_from(TARGETS))
    else:
        parts.target, parts.valid = draw(st.sampled_from(BAD_TARGETS)), False
    if draw(st.integers(0, 29)):
        parts.version = draw(st.sampled_from(VERSIONS))
    else:
        parts.version, parts.valid = draw(st.sampled_from(BAD_VERSIONS)), False


def _header_lines(draw: st.DrawFn, parts: Parts, payload: Payload) -> None:
    how = draw(st.integers(0, 4)) if draw(st.integers(0, 3)) == 0 else 0
    add = parts.lines.append
    host = draw(st.sampled_from([b"fuzz"] * 8 + [None, b"", b"a" * 300]))
    if host is None:
        parts.valid = False  # HTTP/1.1 requires Host
    else:
        add(_line(b"Host", host, how))
    auth_lines, parts.authorized = AUTH[draw(st.sampled_from(AUTH_CHOICES))]
    parts.lines += auth_lines
    ctype = _content_type(draw, payload)
    if ctype is not None:
        add(_line(b"Content-Type", ctype, how))
    parts.lines += [_line(k, v, how) for k, v in payload.tensor_headers]
    if draw(st.integers(0, 2)) == 0:
        add(_line(b"Accept", draw(st.sampled_from(ACCEPTS)), how))
    if draw(st.integers(0, 5)) == 0:
        add(_line(b"Content-Encoding", draw(st.sampled_from(ENCODINGS))))
    if draw(st.integers(0, 5)) == 0:
        add(_line(b"Accept-Encoding", draw(st.sampled_from(ENCODINGS))))
    for line, ok in draw(st.lists(st.sampled_from(JUNK_HEADERS), max_size=2)):
        add(line)
        parts.valid &= ok
    if draw(st.integers(0, 9)) == 0:  # many headers
        parts.lines += [b"X-Many-%d: v" % i for i in range(draw(st.integers(50, 200)))]


# -- framing ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Framed:
    lines: list[bytes]
    body: bytes
    complete: bool = True
    well_formed: bool = True
    whole: bool = True
    trailing: bool = False
    body_len: int | None = None
    version: bytes | None = None  # the HTTP version this framing needs


def _chunks(draw: st.DrawFn, data: bytes, upper: bool = False, ext: bytes = b"") -> bytes:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
    out, start = [], 0
    for end in [*cuts, len(data)]:
        if end > start:
            size = b"%X" % (end - start) if upper else b"%x" % (end - start)
            out.append(size + ext + b"\r\n" + data[start:end] + b"\r\n")
            start = end
    return b"".join(out)


def _cl(value: bytes | int) -> bytes:
    return b"Content-Length: " + (b"%d" % value if isinstance(value, int) else value)


def _te(value: bytes) -> bytes:
    return b"Transfer-Encoding: " + value


def _length(n: int) -> list[bytes]:
    return [_cl(n)]


END = b"0\r\n\r\n"
CHUNKED = [_te(b"chunked")]
Framing = Callable[[st.DrawFn, bytes], Framed]
FRAMINGS: dict[str, Framing] = {  # how a body goes on the wire, and what that promises
    "length": lambda draw, d: Framed(_length(len(d)), d, body_len=len(d)),
    "length-ows": lambda draw, d: Framed([_cl(b" \t%d\t" % len(d))], d, body_len=len(d)),
    "none": lambda draw, d: Framed([], d, trailing=bool(d), body_len=0),
    "more": lambda draw, d: _more(d, draw(st.sampled_from([1, 100, LIMIT]))),
    "less": lambda draw, d: _less(d, draw(st.integers(0, max(len(d) - 1, 0)))),
    "huge": lambda draw, d: _huge(d, draw(st.sampled_from(
        [10**9, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**30]))),
    "not-a-number": lambda draw, d: Framed([_cl(draw(st.sampled_from(
        [b"-1", b"-0", b"abc", b"5a", b"0x10", b"+5", b"5.0", b"", b"5 5", b"1e3", b"\xff"])))],
        d, well_formed=False),
    "twice": lambda draw, d: Framed([_cl(len(d)), _cl(len(d))], d, well_formed=False),
    "twice-differing": lambda draw, d: Framed([_cl(len(d)), _cl(len(d) + 5)], d,
                                              complete=False, well_formed=False),
    "chunked": lambda draw, d: Framed(CHUNKED, _chunks(draw, d) + END, body_len=len(d)),
    "chunked-ext": lambda draw, d: Framed(CHUNKED, _chunks(draw, d, ext=b";name=value") + END,
                                          body_len=len(d)),
    "chunked-trailer": lambda draw, d: Framed(
        CHUNKED, _chunks(draw, d) + b"0\r\nX-Trailer: 1\r\n\r\n", body_len=len(d)),
    "chunked-upper": lambda draw, d: Framed(
        CHUNKED, _chunks(draw, d, upper=True) + b"000\r\n\r\n", body_len=len(d)),
    "chunked-case": lambda draw, d: Framed([_te(b"Chunked")], _chunks(draw, d) + END,
                                           body_len=len(d)),
    "chunked-bad-hex": lambda draw, d: Framed(CHUNKED, b"zz\r\n" + d + b"\r\n" + END,
                                              well_formed=False),
    "chunked-no-crlf": lambda draw, d: Framed(CHUNKED, b"%x\r\n" % (len(d) + 1) + d + b"!" + END,
                                              well_formed=False),
    "chunked-short": lambda draw, d: Framed(  # declares more than it sends
        CHUNKED, b"%x\r\n" % (len(d) + 10) + d + b"\r\n" + END, complete=False,
        well_formed=False),
    "chunked-no-end": lambda draw, d: Framed(CHUNKED, _chunks(draw, d), complete=False,
                                             well_formed=False),
    "chunked-huge-size": lambda draw, d: Framed(CHUNKED, draw(st.sampled_from(
        [b"1" + b"0" * 16, b"f" * 20, b"7fffffffffffffff"])) + b"\r\n" + d[:100],
        complete=False, well_formed=False),
    "chunked-negative": lambda draw, d: Framed(CHUNKED, b"-5\r\nhello\r\n" + END,
                                               well_formed=False),
    "chunked-then-garbage": lambda draw, d: Framed(
        CHUNKED, _chunks(draw, d) + END + b"garbage", trailing=True, body_len=len(d)),
    "chunked-bare-lf": lambda draw, d: Framed(CHUNKED, b"%x\n" % len(d) + d + b"\n0\n\n",
                                              complete=False, well_formed=False),
    "chunked-and-length": lambda draw, d: Framed([*CHUNKED, _cl(len(d))],
                                                 _chunks(draw, d) + END, well_formed=False),
    "gzip-chunked": lambda draw, d: Framed([_te(b"gzip, chunked")], _chunks(draw, d) + END,
                                           well_formed=False),
    "chunked-gzip": lambda draw, d: Framed([_te(b"chunked, gzip")], _chunks(draw, d) + END,
                                           complete=False, well_formed=False),
    "identity": lambda draw, d: Framed([_te(b"identity")], d, complete=False,
                                       well_formed=False),
    "chunked-twice": lambda draw, d: Framed([*CHUNKED, *CHUNKED], _chunks(draw, d) + END,
                                            well_formed=False),
    "chunked-http10": lambda draw, d: Framed(CHUNKED, _chunks(draw, d) + END,
                                             well_formed=False, version=b"HTTP/1.0"),
}
FRAMING_CHOICES = ["length"] * 14 + ["chunked"] * 4 + sorted(FRAMINGS)


def _more(data: bytes, extra: int) -> Framed:
    """A Content-Length past the bytes sent: the server waits for bytes that never come."""
    return Framed([_cl(len(data) + extra)], data, complete=False, whole=False,
                  body_len=len(data) + extra)


def _less(data: bytes, cut: int) -> Framed:
    """A Content-Length short of the bytes sent: the rest parses as a next request."""
    return Framed([_cl(cut)], data, trailing=cut < len(data), body_len=cut)


def _huge(data: bytes, value: int) -> Framed:
    """Far over the limit, and only a little of the body sent: refused on the header."""
    parsable = value < 2**63
    return Framed([_cl(value)], data[:100], complete=parsable, whole=False,
                  well_formed=parsable, body_len=value if parsable else None)


@st.composite
def requests(draw: st.DrawFn) -> Req:
    parts = Parts()
    _request_line(draw, parts)
    payload = draw(PAYLOADS)
    _header_lines(draw, parts, payload)
    framed = FRAMINGS[draw(st.sampled_from(FRAMING_CHOICES))](draw, payload.data)
    version = framed.version or parts.version
    head = b"".join(line + b"\r\n" for line in [
        parts.method + b" " + parts.target + b" " + version, *parts.lines, *framed.lines, b""])
    return Req(
        head=head, body=framed.body, note=payload.note, method=parts.method,
        complete=framed.complete, whole=framed.whole and framed.complete,
        well_formed=parts.valid and framed.well_formed,
        trailing=framed.trailing, body_len=framed.body_len if parts.valid else None,
        routed=parts.valid and parts.authorized and parts.method == b"POST"
        and parts.target in ROUTED)
