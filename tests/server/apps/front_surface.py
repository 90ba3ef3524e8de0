"""LitAPIs, middlewares, callbacks and a Prometheus logger for the tests of the front's
LitServe surface: middlewares, mounted apps, ``authorize``, ``/info``, the shutdown API,
``track_requests``, ``on_request`` / ``on_response`` and the OpenAPI routes.

The classes serve through ``launch.py`` (``front_surface:Square`` ...).  Servers that
take objects (middlewares, loggers, callbacks) start from this file itself:

    python front_surface.py SETUP

where SETUP names a function of ``SETUPS`` below.  Hooks write what they saw to
$LITSERVE_TEST_LOG, one line each.
"""

import json
import os
import sys
import time
from pathlib import Path

import fastapi
from fastapi import Depends
from fastapi.security import (
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from prometheus_client import CollectorRegistry, Histogram, make_asgi_app
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request

import litserve as ls
from litserve.callbacks.base import Callback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def note(text: str) -> None:
    path = os.environ.get("LITSERVE_TEST_LOG")
    if path:
        with open(path, "a") as f:
            f.write(text + "\n")


def _wait_file(path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


# -- LitAPIs -------------------------------------------------------------------------------
class Square(ls.LitAPI):
    """{"input": x} -> {"output": x*x}; notes "predict <tag>" (the marker the authorize
    tests look for) and waits for the file named by "gate" first, if any."""

    def setup(self, device):
        pass

    def predict(self, x):
        note(f"predict {x.get('tag', '-')}")
        if "gate" in x:
            _wait_file(x["gate"])
        if x.get("fail"):
            raise HTTPException(400, "asked to fail")
        return {"output": x["input"] * x["input"]}


class Counter(ls.LitAPI):
    """Streams n chunks."""

    def setup(self, device):
        pass

    def predict(self, x):
        yield from range(x["n"])


class Order(BaseModel):
    item: str
    quantity: int


class Typed(ls.LitAPI):
    def setup(self, device):
        pass

    def decode_request(self, request: Order):
        return request

    def predict(self, order):
        return {"item": order.item, "quantity": order.quantity}


class Chat(ls.LitAPI):
    def __init__(self, **kwargs):
        super().__init__(spec=ls.OpenAISpec(), **kwargs)

    def setup(self, device):
        pass

    def predict(self, messages):
        note("predict chat")
        yield "hello"


# -- authorize, in every way LitServe users write it ----------------------------------------
class BearerAuth(Square):
    def authorize(self, auth: HTTPAuthorizationCredentials = Depends(HTTPBearer())):  # noqa: B008 (LitServe's style)
        if auth.credentials != "secret":
            raise HTTPException(401, "wrong token", headers={"WWW-Authenticate": "Bearer"})


class RequestAuth(Square):
    async def authorize(self, request: Request):
        if request.headers.get("x-user") != "alice":
            raise fastapi.HTTPException(403, "who are you?")


class BasicAuth(Square):
    def authorize(self, creds: HTTPBasicCredentials = Depends(HTTPBasic())):  # noqa: B008 (LitServe's style)
        if (creds.username, creds.password) != ("bob", "pw"):
            raise HTTPException(401, "bad password", headers={"WWW-Authenticate": "Basic"})


class HeaderAuth(Square):
    async def authorize(self, key: str = Depends(APIKeyHeader(name="X-Token"))):  # noqa: B008
        if key != "t0k":
            raise HTTPException(403, "bad token")


class DenyAll(Square):
    def authorize(self):
        raise HTTPException(418, "no one gets in", headers={"X-Why": "teapot"})


class BrokenAuth(Square):
    def authorize(self):
        raise RuntimeError("authorize has a bug")


class ChatAuth(Chat):
    def authorize(self, auth: HTTPAuthorizationCredentials = Depends(HTTPBearer())):  # noqa: B008 (LitServe's style)
        if auth.credentials != "secret":
            raise HTTPException(401, "wrong token")


# -- middlewares ------------------------------------------------------------------------------
class AddHeader(BaseHTTPMiddleware):
    """Adds X-Added to every answer."""

    async def dispatch(self, request, call_next):
        response = await call_next(request)
        response.headers["X-Added"] = "yes"
        return response


class DoubleInput:
    """A plain ASGI middleware that reads a /predict JSON body whole and doubles its
    "input" (fixing Content-Length), to show that the front sees the altered body."""

    def __init__(self, app, factor=2):
        self.app, self.factor = app, factor

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/predict":
            return await self.app(scope, receive, send)
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body", False):
                break
        data = json.loads(body)
        data["input"] *= self.factor
        new = json.dumps(data).encode()
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        scope = {**scope, "headers": [*headers, (b"content-length", str(len(new)).encode())]}
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": new, "more_body": False}

        await self.app(scope, replay, send)


# -- a Prometheus logger, as LitServe's docs write it -------------------------------------------
# (the registry and the histogram hold locks: litserve.pickling sends them as fresh ones)
REGISTRY = CollectorRegistry()


class PrometheusLogger(ls.Logger):
    def __init__(self):
        super().__init__()
        self.duration = Histogram("request_processing_seconds", "Time spent in a function",
                                  ["function_name"], registry=REGISTRY)

    def process(self, key, value):
        self.duration.labels(function_name=key).observe(value)


class LifespanApp:
    """An ASGI app with a lifespan (noted) that answers with its root_path and path."""

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    note(f"life startup pid={os.getpid()}")
                    await send({"type": "lifespan.startup.complete"})
                else:
                    note(f"life shutdown pid={os.getpid()}")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = json.dumps({"root_path": scope["root_path"], "path": scope["path"]}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


class MountLogger(ls.Logger):
    def __init__(self, path, app):
        super().__init__()
        self.mount(path, app)

    def process(self, key, value):
        pass


# -- callbacks ---------------------------------------------------------------------------------
class Recorder(Callback):
    def on_request(self, active_requests=None, litserver=None, **kwargs):
        note(f"on_request active={active_requests} server={type(litserver).__name__}")

    def on_response(self, litserver=None, **kwargs):
        note(f"on_response server={type(litserver).__name__}")


# -- servers started from this file -----------------------------------------------------------
def middlewares():
    return [Square(), Counter(api_path="/stream", stream=True)], {
        "middlewares": [AddHeader, (GZipMiddleware, {"minimum_size": 10}), DoubleInput]}


def surface():
    prometheus = PrometheusLogger()
    prometheus.mount("/metrics", make_asgi_app(registry=REGISTRY))
    loggers = [prometheus, MountLogger("/life", LifespanApp())]
    return [Square(), Counter(api_path="/stream", stream=True)], {
        "loggers": loggers, "callbacks": [Recorder()], "track_requests": True,
        "model_metadata": {"name": "surface", "version": 2}}


SETUPS = {"middlewares": middlewares, "surface": surface}

if __name__ == "__main__":
    apis, kwargs = SETUPS[sys.argv[1]]()
    ls.LitServer(apis, **kwargs).run(host="127.0.0.1", port=0, generate_client_file=False)
