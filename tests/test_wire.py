"""litserve.wire: every malformed tensor header, .npy or bundle is a WireError (the
front's 400), never another exception; well-formed ones parse back exactly.

The targeted cases are the inputs that once escaped as other exceptions (a 500 that
leaked the request's arena block and slot); the properties check the same promise for
arbitrary input.  ``LITSERVE_FUZZ_EXAMPLES=N`` runs N random examples per property
instead of the fixed, derandomized CI set (docs/testing.md).
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from litserve import wire
from litserve.wire import WireError


def _settings(ci_examples: int) -> settings:
    """A fixed, repeatable set in CI; N random examples with $LITSERVE_FUZZ_EXAMPLES."""
    n = int(os.environ.get("LITSERVE_FUZZ_EXAMPLES", "0"))
    return settings(max_examples=n or ci_examples, derandomize=not n, deadline=None,
                    database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def npy_with_header(text: str | bytes, data: bytes = b"", version: int = 1) -> bytes:
    raw = text.encode("latin-1") if isinstance(text, str) else text
    length = struct.pack("<H" if version == 1 else "<I", len(raw))
    return wire.NPY_MAGIC + bytes([version, 0]) + length + raw + data


def bundle_with_header(header: Any, data: bytes = b"", raw: bytes | None = None) -> bytes:
    text = raw if raw is not None else json.dumps(header).encode()
    text = text.ljust(wire._align(8 + len(text)) - 8)
    return wire.BUNDLE_MAGIC + struct.pack("<I", len(text)) + text + data


def entry(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "x", "dtype": "<f4", "shape": [2], "offset": 256,
                            "nbytes": 8}
    return {**base, **fields}


def one_entry_bundle(**fields: Any) -> bytes:
    """A bundle whose header (padded to 248 bytes) leaves 64 data bytes at byte 256."""
    text = json.dumps({"tensors": [entry(**fields)]}, separators=(",", ":")).encode()
    text = text.ljust(248)
    assert len(text) == 248
    return bundle_with_header(None, b"\0" * 64, raw=text)


def assert_viewable(body: bytes, metas: list[wire.TensorMeta]) -> None:
    """What a valid meta promises: the array lies in the body and NumPy can view it."""
    for m in metas:
        assert m.dtype == np.dtype(m.dtype).str and np.dtype(m.dtype).kind in "biufc"
        assert len(m.shape) <= wire.MAX_NDIM and all(d >= 0 for d in m.shape)
        assert m.offset >= 0 and m.offset + m.nbytes <= len(body)
        arr = wire.view(body, m)
        assert arr.nbytes == m.nbytes and arr.shape == m.shape


# -- the inputs that escaped as other exceptions ---------------------------------------
def test_a_shape_past_int64_is_a_wire_error_not_an_overflow() -> None:
    with pytest.raises(WireError, match="X-Tensor-Shape '18446744073709551616'"):
        wire.octet_meta("float32", "18446744073709551616", 8)
    with pytest.raises(WireError, match="larger than NumPy can address"):
        wire.parse_shape("18446744073709551616")


@pytest.mark.parametrize("shape", [
    "274177,67280421310721",  # 2**64 + 1: int64 wraps to 1 = the body's length
    "4294967296,4294967296,1",  # 2**64: wraps to 0
    "2,9223372036854775807",
])
def test_a_shape_whose_int64_product_wraps_is_refused(shape: str) -> None:
    body_len = math.prod(int(d) for d in shape.split(",")) % 2**64
    with pytest.raises(WireError, match="larger than NumPy can address"):
        wire.octet_meta("uint8", shape, body_len)


def test_sizes_are_exact_python_ints() -> None:
    meta = wire.TensorMeta("<f8", (2**31, 2**31))
    assert meta.nbytes == 2**65


def test_a_bundle_dtype_that_is_not_a_string_is_a_wire_error() -> None:
    body = one_entry_bundle(dtype=5)
    with pytest.raises(WireError, match=r"entry 0 \('x'\): 'dtype' 5 is not supported"):
        wire.bundle_meta(body, len(body))


def test_a_deeply_nested_npy_shape_is_a_wire_error_not_a_recursion_error() -> None:
    shape = "(" + "+".join(["1"] * 3000) + ",)"
    body = npy_with_header(f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}")
    with pytest.raises(WireError, match=r"\.npy header"):
        wire.npy_meta(body, len(body))


def test_npy_negative_dims_are_refused() -> None:
    body = npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, -4), }")
    with pytest.raises(WireError, match="'shape' has a negative dim"):
        wire.npy_meta(body, len(body))


def test_a_bundle_with_more_than_max_ndim_dims_is_refused() -> None:
    body = one_entry_bundle(shape=[1] * 65, nbytes=4)
    with pytest.raises(WireError, match=f"65 dims; at most {wire.MAX_NDIM}"):
        wire.bundle_meta(body, len(body))


def test_npy_and_octet_dims_are_bounded_too() -> None:
    dims = ", ".join(["1"] * 33)
    body = npy_with_header(f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({dims}), }}",
                           b"\0")
    with pytest.raises(WireError, match="33 dims"):
        wire.npy_meta(body, len(body))
    with pytest.raises(WireError, match="X-Tensor-Shape .* 33 dims"):
        wire.octet_meta("uint8", ",".join(["1"] * 33), 1)


@pytest.mark.parametrize("text", ["01", "a", "a1", "f4,i4", "(2,)f4", "O", "U8", "M8[ns]",
                                  "<bool", "Float32", "float32\0", " f 4", "V8", "S3"])
def test_dtypes_outside_the_table_are_refused_without_reaching_numpy(text: str) -> None:
    with pytest.raises(WireError, match="X-Tensor-Dtype .* is not supported; use a NumPy"):
        wire.parse_dtype(text)


@pytest.mark.parametrize(("text", "dtype"), [
    ("float32", "<f4"), (" <f4 ", "<f4"), (">i8", ">i8"), ("uint8", "|u1"), ("bool", "|b1"),
    ("?", "|b1"), ("|b1", "|b1"), ("complex64", "<c8"), ("float16", "<f2"), ("e", "<f2"),
    ("=u2", "<u2"), ("int", "<i8"), ("double", "<f8"),
])
def test_accepted_dtype_spellings(text: str, dtype: str) -> None:
    assert wire.parse_dtype(text).str == dtype


def test_every_accepted_dtype_round_trips_through_its_str() -> None:
    """The front sends dt.str to the worker, which parses it again."""
    for dtype in wire._dtype_table().values():
        assert wire.parse_dtype(dtype.str) == dtype


@pytest.mark.parametrize(("text", "shape"), [
    ("", ()), ("()", ()), ("[]", ()), ("3", (3,)), ("3,", (3,)), ("(3,)", (3,)),
    ("1080,1920,3", (1080, 1920, 3)), (" ( 2 , 3 ) ", (2, 3)), ("[2,3]", (2, 3)),
    ("2x3", (2, 3)), ("0,0", (0, 0)), ("0," + "9" * 18, (0, 10**18 - 1)),
])
def test_accepted_shapes(text: str, shape: tuple[int, ...]) -> None:
    assert wire.parse_shape(text) == shape


@pytest.mark.parametrize("text", ["a,b", ",", "3,,4", "(3,4]", "((3))", "3 4", "1-2", "3.0",
                                  "0x1f", "+3", "1_000", "٣", "3\n", "(" * 2000])
def test_malformed_shapes_name_the_header(text: str) -> None:
    with pytest.raises(WireError, match="X-Tensor-Shape .* is not valid; use comma-separated"):
        wire.parse_shape(text)


# -- .npy ------------------------------------------------------------------------------
GOOD_NPY_HEADER = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"


@pytest.mark.parametrize(("body", "needle"), [
    (b"", "magic"),
    (b"\x93NUMPY", "magic"),
    (b"\x93NUMPY\x01\x00\x05", "preamble"),
    (b"\x93NUMPY\x02\x00\x05\x00\x00", "preamble"),  # once a struct.error
    (b"\x93NUMPY\x04\x00\x05\x00", "version 4.0"),
    (b"\x93NUMPY\x01\x01\x05\x00", "version 1.1"),
    (npy_with_header("{}", version=2)[:-1], "ends inside its 2-byte header"),
    (npy_with_header(" " * (wire.MAX_NPY_HEADER + 1), version=2), "longer than the 10000"),
    (npy_with_header(GOOD_NPY_HEADER, b"\0" * 7), "has 7 bytes but dtype <f4 and shape [2]"),
    (npy_with_header(GOOD_NPY_HEADER, b"\0" * 9), "has 9 bytes"),
    (npy_with_header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}"),
     "structured dtypes"),
    (npy_with_header("{'descr': '|O', 'fortran_order': False, 'shape': (2,)}"),
     "'descr' '|O' is not supported"),
    (npy_with_header("{'descr': '<U3', 'fortran_order': False, 'shape': (2,)}"),
     "'descr' '<U3' is not supported"),
    (npy_with_header("{'descr': 5, 'fortran_order': False, 'shape': (2,)}"), "malformed"),
    (npy_with_header("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}"), "malformed"),
    (npy_with_header("{'descr': '<f4', 'fortran_order': 'no', 'shape': (2,)}"), "wrong type"),
    (npy_with_header("{'descr': (2,), 'fortran_order': False, 'shape': (2,)}"), "wrong type"),
    (npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2)}"), "not a tuple"),
    (npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2 3)}"), "comma"),
    (npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (,)}"), "integers"),
    (npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': '2'}"),
     "not a list of integers"),
    (npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (02,)}"), "malformed"),
    (npy_with_header("{'descr': '<f4', 'fortran_order': False}"), "malformed"),
    (npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 'y'}"),
     "unexpected or repeated key 'x'"),
    (npy_with_header("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}"),
     "repeated key 'descr'"),
    (npy_with_header(GOOD_NPY_HEADER + " \0"), "malformed at byte"),
    (npy_with_header(GOOD_NPY_HEADER + "}"), "malformed"),
    (npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,) 'x'}"),
     "after 'shape'"),
    (npy_with_header("{'descr': '<\\x66\\x34', 'fortran_order': False, 'shape': (2,)}"),
     "malformed"),
    (npy_with_header("__import__('os')"), "malformed"),
    (npy_with_header(b"{'descr': '\xff\xfe', 'fortran_order': False, 'shape': (2,)}", version=3),
     "not valid utf-8"),
])
def test_malformed_npy_is_a_wire_error_naming_the_format(body: bytes, needle: str) -> None:
    with pytest.raises(WireError, match=r"npy") as info:
        wire.npy_meta(body, len(body))
    assert needle in str(info.value)


def test_npy_header_written_by_other_writers() -> None:
    """Key order, quotes and spacing vary between writers; the dict stays the same."""
    for header in ['{"shape": (3, 1), "fortran_order": True, "descr": "<i2"}',
                   "{'descr':'<i2','fortran_order':True,'shape':(3,1,)}\n",
                   "{'descr': '<i2', 'fortran_order': True, 'shape': (3, 1), }" + " " * 40]:
        body = npy_with_header(header, b"\1\0" * 3)
        meta = wire.npy_meta(body, len(body))
        assert (meta.dtype, meta.shape, meta.fortran) == ("<i2", (3, 1), True)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_npy_versions(version: int) -> None:
    body = npy_with_header(GOOD_NPY_HEADER, b"\0" * 8, version)
    assert wire.npy_meta(body, len(body)).offset == len(body) - 8


# -- tensor bundles --------------------------------------------------------------------
@pytest.mark.parametrize(("body", "needle"), [
    (b"LSVT", "b'LSVT'"),
    (b"LSVX\0\0\0\0", "b'LSVT'"),
    (b"LSVT\xff\xff\xff\xff", "longer than the 65528 bytes"),
    (bundle_with_header({"tensors": []})[:-1], "ends inside its"),
    (bundle_with_header(None, raw=b"[" * 30000 + b"]" * 30000), "not valid UTF-8 JSON"),
    (bundle_with_header(None, raw=b'{"tensors": [], "tensors": []}'), "appears twice"),
    (bundle_with_header(None, raw=b'{"tensors": "\xff"}'), "not valid UTF-8"),
    (bundle_with_header(None, raw=b"\xef\xbb\xbf{}"), "not valid UTF-8 JSON"),
    (bundle_with_header(None, raw=b"not json"), "not valid UTF-8 JSON"),
    (bundle_with_header([]), 'a JSON object {"tensors": [...]}'),
    (bundle_with_header(5), 'a JSON object {"tensors": [...]}'),
    (bundle_with_header({"tensors": [], "extra": 1}), "no other key"),
    (bundle_with_header({"tensors": {}}), "must be a list"),
    (bundle_with_header({"tensors": [5]}), "entry 0 must be an object with exactly the keys"),
    (bundle_with_header({"tensors": [{"name": "x"}]}), "exactly the keys"),
    (bundle_with_header({"tensors": [{**entry(), "extra": 1}]}), "exactly the keys"),
    (one_entry_bundle(name=5), "'name' must be a string, not 5"),
    (one_entry_bundle(dtype=None), "'dtype' None is not supported"),
    (one_entry_bundle(dtype="object"), "'dtype' 'object' is not supported"),
    (one_entry_bundle(dtype=["<f4"]), "'dtype' ['<f4'] is not supported"),
    (one_entry_bundle(shape=[-2]), "has a negative dim"),
    (one_entry_bundle(shape=[True, 2]), "not a list of integers"),
    (one_entry_bundle(shape=[2.0]), "not a list of integers"),
    (one_entry_bundle(shape="2"), "not a list of integers"),
    (one_entry_bundle(shape={"2": 2}), "not a list of integers"),
    (one_entry_bundle(shape=[2**62, 2]), "larger than NumPy can address"),
    (one_entry_bundle(shape=[2**64 + 2]), "larger than NumPy can address"),
    (one_entry_bundle(nbytes=9), "'nbytes' is 9 but dtype <f4 and shape [2] need 8"),
    (one_entry_bundle(nbytes=True), "'nbytes' is True"),
    (one_entry_bundle(nbytes="8"), "'nbytes' is '8'"),
    (one_entry_bundle(offset=129), "'offset' 129 must be a multiple of 64"),
    (one_entry_bundle(offset=192), "at or after the header's end (256)"),
    (one_entry_bundle(offset=-64), "'offset' -64"),
    (one_entry_bundle(offset=256.0), "'offset' 256.0"),
    (one_entry_bundle(offset=None), "'offset' None"),
    (one_entry_bundle(offset=320), "lies outside the body: bytes 320 to 328 of 320"),
    (one_entry_bundle(shape=[17], nbytes=68), "lies outside the body"),
])
def test_malformed_bundle_is_a_wire_error_naming_the_format(body: bytes, needle: str) -> None:
    with pytest.raises(WireError, match="tensor|LSVT") as info:
        wire.bundle_meta(body, len(body))
    assert needle in str(info.value)


def two_entry_bundle(a: dict[str, Any], b: dict[str, Any]) -> bytes:
    text = json.dumps({"tensors": [entry(**a), entry(**b)]}).encode().ljust(248)
    return bundle_with_header(None, b"\0" * 256, raw=text)


def test_bundle_entries_that_overlap_are_refused() -> None:
    body = two_entry_bundle({"name": "a", "shape": [32], "nbytes": 128, "offset": 256},
                            {"name": "b", "offset": 320})
    with pytest.raises(WireError, match="tensors 'a' and 'b' of the bundle overlap"):
        wire.bundle_meta(body, len(body))


def test_bundle_names_must_be_unique() -> None:
    body = two_entry_bundle({"name": "a", "offset": 256}, {"name": "a", "offset": 320})
    with pytest.raises(WireError, match="names 'a' more than once"):
        wire.bundle_meta(body, len(body))


def test_bundle_accepts_gaps_any_order_and_empty_arrays_anywhere_aligned() -> None:
    body = two_entry_bundle({"name": "late", "offset": 448},
                            {"name": "empty", "shape": [0, 5], "nbytes": 0, "offset": 512})
    metas = wire.bundle_meta(body, len(body))
    assert [(m.name, m.offset) for m in metas] == [("late", 448), ("empty", 512)]
    assert_viewable(body, metas)


def test_bundle_parts_refuses_a_header_readers_would_refuse() -> None:
    arrays = {f"a{i}": np.zeros(1) for i in range(1000)}
    with pytest.raises(WireError, match="send fewer arrays"):
        wire.bundle_parts(arrays)


def test_bundle_parts_settles_a_header_whose_offsets_grow() -> None:
    arrays = {f"t{i}": np.zeros(300 + i, np.uint8) for i in range(150)}  # offsets gain digits
    body = wire.encode_bundle(arrays)
    got = wire.decode_bundle(body)
    assert list(got) == list(arrays) and all(got[k].size == arrays[k].size for k in arrays)


# -- properties ------------------------------------------------------------------------
DTYPE_TEXTS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["float32", "<f4", ">i8", "uint8", "bool", "?", "|b1", "c16", "e", "int",
                     "longdouble", "a", "01", "O", "f4,i4", "<bool", "V4", "M8", "S1"]),
    st.from_regex(r"[<>=|]?[a-zA-Z?][0-9]{0,3}", fullmatch=True),
)
SHAPE_TEXTS = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="0123456789,x()[] -+_\t", max_size=40),
    st.lists(st.integers(min_value=-3, max_value=2**70), max_size=40).map(
        lambda dims: ",".join(map(str, dims))),
)


@_settings(400)
@given(DTYPE_TEXTS)
def test_parse_dtype_returns_an_accepted_dtype_or_raises_wire_error(text: str) -> None:
    try:
        dt = wire.parse_dtype(text)
    except WireError:
        return
    assert dt.kind in wire.ACCEPTED_KINDS and dt.fields is None and dt.itemsize > 0


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.binary(),
                 st.lists(st.text(max_size=3), max_size=2)))
@_settings(100)
def test_parse_dtype_of_a_non_string_raises_wire_error(value: Any) -> None:
    with pytest.raises(WireError):
        wire.parse_dtype(value)


@_settings(400)
@given(SHAPE_TEXTS)
def test_parse_shape_returns_a_bounded_shape_or_raises_wire_error(text: str) -> None:
    try:
        shape = wire.parse_shape(text)
    except WireError:
        return
    assert len(shape) <= wire.MAX_NDIM and all(isinstance(d, int) and d >= 0 for d in shape)
    assert math.prod(d for d in shape if d) <= wire.MAX_BYTES


@_settings(400)
@given(DTYPE_TEXTS | st.none(), SHAPE_TEXTS | st.none(), st.integers(0, 4096))
def test_octet_meta_matches_the_body_or_raises_wire_error(dtype: str | None, shape: str | None,
                                                          body_len: int) -> None:
    try:
        meta = wire.octet_meta(dtype, shape, body_len)
    except WireError:
        return
    assert meta.nbytes == body_len and meta.offset == 0
    assert_viewable(b"\0" * body_len, [meta])


def _npy_check(body: bytes) -> None:
    try:
        meta = wire.npy_meta(body, len(body))
    except WireError:
        return
    assert meta.offset + meta.nbytes == len(body)
    assert_viewable(body, [meta])


NPY_HEADER_PIECES = st.sampled_from([
    "{", "}", "(", ")", ",", ":", " ", "'descr'", "'fortran_order'", "'shape'", "'<f4'",
    "'|u1'", "'>i8'", "'|O'", "True", "False", "0", "1", "2", "-1", "9223372036854775807",
    "18446744073709551616", "[", "'", "\n", "1+1", "None",
])


@_settings(300)
@given(st.binary(max_size=200))
def test_npy_meta_of_arbitrary_bytes(body: bytes) -> None:
    _npy_check(body)
    _npy_check(wire.NPY_MAGIC + b"\x01\x00" + body)


@_settings(400)
@given(st.lists(NPY_HEADER_PIECES, max_size=40).map("".join), st.binary(max_size=40),
       st.sampled_from([1, 2, 3]))
def test_npy_meta_of_arbitrary_headers(header: str, data: bytes, version: int) -> None:
    _npy_check(npy_with_header(header.encode(), data, version))


@_settings(300)
@given(st.text(max_size=120), st.binary(max_size=24))
def test_npy_meta_of_arbitrary_header_text(header: str, data: bytes) -> None:
    _npy_check(npy_with_header(header.encode("utf-8"), data, 3))


def mutate(data: st.DataObject, body: bytes) -> bytes:
    """``body`` with a few bytes replaced, inserted or cut (the preamble included)."""
    out = bytearray(body)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, max(len(out) - 1, 0)))
        op = data.draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        if op == "set" and out:
            out[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            out[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del out[pos : pos + data.draw(st.integers(1, 8))]
        else:
            del out[pos:]
    return bytes(out)


SMALL_ARRAYS = hnp.arrays(
    dtype=st.one_of(hnp.boolean_dtypes(), hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(),
                    hnp.floating_dtypes(), hnp.complex_number_dtypes()),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
)


@_settings(300)
@given(SMALL_ARRAYS, st.data())
def test_npy_meta_of_mutated_npy_files(arr: np.ndarray, data: st.DataObject) -> None:
    _npy_check(mutate(data, npy_bytes(arr)))


def _bundle_check(body: bytes) -> None:
    try:
        metas = wire.bundle_meta(body, len(body))
    except WireError:
        return
    assert len({m.name for m in metas}) == len(metas)
    assert all(m.offset % wire.ALIGN == 0 for m in metas)
    assert_viewable(body, metas)
    spans = sorted((m.offset, m.offset + m.nbytes) for m in metas if m.nbytes)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2**70) | st.floats() | st.text(max_size=6)
    | st.sampled_from(["<f4", "|u1", "x", "bool"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["name", "dtype", "shape", "offset", "nbytes", "tensors", "x"]), inner,
        max_size=6),
    max_leaves=20,
)
ENTRIES = st.fixed_dictionaries({
    "name": st.text(max_size=3) | JSON_VALUES,
    "dtype": st.sampled_from(["<f4", "|u1", ">i2", "|b1", "<c16", "O", "float32"]) | JSON_VALUES,
    "shape": st.lists(st.integers(-1, 5), max_size=4) | JSON_VALUES,
    "offset": st.integers(0, 8).map(lambda k: 64 * k) | st.integers(-2, 600) | JSON_VALUES,
    "nbytes": st.integers(0, 200) | JSON_VALUES,
})


@_settings(300)
@given(st.binary(max_size=200))
def test_bundle_meta_of_arbitrary_bytes(body: bytes) -> None:
    _bundle_check(body)
    _bundle_check(wire.BUNDLE_MAGIC + body)


@_settings(300)
@given(st.one_of(JSON_VALUES, st.fixed_dictionaries({"tensors": st.lists(ENTRIES, max_size=4)})),
       st.integers(0, 600))
def test_bundle_meta_of_arbitrary_json_headers(header: Any, data_len: int) -> None:
    _bundle_check(bundle_with_header(header, b"\x01" * data_len))


@_settings(300)
@given(st.dictionaries(st.text(max_size=4), SMALL_ARRAYS, max_size=4), st.data())
def test_bundle_meta_of_mutated_bundles(arrays: dict[str, np.ndarray],
                                        data: st.DataObject) -> None:
    _bundle_check(mutate(data, wire.encode_bundle(arrays)))


def _same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()  # bit-exact (NaNs included)


@_settings(300)
@given(SMALL_ARRAYS, st.booleans())
def test_npy_round_trip(arr: np.ndarray, fortran: bool) -> None:
    arr = np.asfortranarray(arr) if fortran else arr
    body = npy_bytes(arr)
    meta = wire.npy_meta(body, len(body))
    _same(wire.view(body, meta), arr)
    ours = wire.npy_header(arr) + arr.tobytes()  # C order
    _same(wire.view(ours, wire.npy_meta(ours, len(ours))), arr)
    _same(np.load(io.BytesIO(ours)), arr)


@_settings(150)
@given(st.dictionaries(st.text(max_size=8), SMALL_ARRAYS, max_size=6))
def test_bundle_round_trip(arrays: dict[str, np.ndarray]) -> None:
    got = wire.decode_bundle(wire.encode_bundle(arrays))
    assert list(got) == list(arrays)
    for k in arrays:
        _same(got[k], arrays[k])


@_settings(300)
@given(SMALL_ARRAYS)
def test_octet_round_trip(arr: np.ndarray) -> None:
    body = arr.tobytes()
    meta = wire.octet_meta(arr.dtype.str, wire.format_shape(arr.shape), len(body))
    _same(wire.view(body, meta), arr)


def test_errors_cut_long_values_to_a_readable_length() -> None:
    with pytest.raises(WireError) as info:
        wire.parse_shape("9," * 5000)
    assert len(str(info.value)) < 300 and "(10002 characters)" in str(info.value)
