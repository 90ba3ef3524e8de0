"""Requests through the real server: JSON, tensors, forms, responses, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from litserve import wire

from .harness import all_free, serve, slot_table, wait_for

OCTET = {"content-type": "application/octet-stream"}


@pytest.fixture(scope="module")
def echo():
    with serve("basic:Echo", max_payload_size=8 << 20) as server:
        yield server


@pytest.fixture(scope="module")
def tensor_out():
    with serve("basic:TensorOut") as server:
        yield server


def test_json_body_reaches_decode_request(echo):
    r = echo.post(json={"a": [1, 2], "b": "x"})
    assert r.status_code == 200
    assert r.json() == {"kind": "dict", "value": {"a": [1, 2], "b": "x"}}


def test_curl_style_json_without_content_type(echo):
    r = echo.post(content=b'{"input": 4}',
                  headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.json() == {"kind": "dict", "value": {"input": 4}}


@pytest.mark.parametrize("body", [b'{"input": [1,', b"not json", b'{"a": }'])
def test_malformed_json_is_400_from_the_front(echo, body):
    r = echo.post(content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["detail"]


@pytest.mark.parametrize("nbytes", [16, 4 << 20])  # inline in the descriptor, and in the arena
def test_octet_tensor_is_a_view_of_shared_memory(echo, nbytes):
    x = np.arange(nbytes // 4, dtype=np.float32).reshape(-1, 4)
    r = echo.post(content=x.tobytes(), headers={**OCTET, "x-tensor-dtype": "float32",
                                                "x-tensor-shape": f"{x.shape[0]},4"})
    got = r.json()
    assert got["kind"] == "array" and got["shape"] == list(x.shape) and got["dtype"] == "<f4"
    assert got["sum"] == pytest.approx(float(x.astype(np.float64).sum()))
    assert got["shm"] is (nbytes > 200)  # large bodies are zero-copy views of the arena


def test_octet_without_shape_is_one_dimensional(echo):
    r = echo.post(content=np.arange(5, dtype=np.int64).tobytes(),
                  headers={**OCTET, "x-tensor-dtype": "int64"})
    assert r.json()["shape"] == [5]


@pytest.mark.parametrize(("headers", "needle"), [
    ({"x-tensor-dtype": "object", "x-tensor-shape": "2"}, "'float32'"),
    ({"x-tensor-dtype": "float32", "x-tensor-shape": "a,b"}, "X-Tensor-Shape 'a,b'"),
    ({"x-tensor-dtype": "float32", "x-tensor-shape": "3,3"}, "need 36"),
    ({"x-tensor-shape": "2"}, "X-Tensor-Dtype"),
])
def test_bad_tensor_headers_are_400_naming_the_problem(echo, headers, needle):
    r = echo.post(content=b"\0" * 8, headers={**OCTET, **headers})
    assert r.status_code == 400
    assert needle in r.json()["detail"]


def test_npy_body(echo):
    buf = io.BytesIO()
    np.save(buf, np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3)))
    r = echo.post(content=buf.getvalue(), headers={"content-type": "application/x-npy"})
    got = r.json()
    assert got["shape"] == [2, 3] and got["dtype"] == ">i4" and got["sum"] == 15


def test_tensor_bundle_body(echo):
    body = wire.encode_bundle({"img": np.ones((2, 2), np.uint8), "scale": np.float32(0.5)})
    r = echo.post(content=body, headers={"content-type": wire.BUNDLE})
    assert r.json()["items"] == {"img": ["|u1", [2, 2], [[1, 1], [1, 1]]],
                                 "scale": ["<f4", [], 0.5]}


def test_multipart_form(echo):
    r = echo.post(data={"name": "cat"}, files={"file": ("cat.bin", b"\x01" * 1000)})
    assert r.json() == {"kind": "form", "items": {
        "name": "cat", "file": {"filename": "cat.bin", "size": 1000}}}


def test_urlencoded_form(echo):
    r = echo.post(data={"a": "1", "b": "two"})
    assert r.json() == {"kind": "form", "items": {"a": "1", "b": "two"}}


def test_body_larger_than_the_arena_is_413_naming_the_limit(echo):
    r = echo.post(content=b"\0" * (9 << 20), headers={**OCTET, "x-tensor-dtype": "uint8"})
    assert r.status_code == 413
    assert str(8 << 20) in r.json()["detail"] or "limit" in r.json()["detail"]
    assert echo.post(json={"still": "serving"}).status_code == 200


def test_binary_response_when_accept_asks(tensor_out):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    r = tensor_out.post(content=x.tobytes(), headers={
        **OCTET, "x-tensor-dtype": "float32", "x-tensor-shape": "3,4",
        "accept": "application/octet-stream"})
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["x-tensor-shape"] == "3,4"
    meta = wire.octet_meta(r.headers["x-tensor-dtype"], r.headers["x-tensor-shape"],
                           len(r.content))
    np.testing.assert_array_equal(wire.view(r.content, meta), x * 2)


def test_npy_response_and_json_default(tensor_out):
    r = tensor_out.post(json={"input": [1, 2]}, headers={"accept": "application/x-npy"})
    np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), [2, 4])
    r = tensor_out.post(json={"input": [1, 2]})
    assert r.headers["content-type"] == "application/json" and r.json() == [2.0, 4.0]


def test_bundle_response(tensor_out):
    r = tensor_out.post(json={"bundle": 1}, headers={"accept": wire.BUNDLE})
    arrays = wire.decode_bundle(r.content)
    np.testing.assert_array_equal(arrays["a"], np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(arrays["b"], [1.0, 1.0])


def test_numpy_and_torch_values_serialise():
    with serve("basic:Kinds") as server:
        assert server.post(json={}).json() == {
            "np_scalar": 1.5, "np_int": 7, "np_array": [0, 1, 2], "torch_scalar": 2.5,
            "torch_array": [1, 1], "tuple": [1, 2], "none": None, "text": "héllo"}


def test_pydantic_request_validated_in_the_front(tmp_path: Path):
    log = tmp_path / "seen.log"
    with serve("basic:Typed", env={"LITSERVE_TEST_LOG": str(log)}) as server:
        r = server.post(json={"name": "x", "count": "many"})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["count"]
        assert not log.exists(), "the worker saw an invalid request"
        r = server.post(json={"name": "abc", "count": 1})
        assert r.json() == {"name": "ABC", "count": 2}
        assert log.read_text() == "decode Item\n"


@pytest.mark.parametrize(("where", "status", "detail"), [
    ("decode", 418, "I am a teapot"),
    ("http", 409, {"reason": "conflict"}),
])
def test_http_exceptions_are_sent_as_given(where, status, detail, raises_server):
    r = raises_server.post(json={"where": where})
    assert r.status_code == status
    assert r.json() == {"detail": detail}
    assert raises_server.post(json={"where": "nowhere"}).json() == {"ok": True}


def _bare_500(r) -> str:
    """The request id of our bare 500 (its detail says nothing of the exception)."""
    assert r.status_code == 500
    body = r.json()
    assert body == {"detail": "Internal Server Error", "request_id": r.headers["x-request-id"]}
    return body["request_id"]


def test_other_exceptions_are_a_bare_500_and_their_text_is_logged(raises_server):
    r = raises_server.post(json={"where": "predict"})
    request_id = _bare_500(r)
    assert "exploded" not in r.text
    line = f"request {request_id} failed in Raises.predict: RuntimeError: model exploded"
    wait_for(lambda: line in raises_server.output, 10, f"the log line {line!r}")
    assert raises_server.post(json={"where": "nowhere"}).json() == {"ok": True}


def test_unserialisable_output_is_500_whose_log_says_why(raises_server):
    request_id = _bare_500(raises_server.post(json={"where": "encode"}))
    wait_for(lambda: request_id in raises_server.output, 10, "the failure logged")
    after = raises_server.output.split(request_id, 1)[1]
    assert "cannot be sent as JSON" in after.split("Traceback", 1)[0]
    assert raises_server.post(json={"where": "nowhere"}).json() == {"ok": True}


@pytest.fixture(scope="module")
def raises_server():
    with serve("basic:Raises") as server:
        yield server


def test_server_logs_the_traceback_of_a_500(raises_server):
    raises_server.post(json={"where": "predict"})
    assert "RuntimeError: model exploded" in raises_server.output
    assert "Traceback" in raises_server.output


def test_context_flows_through_the_hooks():
    with serve("basic:Contextual") as server:
        assert server.post(json={"input": 3}).json() == {
            "output": 3, "context": {"seen": 3, "batch": 0}}


def test_unknown_route_and_wrong_method(echo):
    import httpx

    assert httpx.get(echo.url + "/nope").status_code == 404
    r = httpx.get(echo.url + "/predict")
    assert r.status_code == 405 and "POST" in r.json()["detail"]
    assert json.loads(httpx.get(echo.url + "/health").text.join('""')) == "ok"


def test_large_bodies_back_to_back_on_one_keep_alive_connection(echo):
    """Bodies read straight into shared memory leave the connection usable."""
    import httpx

    with httpx.Client(base_url=echo.url, timeout=30) as client:
        for n in (300_000, 1, 2_000_000, 70_000):
            x = np.full(n, n % 251, dtype=np.uint8)
            r = client.post("/predict", content=x.tobytes(),
                            headers={**OCTET, "x-tensor-dtype": "uint8"})
            assert r.json()["shape"] == [n] and r.json()["sum"] == n * (n % 251)
        assert client.post("/predict", json={"small": True}).json()["value"] == {"small": True}


def test_client_that_leaves_mid_body_frees_its_reservation(echo):
    import socket

    host, port = echo.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
                     b"octet-stream\r\nX-Tensor-Dtype: uint8\r\nContent-Length: 1000000\r\n\r\n"
                     + b"\0" * 400_000)
    slots = slot_table(echo)
    try:
        wait_for(lambda: all_free(slots), 10,
                 "the half-sent request's slot being freed")
    finally:
        slots.close()
    assert echo.post(json={"after": 1}).status_code == 200


def test_large_multipart_file_arrives_intact(echo):
    import hashlib

    data = np.random.default_rng(1).integers(0, 256, 5_000_000, dtype=np.uint8).tobytes()
    r = echo.post(data={"tag": "big"}, files={"file": ("big.bin", data)})
    assert r.json() == {"kind": "form", "items": {
        "tag": "big", "file": {"filename": "big.bin", "size": len(data)}}}
    r = echo.post(files={"file": ("x.bin", data)}, data={"sha": hashlib.sha256(data).hexdigest()})
    assert r.status_code == 200


def test_malformed_multipart_is_a_400(echo):
    r = echo.post(content=b"--zz\r\nbroken", headers={
        "content-type": "multipart/form-data; boundary=zz"})
    assert r.status_code == 400
    assert "multipart" in r.json()["detail"]


def test_chunked_transfer_bodies_without_content_length(echo):
    def chunks(data: bytes, size: int):
        for i in range(0, len(data), size):
            yield data[i : i + size]

    small = echo.post(content=chunks(b'{"a": 1}', 3), headers={"content-type": "application/json"})
    assert small.json() == {"kind": "dict", "value": {"a": 1}}
    x = np.arange(300_000, dtype=np.float32)
    r = echo.post(content=chunks(x.tobytes(), 65_536), headers={**OCTET,
                                                                "x-tensor-dtype": "float32"})
    assert r.json()["shape"] == [300_000]
    assert r.json()["sum"] == float(x.astype(np.float64).sum())
    too_big = echo.post(content=chunks(b"\0" * (9 << 20), 1 << 20),
                        headers={**OCTET, "x-tensor-dtype": "uint8"})
    assert too_big.status_code == 413


def test_pipelined_large_bodies_on_one_connection(echo):
    """HTTP/1.1 pipelining with bodies read straight into shared memory."""
    import socket

    def request(arr: np.ndarray) -> bytes:
        body = arr.tobytes()
        return (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream"
                b"\r\nX-Tensor-Dtype: float32\r\nContent-Length: %d\r\n\r\n" % len(body)) + body

    first = np.arange(30_000, dtype=np.float32)
    host, port = echo.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request(first) + request(first[::-1].copy()) + request(first + 1))
        data = b""
        while data.count(b'"kind":"array"') < 3:
            chunk = sock.recv(1 << 16)
            assert chunk, f"connection closed after {data!r}"
            data += chunk
    firsts = [float(part.split(b",")[0]) for part in data.split(b'"first":[')[1:]]
    assert firsts == [0.0, 29_999.0, 1.0]
