"""``Client`` and ``AsyncClient`` against the real litserve server (``LitServer.run``)."""

from __future__ import annotations

import asyncio
import tracemalloc

import numpy as np
import pytest
from client_support import DTYPES, ServerProcess, litserver, same, sample

from litserve.client import AsyncClient, Client, HTTPStatusError


@pytest.fixture
def client(real_server: ServerProcess) -> Client:
    with Client(real_server.url) as c:
        yield c


@pytest.mark.parametrize("fmt", ["octet", "npy"])
def test_every_dtype_round_trips(real_server: ServerProcess, fmt: str) -> None:
    with Client(real_server.url, tensor_format=fmt) as c:
        for dtype in DTYPES:
            x = sample(dtype)
            assert same(c.predict(x), x), dtype
        bundle = {dt.str: sample(dt, (2, 2)) for dt in DTYPES}
        got = c.predict(bundle)
        assert set(got) == set(bundle) and all(same(got[k], v) for k, v in bundle.items())


def test_zero_d_empty_non_contiguous_big_endian(client: Client) -> None:
    for x in (np.array(2.5), np.array(True), np.zeros((0,), np.int8), np.zeros((3, 0), np.float32)):
        assert same(client.predict(x), x)
    grid = np.arange(60, dtype=np.float32).reshape(6, 10)
    for x in (grid[:, ::3], grid.T, np.asfortranarray(grid), grid[::-1]):
        y = client.predict(x)
        assert np.array_equal(y, x) and y.dtype == x.dtype
    be = np.arange(8, dtype=">f8").reshape(2, 4)
    y = client.predict(be)
    assert y.dtype == np.dtype("<f8") and np.array_equal(y, be)


def test_array_of_100_mib(client: Client) -> None:
    x = np.arange((100 << 20) // 2, dtype=np.uint16)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        y = client.predict(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert same(y, x) and peak < x.nbytes + (8 << 20)


def test_json_stream_and_openai(client: Client) -> None:
    assert client.predict({"input": 3}) == {"output": 9}
    assert list(client.stream({"n": 4}, path="/stream")) == [{"i": i} for i in range(4)]
    req = {"model": "m", "messages": [{"role": "user", "content": "hi there"}], "stream": True}
    chunks = list(client.stream(req, path="/v1/chat/completions"))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "hi there "


def test_errors_carry_status_and_detail(client: Client, real_server: ServerProcess) -> None:
    with pytest.raises(HTTPStatusError) as info:
        client.predict({"fail": True})
    assert (info.value.status_code, info.value.detail) == (500, "Internal Server Error")
    # the exception's text is only in the server's log (written before the answer was sent)
    request_id = info.value.headers["x-request-id"]
    assert "failed on purpose" in real_server.output().split(request_id, 1)[1]
    with pytest.raises(HTTPStatusError) as info:
        client.predict({"bad": True})
    assert (info.value.status_code, info.value.detail) == (422, "bad request on purpose")
    assert client.predict({"input": 2}) == {"output": 4}


def test_async_client(real_server: ServerProcess) -> None:
    async def main() -> None:
        async with AsyncClient(real_server.url) as c:
            xs = [np.full((16, 16), i, np.float32) for i in range(8)]
            ys = await asyncio.gather(*(c.predict(x) for x in xs))
            assert all(same(x, y) for x, y in zip(xs, ys, strict=True))
            assert [i async for i in c.stream({"n": 2}, path="/stream")] == [{"i": 0}, {"i": 1}]
            with pytest.raises(HTTPStatusError, match="500 .*: Internal Server Error$"):
                await c.predict({"fail": True})

    asyncio.run(main())


def test_api_key() -> None:
    srv = litserver({"LIT_SERVER_API_KEY": "k3y"})
    try:
        with pytest.raises(HTTPStatusError) as info:
            Client(srv.url, api_key="wrong").predict({"input": 1})
        assert info.value.status_code == 401
        assert Client(srv.url, api_key="k3y").predict({"input": 5}) == {"output": 25}
    finally:
        srv.stop()
