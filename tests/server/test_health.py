"""/health means answering: a heartbeat per worker, a bound on one batch (opt-in), and
the LitAPI's own health()."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from litserve.protocol import STALE_S

from .harness import pids, predicted_by, serve, wait_for


def test_a_stopped_worker_makes_health_503_until_it_runs_again():
    """The only worker is SIGSTOPped: it stops beating, and within STALE_S (+ a beat)
    /health says 503; after SIGCONT it says 200 again (on the old code /health said 200
    for as long as the process existed)."""
    with serve("basic:Square") as server:
        [worker] = pids(server, "worker")
        os.kill(worker, signal.SIGSTOP)
        try:
            wait_for(lambda: server.health() == 503, STALE_S + 5, "/health saying 503")
        finally:
            os.kill(worker, signal.SIGCONT)
        wait_for(lambda: server.health() == 200, 10, "/health saying 200 again")
        assert server.post(json={"input": 2}).json() == {"output": 4}


def test_with_two_workers_one_dying_leaves_health_200():
    """One of two workers dies: the other can serve, so /health stays 200 while the
    first is replaced (it said 503 until the replacement was ready on the old code)."""
    with serve("basic:Square", workers_per_device=2) as server:
        first = pids(server, "worker")
        os.kill(first[0], signal.SIGKILL)
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen.append(server.health())
            now = pids(server, "worker")
            if now[0] != first[0] and server.output.count("worker(s) ready") == 1 and \
                    "worker 0 died" in server.output and seen[-1] == 200 and len(seen) > 20:
                break
            time.sleep(0.02)
        assert set(seen) == {200}, seen
        assert server.post(json={"input": 3}).json() == {"output": 9}


def test_a_worker_stuck_past_predict_timeout_is_replaced(tmp_path: Path):
    """predict_timeout=1.5: a request stuck in predict gets its worker killed and
    replaced; the request is answered 500, /health said 503 while no worker could
    serve, and the server serves on."""
    log, gate = tmp_path / "log", tmp_path / "gate"
    with serve("basic:Slow", predict_timeout=1.5, timeout=60,
               env={"LITSERVE_TEST_LOG": str(log)}) as server:
        with ThreadPoolExecutor(1) as pool:
            stuck = pool.submit(server.post, json={"tag": "stuck", "gate": str(gate)})
            old = wait_for(lambda: predicted_by(log, "stuck"), 10, "the request in predict")
            wait_for(lambda: server.health() == 503, 10, "/health saying 503")
            r = stuck.result(timeout=30)
        assert r.status_code == 500, r.text
        assert "more than predict_timeout=1.5; replacing it" in server.output
        wait_for(lambda: server.health() == 200, 30, "the replacement")
        assert pids(server, "worker") != [old]
        gate.touch()
        assert server.post(json={"tag": "after"}).json()["tag"] == "after"


def test_a_long_stream_that_makes_progress_is_not_stuck():
    """A stream longer than predict_timeout that yields all along is left alone."""
    with serve("basic:Streamer", stream=True, predict_timeout=1.0) as server:
        r = server.post(json={"n": 30, "delay": 0.1}, timeout=30)
        assert r.status_code == 200
        assert len(r.text.splitlines()) == 30
        assert "replacing it" not in server.output


@pytest.mark.parametrize("health_async", [False, True])
def test_litapi_health_false_or_raising_is_503(tmp_path: Path, health_async: bool):
    sick = tmp_path / "sick"
    with serve(f'basic:Unhealthy({{"health_async": {str(health_async).lower()}}})',
               env={"LITSERVE_TEST_SICK": str(sick)}) as server:
        assert server.health() == 200
        sick.touch()
        assert server.health() == 503
        sick.unlink()
        assert server.health() == 200
        Path(str(sick) + ".raise").touch()
        assert server.health() == 503
        wait_for(lambda: "Unhealthy.health() raised; /health answers 503" in server.output
                 and "the model store is unreachable" in server.output, 10,
                 "the front logging what health() raised")


def test_predict_timeout_must_be_seconds():
    import litserve as ls
    from litserve.errors import ConfigError
    from litserve.examples import SimpleLitAPI

    with pytest.raises(ConfigError, match="predict_timeout=0 is not valid"):
        ls.LitServer(SimpleLitAPI(), predict_timeout=0)
