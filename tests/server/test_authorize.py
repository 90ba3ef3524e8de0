"""``LitAPI.authorize``, in each way LitServe users write it, runs in the front before a
request is taken: a refused request never reaches predict."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import litserve as ls
from litserve.errors import ConfigError

from .harness import Server, serve_ready, wait_idle

APIS = ";".join([
    'front_surface:BearerAuth({"api_path": "/bearer"})',
    'front_surface:RequestAuth({"api_path": "/request"})',
    'front_surface:BasicAuth({"api_path": "/basic"})',
    'front_surface:HeaderAuth({"api_path": "/header"})',
    'front_surface:DenyAll({"api_path": "/deny"})',
    'front_surface:BrokenAuth({"api_path": "/broken"})',
    'front_surface:Square({"api_path": "/open"})',
    "front_surface:ChatAuth",
])
API_KEY = "the-server-key"


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("authorize") / "log"


@pytest.fixture(scope="module")
def server(log: Path) -> Iterator[Server]:
    started = Server(APIS, env={"LITSERVE_TEST_LOG": str(log), "LIT_SERVER_API_KEY": API_KEY})
    with serve_ready(started, headers={"X-API-Key": API_KEY}) as s:
        yield s


def predicted(log: Path, tag: str) -> bool:
    return log.exists() and f"predict {tag}" in log.read_text().splitlines()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


CASES = [  # path, headers, status (and a piece of the detail) when refused
    ("/bearer", {"Authorization": "Bearer wrong"}, 401, "wrong token"),
    ("/bearer", {}, None, None),  # HTTPBearer's own refusal (FastAPI: 401 or 403)
    ("/request", {"X-User": "mallory"}, 403, "who are you?"),
    ("/basic", basic("bob", "nope"), 401, "bad password"),
    ("/basic", {}, 401, None),  # HTTPBasic's own 401
    ("/header", {"X-Token": "bad"}, 403, "bad token"),
    ("/header", {}, None, None),  # APIKeyHeader's own refusal
    ("/deny", {}, 418, "no one gets in"),
    ("/broken", {}, 500, "Internal Server Error"),
]


@pytest.mark.parametrize("path, headers, status, detail", CASES)
def test_a_refused_request_is_answered_by_authorize_and_never_predicted(
        server, log, path, headers, status, detail):
    tag = f"refused{path.replace('/', '-')}-{len(headers)}"
    r = server.post(path, json={"input": 2, "tag": tag}, headers=headers)
    if status is None:
        assert r.status_code in (401, 403), r.text
    else:
        assert r.status_code == status, r.text
    if detail is not None:
        assert r.json()["detail"] == detail
    wait_idle(server)  # nothing of it is held, nothing of it is queued
    assert server.post("/open", json={"input": 1, "tag": "after"},
                       headers={"X-API-Key": API_KEY}).status_code == 200
    assert predicted(log, "after")
    assert not predicted(log, tag), f"predict ran for a request refused by authorize ({path})"


@pytest.mark.parametrize("path, headers", [
    ("/bearer", {"Authorization": "Bearer secret"}),
    ("/request", {"X-User": "alice"}),
    ("/basic", basic("bob", "pw")),
    ("/header", {"X-Token": "t0k"}),
])
def test_an_allowed_request_is_predicted_without_the_server_key(server, log, path, headers):
    """authorize takes the place of LIT_SERVER_API_KEY on its API's routes."""
    tag = f"allowed{path.replace('/', '-')}"
    r = server.post(path, json={"input": 3, "tag": tag}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"output": 9}
    assert predicted(log, tag)


def test_authorize_headers_reach_the_client(server):
    r = server.post("/deny", json={"input": 1})
    assert r.headers["x-why"] == "teapot"
    r = server.post("/bearer", json={"input": 1}, headers={"Authorization": "Bearer x"})
    assert r.headers["www-authenticate"] == "Bearer"


def test_a_large_body_is_refused_by_authorize_too(server, log):
    """Bodies over 64 KiB normally go straight into the arena as their headers arrive;
    on a route with authorize they wait for it."""
    body = b'{"input": 2, "tag": "big", "pad": "' + b"x" * 500_000 + b'"}'
    r = server.post("/bearer", content=body, headers={"Authorization": "Bearer wrong",
                                                      "content-type": "application/json"})
    assert r.status_code == 401
    r = server.post("/bearer", content=body, headers={"Authorization": "Bearer secret",
                                                      "content-type": "application/json"})
    assert r.json() == {"output": 4}
    wait_idle(server)


def test_without_authorize_the_server_key_check_stays(server):
    assert server.post("/open", json={"input": 2}).status_code == 401
    assert server.post("/open", json={"input": 2},
                       headers={"X-API-Key": API_KEY}).json() == {"output": 4}
    # with several LitAPIs, /health is the server's key's (as in LitServe)
    assert httpx.get(server.url + "/health", timeout=10).status_code == 401


def test_authorize_guards_spec_routes(server, log):
    from openai import AuthenticationError, OpenAI

    denied = OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(AuthenticationError):
        denied.chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])
    assert not (log.exists() and "predict chat" in log.read_text())
    client = OpenAI(base_url=server.url + "/v1", api_key="secret", max_retries=0)
    out = client.chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content == "hello"


def test_one_litapi_authorize_guards_health_and_info_but_not_shutdown(tmp_path):
    started = Server("front_surface:BearerAuth", {"enable_shutdown_api": True},
                     env={"LIT_SHUTDOWN_API_KEY": "sk"})
    ok = {"Authorization": "Bearer secret"}
    with serve_ready(started, headers=ok) as server:
        for path in ("/health", "/info"):
            assert httpx.get(server.url + path, timeout=10).status_code in (401, 403)
            bad = httpx.get(server.url + path, headers={"Authorization": "Bearer x"}, timeout=10)
            assert bad.status_code == 401 and bad.json()["detail"] == "wrong token"
            assert httpx.get(server.url + path, headers=ok, timeout=10).status_code == 200
        r = httpx.post(server.url + "/shutdown", headers={"Authorization": "Bearer sk"},
                       timeout=10)
        assert r.status_code == 200, r.text
        assert server.proc.wait(30) == 0


def test_an_authorize_that_cannot_be_called_is_a_config_error():
    class Odd(ls.LitAPI):
        def setup(self, device):
            pass

        def predict(self, x):
            return x

        def authorize(self, token):
            pass

    with pytest.raises(ConfigError, match=r"Odd.authorize: parameter 'token' cannot be given"):
        ls.LitServer(Odd())
