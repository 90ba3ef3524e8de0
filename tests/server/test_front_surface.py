"""The fronts' LitServe surface beside predict: mounted ASGI apps (a Prometheus logger's
/metrics), on_request / on_response with track_requests, /info, the shutdown API,
custom paths, and uvicorn's start-up line."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from .harness import Server, serve_ready, start_script, wait_for

KEY = "shut-me-down"


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("surface") / "log"


@pytest.fixture(scope="module")
def server(log: Path) -> Iterator[Server]:
    started = start_script("front_surface", "surface",
                           env={"LITSERVE_TEST_LOG": str(log), "LIT_SHUTDOWN_API_KEY": KEY})
    with serve_ready(started) as s:
        yield s
    assert lines(log, "life shutdown"), "the mounted app's lifespan never shut down"


def lines(log: Path, prefix: str) -> list[str]:
    text = log.read_text() if log.exists() else ""
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_the_prometheus_logger_mount_answers_at_metrics(server):
    r = httpx.get(server.url + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert "request_processing_seconds" in r.text
    assert r.headers["content-type"].startswith("text/plain")


def test_a_mounted_app_sees_starlette_mount_paths_and_ran_its_lifespan(server, log):
    [startup] = lines(log, "life startup")  # before the front said ready: /health was 200
    r = httpx.get(server.url + "/life/a/b", timeout=10)
    assert r.json() == {"root_path": "/life", "path": "/life/a/b"}
    assert httpx.get(server.url + "/life", timeout=10).json()["path"] == "/life"
    assert httpx.get(server.url + "/lifeless", timeout=10).status_code == 404  # no prefix match
    assert server.post(json={"input": 2}).json() == {"output": 4}  # our routes come first
    assert startup.split("pid=")[1] != "0"


def test_callbacks_see_each_request_and_its_answer_with_active_requests(server, log, tmp_path):
    """One request is held in predict (a gate file): the next one's on_request sees 2
    requests active across the fronts (its own and the held one), then 1 again."""
    before = len(lines(log, "on_request"))
    gate = tmp_path / "gate"
    with ThreadPoolExecutor(2) as pool:
        held = pool.submit(server.post, json={"input": 1, "gate": str(gate), "tag": "held"})
        wait_for(lambda: lines(log, "predict held"), 20, "the held request reaching predict")
        queued = pool.submit(server.post, json={"input": 3})  # waits behind the held one
        wait_for(lambda: len(lines(log, "on_request")) == before + 2, 20,
                 "on_request of the second request")
        gate.touch()
        assert held.result(30).json() == {"output": 1}
        assert queued.result(30).json() == {"output": 9}
    assert server.post(json={"input": 4}).json() == {"output": 16}
    seen = lines(log, "on_request")[before:]
    assert seen == ["on_request active=1 server=LitServer", "on_request active=2 server=LitServer",
                    "on_request active=1 server=LitServer"], seen


def test_on_response_follows_upstream_placement(server, log):
    """A success: once; an error answer: none; a stream: once, after it ended."""
    count = lambda: len(lines(log, "on_response"))  # noqa: E731
    n = count()
    assert server.post(json={"input": 2}).status_code == 200
    assert count() == n + 1
    assert server.post(json={"input": 2, "fail": True}).status_code == 400
    assert count() == n + 1
    r = server.post("/stream", json={"n": 3})
    assert r.text.split() == ["0", "1", "2"]
    wait_for(lambda: count() == n + 2, 5, "on_response after the stream")
    assert lines(log, "on_response")[-1] == "on_response server=LitServer"


def test_info_shows_model_metadata_and_the_server(server):
    r = httpx.get(server.url + "/info", timeout=10)
    assert r.status_code == 200
    info = r.json()
    assert info["model"] == {"name": "surface", "version": 2}
    assert info["server"]["track_requests"] is True
    assert info["server"]["stream"] == {"/predict": False, "/stream": True}
    assert httpx.post(server.url + "/info", timeout=10).status_code == 405


def test_the_startup_complete_line_is_printed_once_by_the_supervisor_not_by_fronts(server):
    # the fronts' uvicorn would print it before any worker is ready; the supervisor
    # prints it once they are (tests/server/test_server_surface.py checks the timing)
    line = "Application startup complete."
    wait_for(lambda: line in server.output, 10, "the start-up line")
    assert "Uvicorn running on" in server.output
    assert server.output.count(line) == 1


# -- shutdown API and custom paths ------------------------------------------------------------
def test_shutdown_api_stops_the_whole_server_gracefully_and_custom_paths(tmp_path):
    """Custom health / info / shutdown paths; no OpenAPI routes (disable_openapi_url); a
    wrong key is a 401 and changes nothing; the right key answers 200 while a request is
    in flight, which still finishes, and then every process exits (code 0)."""
    log, gate = tmp_path / "log", tmp_path / "gate"
    started = Server("front_surface:Square",
                     {"enable_shutdown_api": True, "shutdown_path": "/bye",
                      "healthcheck_path": "/hc", "info_path": "/about", "timeout": 60,
                      "disable_openapi_url": True},
                     env={"LIT_SHUTDOWN_API_KEY": KEY, "LITSERVE_TEST_LOG": str(log)})
    with serve_ready(started, health="/hc") as server:
        assert httpx.get(server.url + "/health", timeout=10).status_code == 404
        for path in ("/openapi.json", "/docs"):  # disable_openapi_url=True
            assert httpx.get(server.url + path, timeout=10).status_code == 404
        assert httpx.get(server.url + "/about", timeout=10).json()["model"] is None
        for auth in ({}, {"Authorization": "Bearer nope"}, {"Authorization": KEY}):
            r = httpx.post(server.url + "/bye", headers=auth, timeout=10)
            assert r.status_code == 401, r.text
            assert "shutdown key" in r.json()["detail"]
        assert httpx.get(server.url + "/bye", timeout=10).status_code == 405
        assert server.proc.poll() is None
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(server.post, json={"input": 5, "gate": str(gate), "tag": "held"})
            wait_for(lambda: lines(log, "predict held"), 20, "the held request reaching predict")
            r = httpx.post(server.url + "/bye", headers={"Authorization": f"Bearer {KEY}"},
                           timeout=10)
            assert r.status_code == 200, r.text
            wait_for(lambda: "litserve: stopping; requests in flight may finish" in server.output,
                     10, "the supervisor starting to stop")
            gate.touch()  # the held request, still in predict, finishes: nothing was cut short
            assert held.result(30).json() == {"output": 25}
        assert server.proc.wait(30) == 0
    assert server.proc.returncode == 0


def test_without_enable_shutdown_api_there_is_no_shutdown_route(server):
    r = httpx.post(server.url + "/shutdown", headers={"Authorization": f"Bearer {KEY}"},
                   timeout=10)
    assert r.status_code == 404
    assert server.proc.poll() is None
