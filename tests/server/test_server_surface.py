"""LitServe 0.2.19's surface around the server: its names (``ls.Request``,
``ls.test_examples``, ``litserve.utils``), its argument checks, the ``/info`` document
and shutdown key in the plan, the start-up line, ``restart_workers=False`` and
``client.py`` in the working directory."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
from pathlib import Path

import pytest

import litserve as ls
from litserve.errors import ConfigError

from .harness import PYTHON, Server, pids, wait_for

STARTED = "INFO:     Application startup complete."


def _server(**kwargs):
    return ls.LitServer(ls.test_examples.SimpleLitAPI(), **kwargs)


# -- names ------------------------------------------------------------------------------
def test_request_and_response_are_the_objects_litserve_reexports():
    import fastapi

    assert ls.Request is fastapi.Request
    assert ls.Response is fastapi.Response
    from litserve.server import Request, Response

    assert (Request, Response) == (fastapi.Request, fastapi.Response)


def test_top_level_names():
    from litserve.callbacks import Callback
    from litserve.loggers import Logger
    from litserve.utils import set_trace, set_trace_if_debug

    assert ls.Callback is Callback and ls.Logger is Logger
    assert ls.set_trace is set_trace and ls.set_trace_if_debug is set_trace_if_debug
    for name in ls.__all__:
        assert getattr(ls, name) is not None, name


UPSTREAM_EXAMPLES = {
    "simple_example": ["SimpleLitAPI", "SimpleBatchedAPI", "SimpleTorchAPI",
                       "SimpleStreamAPI"],
    "openai_spec_example": ["TestAPI", "TestAPIWithCustomEncode", "TestAPIWithToolCalls",
                            "TestAPIWithStructuredOutput", "OpenAIBatchContext",
                            "OpenAIWithUsage", "OpenAIWithUsageEncodeResponse",
                            "OpenAIBatchingWithUsage"],
    "openai_embedding_spec_example": [
        "TestEmbedAPI", "TestEmbedBatchedAPI", "TestEmbedAPIWithUsage",
        "TestEmbedAPIWithYieldPredict", "TestEmbedAPIWithYieldEncodeResponse",
        "TestEmbedAPIWithNonDictOutput", "TestEmbedAPIWithMissingEmbeddings"],
}


@pytest.mark.parametrize("module", sorted(UPSTREAM_EXAMPLES))
def test_test_examples_is_a_package_with_litserves_modules(module):
    mod = importlib.import_module(f"litserve.test_examples.{module}")
    for name in UPSTREAM_EXAMPLES[module]:
        assert issubclass(getattr(mod, name), ls.LitAPI), name
    assert Path(ls.test_examples.__file__).name == "__init__.py"


def test_the_package_reexports_and_matches_litserve_examples():
    for name in ["SimpleLitAPI", "SimpleBatchedAPI", "SimpleTorchAPI", "SimpleStreamAPI",
                 "TestAPI", "TestAPIWithCustomEncode", "TestAPIWithStructuredOutput",
                 "TestAPIWithToolCalls", "OpenAIBatchContext"]:
        assert getattr(ls.test_examples, name) is not None, name
    assert ls.test_examples.SimpleLitAPI is ls.examples.SimpleLitAPI


def test_example_outputs_are_litserves():
    chat = ls.test_examples.TestAPI()
    assert list(chat.predict(None)) == ["This is a generated output"]
    stream = ls.test_examples.SimpleStreamAPI()
    stream.setup("cpu")
    assert list(stream.encode_response(stream.predict("hi"))) == [
        {"output": "0: hi"}, {"output": "1: hi"}, {"output": "2: hi"}]
    from litserve.test_examples.openai_embedding_spec_example import TestEmbedAPI

    out = TestEmbedAPI().predict(["a", "b"])
    assert len(out) == 2 and len(out[0]) == 768


def test_utils_helpers(monkeypatch):
    from litserve.utils import configure_logging, is_package_installed, set_trace_if_debug

    assert is_package_installed("json") and not is_package_installed("no_such_package_x")
    monkeypatch.delenv("LITSERVE_DEBUG", raising=False)
    set_trace_if_debug()  # not asked for: returns at once
    configure_logging("warning")
    import logging

    assert logging.getLogger("litserve").level == logging.WARNING
    configure_logging("info")


def test_wrap_litserve_start_serves_the_server_to_a_test_client():
    from fastapi.testclient import TestClient

    from litserve.utils import wrap_litserve_start

    server = ls.LitServer(ls.test_examples.SimpleLitAPI(), accelerator="cpu", devices=1)
    with wrap_litserve_start(server) as s, TestClient(s.app) as client:
        r = client.post("/predict", json={"input": 4.0})
        assert r.status_code == 200 and r.json() == {"output": 16.0}
        assert client.get("/health").text == "ok"


# -- argument checks ---------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"timeout": 1, "batch_timeout": 2}, "batch_timeout=2 is longer than timeout=1"),
    ({"model_metadata": {"f": object()}}, "model_metadata={'f': <object"),
    ({"middlewares": "gzip"}, "middlewares='gzip' is not valid; use a list"),
    ({"healthcheck_path": "health"}, "healthcheck_path='health' is not valid; use a path "
                                     "starting with '/'"),
    ({"info_path": "info"}, "info_path='info' is not valid"),
    ({"enable_shutdown_api": True, "shutdown_path": "stop"}, "shutdown_path='stop' is not"),
    ({"workers_per_device": {"/other": 2}}, "names api_path(s) ['/other'] that no LitAPI"),
    ({"workers_per_device": [1, 2]}, "has 2 entries but the server has 1 LitAPI"),
    ({"workers_per_device": [0]}, "workers_per_device[0]=0 is not valid; use an int >= 1"),
    ({"workers_per_device": "two"}, "workers_per_device='two' is not valid; use an int"),
    ({"api_path": "/info"}, "both use api_path='/info'"),
    ({"api_path": "/health"}, "both use api_path='/health'"),
])
def test_upstream_argument_checks(kwargs, needle):
    with pytest.raises(ConfigError) as err:
        _server(**kwargs)
    assert needle in str(err.value)


def test_batch_timeout_within_a_disabled_timeout_is_fine():
    assert _server(timeout=False, batch_timeout=100).timeout is None


def test_workers_per_device_per_api_forms():
    a = ls.test_examples.SimpleLitAPI(api_path="/a")
    b = ls.test_examples.SimpleLitAPI(api_path="/b")
    assert ls.LitServer([a, b], workers_per_device={"/a": 2, "/b": 2}).workers_per_device == 2
    assert ls.LitServer([a, b], workers_per_device=[3, 3]).plan().workers == 3
    assert ls.LitServer([a], workers_per_device={}).workers_per_device == 1
    with pytest.raises(ConfigError, match="different worker counts; here every worker "
                                          "serves every LitAPI"):
        ls.LitServer([a, b], workers_per_device={"/a": 1, "/b": 2})


# -- the plan's /info document and shutdown key ------------------------------------------
def test_info_document_has_litserves_forms():
    a = ls.test_examples.SimpleLitAPI(api_path="/a")
    b = ls.test_examples.SimpleStreamAPI(api_path="/b", stream=True)
    info = ls.LitServer([a, b], model_metadata={"name": "m", "v": [1]}, timeout=False,
                        max_payload_size=1 << 20, track_requests=True).plan().info
    assert info == {"model": {"name": "m", "v": [1]}, "server": {
        "devices": ["cpu"], "workers_per_device": 1, "timeout": False,
        "stream": {"/a": False, "/b": True}, "max_payload_size": 1 << 20,
        "track_requests": True}}
    json.dumps(info)
    plain = _server().plan().info
    assert plain["model"] is None and plain["server"]["timeout"] == 30
    assert plain["server"]["max_payload_size"] is None


def test_info_reports_a_chat_spec_as_streaming_on_its_path():
    api = ls.test_examples.TestAPI(spec=ls.OpenAISpec())
    assert ls.LitServer(api).plan().info["server"]["stream"] == {"/v1/chat/completions": True}


def test_shutdown_key_from_the_environment_or_generated(monkeypatch):
    monkeypatch.setenv("LIT_SHUTDOWN_API_KEY", "sekrit")
    assert _server(enable_shutdown_api=True).plan().shutdown_api_key == "sekrit"
    monkeypatch.delenv("LIT_SHUTDOWN_API_KEY")
    key = _server(enable_shutdown_api=True).plan().shutdown_api_key
    assert key and len(key) >= 32 and key != _server(enable_shutdown_api=True).shutdown_api_key
    assert _server().plan().shutdown_api_key is None


def test_a_generated_shutdown_key_is_logged_once_at_run(tmp_path: Path):
    script = tmp_path / "s.py"
    script.write_text(
        "import litserve as ls\n"
        "if __name__ == '__main__':\n"
        "    ls.LitServer(ls.test_examples.SimpleLitAPI(), enable_shutdown_api=True).run(\n"
        "        host='127.0.0.1', port=0, generate_client_file=False)\n")
    if "LIT_SHUTDOWN_API_KEY" in os.environ:
        pytest.skip("$LIT_SHUTDOWN_API_KEY is set: no key is generated")
    server = Server("", argv=[PYTHON, str(script)])
    try:
        server.wait_ready()
        assert server.output.count("generated shutdown API key: ") == 1
        key = server.output.split("generated shutdown API key: ")[1].split()[0]
        assert len(key) >= 32 and f"Authorization: Bearer {key}" in server.output
        assert server.stop() == 0
    finally:
        server.kill_group()


# -- the running server --------------------------------------------------------------------
def test_startup_line_comes_only_once_the_workers_are_ready(tmp_path: Path):
    gate = tmp_path / "gate"
    server = Server("basic:SlowSetup", env={"LITSERVE_TEST_GATE": str(gate)})
    try:
        wait_for(lambda: server.health() == 503, 30, "/health answering 503 during setup")
        assert STARTED not in server.output
        gate.touch()
        wait_for(lambda: STARTED in server.output, 30, "the start-up line after setup")
        assert server.health() == 200
        assert server.output.count(STARTED) == 1
        assert server.stop() == 0
    finally:
        server.kill_group()


def test_restart_workers_false_stops_the_server_when_a_worker_dies():
    server = Server("basic:Square", {"restart_workers": False}).wait_ready()
    try:
        os.kill(pids(server, "worker")[0], 9)
        assert server.proc.wait(30) == 1
        server._reader.join(5)
        assert "stopping the server (restart_workers=False)" in server.output
    finally:
        server.kill_group()


def test_client_py_lands_in_the_working_directory(tmp_path: Path):
    where, cwd = tmp_path / "app", tmp_path / "run"
    where.mkdir()
    cwd.mkdir()
    script = where / "server.py"
    script.write_text(
        "import litserve as ls\n"
        "if __name__ == '__main__':\n"
        "    ls.LitServer(ls.test_examples.SimpleLitAPI()).run(host='127.0.0.1', port=0)\n")
    server = Server("", argv=[PYTHON, str(script)], cwd=cwd).wait_ready()
    try:
        assert not (where / "client.py").exists()
        client = (cwd / "client.py").read_text()
        port = server.url.rsplit(":", 1)[1]
        assert "import requests" in client and f"127.0.0.1:{port}/predict" in client
        out = subprocess.run([PYTHON, "client.py"], cwd=cwd, capture_output=True, text=True,
                             timeout=30).stdout
        assert '{"output":16.0}' in out.replace(" ", ""), out
        assert server.stop() == 0
    finally:
        server.kill_group()
