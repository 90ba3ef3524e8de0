"""LitAPI(loop=...): upstream's loop classes, and continuous batching in the worker."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

import litserve as ls
from litserve.api import validate_api
from litserve.errors import ConfigError
from litserve.loops import (
    BatchedLoop,
    BatchedStreamingLoop,
    ContinuousBatchingLoop,
    DefaultContinuousBatchingLoop,
    DefaultLoop,
    LitLoop,
    Output,
    SingleLoop,
    StreamingLoop,
    check_options,
)

from .harness import Server, serve, wait_for, wait_idle

APIS = ('loops:Counter({"max_sequence_length": 2000});loops:Stepper;'
        'loops:Counter({"max_batch_size": 2, "api_path": "/two"})')


@pytest.fixture(scope="module")
def server():
    with serve(APIS) as s:
        yield s


def _lines(r: httpx.Response) -> list[Any]:
    return [json.loads(line) for line in r.text.splitlines()]


def _concurrently(url: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda b: httpx.post(url, json=b, timeout=60), bodies))


def test_each_stream_gets_its_own_tokens(server):
    rs = _concurrently(server.url + "/predict", [{"n": n} for n in (1, 3, 5)])
    for n, r in zip((1, 3, 5), rs, strict=True):
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
        assert [line["i"] for line in _lines(r)] == list(range(n))


def test_concurrent_streams_share_steps(server):
    """Each of 8 streams ends only after one of its steps ran all 8 together: they can
    only finish if requests join the running batch (else each would run alone to
    max_sequence_length, 2000, and the last token would say batch 1)."""
    rs = _concurrently(server.url + "/predict", [{"until_batch": 8}] * 8)
    for r in rs:
        lines = _lines(r)
        assert [line["i"] for line in lines] == list(range(len(lines)))
        assert lines[-1]["batch"] == 8, lines[-3:]


def test_a_client_leaving_mid_stream_frees_its_place(server):
    """Room for two: A and B run, C waits; A's client leaves, and C joins B's batch
    while B still runs (B would need 20000 steps to make room otherwise)."""
    url, endless = server.url + "/two", {"n": 10**9}
    with httpx.stream("POST", url, json=endless, timeout=60) as b:
        b_lines = b.iter_lines()
        with httpx.stream("POST", url, json=endless, timeout=60) as a:
            a_lines = a.iter_lines()
            json.loads(next(a_lines))
            wait_for(lambda: json.loads(next(b_lines))["batch"] == 2, 20, "A and B sharing a step")
            with ThreadPoolExecutor(1) as pool:
                c = pool.submit(_first_line, url, {"n": 3})
                a.close()  # A's client leaves
                first = c.result(timeout=30)
        assert first == {"i": 0, "batch": 2}  # C shares the step with B, in A's place
        assert "i" in json.loads(next(b_lines))  # B still runs
    wait_idle(server)  # every slot and arena byte given back, B's too


def _first_line(url: str, body: dict[str, Any]) -> Any:
    with httpx.stream("POST", url, json=body, timeout=60) as r:
        return json.loads(next(r.iter_lines()))


def test_a_step_that_raises_fails_its_requests_and_the_server_goes_on(server):
    r = server.post(json={"boom": True, "n": 3})
    assert r.status_code == 500 and r.json()["detail"] == "Internal Server Error"
    line = f"request {r.json()['request_id']} failed in Counter.step: RuntimeError"
    wait_for(lambda: line in server.output, 10, f"the log line {line!r}")
    assert [line["i"] for line in _lines(server.post(json={"n": 2}))] == [0, 1]


def test_encode_response_raising_ends_only_its_own_stream(server):
    """A stream fails at its second token; the stream sharing its steps goes on."""
    url = server.url + "/two"
    with httpx.stream("POST", url, json={"n": 10**9}, timeout=60) as other:
        lines = other.iter_lines()
        json.loads(next(lines))
        failed = _lines(httpx.post(url, json={"n": 5, "bad_encode": True}, timeout=60))
        assert failed[0]["i"] == 0 and failed[1]["detail"] == "Internal Server Error"
        assert len(failed) == 2
        line = f"request {failed[1]['request_id']} failed in Counter.encode_response"
        wait_for(lambda: line in server.output, 10, f"the log line {line!r}")
        wait_for(lambda: json.loads(next(lines))["batch"] == 1, 20, "the other stream going on")


def test_the_base_loop_runs_the_apis_own_step(server):
    """Upstream's style: the LitAPI keeps the sequences (add_request, has_capacity,
    step -> Output) and has no predict."""
    rs = _concurrently(server.url + "/step", [{"n": n} for n in (2, 5, 3)])
    for n, r in zip((2, 5, 3), rs, strict=True):
        assert _lines(r) == [{"output": i} for i in range(n)]


def test_continuous_batching_without_stream_is_refused_at_start():
    s = Server("loops:NotStreaming")
    try:
        wait_for(lambda: s.proc.poll() is not None, 60, "the server giving up")
        assert s.proc.returncode != 0
        wait_for(lambda: "set stream=True" in s.output, 10, "the reason in the output")
    finally:
        s.kill_group()


# -- the loop argument, in process ---------------------------------------------------------
class Plain(ls.LitAPI):
    def predict(self, x):
        return x


def test_upstreams_names_import_and_the_per_request_loops_mean_auto():
    assert ls.loops.Output("u", 1, "OK").uid == "u"
    for loop in (SingleLoop(), BatchedLoop(), StreamingLoop(), BatchedStreamingLoop(),
                 DefaultLoop()):
        assert Plain(loop=loop).loop is loop
    assert Plain().loop == "auto" and Plain(loop=None).loop == "auto"
    assert isinstance(Output, type) and issubclass(DefaultContinuousBatchingLoop,
                                                   ContinuousBatchingLoop)


def test_a_bad_loop_is_refused_naming_what_works():
    with pytest.raises(ConfigError, match=r"loop='fast' is not valid; use 'auto'"):
        Plain(loop="fast")

    class Custom(LitLoop):
        def run(self, lit_api, device, worker_id, request_queue, transport, *rest):
            request_queue.get()

    with pytest.raises(ConfigError, match=r"Custom\(\) overrides run, .* shared memory"):
        Plain(loop=Custom())
    with pytest.raises(ConfigError, match="not a loop litserve can run"):
        Plain(loop=type("Bare", (LitLoop,), {})())
    with pytest.raises(ConfigError, match="max_sequence_length=0"):
        ContinuousBatchingLoop(max_sequence_length=0)


def test_an_api_that_steps_itself_needs_no_predict():
    class Steps(ls.LitAPI):
        def step(self, prev_outputs):
            return []

    assert validate_api(Steps(loop=ContinuousBatchingLoop(), stream=True))
    with pytest.raises(ConfigError, match="does not implement predict"):
        validate_api(Steps(loop=DefaultContinuousBatchingLoop(), stream=True))


def test_a_request_waiting_for_room_meets_its_deadline_and_stop_lets_streams_end():
    """timeout=2 covers the first chunk: A and B hold both places, so C waits, gets its
    504 from the front, and the worker drops it (every slot comes back).  SIGTERM while
    A and B run: the fronts drain, the streams end, the server exits 0."""
    with serve('loops:Counter({"max_batch_size": 2})', timeout=2) as server:
        url = server.url + "/predict"
        with httpx.stream("POST", url, json={"n": 10**9}, timeout=60) as a, \
                httpx.stream("POST", url, json={"n": 10**9}, timeout=60) as b:
            held = [a.iter_lines(), b.iter_lines()]  # (a dropped iterator closes its stream)
            assert [json.loads(next(lines))["i"] for lines in held] == [0, 0]
            late = httpx.post(url, json={"n": 1}, timeout=60)
            assert late.status_code == 504, late.text
        wait_idle(server)
        with httpx.stream("POST", url, json={"n": 400}, timeout=60) as r:
            lines = r.iter_lines()
            assert json.loads(next(lines))["i"] == 0
            server.terminate()
            assert [json.loads(line)["i"] for line in lines] == list(range(1, 400))


def test_route_options_a_continuous_loop_cannot_serve_are_refused():
    class Tokens(ls.LitAPI):
        def predict(self, inputs, generated):
            return [0 for _ in inputs]

    api = Tokens(loop=DefaultContinuousBatchingLoop())
    with pytest.raises(ConfigError, match="must implement has_finished"):
        check_options(api, True, None)
    with pytest.raises(ConfigError, match="set stream=True"):
        check_options(api, False, None)
    with pytest.raises(ConfigError, match=r"spec=OpenAISpec\(\); continuous batching serves"):
        check_options(api, True, ls.OpenAISpec())
    with pytest.raises(ConfigError, match=r"must implement step\(\)"):
        check_options(Tokens(loop=ContinuousBatchingLoop()), True, None)
    check_options(Plain(), False, None)  # not a continuous loop: nothing to check
