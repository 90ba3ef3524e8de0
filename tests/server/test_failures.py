"""Timeouts, disconnects, auth, dead workers and a full queue."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from litserve.ipc.slots import POSTED

from .harness import (
    Server,
    children,
    entry_parts,
    pids,
    pids_mapping,
    serve,
    server_names,
    shm_name,
    slot_table,
    states,
    wait_for,
)


def test_timeout_is_504_and_the_server_keeps_serving():
    with serve("basic:Slow", timeout=0.5) as server:
        start = time.monotonic()
        r = server.post(json={"sleep": 3, "tag": "slow"})
        assert r.status_code == 504
        assert "timed out after 0.5 s" in r.json()["detail"]
        assert time.monotonic() - start < 2.5
        r = server.post(json={"tag": "quick"})  # waits behind the sleeping predict
        assert r.status_code in (200, 504)
        wait_for(lambda: server.post(json={"tag": "q"}).status_code == 200, 15, "a 200 again")


def test_timeout_false_lets_slow_requests_finish():
    with serve("basic:Slow", timeout=False) as server:
        assert server.post(json={"sleep": 1.2, "tag": "x"}).json()["tag"] == "x"


def test_queued_request_whose_client_left_is_never_predicted(tmp_path: Path):
    log, gate = tmp_path / "log", tmp_path / "gate"
    with serve("basic:Slow", env={"LITSERVE_TEST_LOG": str(log)}) as server:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(server.post, json={"tag": "first", "gate": str(gate)})
            wait_for(lambda: log.exists() and "first" in log.read_text(), 10,
                     "the first request reaching predict")
            host, port = server.url.removeprefix("http://").split(":")
            body = b'{"tag": "gone"}'
            slots = slot_table(server)
            with socket.create_connection((host, int(port))) as sock:
                head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                sock.sendall(head + b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                wait_for(lambda: states(slots).count(POSTED) == 1, 10,
                         "the front posting the second request")
            wait_for(lambda: states(slots).count(POSTED) == 0, 10,
                     "the front withdrawing the request of the client that left")
            slots.close()
            gate.touch()
            assert first.result().json()["tag"] == "first"
        assert server.post(json={"tag": "after"}).json()["tag"] == "after"
        seen = log.read_text()
        assert "gone" not in seen, seen
        assert "after" in seen


def test_api_key(tmp_path: Path):
    with serve("basic:Square", env={"LIT_SERVER_API_KEY": "s3cret"}) as server:
        assert server.post(json={"input": 2}).status_code == 401
        assert server.post(json={"input": 2}, headers={"X-API-Key": "wrong"}).status_code == 401
        r = server.post(json={"input": 2}, headers={"X-API-Key": "s3cret"})
        assert r.json() == {"output": 4}
        assert httpx.get(server.url + "/health").status_code == 401


def test_worker_killed_mid_batch_fails_its_requests_and_is_replaced(tmp_path: Path):
    log, gate = tmp_path / "log", tmp_path / "gate"
    with serve("basic:Slow", max_batch_size=1, timeout=60,
               env={"LITSERVE_TEST_LOG": str(log)}) as server:
        with ThreadPoolExecutor(1) as pool:
            doomed = pool.submit(server.post, json={"tag": "doomed", "gate": str(gate)})
            line = wait_for(lambda: log.exists() and log.read_text().strip(), 10,
                            "the request reaching predict")
            pid = int(line.split("pid=")[1])
            start = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            r = doomed.result(timeout=20)
        assert r.status_code == 500 and "died" in r.json()["detail"]
        assert time.monotonic() - start < 5
        wait_for(lambda: server.health() == 200, 30, "the replacement worker becoming ready")
        r = server.post(json={"tag": "next"})
        assert r.status_code == 200 and r.json()["pid"] != pid
        assert "worker 0 died" in server.output


def test_full_queue_waits_boundedly_then_503(tmp_path: Path):
    gate = tmp_path / "gate"
    with serve("basic:Slow", max_queue_size=2, queue_timeout=0.3, timeout=60) as server:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(server.post, json={"tag": str(i), "gate": str(gate)})
                       for i in range(8)]
            wait_for(lambda: any(f.done() for f in futures), 15, "a request being refused")
            gate.touch()
            results = [f.result(timeout=30) for f in futures]
        codes = sorted(r.status_code for r in results)
        assert 503 in codes and 200 in codes, codes
        detail = next(r.json()["detail"] for r in results if r.status_code == 503)
        assert "request queue is full" in detail


@pytest.mark.parametrize("size", [0, 1])
def test_empty_and_tiny_bodies(size):
    with serve("basic:Echo") as server:
        r = server.post(content=b"7" * size, headers={"content-type": "application/json"})
        assert r.status_code == 200
        assert r.json()["value"] == (None if size == 0 else 7)


def test_requests_queued_behind_a_dead_worker_are_each_predicted_once(tmp_path: Path):
    """After a worker dies the front re-posts waiting requests; duplicates are skipped."""
    log, gate = tmp_path / "log", tmp_path / "gate"
    with serve("basic:Slow", timeout=60, env={"LITSERVE_TEST_LOG": str(log)}) as server:
        with ThreadPoolExecutor(6) as pool:
            doomed = pool.submit(server.post, json={"tag": "doomed", "gate": str(gate)})
            line = wait_for(lambda: log.exists() and log.read_text().strip(), 10,
                            "the first request reaching predict")
            slots = slot_table(server)
            queued = [pool.submit(server.post, json={"tag": f"q{i}"}) for i in range(5)]
            wait_for(lambda: states(slots).count(POSTED) == 5, 10, "five requests queued")
            slots.close()
            os.kill(int(line.split("pid=")[1]), signal.SIGKILL)
            assert doomed.result(timeout=20).status_code == 500
            assert sorted(f.result(timeout=30).json()["tag"] for f in queued) == [
                f"q{i}" for i in range(5)]
        predicted = [line.split()[1] for line in log.read_text().splitlines()]
        assert sorted(predicted) == sorted(["doomed"] + [f"q{i}" for i in range(5)]), predicted


def test_a_completion_cell_left_half_written_by_a_dead_worker_is_repaired(tmp_path: Path):
    """A worker killed between claiming a completion cell and publishing it would wedge
    the front for good; the supervisor fills the cell when it sees the worker die."""
    from litserve.ipc import Ring, _shm
    from litserve.ipc import ring as ring_mod

    log = tmp_path / "log"
    with serve("basic:Slow", timeout=60, env={"LITSERVE_TEST_LOG": str(log)}) as server:
        assert server.post(json={"tag": "warm"}).status_code == 200
        done = Ring(shm_name(server, "f0.0.done"))
        [worker] = pids(server, "worker")
        # claim the next cell in the worker's name, as its ring_put does first
        pos = _shm.load64(done._buf, ring_mod.OFF_ENQUEUE)
        assert _shm.cas64(done._buf, done._cell(pos), ring_mod.cell_word(pos),
                          ring_mod.cell_word(pos, worker))
        assert _shm.cas64(done._buf, ring_mod.OFF_ENQUEUE, pos, pos + 1)
        done.close()
        with ThreadPoolExecutor(1) as pool:
            stuck = pool.submit(server.post, json={"tag": "behind"}, timeout=60)
            with pytest.raises(TimeoutError):
                stuck.result(timeout=1.5)  # its answer waits behind the half-written cell
            line = next(x for x in log.read_text().splitlines() if "behind" in x)
            assert int(line.split("pid=")[1]) == worker
            os.kill(worker, signal.SIGKILL)
            assert stuck.result(timeout=20).json()["tag"] == "behind"
        wait_for(lambda: server.health() == 200, 30, "the replacement worker")
        assert server.post(json={"tag": "after"}).json()["tag"] == "after"
        assert "filled completion cells dead worker 0 held" in server.output


@pytest.mark.parametrize("reuse_port", [True, False])
def test_a_killed_front_is_replaced_and_its_queued_requests_are_never_predicted(
        tmp_path: Path, reuse_port: bool):
    """SIGKILL the only HTTP front while one of its requests is in predict and three wait
    in the ring: the supervisor starts front 0 again (generation 1; on its own
    SO_REUSEPORT socket, or on the supervisor's listening socket), the workers skip the
    dead front's requests, its names leave /dev/shm, and the server serves on and still
    exits cleanly."""
    log, gate = tmp_path / "log", tmp_path / "gate"
    with serve("basic:Slow", timeout=60, env={"LITSERVE_TEST_LOG": str(log)},
               run_kwargs={"reuse_port": reuse_port}) as server:
        [front] = pids_mapping(server, "f0.0.arena")  # workers map it at their first request
        with ThreadPoolExecutor(4) as pool:
            doomed = pool.submit(server.post, json={"tag": "doomed", "gate": str(gate)})
            wait_for(lambda: log.exists() and "doomed" in log.read_text(), 10,
                     "the first request reaching predict")
            slots = slot_table(server)
            queued = [pool.submit(server.post, json={"tag": f"q{i}"}) for i in range(3)]
            wait_for(lambda: states(slots).count(POSTED) == 3, 10, "three requests queued")
            slots.close()
            os.kill(front, signal.SIGKILL)
            for f in [doomed, *queued]:  # their connection went down with the front
                with pytest.raises(httpx.TransportError):
                    f.result(timeout=20)
        # A request a worker claims before the supervisor saw the front die is still
        # predicted (its answer is dropped); the queued ones are claimed after that.
        wait_for(lambda: shm_name(server, "f0.1.arena"), 30, "front 0 starting again")
        gate.touch()
        wait_for(lambda: server.health() == 200, 30, "the new front answering")
        r = server.post(json={"tag": "after"})
        assert r.status_code == 200 and r.json()["tag"] == "after"
        assert not [e for e in server_names(server) if entry_parts(e)[1].startswith("f0.0.")]
        assert pids_mapping(server, "f0.1.arena") and front not in children(server.proc.pid)
        predicted = [line.split()[1] for line in log.read_text().splitlines()]
        assert predicted == ["doomed", "after"], (predicted, server.output)
        assert "HTTP front 0 died" in server.output


BIG = np.arange(3 * 2**20 // 4, dtype=np.float32)  # a 3 MiB answer (GatedTensorOut: x * 2)
OCTET = {"content-type": "application/octet-stream", "x-tensor-dtype": "float32",
         "accept": "application/octet-stream"}


def _answer_left_unread(server: Any, gate: Path) -> None:
    """Open the gate, then wait until the answer lies unread in front 0's completion
    ring (the test stopped that front)."""
    from litserve.ipc import Ring

    done = Ring(shm_name(server, "f0.0.done"))
    try:
        gate.touch()
        wait_for(lambda: len(done) == 1, 10, "the answer posted to the stopped front 0")
    finally:
        done.close()


def test_response_blocks_lent_to_a_front_that_died_are_freed(tmp_path: Path):
    """A 3 MiB answer in a 4 MiB response arena, posted to a front that is stopped and
    then killed before it copies it out: the worker frees the block when it learns the
    front died, so the next 3 MiB answers still fit."""
    log, gate = tmp_path / "log", tmp_path / "gate"
    env = {"LITSERVE_TEST_LOG": str(log), "LITSERVE_TEST_GATE": str(gate)}
    with serve("basic:GatedTensorOut", response_buffer_size=4 * 2**20, queue_timeout=0.5,
               timeout=60, env=env) as server:
        [front] = pids_mapping(server, "f0.0.arena")
        with ThreadPoolExecutor(1) as pool:
            lost = pool.submit(server.post, content=BIG.tobytes(), headers=OCTET)
            wait_for(lambda: log.exists() and "predict" in log.read_text(), 10,
                     "the request reaching predict")
            os.kill(front, signal.SIGSTOP)
            _answer_left_unread(server, gate)
            os.kill(front, signal.SIGKILL)
            with pytest.raises(httpx.TransportError):
                lost.result(timeout=20)
        wait_for(lambda: server.health() == 200, 30, "the new front answering")
        for _ in range(2):
            r = server.post(content=BIG.tobytes(), headers=OCTET)
            assert r.status_code == 200, r.text
            assert np.array_equal(np.frombuffer(r.content, np.float32), BIG * 2)
        assert "freed 1 response block(s) held by dead front 0" in server.output


def test_a_stream_whose_front_died_stops_generating(tmp_path: Path):
    log = tmp_path / "chunks"
    with serve("basic:Endless", stream=True, env={"LITSERVE_TEST_LOG": str(log)}) as server:
        [front] = pids_mapping(server, "f0.0.arena")
        with (pytest.raises(httpx.TransportError),  # the stream breaks off midway
              httpx.stream("POST", server.url + "/predict", json={}, timeout=30) as r):
            lines = r.iter_lines()
            assert json.loads(next(lines)) == {"i": 0}
            os.kill(front, signal.SIGKILL)
            for _ in lines:
                pass
        wait_for(lambda: server.health() == 200, 30, "the new front answering")

        def produced() -> int:
            return len(log.read_text().splitlines())

        before = produced()
        time.sleep(0.3)
        assert produced() == before, "the generator kept running for a front that died"
        assert before < 1000


def test_with_two_fronts_one_killed_under_load_the_other_serves_on():
    with serve("basic:Echo", run_kwargs={"num_api_servers": 2}) as server:
        [front1] = pids_mapping(server, "f1.0.arena")

        def post(i: int) -> Any:
            try:
                return httpx.post(server.url + "/predict", json={"i": i}, timeout=30)
            except httpx.TransportError as exc:
                return exc

        with ThreadPoolExecutor(4) as pool:
            first = pool.map(post, range(40))
            os.kill(front1, signal.SIGKILL)
            results = list(first) + list(pool.map(post, range(40, 80)))
        answered = [(i, r) for i, r in enumerate(results) if isinstance(r, httpx.Response)]
        assert all(r.status_code == 200 and r.json()["value"]["i"] == i for i, r in answered)
        assert len(answered) >= 40  # only connections the dead front held were lost
        wait_for(lambda: pids_mapping(server, "f1.1.arena"), 30, "front 1 starting again")
        for i in range(20):  # both fronts accept again
            assert post(i).json()["value"]["i"] == i
        assert "HTTP front 1 died" in server.output


def test_a_crash_loop_makes_the_supervisor_give_up_cleanly():
    """More deaths within a minute than $LITSERVE_MAX_RESTARTS: the server stops (exit 1)
    instead of restarting forever, and leaves no process and no name behind."""
    server = Server("basic:Crash", env={"LITSERVE_MAX_RESTARTS": "1"}).wait_ready()
    try:
        r = server.post(json={})
        assert r.status_code == 500 and "died" in r.json()["detail"]
        wait_for(lambda: server.health() == 200, 30, "the replacement worker")
        with suppress(httpx.TransportError):  # the server may be gone before it answers
            assert server.post(json={}).status_code == 500
        assert server.proc.wait(20) == 1
        server._reader.join(5)
        assert "2 processes died within 60 s (more than LITSERVE_MAX_RESTARTS=1); giving up" \
            in server.output
        assert not server_names(server)
    finally:
        server.kill_group()


def test_an_invalid_restart_budget_fails_start_up_with_one_line():
    server = Server("basic:Square", env={"LITSERVE_MAX_RESTARTS": "many"})
    try:
        assert server.proc.wait(60) == 1
        server._reader.join(5)
        assert "LITSERVE_MAX_RESTARTS='many' is not valid" in server.output
    finally:
        server.kill_group()


def test_a_worker_waiting_for_response_space_frees_what_a_front_that_died_held(
        tmp_path: Path):
    """Two fronts on one shared socket, a 4 MiB response arena. A's 3 MiB answer is
    posted to front 0 while it is stopped; B (through front 1) then waits for space.
    When front 0 is killed, B's worker frees A's block at once instead of waiting out
    queue_timeout x 6 (6 s here) and failing B with a 500."""
    log, gate = tmp_path / "log", tmp_path / "gate"
    env = {"LITSERVE_TEST_LOG": str(log), "LITSERVE_TEST_GATE": str(gate)}
    with serve("basic:GatedTensorOut", response_buffer_size=4 * 2**20, queue_timeout=1.0,
               timeout=60, env=env,
               run_kwargs={"num_api_servers": 2, "reuse_port": False}) as server:
        [front0] = pids_mapping(server, "f0.0.arena")
        [front1] = pids_mapping(server, "f1.0.arena")
        with ThreadPoolExecutor(2) as pool:
            os.kill(front1, signal.SIGSTOP)  # A can only be accepted by front 0
            a = pool.submit(server.post, content=BIG.tobytes(), headers=OCTET)
            wait_for(lambda: log.exists() and "predict" in log.read_text(), 10,
                     "A reaching predict")
            os.kill(front0, signal.SIGSTOP)
            os.kill(front1, signal.SIGCONT)
            _answer_left_unread(server, gate)
            b = pool.submit(server.post, content=BIG.tobytes(), headers=OCTET)
            wait_for(lambda: log.read_text().count("predict") == 2, 10, "B reaching predict")
            time.sleep(0.5)  # B's worker is now waiting for response-arena space
            start = time.monotonic()
            os.kill(front0, signal.SIGKILL)
            r = b.result(timeout=20)
            assert r.status_code == 200, r.text
            assert time.monotonic() - start < 2.0
            assert np.array_equal(np.frombuffer(r.content, np.float32), BIG * 2)
            with pytest.raises(httpx.TransportError):
                a.result(timeout=20)


def test_a_front_killed_while_workers_are_still_in_setup_is_restarted(tmp_path: Path):
    """The front was up (answering /health with 503) when it died: that is not a failed
    start. The supervisor waits for setup to finish, then replaces the front."""
    gate = tmp_path / "gate"
    server = Server("basic:SlowSetup", env={"LITSERVE_TEST_GATE": str(gate)})
    try:
        wait_for(lambda: server.health() == 503, 60, "the front answering 503 during setup")
        [front] = pids_mapping(server, "f0.0.arena")
        os.kill(front, signal.SIGKILL)
        time.sleep(0.3)  # the supervisor sees the death while setup still runs
        assert server.proc.poll() is None, server.output
        gate.touch()
        wait_for(lambda: server.health() == 200, 60, "the replacement front, after setup")
        assert server.post(json={"x": 1}).json() == {"x": 1}
        assert "HTTP front 0 died" in server.output
        assert server.stop() == 0, server.output
    finally:
        server.kill_group()
