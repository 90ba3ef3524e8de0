"""``litserve.AsyncClient`` against a real server process over real sockets."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from client_support import DTYPES, ServerProcess, free_port, same, sample

from litserve.client import AsyncClient, ConnectError, HTTPStatusError, Timeout


def run(server: ServerProcess, body: Callable[[AsyncClient], Awaitable[Any]],
        **options: Any) -> Any:
    async def main() -> Any:
        async with AsyncClient(server.url, **options) as client:
            return await asyncio.wait_for(body(client), 60)

    return asyncio.run(main())


def test_json_tensors_bundles(server: ServerProcess) -> None:
    async def body(c: AsyncClient) -> None:
        assert await c.predict({"input": 4}) == {"output": 16}
        for dtype in DTYPES:
            x = sample(dtype)
            assert same(await c.predict(x), x), dtype
        x = {"a": np.arange(6, dtype=">i4").reshape(2, 3), "b": np.array(2.5)}
        y = await c.predict(x)
        assert same(y["b"], x["b"]) and np.array_equal(y["a"], x["a"])
        assert y["a"].dtype == np.dtype("<i4")
        assert same(await c.predict(np.zeros((0, 3), np.float16)), np.zeros((0, 3), np.float16))
        strided = np.arange(40, dtype=np.float32).reshape(5, 8)[:, ::3]
        assert np.array_equal(await c.predict(strided), strided)

    run(server, body)


def test_npy_format(server: ServerProcess) -> None:
    async def body(c: AsyncClient) -> None:
        x = sample(np.dtype("complex64"), (4, 4))
        assert same(await c.predict(x), x)

    run(server, body, tensor_format="npy")


def test_array_of_128_mib_without_extra_copies(server: ServerProcess) -> None:
    x = np.arange((128 << 20) // 4, dtype=np.float32)

    async def body(c: AsyncClient) -> tuple[Any, int]:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            y = await c.predict(x)
            return y, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    y, peak = run(server, body)
    assert same(y, x)
    assert peak < x.nbytes + (16 << 20), f"peak {peak / 2**20:.0f} MiB for a 128 MiB answer"


def test_concurrent_calls(server: ServerProcess) -> None:
    async def body(c: AsyncClient) -> None:
        got = await asyncio.gather(*(c.predict({"input": i}) for i in range(50)))
        assert got == [{"output": i * i} for i in range(50)]
        arrays = [np.full((100, 100), i, np.int32) for i in range(10)]
        outs = await asyncio.gather(*(c.predict(a) for a in arrays))
        assert all(same(a, b) for a, b in zip(arrays, outs, strict=True))

    run(server, body)


def test_streams(server: ServerProcess) -> None:
    async def body(c: AsyncClient) -> None:
        assert [i async for i in c.stream({"n": 3}, path="/stream")] == [{"i": 0}, {"i": 1},
                                                                          {"i": 2}]
        assert [i async for i in c.stream({"n": 2, "text": True}, path="/stream")] == [
            "tok0 ", "tok1 "]
        req = {"messages": [{"role": "user", "content": "x y"}], "stream": True}
        chunks = [i async for i in c.stream(req, path="/v1/chat/completions")]
        assert [ch["choices"][0]["delta"].get("content") for ch in chunks] == ["x ", "y ", None]
        started = time.monotonic()
        agen = c.stream({"n": 3, "delay": 0.3}, path="/stream")
        assert await agen.__anext__() == {"i": 0}
        assert time.monotonic() - started < 0.9, "the first item waited for the whole stream"
        await agen.aclose()  # abandoned midway
        assert await c.predict({"input": 3}) == {"output": 9}

    run(server, body)


def test_errors_and_timeouts(server: ServerProcess) -> None:
    async def body(c: AsyncClient) -> None:
        with pytest.raises(HTTPStatusError) as info:
            await c.predict({}, path="/fail")
        assert (info.value.status_code, info.value.detail) == (500,
                                                               "refserver failed on purpose")
        with pytest.raises(HTTPStatusError, match="refserver failed"):
            [i async for i in c.stream({}, path="/fail")]
        started = time.monotonic()
        with pytest.raises(Timeout, match="0.3 s"):
            await c.predict({}, path="/slow?delay=2", timeout=0.3)
        assert time.monotonic() - started < 1.5
        with pytest.raises(Timeout):
            [i async for i in c.stream({"n": 2, "delay": 2}, path="/stream", timeout=0.3)]
        assert await c.predict({"input": 7}) == {"output": 49}
        assert await c.health()

    run(server, body)


def test_keep_alive_and_server_close(server: ServerProcess) -> None:
    async def body(c: AsyncClient) -> None:
        first = await c.predict(None, path="/conn")
        assert await c.predict(None, path="/conn") == first
        assert await c.predict({}, path="/close") == {"closed": True}
        assert await c.predict(None, path="/conn") != first

    run(server, body)


def test_api_key(keyed_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIT_SERVER_API_KEY", raising=False)

    async def denied(c: AsyncClient) -> None:
        with pytest.raises(HTTPStatusError) as info:
            await c.predict({"input": 2})
        assert info.value.status_code == 401

    async def allowed(c: AsyncClient) -> None:
        assert await c.predict({"input": 2}) == {"output": 4}

    run(keyed_server, denied)
    run(keyed_server, allowed, api_key="s3cret")


def test_connect_error_and_wait_ready() -> None:
    async def main() -> None:
        async with AsyncClient(f"http://127.0.0.1:{free_port()}") as c:
            with pytest.raises(ConnectError, match="cannot connect"):
                await c.predict({"input": 1})
            assert not await c.health()
            with pytest.raises(Timeout, match="health"):
                await c.wait_ready(timeout=0.3)

    asyncio.run(main())


def test_https(tls_server: ServerProcess) -> None:
    import ssl

    trusted = ssl.create_default_context(cafile=str(tls_server.cert))  # type: ignore[attr-defined]

    async def body(c: AsyncClient) -> None:
        assert await c.predict({"input": 3}) == {"output": 9}
        x = np.arange(1 << 20, dtype=np.int32)
        assert same(await c.predict(x), x)
        assert [i async for i in c.stream({"n": 2}, path="/stream")] == [{"i": 0}, {"i": 1}]

    run(tls_server, body, ssl_context=trusted)


def test_under_uvloop(server: ServerProcess) -> None:
    uvloop = pytest.importorskip("uvloop")
    x = np.arange(3 << 20, dtype=np.float64)  # 24 MiB: received through get_buffer

    async def main() -> None:
        async with AsyncClient(server.url) as c:
            assert same(await c.predict(x), x)
            assert [i async for i in c.stream({"n": 2}, path="/stream")] == [{"i": 0}, {"i": 1}]
            with pytest.raises(HTTPStatusError):
                await c.predict({}, path="/fail")

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(main(), 60))
    finally:
        loop.close()
