"""``litserve.Client`` against a real server process over real sockets."""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np
import pytest
from client_support import DTYPES, ServerProcess, free_port, same, sample

from litserve.client import Client, ConnectError, HTTPStatusError, Timeout


@pytest.fixture
def client(server: ServerProcess) -> Client:
    with Client(server.url, timeout=30) as c:
        yield c


def test_json_round_trip(client: Client) -> None:
    assert client.predict({"input": 4}) == {"output": 16}
    assert client.predict([1, "a", None]) == {"output": [1, "a", None]}
    assert client.predict({"input": np.float32(1.5)}) == {"output": 2.25}


@pytest.mark.parametrize("fmt", ["octet", "npy"])
def test_every_dtype_round_trips_in_binary(server: ServerProcess, fmt: str) -> None:
    with Client(server.url, tensor_format=fmt) as c:
        for dtype in DTYPES:
            x = sample(dtype)
            y = c.predict(x)
            assert isinstance(y, np.ndarray) and same(y, x), dtype


def test_every_dtype_round_trips_in_a_bundle(client: Client) -> None:
    x = {dt.name + dt.str: sample(dt, (2, 3)) for dt in DTYPES}
    y = client.predict(x)
    assert set(y) == set(x)
    for name in x:
        assert same(y[name], x[name]), name


@pytest.mark.parametrize("x", [np.array(3.5), np.array(7, np.int16), np.zeros((0,), np.float32),
                               np.zeros((4, 0, 2), np.uint8), np.zeros((0, 0), np.complex64)],
                         ids=["0d-float", "0d-int16", "empty", "empty-3d", "empty-complex"])
def test_zero_d_and_empty_arrays(client: Client, x: np.ndarray) -> None:
    y = client.predict(x)
    assert same(y, x)
    assert same(client.predict({"t": x})["t"], x)


@pytest.mark.parametrize("make", [lambda a: a[:, ::2], lambda a: a.T, lambda a: a[::-1],
                                  np.asfortranarray, lambda a: a[1:3, 2:5]],
                         ids=["strided", "transposed", "reversed", "fortran", "slice"])
def test_non_contiguous_inputs(client: Client, make: object) -> None:
    x = make(np.arange(48, dtype=np.float64).reshape(6, 8))  # type: ignore[operator]
    assert not x.flags.c_contiguous or x.base is not None
    y = client.predict(x)
    assert y.flags.c_contiguous and np.array_equal(y, x) and y.dtype == x.dtype


@pytest.mark.parametrize("dtype", [">i2", ">u4", ">f8", ">c16", ">f2"])
def test_big_endian_inputs_are_sent_little_endian(client: Client, dtype: str) -> None:
    x = np.arange(12).astype(dtype).reshape(3, 4)
    y = client.predict(x)
    assert y.dtype == np.dtype(dtype).newbyteorder("<") and np.array_equal(y, x)


def test_torch_tensors_are_sent_in_binary(client: Client) -> None:
    torch = pytest.importorskip("torch")
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    y = client.predict(t)
    assert isinstance(y, np.ndarray) and np.array_equal(y, t.numpy())
    assert same(client.predict({"t": t[:, 1]})["t"], t[:, 1].numpy())
    with pytest.raises(TypeError, match="bfloat16"):
        client.predict(t.to(torch.bfloat16))


def test_unsupported_values_are_refused_clearly(client: Client) -> None:
    with pytest.raises(TypeError, match="cannot be sent in the binary format"):
        client.predict(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="not JSON serialisable"):
        client.predict({"x": object()})


def test_binary_flag_picks_the_answer_format(client: Client) -> None:
    x = np.arange(4, dtype=np.int32)
    assert client.predict(x, binary=False) == {"output": [0, 1, 2, 3]}
    assert same(client.predict(x), x)


def test_array_of_128_mib_without_extra_copies(client: Client) -> None:
    x = np.arange((128 << 20) // 8, dtype=np.float64)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        y = client.predict(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert same(y, x)
    # the answer itself is the only allocation of its size: nothing was copied on the way
    assert peak < x.nbytes + (8 << 20), f"peak {peak / 2**20:.0f} MiB for a 128 MiB answer"


def test_stream_ndjson_text_and_sse(client: Client) -> None:
    assert list(client.stream({"n": 4}, path="/stream")) == [{"i": i} for i in range(4)]
    assert list(client.stream({"n": 3, "text": True}, path="/stream")) == ["tok0 ", "tok1 ",
                                                                            "tok2 "]
    req = {"messages": [{"role": "user", "content": "one two"}], "stream": True}
    chunks = list(client.stream(req, path="/v1/chat/completions"))
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["one ", "two ", None]


def test_stream_items_arrive_as_they_are_produced(client: Client) -> None:
    started = time.monotonic()
    stream = client.stream({"n": 3, "delay": 0.3}, path="/stream")
    assert next(stream) == {"i": 0}
    assert time.monotonic() - started < 0.9, "the first item waited for the whole stream"
    assert list(stream) == [{"i": 1}, {"i": 2}]


def test_stream_abandoned_midway_leaves_the_client_usable(client: Client) -> None:
    for item in client.stream({"n": 50, "delay": 0.01}, path="/stream"):
        assert item == {"i": 0}
        break
    assert client.predict({"input": 3}) == {"output": 9}


def test_errors_carry_status_and_detail(client: Client, server: ServerProcess) -> None:
    with pytest.raises(HTTPStatusError) as info:
        client.predict({"input": 1}, path="/fail")
    assert info.value.status_code == info.value.status == 500
    assert info.value.detail == "refserver failed on purpose"
    assert "500" in str(info.value) and "/fail" in str(info.value)
    with pytest.raises(HTTPStatusError) as info:
        client.predict({}, path="/nowhere")
    assert (info.value.status_code, info.value.detail) == (404, "Not Found")
    with pytest.raises(HTTPStatusError, match="refserver failed on purpose"):
        list(client.stream({}, path="/fail"))
    assert client.predict({"input": 2}) == {"output": 4}  # the connection survived


def test_timeout_raises_and_the_client_recovers(client: Client) -> None:
    started = time.monotonic()
    with pytest.raises(Timeout, match="timeout of 0.3 s") as info:
        client.predict({}, path="/slow?delay=5", timeout=0.3)
    assert isinstance(info.value, TimeoutError)
    assert time.monotonic() - started < 2.0
    with pytest.raises(Timeout):
        list(client.stream({"n": 2, "delay": 3}, path="/stream", timeout=0.3))
    assert client.predict({"input": 5}) == {"output": 25}
    assert client.predict({}, path="/slow?delay=0.05", timeout=None) == {"slept": 0.05}


def test_connect_error_when_nothing_listens() -> None:
    with pytest.raises(ConnectError, match="cannot connect") as info:
        Client(f"http://127.0.0.1:{free_port()}", timeout=5).predict({"input": 1})
    assert isinstance(info.value, ConnectionError)
    assert not Client(f"http://127.0.0.1:{free_port()}").health()


def test_api_key(keyed_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIT_SERVER_API_KEY", raising=False)
    with pytest.raises(HTTPStatusError) as info:
        Client(keyed_server.url).predict({"input": 2})
    assert info.value.status_code == 401 and "X-API-Key" in info.value.detail
    assert Client(keyed_server.url, api_key="s3cret").predict({"input": 2}) == {"output": 4}
    monkeypatch.setenv("LIT_SERVER_API_KEY", "s3cret")
    assert Client(keyed_server.url).predict({"input": 3}) == {"output": 9}


def test_keep_alive_reuses_one_connection(client: Client) -> None:
    first = client.predict(None, path="/conn")
    assert client.predict(None, path="/conn") == first
    assert client.predict({}, path="/close") == {"closed": True}  # server closes after it
    third = client.predict(None, path="/conn")
    assert third != first
    assert client.predict(None, path="/conn") == third


def test_a_connection_the_server_closed_while_idle_is_replaced(server: ServerProcess) -> None:
    c = Client(server.url)
    assert c.predict({"input": 1}) == {"output": 1}
    (conn,) = c._idle
    conn.sock.shutdown(2)  # as if the server had closed the idle connection
    assert c.predict({"input": 6}) == {"output": 36}


def test_headers_sent(server: ServerProcess) -> None:
    c = Client(server.url, headers={"X-Trace": "7"})
    got = c.predict(None, path="/headers", headers={"X-Call": "1"})
    assert got["x-trace"] == "7" and got["x-call"] == "1"
    assert got["user-agent"].startswith("litserve-client/")
    assert got["host"] == f"127.0.0.1:{server.port}"


def test_threads_share_one_client(client: Client) -> None:
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(20):
                assert client.predict({"input": k * 100 + i}) == {"output": (k * 100 + i) ** 2}
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and not any(t.is_alive() for t in threads)


def test_health_and_wait_ready(client: Client) -> None:
    assert client.health()
    client.wait_ready(timeout=5)
    dead = Client(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(Timeout, match="health"):
        dead.wait_ready(timeout=0.3)


@pytest.mark.parametrize("kwargs,match", [
    ({"url": "ftp://x"}, "not supported"),
    ({"url": "http://h:1/p", "api_path": "/q"}, "not both"),
    ({"timeout": 0}, "timeout=0"),
    ({"timeout": -1}, "timeout=-1"),
    ({"tensor_format": "pickle"}, "tensor_format='pickle'"),
])
def test_bad_options_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Client(**kwargs)  # type: ignore[arg-type]


def test_url_forms() -> None:
    assert Client("127.0.0.1:9").endpoint.path == "/predict"
    assert Client("http://h:9/v1/embed").endpoint.path == "/v1/embed"
    assert Client("http://h:9", api_path="/x").endpoint.path == "/x"
    assert Client("http://h:9/x?y=1").endpoint.path == "/x?y=1"
    assert Client("https://h").endpoint.host_header == "h"


def test_https(tls_server: ServerProcess) -> None:
    import ssl

    trusted = ssl.create_default_context(cafile=str(tls_server.cert))  # type: ignore[attr-defined]
    with Client(tls_server.url, ssl_context=trusted) as c:
        assert c.predict({"input": 3}) == {"output": 9}
        x = np.arange(1 << 20, dtype=np.float32)
        assert same(c.predict(x), x)
        assert list(c.stream({"n": 2}, path="/stream")) == [{"i": 0}, {"i": 1}]
    with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        Client(tls_server.url).predict({"input": 1})


def test_redirects_are_errors_not_answers(client: Client) -> None:
    with pytest.raises(HTTPStatusError, match="redirected to .*/predict;") as info:
        client.predict({"input": 2}, path="/predict/")
    assert info.value.status_code == 307
    assert client.predict({"input": 2}) == {"output": 4}
