"""LitAPI(enable_async=True): async hooks, many requests in flight in one worker."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import litserve as ls
from litserve.errors import ConfigError
from litserve.specs.openai import OpenAISpec

from .harness import Server, board, serve, wait_for, wait_idle


def _gather(url: str, bodies: list[dict[str, Any]], timeout: float = 30
            ) -> tuple[list[httpx.Response], float]:
    """POST every body at once (one connection each); the responses and the seconds all
    of them took."""
    async def run() -> tuple[list[httpx.Response], float]:
        limits = httpx.Limits(max_connections=len(bodies))
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            await client.get(url.rsplit("/", 1)[0] + "/health")
            start = time.monotonic()
            rs = await asyncio.gather(*[client.post(url, json=b) for b in bodies])
            return list(rs), time.monotonic() - start

    return asyncio.run(run())


def _lines(r: httpx.Response) -> list[Any]:
    return [json.loads(line) for line in r.text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("aio") / "log"


@pytest.fixture(scope="module")
def sleepy(log: Path) -> Iterator[Server]:
    with serve("aio:Sleepy", timeout=1.5, env={"LITSERVE_TEST_LOG": str(log)}) as server:
        yield server


# -- concurrency ------------------------------------------------------------------------
def test_eight_awaiting_requests_run_at_once_in_one_worker(sleepy: Server):
    rs, took = _gather(sleepy.url + "/predict", [{"input": i} for i in range(8)])
    assert [r.json() for r in rs] == [{"output": i * i} for i in range(8)]
    # one after the other they would take 8 x 0.5 s
    assert took < 2.0, f"8 requests awaiting 0.5 s each took {took:.2f} s"


def test_many_requests_at_once(sleepy: Server):
    rs, took = _gather(sleepy.url + "/predict", [{"input": i, "sleep": 0.5} for i in range(64)])
    assert all(r.status_code == 200 for r in rs)
    assert [r.json()["output"] for r in rs] == [i * i for i in range(64)]
    assert took < 4.0, f"64 requests awaiting 0.5 s each took {took:.2f} s"


def test_http_exception_from_an_async_hook(sleepy: Server):
    r = sleepy.post(json={"input": 1, "fail": "decode"})
    assert r.status_code == 501
    assert r.json() == {"detail": "decode request is bad"}


def test_an_exception_is_a_500_without_its_text(sleepy: Server):
    r = sleepy.post(json={"input": 1, "fail": "predict", "sleep": 0})
    assert r.status_code == 500
    assert "secret" not in r.text and r.json()["detail"] == "Internal Server Error"
    request_id = r.headers["x-request-id"]
    wait_for(lambda: request_id in sleepy.output, 5, "the failure logged with its id")
    assert "Sleepy.predict" in sleepy.output


def test_a_deadline_cancels_the_awaiting_predict(sleepy: Server, log: Path):
    r = sleepy.post(json={"input": 1, "sleep": 30, "tag": "late"})
    assert r.status_code == 504
    wait_for(lambda: log.exists() and "cancelled late" in log.read_text(), 5,
             "predict cancelled after the deadline")
    wait_idle(sleepy)  # the worker posted the request's final record


def test_a_client_that_leaves_cancels_its_request(sleepy: Server, log: Path):
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(sleepy.url + "/predict", json={"input": 1, "sleep": 30, "tag": "gone"},
                   timeout=0.4)
    wait_for(lambda: log.exists() and "cancelled gone" in log.read_text(), 5,
             "predict cancelled when its client left")
    wait_idle(sleepy)
    assert sleepy.post(json={"input": 3, "sleep": 0}).json() == {"output": 9}


def test_busy_is_set_while_a_task_awaits_and_cleared_after(sleepy: Server):
    b = board(sleepy)
    try:
        wait_for(lambda: b.liveness(0)[1] == 0, 5, "no task running")

        async def run() -> tuple[int, httpx.Response]:
            async with httpx.AsyncClient(timeout=10) as client:
                pending = asyncio.ensure_future(
                    client.post(sleepy.url + "/predict", json={"input": 2, "sleep": 0.8}))
                await asyncio.sleep(0.4)
                busy = b.liveness(0)[1]
                return busy, await pending

        busy, r = asyncio.run(run())
        assert r.json() == {"output": 4}
        assert busy != 0, "busy was not set while predict awaited"
        wait_for(lambda: b.liveness(0)[1] == 0, 2, "busy cleared once no task runs")
    finally:
        b.close()


# -- upstream's shapes, batching ---------------------------------------------------------
@pytest.fixture(scope="module")
def shapes(log: Path) -> Iterator[Server]:
    # LitServe's tests/e2e/default_async_streaming.py: AsyncAPI(enable_async=True, stream=True)
    apis = ('aio:AsyncAPI({"enable_async": true, "stream": true});'
            'aio:Minimal({"enable_async": true, "api_path": "/min"});'
            'aio:PlainHooks({"enable_async": true, "api_path": "/plain"});'
            'aio:AsyncBatch({"api_path": "/batch"});'
            'aio:AsyncBatchStream({"api_path": "/bstream"})')
    with serve(apis, env={"LITSERVE_TEST_LOG": str(log)}) as server:
        yield server


def test_upstream_e2e_default_async_streaming(shapes: Server):
    r = shapes.post(json={"input": 4.0})
    assert r.status_code == 200
    assert [c["output"] for c in _lines(r)] == list(range(10))


def test_only_predict_async(shapes: Server):
    assert shapes.post("/min", json={"input": 2}).json() == {"output": 4}


def test_plain_decode_and_encode_run_in_threads(shapes: Server):
    rs, took = _gather(shapes.url + "/plain", [{"input": i} for i in range(4)])
    assert [r.json() for r in rs] == [{"output": i + 1} for i in range(4)]
    # 0.2 s blocking decode + 0.2 s await each: 1.6 s if the loop ran them in turn
    assert took < 1.2, f"took {took:.2f} s"


def _sizes(log: Path, what: str) -> list[int]:
    return [int(line.split()[1]) for line in log.read_text().splitlines()
            if line.startswith(what + " ")]


def test_batches_are_awaited_each_in_one_predict_and_overlap(shapes: Server, log: Path):
    before = len(_sizes(log, "batch")) if log.exists() else 0
    rs, took = _gather(shapes.url + "/batch", [{"input": [i, i]} for i in range(8)])
    assert [r.json() for r in rs] == [{"output": [2.0 * i, 2.0 * i]} for i in range(8)]
    sizes = _sizes(log, "batch")[before:]
    assert sum(sizes) == 8 and max(sizes) > 1, sizes
    # each batch awaits 0.3 s, after a window of at most 0.2 s
    assert took < 1.5, f"took {took:.2f} s"


def test_batched_async_stream(shapes: Server, log: Path):
    rs, _ = _gather(shapes.url + "/bstream", [{"input": i} for i in range(4)])
    for i, r in enumerate(rs):
        assert [c["output"] for c in _lines(r)] == [i * 10 + k for k in range(3)]
    assert max(_sizes(log, "stream-batch")) > 1


# -- streams ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def slow(log: Path) -> Iterator[Server]:
    with serve("aio:SlowStream", env={"LITSERVE_TEST_LOG": str(log)}) as server:
        yield server


def test_streams_run_at_once(slow: Server):
    rs, took = _gather(slow.url + "/predict", [{"n": 5, "every": 0.1} for _ in range(8)])
    for r in rs:
        assert r.headers["content-type"] == "application/x-ndjson"
        assert [c["output"] for c in _lines(r)] == list(range(5))
    assert took < 2.0, f"8 streams of 0.5 s took {took:.2f} s"


def test_a_client_that_leaves_closes_the_async_generator(slow: Server, log: Path):
    body = {"n": 100000, "every": 0.02, "tag": "left"}
    with httpx.stream("POST", slow.url + "/predict", json=body, timeout=30) as r:
        lines = r.iter_lines()
        assert [json.loads(next(lines)) for _ in range(3)] == [{"output": i} for i in range(3)]
    wait_for(lambda: log.exists() and "closed left" in log.read_text(), 5,
             "the generator closed after its client left")
    wait_idle(slow)


def test_an_error_mid_stream_ends_it_with_an_error_line(slow: Server):
    r = slow.post(json={"n": 5, "every": 0.01, "fail": 1})
    lines = _lines(r)
    assert lines[:2] == [{"output": 0}, {"output": 1}]
    assert lines[2]["detail"] == "Internal Server Error"
    assert len(lines) == 3


# -- OpenAISpec ---------------------------------------------------------------------------
@pytest.mark.parametrize("app", ["AsyncChat", "AsyncChatEncode"])
def test_openai_spec_with_async_predict(app: str):
    with serve(f"aio:{app}") as server:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        r = server.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        text = "async hello world" if app == "AsyncChat" else "ASYNC HELLO WORLD"
        assert r.json()["choices"][0]["message"]["content"] == text
        r = server.post("/v1/chat/completions", json={**body, "stream": True})
        events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        deltas = [json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1]]
        assert "".join(deltas) == text
        rs, took = _gather(server.url + "/v1/chat/completions", [body] * 8)
        assert all(r.json()["choices"][0]["message"]["content"] == text for r in rs)
        assert took < 1.5, f"8 chats of 0.15 s took {took:.2f} s"


def test_openai_embeddings_batched_with_async_predict():
    with serve("aio:AsyncEmbed") as server:
        texts = [["a" * (i + 1)] * (i % 3 + 1) for i in range(12)]
        rs, took = _gather(server.url + "/v1/embeddings",
                           [{"model": "m", "input": t} for t in texts])
        for t, r in zip(texts, rs, strict=True):
            assert r.status_code == 200, r.text
            rows = [d["embedding"] for d in r.json()["data"]]
            assert [row[0] for row in rows] == [len(x) for x in t]
        assert took < 2.5, f"took {took:.2f} s"


def test_a_worker_whose_tasks_make_no_progress_past_predict_timeout_is_replaced():
    with serve("aio:Sleepy", predict_timeout=1.0) as server:
        assert server.post(json={"input": 2, "sleep": 0.2}).json() == {"output": 4}
        r = server.post(json={"input": 2, "sleep": 30})
        assert r.status_code == 500
        wait_for(lambda: server.health() == 200, 30, "the replacement worker serving")
        assert server.post(json={"input": 3, "sleep": 0}).json() == {"output": 9}


# -- an async route and plain routes in one worker ---------------------------------------------
def test_a_worker_serving_async_and_plain_routes(tmp_path: Path):
    log = tmp_path / "log"
    apis = ('aio:Sleepy({"api_path": "/slow"});aio:PlainSquare({"api_path": "/square"});'
            'aio:PlainStream({"api_path": "/count", "stream": true})')
    with serve(apis, env={"LITSERVE_TEST_LOG": str(log)}) as server:
        assert server.post("/square", json={"input": 7}).json() == {"output": 49}
        r = server.post("/count", json={"input": 3})
        assert [c["output"] for c in _lines(r)] == [0, 1, 2]
        rs, took = _gather(server.url + "/slow", [{"input": i} for i in range(8)])
        assert [r.json()["output"] for r in rs] == [i * i for i in range(8)]
        assert took < 2.0
        rs, _ = _gather(server.url + "/square", [{"input": i} for i in range(16)])
        assert [r.json()["output"] for r in rs] == [i * i for i in range(16)]


def test_stopping_with_requests_in_flight(tmp_path: Path):
    log = tmp_path / "log"
    server = Server("aio:Sleepy", {"timeout": False}, env={"LITSERVE_TEST_LOG": str(log)})
    try:
        server.wait_ready()

        async def run() -> None:
            async with httpx.AsyncClient(timeout=30) as client:
                pending = [asyncio.ensure_future(client.post(
                    server.url + "/predict", json={"input": i, "sleep": 0.5})) for i in range(4)]
                await asyncio.sleep(0.2)
                server.terminate()
                rs = await asyncio.gather(*pending, return_exceptions=True)
                # the front lets what is in flight finish
                assert [r.json()["output"] for r in rs] == [i * i for i in range(4)]  # type: ignore[union-attr]

        asyncio.run(run())
        assert server.stop() == 0
    finally:
        server.kill_group()


# -- what is refused before anything starts ---------------------------------------------------
class _SyncPredict(ls.LitAPI):
    def predict(self, x):
        return x


class _AsyncPredict(ls.LitAPI):
    async def predict(self, x):
        return x


class _AsyncGenPredict(ls.LitAPI):
    async def predict(self, x):
        yield x


class _AsyncDecode(ls.LitAPI):
    async def decode_request(self, request):
        return request

    def predict(self, x):
        return x


class _PlainGenEncode(_AsyncGenPredict):
    def encode_response(self, outputs):
        yield from outputs


class _AsyncEncodeReturns(_AsyncGenPredict):
    async def encode_response(self, outputs):
        return outputs


class _PlainDecode(ls.LitAPI):
    def decode_request(self, request):
        return request

    async def predict(self, x):
        return x


def test_enable_async_needs_an_async_predict():
    # LitServe raises a ValueError; ConfigError is one
    with pytest.raises(ValueError, match=r"_SyncPredict.predict is a plain function, but "
                                         r"enable_async=True needs an async one"):
        _SyncPredict(enable_async=True)


@pytest.mark.parametrize("cls", [_AsyncPredict, _AsyncGenPredict, _AsyncDecode])
def test_async_hooks_need_enable_async(cls: type):
    api = cls()
    with pytest.raises(ConfigError, match="is async, but enable_async is not "
                                          "set: pass LitAPI"):
        ls.LitServer(api)


def test_a_plain_decode_under_enable_async_is_warned_about():
    with pytest.warns(UserWarning, match="_PlainDecode.decode_request is a plain function under "
                                         "enable_async=True; it will run in a thread"):
        _PlainDecode(enable_async=True)


def test_async_generator_predict_needs_stream():
    with pytest.raises(ConfigError, match="when `stream=False`"):
        ls.LitServer(_AsyncGenPredict(enable_async=True))
    ls.LitServer(_AsyncGenPredict(enable_async=True), stream=True)  # the server's option
    ls.LitServer(_AsyncGenPredict(enable_async=True, stream=True))


def test_stream_needs_async_generators():
    with pytest.raises(ConfigError, match="predict is not an async generator"):
        ls.LitServer(_AsyncPredict(enable_async=True, stream=True))
    with pytest.warns(UserWarning, match="will run in a thread"):
        api = _PlainGenEncode(enable_async=True, stream=True)
    with pytest.raises(ConfigError, match="encode_response is a plain generator"):
        ls.LitServer(api)
    with pytest.raises(ConfigError, match="encode_response is not a generator"):
        ls.LitServer(_AsyncEncodeReturns(enable_async=True, stream=True))


def test_openai_spec_needs_an_async_generator_predict():
    # LitServe's messages
    with pytest.raises(ConfigError, match="predict must be an async generator"):
        ls.LitServer(_AsyncPredict(enable_async=True, spec=OpenAISpec()))
    with pytest.raises(ValueError, match="encode_response is neither a generator nor an async "
                                         "generator"):
        ls.LitServer(_AsyncEncodeReturns(enable_async=True, spec=OpenAISpec()))
    with pytest.raises(ValueError, match="is async, but enable_async is not set"):
        ls.LitServer(_AsyncGenPredict(spec=OpenAISpec()))
    ls.LitServer(_AsyncGenPredict(enable_async=True, spec=OpenAISpec()))


def test_async_batching_is_accepted():
    # LitServe refuses it ("Async batching is not supported"); it is served here
    ls.LitServer(_AsyncPredict(enable_async=True, max_batch_size=8, batch_timeout=0.01))
