"""Dynamic batching and streaming through real workers."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from litserve.ipc.slots import CLAIMED

from .harness import all_free, serve, slot_table, states, wait_for, wait_idle


def _concurrently(url: str, bodies: list[dict]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda b: httpx.post(url, json=b, timeout=30), bodies))


def test_concurrent_requests_are_stacked_into_one_batch(tmp_path: Path):
    log = tmp_path / "batches"
    with serve("basic:Batched", max_batch_size=8, batch_timeout=0.5,
               env={"LITSERVE_TEST_LOG": str(log)}) as server:
        rs = _concurrently(server.url + "/predict", [{"input": [i, i]} for i in range(8)])
        outs = [r.json() for r in rs]
        assert [o["value"] for o in outs] == [[2 * i, 2 * i] for i in range(8)]
        sizes = [int(line.split()[1]) for line in log.read_text().splitlines()]
        assert sum(sizes) == 8 and max(sizes) >= 4, sizes


def test_a_lone_request_waits_at_most_the_batch_window():
    with serve("basic:Batched", max_batch_size=16, batch_timeout=0.05) as server:
        r = server.post(json={"input": [1.5]})
        assert r.json() == {"n": 1, "value": [3.0]}


def test_custom_batch_and_unbatch():
    with serve("basic:CustomBatch", max_batch_size=4, batch_timeout=0.3) as server:
        rs = _concurrently(server.url + "/predict", [{"input": i} for i in range(4)])
        assert sorted(r.json()["out"] for r in rs) == [0, 10, 20, 30]


def test_unbatch_count_mismatch_is_500_naming_both_numbers():
    with serve("basic:BadUnbatch", max_batch_size=2, batch_timeout=0.01) as server:
        r = server.post(json={"input": 1})
        assert r.status_code == 500
        assert r.json()["detail"] == ("unbatch returned 2 outputs for a batch of 1 requests; "
                                      "they must match")


def test_context_is_a_list_of_dicts_under_batching():
    with serve("basic:Contextual", max_batch_size=4, batch_timeout=0.3) as server:
        rs = _concurrently(server.url + "/predict", [{"input": i} for i in range(3)])
        for i, r in enumerate(rs):
            ctx = r.json()["context"]
            assert ctx["seen"] == i and ctx["batch"] >= 1


def test_options_on_the_litapi_and_several_apis_on_their_paths():
    apis = ('basic:Options({"max_batch_size": 4, "batch_timeout": 0.3, "api_path": "/b"})'
            ";basic:Square")
    with serve(apis) as server:
        rs = _concurrently(server.url + "/b", [{"input": i} for i in range(4)])
        assert sorted(r.json()["v"] for r in rs) == [0, 1, 2, 3]
        assert max(r.json()["n"] for r in rs) >= 2
        assert server.post("/predict", json={"input": 3}).json() == {"output": 9}


@pytest.fixture(scope="module")
def streamer():
    with serve("basic:Streamer", stream=True) as server:
        yield server


def test_stream_chunks_arrive_in_order(streamer):
    r = streamer.post(json={"n": 4})
    assert r.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(line) for line in r.text.splitlines()] == [{"i": i} for i in range(4)]


def test_first_chunk_arrives_before_the_generator_ends(streamer, tmp_path: Path):
    gate = tmp_path / "gate"
    with httpx.stream("POST", streamer.url + "/predict",
                      json={"n": 3, "gate": str(gate)}, timeout=30) as r:
        lines = r.iter_lines()
        assert json.loads(next(lines)) == {"i": 0}  # the generator is blocked on the gate
        gate.touch()
        assert [json.loads(line) for line in lines] == [{"i": 1}, {"i": 2}]


def test_exception_mid_stream_ends_the_stream_with_an_error_line(streamer):
    r = streamer.post(json={"n": 5, "fail_at": 2})
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert lines[:2] == [{"i": 0}, {"i": 1}]
    assert set(lines[2]) == {"detail", "request_id"}  # the exception's text stays in the log
    assert lines[2]["detail"] == "Internal Server Error" and "broke" not in r.text
    line = f"request {lines[2]['request_id']} failed in Streamer: RuntimeError: generator broke"
    wait_for(lambda: line in streamer.output, 10, f"the log line {line!r}")
    assert streamer.post(json={"n": 1}).text.strip() == '{"i":0}'


def test_batched_streaming_sends_each_request_its_own_chunks():
    with serve("basic:BatchStreamer", stream=True, max_batch_size=4, batch_timeout=0.3) as server:
        rs = _concurrently(server.url + "/predict", [{"n": n} for n in (1, 2, 3)])
        for n, r in zip((1, 2, 3), rs, strict=True):
            assert [json.loads(line)["i"] for line in r.text.splitlines()] == list(range(3)), n


def test_batched_stream_stops_when_every_client_left(tmp_path: Path):
    log = tmp_path / "steps"
    with serve("basic:EndlessBatch", stream=True, max_batch_size=2, batch_timeout=0.05,
               env={"LITSERVE_TEST_LOG": str(log)}) as server:
        with httpx.stream("POST", server.url + "/predict", json={}, timeout=30) as r:
            lines = r.iter_lines()
            assert [json.loads(next(lines)) for _ in range(3)] == [{"i": 0}, {"i": 1}, {"i": 2}]
        slots = slot_table(server)
        try:
            wait_for(lambda: all_free(slots), 20, "the abandoned batch ending")
        finally:
            slots.close()
        assert len(log.read_text().splitlines()) < 1000, "the batch kept generating"


def test_stream_stops_when_the_client_leaves(tmp_path: Path):
    log = tmp_path / "chunks"
    with serve("basic:Endless", stream=True, env={"LITSERVE_TEST_LOG": str(log)}) as server:
        with httpx.stream("POST", server.url + "/predict", json={}, timeout=30) as r:
            lines = r.iter_lines()
            assert [json.loads(next(lines)) for _ in range(3)] == [{"i": 0}, {"i": 1}, {"i": 2}]
        slots = slot_table(server)
        try:  # the worker ends the abandoned stream; the front then frees its slot
            wait_for(lambda: all_free(slots), 20, "the abandoned stream ending")
        finally:
            slots.close()
        produced = len(log.read_text().splitlines())
        assert produced < 1000, "the generator kept running for a client that left"


def test_requests_of_other_routes_in_a_batch_window_are_each_answered():
    """A worker that opened a batch window for one route takes every request off the
    ring meanwhile, whatever its route; each of them is answered (on the old code a
    route without batching answered only the first of its requests in the window: the
    others waited for their timeout, or got an empty stream, and kept their slots)."""
    apis = ('basic:Batched({"api_path": "/b", "max_batch_size": 8, "batch_timeout": 1.0});'
            'basic:Square;basic:Streamer({"api_path": "/s", "stream": true})')
    with serve(apis, timeout=10) as server:
        slots = slot_table(server)
        with ThreadPoolExecutor(8) as pool:
            batched = pool.submit(server.post, "/b", json={"input": [1.0]})
            wait_for(lambda: CLAIMED in states(slots), 10, "the batch window opening")
            squares = [pool.submit(server.post, json={"input": i}) for i in range(3)]
            streams = [pool.submit(server.post, "/s", json={"n": 2 + i}) for i in range(3)]
            assert [f.result(timeout=20).json() for f in squares] == [
                {"output": i * i} for i in range(3)]
            for i, f in enumerate(streams):
                assert [json.loads(x) for x in f.result(timeout=20).text.splitlines()] == [
                    {"i": k} for k in range(2 + i)]
            assert batched.result(timeout=20).json()["value"] == [2.0]
        slots.close()
        wait_idle(server)
