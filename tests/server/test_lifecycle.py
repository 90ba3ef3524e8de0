"""Start-up, health, shutdown and clean-up of the whole process tree."""

from __future__ import annotations

import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

import litserve as ls
from litserve.errors import ConfigError
from litserve.ipc import names

from .harness import PYTHON, Server, alive, children, serve, wait_for


def _token_names(server: Server) -> list[str]:
    return names.leftovers(server.token)


def test_banner_health_and_hello():
    with serve("basic:Square") as server:
        assert f"Uvicorn running on {server.url.replace('127.0.0.1', '127.0.0.1')}" in server.output
        assert server.post(json={"input": 4}).json() == {"output": 16}


def test_health_is_503_until_setup_finished(tmp_path: Path):
    gate = tmp_path / "gate"
    server = Server("basic:SlowSetup", env={"LITSERVE_TEST_GATE": str(gate)})
    try:
        wait_for(lambda: server.health() == 503, 30, "/health answering 503 during setup")
        gate.touch()
        wait_for(lambda: server.health() == 200, 30, "/health answering 200 after setup")
        assert server.stop() == 0
    finally:
        server.kill_group()


def _new_names(before: set[str]) -> list[str]:
    """Entries that appeared since ``before`` and belong to no live server (for a server
    that never got far enough to be asked its token; other sessions' servers hold their
    lease)."""
    from litserve.ipc.lease import alive

    return [e for e in names.leftovers() if e not in before
            and not alive((names.parse(e) or ("-", ""))[0])]


def test_setup_error_fails_start_up_with_the_traceback():
    before = set(names.leftovers())
    server = Server("basic:BrokenSetup")
    try:
        code = server.proc.wait(60)
        server._reader.join(5)
        assert code != 0
        assert "cannot load weights from /nowhere" in server.output
        assert "Traceback" in server.output
        assert _new_names(before) == []
    finally:
        server.kill_group()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_everything_cleanly(sig):
    server = Server("basic:Square", {"workers_per_device": 2}).wait_ready()
    try:
        kids = children(server.proc.pid)
        assert len(kids) >= 4  # janitor, front, two workers (+ resource sharer)
        start = time.monotonic()
        assert server.stop(sig) == 0
        assert time.monotonic() - start < 10
        wait_for(lambda: not any(alive(k) for k in kids), 10, "every child process exiting")
        wait_for(lambda: _token_names(server) == [], 5, "our /dev/shm names disappearing")
    finally:
        server.kill_group()


def test_sigkill_of_the_supervisor_leaves_no_process_and_no_name():
    server = Server("basic:Square").wait_ready()
    try:
        kids = children(server.proc.pid)
        assert _token_names(server), "the server should have shared memory while running"
        server.proc.kill()
        server.proc.wait(5)
        wait_for(lambda: not any(alive(k) for k in kids), 10,
                 "children exiting after their parent was SIGKILLed")
        wait_for(lambda: _token_names(server) == [], 10, "the janitor sweeping our names")
    finally:
        server.kill_group()


def test_port_in_use_is_one_clear_line():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = Server("basic:Square", run_kwargs={"port": port})
        try:
            assert server.proc.wait(30) == 1
            server._reader.join(5)
            assert f"port {port} on 127.0.0.1 is already in use" in server.output
        finally:
            server.kill_group()


def test_client_file_is_written_in_the_working_directory_unless_present(tmp_path: Path):
    script = tmp_path / "server.py"
    script.write_text(
        "import sys, litserve as ls\n"
        "if __name__ == '__main__':\n"
        "    ls.LitServer(ls.examples.SimpleLitAPI()).run(host='127.0.0.1', port=0)\n")
    server = Server("", argv=[PYTHON, str(script)], cwd=tmp_path).wait_ready()
    try:
        client = (tmp_path / "client.py").read_text()
        assert "/predict" in client and str(server.url.rsplit(":", 1)[1]) in client
        assert server.stop() == 0
    finally:
        server.kill_group()
    (tmp_path / "client.py").write_text("# mine\n")
    server = Server("", argv=[PYTHON, str(script)], cwd=tmp_path).wait_ready()
    try:
        assert (tmp_path / "client.py").read_text() == "# mine\n"
        assert server.stop() == 0
    finally:
        server.kill_group()


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"accelerator": "tpu"}, "accelerator='tpu' is not supported; use one of 'auto', 'cpu'"),
    ({"accelerator": "cuda"}, "no CUDA GPU is visible"),
    ({"accelerator": "mps"}, "MPS is not available"),
    ({"devices": 0}, "devices=0 is not valid"),
    ({"devices": "many"}, "devices='many' is not valid"),
    ({"workers_per_device": 0}, "workers_per_device=0 is not valid; use an int >= 1"),
    ({"timeout": "soon"}, "timeout='soon' is not valid"),
    ({"max_batch_size": 0}, "max_batch_size=0 is not valid"),
    ({"batch_timeout": -1}, "batch_timeout=-1 is not valid"),
    ({"api_path": "predict"}, "api_path='predict' is not valid"),
    ({"stream": "yes"}, "stream='yes' is not valid"),
])
def test_bad_arguments_fail_fast_naming_value_and_choices(kwargs, needle):
    with pytest.raises(ConfigError) as err:
        ls.LitServer(ls.examples.SimpleLitAPI(), **kwargs)
    assert needle in str(err.value)


def test_api_path_clash_and_non_litapi_are_clear_errors():
    with pytest.raises(ConfigError, match="both use api_path='/predict'"):
        ls.LitServer([ls.examples.SimpleLitAPI(), ls.examples.SimpleLitAPI()])
    with pytest.raises(ConfigError, match="needs LitAPI instances, got int"):
        ls.LitServer(3)

    class NoPredict(ls.LitAPI):
        pass

    with pytest.raises(ConfigError, match="does not implement predict"):
        ls.LitServer(NoPredict())


def test_timeout_false_and_minus_one_disable_it():
    assert ls.LitServer(ls.examples.SimpleLitAPI(), timeout=False).timeout is None
    assert ls.LitServer(ls.examples.SimpleLitAPI(), timeout=-1).timeout is None


def test_examples_are_reachable_under_both_names():
    from litserve.examples import SimpleLitAPI
    from litserve.test_examples import SimpleTorchAPI

    assert ls.examples.SimpleLitAPI is SimpleLitAPI
    assert ls.test_examples.SimpleTorchAPI is SimpleTorchAPI


@pytest.mark.parametrize(("api", "body", "expected"), [
    ("SimpleLitAPI", {"input": 4.0}, {"output": 16.0}),
    ("SimpleTorchAPI", {"input": 4.0}, {"output": 9.0}),
])
def test_builtin_examples_serve(api, body, expected, tmp_path: Path):
    script = tmp_path / "s.py"
    script.write_text(
        "import litserve as ls\n"
        "if __name__ == '__main__':\n"
        f"    ls.LitServer(ls.examples.{api}()).run(host='127.0.0.1', port=0,\n"
        "                                          generate_client_file=False)\n")
    server = Server("", argv=[PYTHON, str(script)]).wait_ready()
    try:
        assert httpx.post(server.url + "/predict", json=body).json() == expected
        assert server.stop() == 0
    finally:
        server.kill_group()


def test_two_fronts_share_the_port_and_both_serve():
    with serve("basic:Echo", run_kwargs={"num_api_servers": 2}) as server:
        kids = children(server.proc.pid)
        fronts = [k for k in kids if alive(k)]
        assert len(fronts) >= 4  # janitor, 2 fronts, 1 worker (+ helpers)
        with ThreadPoolExecutor(8) as pool:
            rs = list(pool.map(lambda i: httpx.post(server.url + "/predict", json={"i": i},
                                                    timeout=30), range(64)))
        assert [r.json()["value"]["i"] for r in rs] == list(range(64))
        big = np.arange(100_000, dtype=np.float32)
        for _ in range(4):  # large bodies through whichever front accepts them
            r = httpx.post(server.url + "/predict", content=big.tobytes(), timeout=30,
                           headers={"content-type": "application/octet-stream",
                                    "x-tensor-dtype": "float32"})
            assert r.json()["sum"] == float(big.astype(np.float64).sum())


def test_server_file_without_a_main_guard_fails_with_a_clear_message(tmp_path: Path):
    script = tmp_path / "noguard.py"
    script.write_text("import litserve as ls\n"
                      "ls.LitServer(ls.examples.SimpleLitAPI()).run(host='127.0.0.1', port=0,\n"
                      "                                             generate_client_file=False)\n")
    before = set(names.leftovers())
    server = Server("", argv=[PYTHON, str(script)])
    try:
        assert server.proc.wait(60) != 0
        server._reader.join(5)
        assert "if __name__ == '__main__':" in server.output
        assert _new_names(before) == []
    finally:
        server.kill_group()


def test_an_api_that_cannot_be_pickled_is_a_clear_error():
    class Holder(ls.LitAPI):
        def __init__(self):
            super().__init__()
            self.rows = (line for line in ["a", "b"])  # a reader: belongs in setup()

        def predict(self, x):
            return x

    with pytest.raises(ConfigError, match="Load models and open files, locks or connections in"):
        ls.LitServer(Holder()).plan()


def test_locks_in_an_api_travel_as_fresh_locks():
    # LitServe forks, so a lock made in __init__ works there; here it is sent as a new one
    import threading

    from litserve import pickling

    class Holder(ls.LitAPI):
        def __init__(self):
            super().__init__()
            self.lock, self.rlock = threading.Lock(), threading.RLock()

        def predict(self, x):
            return x

    held = Holder()
    held.lock.acquire()
    shipped = ls.LitServer(held).plan().unpack()
    copy = shipped.apis[0]
    assert copy.lock is not held.lock and copy.lock.acquire(blocking=False)
    assert type(copy.rlock) is type(held.rlock)
    assert pickling.dumps(held.lock) != b""


def test_unknown_server_arguments_are_named_and_upstream_only_ones_ignored(caplog):
    with pytest.raises(ConfigError, match="unknown argument 'max_batchsize'; accepted: "
                                          "accelerator, devices"):
        ls.LitServer(ls.examples.SimpleLitAPI(), max_batchsize=4)
    with caplog.at_level("WARNING", logger="litserve"):
        ls.LitServer(ls.examples.SimpleLitAPI(), fast_queue=True)
    assert "fast_queue=...) is ignored" in caplog.text


def test_sizes_larger_than_dev_shm_fail_before_start_up():
    server = Server("basic:Square", {"max_payload_size": 1 << 50})  # a petabyte
    try:
        assert server.proc.wait(60) == 1
        server._reader.join(5)
        assert "of shared memory (/dev/shm) but only" in server.output
        assert "--shm-size" in server.output
    finally:
        server.kill_group()
