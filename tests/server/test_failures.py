"""Timeouts, disconnects, auth, dead workers and a full queue."""

from __future__ import annotations

import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from litserve.ipc import names
from litserve.ipc.slots import POSTED

from .harness import serve, slot_table, states, wait_for


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
        token = f"lsv_{server.proc.pid:x}"
        entry = next(e for e in names.leftovers() if e.startswith(token)
                     and e.endswith("f0.done"))
        done = Ring("/" + entry)
        pos = _shm.load64(done._buf, ring_mod.OFF_ENQUEUE)  # claim a cell as the worker would
        assert _shm.cas64(done._buf, ring_mod.OFF_ENQUEUE, pos, pos + 1)
        done.close()
        with ThreadPoolExecutor(1) as pool:
            stuck = pool.submit(server.post, json={"tag": "behind"}, timeout=60)
            with pytest.raises(TimeoutError):
                stuck.result(timeout=1.5)  # its answer waits behind the half-written cell
            line = next(x for x in log.read_text().splitlines() if "behind" in x)
            os.kill(int(line.split("pid=")[1]), signal.SIGKILL)
            assert stuck.result(timeout=20).json()["tag"] == "behind"
        wait_for(lambda: server.health() == 200, 30, "the replacement worker")
        assert server.post(json={"tag": "after"}).json()["tag"] == "after"
        assert "filled a completion cell the dead worker held" in server.output
