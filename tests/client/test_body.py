"""Request bodies as wire pieces (views of the arrays), and error details."""

from __future__ import annotations

import numpy as np
import pytest

from litserve import wire
from litserve.client import _body


def test_array_body_is_views_of_the_array() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    body = _body.encode(x)
    assert body.content_type == _body.OCTET and body.is_tensor
    assert dict(body.headers) == {"X-Tensor-Dtype": "<f4", "X-Tensor-Shape": "3,4"}
    (piece,) = body.pieces
    assert np.shares_memory(np.frombuffer(piece, np.uint8), x)  # no copy


def test_bundle_body_matches_the_wire_format() -> None:
    x = {"img": np.ones((2, 3), np.uint8), "scale": np.array(0.5), "big": np.arange(3, dtype=">i8")}
    body = _body.encode(x)
    assert body.content_type == _body.BUNDLE
    raw = b"".join(bytes(p) for p in body.pieces)
    got = wire.decode_bundle(raw)
    assert set(got) == set(x)
    for k in x:
        assert np.array_equal(got[k], x[k]) and got[k].shape == x[k].shape
    assert got["big"].dtype == np.dtype("<i8")
    assert np.shares_memory(np.frombuffer(body.pieces[2], np.uint8), x["img"])


def test_npy_body_decodes_with_numpy() -> None:
    import io

    x = np.arange(6, dtype=np.int16).reshape(2, 3)
    raw = b"".join(bytes(p) for p in _body.encode(x, "npy").pieces)
    assert np.array_equal(np.load(io.BytesIO(raw)), x)


def test_mixed_dict_and_other_values_go_as_json() -> None:
    assert _body.encode({"a": np.zeros(2), "b": 1}).content_type == _body.JSON
    assert _body.encode({}).content_type == _body.JSON
    assert _body.encode(b"\x01\x02").headers == [("X-Tensor-Dtype", "uint8")]


@pytest.mark.parametrize("body,detail", [
    (b'{"detail": "bad input"}', "bad input"),
    (b'{"detail": [{"loc": ["x"]}]}', '[{"loc": ["x"]}]'),
    (b"plain failure\n", "plain failure"),
    (b'{"other": 1}', '{"other": 1}'),
])
def test_error_detail(body: bytes, detail: str) -> None:
    assert _body.error_detail("application/json", body) == detail
