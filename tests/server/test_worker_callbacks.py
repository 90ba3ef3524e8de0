"""LitServer(callbacks=[...]): the worker-side events, in the worker processes, in
LitServe's order (per request, or per batch), with lit_api=<the LitAPI>."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from .harness import APPS, PYTHON, Server, pids, wait_for

UNARY = ["on_before_decode_request", "on_after_decode_request", "on_before_predict",
         "on_after_predict", "on_before_encode_response", "on_after_encode_response"]
# a stream's predict and encode_response run together; both end with its last chunk
STREAM = ["on_before_decode_request", "on_after_decode_request", "on_before_predict",
          "on_before_encode_response", "on_after_predict", "on_after_encode_response"]


@contextmanager
def recorded(apis: str, log: Path, **server_kwargs: object) -> Iterator[Server]:
    """A server of apps/aio.py's ``apis`` with callbacks=[Recorder()] (apps/aio.py runs it)."""
    argv = [PYTHON, str(APPS / "aio.py"), apis, json.dumps(server_kwargs)]
    server = Server("", argv=argv, env={"LITSERVE_TEST_LOG": str(log)})
    try:
        server.wait_ready()
        yield server
        assert server.stop() == 0, server.output
    finally:
        server.kill_group()


class Events:
    """The events the callbacks noted in the log, from a mark on."""

    def __init__(self, log: Path) -> None:
        self.log, self.mark = log, 0

    def lines(self) -> list[list[str]]:
        text = self.log.read_text() if self.log.exists() else ""
        lines = [line.split() for line in text.splitlines()]
        return [e for e in lines if len(e) == 3 and e[0].isdigit()]  # not the apps' notes

    def since(self, count: int, timeout: float = 5.0) -> list[list[str]]:
        """The next ``count`` events (waiting for them), then the mark moves past them."""
        wait_for(lambda: len(self.lines()) >= self.mark + count, timeout, f"{count} events")
        got = self.lines()[self.mark :]
        self.mark += len(got)
        return got

    def skip(self) -> None:
        self.mark = len(self.lines())


def _names(events: list[list[str]]) -> list[str]:
    return [e[1] for e in events]


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Events]]:
    log = tmp_path_factory.mktemp("cb") / "log"
    apis = ('Square;Counting({"api_path": "/count", "stream": true});'
            'Square({"api_path": "/batch", "max_batch_size": 4, "batch_timeout": 0.5});'
            'Chat({"openai": true})')
    with recorded(apis, log) as server:
        yield server, Events(log)


def test_setup_events_run_in_the_worker_around_setup(plain: tuple[Server, Events]):
    server, events = plain
    worker = str(pids(server, "worker")[0])
    got = events.since(0)  # everything so far
    setup = [e for e in got if e[1] in ("on_before_setup", "setup", "on_after_setup")]
    assert setup[:3] == [[worker, "on_before_setup", "Square"], [worker, "setup", "Square"],
                         [worker, "on_after_setup", "Square"]]
    assert [e[1] for e in setup].count("on_before_setup") == 4  # one per LitAPI
    assert all(e[0] == worker for e in got)


def test_a_request_s_events_in_order(plain: tuple[Server, Events]):
    server, events = plain
    events.skip()
    assert server.post(json={"input": 3}).json() == {"output": 9}
    got = events.since(6)
    assert _names(got) == UNARY
    assert {e[2] for e in got} == {"Square"}
    assert got[0][0] == str(pids(server, "worker")[0])


def test_a_batch_fires_each_event_once(plain: tuple[Server, Events]):
    server, events = plain
    events.skip()

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*[client.post(server.url + "/batch", json={"input": i})
                                          for i in range(4)])

    rs = asyncio.run(run())
    assert [r.json()["output"] for r in rs] == [0, 1, 4, 9]
    assert _names(events.since(6)) == UNARY
    assert events.lines()[events.mark :] == []


def test_a_stream_s_events(plain: tuple[Server, Events]):
    server, events = plain
    events.skip()
    r = server.post("/count", json={"input": 3})
    assert [json.loads(line)["output"] for line in r.text.splitlines()] == [0, 1, 2]
    assert _names(events.since(6)) == STREAM


def test_a_spec_request_s_events(plain: tuple[Server, Events]):
    server, events = plain
    events.skip()
    r = server.post("/v1/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert r.json()["choices"][0]["message"]["content"] == "hi there"
    assert _names(events.since(6)) == STREAM


def test_a_hook_that_raises_skips_the_events_after_it(plain: tuple[Server, Events]):
    server, events = plain
    events.skip()
    assert server.post(json={"input": "fail"}).status_code == 500
    assert _names(events.since(3)) == UNARY[:3]
    assert server.post(json={"input": 2}).json() == {"output": 4}
    assert _names(events.since(6)) == UNARY


@pytest.fixture(scope="module")
def aio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Events]]:
    log = tmp_path_factory.mktemp("cb") / "log"
    apis = ('Sleepy({"seconds": 0.1});SlowStream({"api_path": "/stream"});'
            'AsyncBatch({"api_path": "/batch"})')
    with recorded(apis, log) as server:
        yield server, Events(log)


def test_async_request_and_stream_events(aio: tuple[Server, Events]):
    server, events = aio
    events.skip()
    assert server.post(json={"input": 3}).json() == {"output": 9}
    got = events.since(6)
    assert _names(got) == UNARY and {e[2] for e in got} == {"Sleepy"}
    assert got[0][0] == str(pids(server, "worker")[0])
    r = server.post("/stream", json={"n": 2, "every": 0.01})
    assert len(r.text.splitlines()) == 2
    got = events.since(6)
    assert _names(got) == STREAM and {e[2] for e in got} == {"SlowStream"}


def test_async_batch_events(aio: tuple[Server, Events]):
    server, events = aio
    events.skip()

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*[client.post(server.url + "/batch",
                                                      json={"input": [i]}) for i in range(4)])

    rs = asyncio.run(run())
    assert [r.json()["output"] for r in rs] == [[0.0], [2.0], [4.0], [6.0]]
    assert _names(events.since(6)) == UNARY


def test_callbacks_that_raise_do_not_fail_requests(tmp_path: Path):
    log = tmp_path / "log"
    with recorded("Square;Sleepy({\"api_path\": \"/aio\", \"seconds\": 0})", log,
                  broken_callbacks=True) as server:
        assert server.post(json={"input": 3}).json() == {"output": 9}
        assert server.post("/aio", json={"input": 3}).json() == {"output": 9}
        wait_for(lambda: "callback Broken raised in on_before_predict" in server.output, 5,
                 "the broken callback logged")
