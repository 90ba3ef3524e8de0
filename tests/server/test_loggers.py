"""``ls.Logger`` and ``LitAPI.log``: entries logged in workers and fronts reach the
loggers' ``process`` in a process of their own, a full queue drops instead of waiting,
and a logger that raises or dies does not stop the logging (apps/surface.py)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import litserve as ls
from litserve.errors import ConfigError
from litserve.loggers import LOG_CELLS

from .harness import APPS, PYTHON, Server, alive, pids, wait_for


def _lines(log: Path, what: str, key: str | None = None) -> list[list[str]]:
    """Lines ``<what> <key> <value> pid=<pid>`` of the log, split."""
    if not log.exists():
        return []
    rows = [line.split() for line in log.read_text().splitlines()]
    return [r for r in rows if r[0] == what and (key is None or r[1] == key)]


def _pid(row: list[str]) -> int:
    return int(row[-1].removeprefix("pid="))


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    log = tmp_path_factory.mktemp("loggers") / "log.txt"
    server = Server("", argv=[PYTHON, str(APPS / "surface.py"), "logged"],
                    env={"LITSERVE_TEST_LOG": str(log)})
    try:
        yield server.wait_ready(), log
        assert server.stop() == 0, server.output
    finally:
        server.kill_group()


def test_values_logged_in_the_hooks_reach_process_in_another_process(logged):
    server, log = logged
    r = server.post(json={"input": 7})
    worker = r.json()["pid"]
    rows = wait_for(lambda: _lines(log, "logged", "predicted"), 10, "predict's entry logged")
    assert rows[-1][2] == "7"
    logger = _pid(rows[-1])
    assert logger not in (worker, server.proc.pid, os.getpid())
    assert [r[2] for r in _lines(log, "logged", "setup")] == ["cpu"]
    assert _lines(log, "logged", "decoded")[-1][2] == "7"


def test_the_fronts_log_too(logged):
    server, log = logged
    assert server.health() == 200  # LoggedAPI.health runs in the front and logs
    rows = wait_for(lambda: _lines(log, "logged", "health"), 10, "the front's entry logged")
    front = pids(server, "front")[0]
    assert rows[-1][2] == "front" and _pid(rows[-1]) != front


def test_a_raising_logger_is_logged_and_the_others_still_get_every_entry(logged):
    server, log = logged
    for i in range(3):
        server.post(json={"input": 100 + i})
    wait_for(lambda: len([r for r in _lines(log, "logged", "predicted")
                          if r[2].startswith("10")]) == 3, 10, "three entries after raising")
    assert "RaisingLogger.process raised for the entry 'predicted'" in server.output
    assert "this logger always fails (predicted)" in server.output


def test_an_unpicklable_logger_is_recreated_from_its_class_with_a_warning(logged):
    server, log = logged
    server.post(json={"input": 55})
    wait_for(lambda: [r for r in _lines(log, "locked", "predicted") if r[2] == "55"], 10,
             "the re-created LockedLogger processing an entry")
    assert "logger LockedLogger cannot be pickled" in server.output


def test_an_unpicklable_value_is_dropped_and_reported_once_per_process(logged):
    server, log = logged
    server.post(json={"input": 1})
    server.post(json={"input": 2})
    assert server.output.count("dropped the log entry 'unpicklable'") == 1
    assert _lines(log, "logged", "unpicklable") == []


def test_a_killed_logger_process_is_replaced_and_logging_goes_on(logged):
    server, log = logged
    server.post(json={"input": 11})
    old = _pid(wait_for(lambda: _lines(log, "logged", "predicted"), 10, "an entry")[-1])
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: "the logger process died" in server.output, 10, "the death reported")

    def logged_by_new() -> list[list[str]]:
        server.post(json={"input": 12})
        return [r for r in _lines(log, "logged", "predicted") if _pid(r) != old]

    assert wait_for(logged_by_new, 20, "an entry processed by a new logger process")
    assert not alive(old)


def test_on_server_start_and_end_run_in_the_process_that_called_run(tmp_path: Path):
    log = tmp_path / "log.txt"
    server = Server("", argv=[PYTHON, str(APPS / "surface.py"), "logged"],
                    env={"LITSERVE_TEST_LOG": str(log)})
    try:
        server.wait_ready()
        start = _lines(log, "callback", "on_server_start")
        assert [r[2] for r in start] == ["LitServer"] and _pid(start[0]) == server.proc.pid
        # before any process started: the setup entry is logged after it
        assert log.read_text().splitlines()[0].startswith("callback on_server_start")
        assert _lines(log, "callback", "on_server_end") == []
        assert server.stop() == 0
        end = _lines(log, "callback", "on_server_end")
        assert len(end) == 1 and _pid(end[0]) == server.proc.pid
        assert log.read_text().splitlines()[-1].startswith("callback on_server_end")
    finally:
        server.kill_group()


def test_a_full_queue_drops_entries_without_blocking_the_hook(tmp_path: Path):
    log, gate = tmp_path / "log.txt", tmp_path / "gate"
    server = Server("", argv=[PYTHON, str(APPS / "surface.py"), "blocked"],
                    env={"LITSERVE_TEST_LOG": str(log), "LITSERVE_TEST_GATE": str(gate)})
    try:
        server.wait_ready()
        flood = 3 * LOG_CELLS
        r = httpx.post(server.url + "/predict", json={"input": flood}, timeout=30).json()
        assert r["seconds"] < 5, r  # (a waiting put would never return: nothing is taken)
        assert flood - LOG_CELLS - 1 <= r["dropped"] <= flood - LOG_CELLS, r
        assert "dropped the log entry 'flood': the loggers' queue is full" in server.output
        gate.touch()
        kept = flood - r["dropped"]
        wait_for(lambda: len(_lines(log, "logged", "flood")) == kept, 20,
                 f"the {kept} entries kept being processed")
        assert [int(x[2]) for x in _lines(log, "logged", "flood")] == list(range(kept))
        assert server.stop() == 0
    finally:
        server.kill_group()


def test_log_without_loggers_does_nothing():
    api = ls.test_examples.SimpleLitAPI()
    api.log("key", "value")  # no sink: a no-op, no warning (warnings are errors here)
    assert api._log_sink is None


def test_loggers_must_be_loggers():
    with pytest.raises(ConfigError, match="is not an ls.Logger"):
        ls.LitServer(ls.test_examples.SimpleLitAPI(), loggers=[object()])
    with pytest.raises(ConfigError, match="Logger.mount"):
        _Mounting().mount("metrics", object())


class _Mounting(ls.Logger):
    def process(self, key, value):
        pass


def test_mount_records_the_app_for_the_fronts():
    logger, app = _Mounting(), object()
    logger.mount("/metrics", app)
    assert logger._mounts == [("/metrics", app)]
