"""``LitServer(middlewares=...)``: ASGI middlewares around the fronts, which then read no
body straight into the arena (a middleware may read or change it)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import httpx
import pytest

import litserve as ls
from litserve.errors import ConfigError
from litserve.examples import SimpleLitAPI

from .harness import serve_ready, start_script


@pytest.fixture(scope="module")
def server() -> Iterator[object]:
    with serve_ready(start_script("front_surface", "middlewares")) as s:
        yield s


def test_a_middleware_adds_a_response_header(server):
    r = server.post(json={"input": 3})
    assert r.status_code == 200, r.text
    assert r.headers["x-added"] == "yes"
    assert server.post("/nowhere", json={}).headers["x-added"] == "yes"  # our 404 too
    assert httpx.get(server.url + "/health").headers["x-added"] == "yes"


def test_a_middleware_that_rewrites_the_body_is_what_the_worker_sees(server):
    # DoubleInput doubles "input": 3 -> 6 -> 36
    assert server.post(json={"input": 3}).json() == {"output": 36}


def test_a_large_body_goes_through_the_middleware_not_straight_to_the_arena(server):
    """Over 64 KiB, a body would be read by the protocol straight into the arena and
    the middleware would see an empty one; with middlewares that path is off."""
    body = json.dumps({"input": 5, "pad": "x" * 300_000}).encode()
    r = server.post(content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json() == {"output": 100}


def test_gzip_middleware_with_kwargs_compresses_answers(server):
    raw = httpx.post(server.url + "/predict", json={"input": 1},
                     headers={"accept-encoding": "gzip"}, timeout=30)
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.json() == {"output": 4}  # (httpx decoded it)
    with httpx.stream("POST", server.url + "/stream", json={"n": 40},
                      headers={"accept-encoding": "gzip"}, timeout=30) as r:
        assert r.headers["content-encoding"] == "gzip"
        data = gzip.decompress(b"".join(r.iter_raw()))
    assert [int(x) for x in data.split()] == list(range(40))


@pytest.mark.parametrize("bad, named", [
    ("GZipMiddleware", "middlewares='GZipMiddleware' is not valid"),
    ({"a": 1}, "middlewares={'a': 1} is not valid"),
    ([42], "item 42 is not valid"),
    ([(dict, "x")], "item (<class 'dict'>, 'x') is not valid"),
    ([(dict, {}, {})], "is not valid"),
])
def test_a_bad_middleware_list_is_a_config_error_naming_it(bad, named):
    with pytest.raises(ConfigError, match="use a middleware class|use a list") as info:
        ls.LitServer(SimpleLitAPI(), middlewares=bad)
    assert named in str(info.value)


def test_middlewares_in_the_accepted_forms_are_kept():
    from starlette.middleware.gzip import GZipMiddleware

    given = [GZipMiddleware, (GZipMiddleware, {"minimum_size": 5}), lambda app: app]
    assert ls.LitServer(SimpleLitAPI(), middlewares=given).middlewares == given
    assert ls.LitServer(SimpleLitAPI()).middlewares == []


def test_without_middlewares_the_front_is_served_as_it_is():
    from litserve.http.middleware import Stack, wrap

    app = object()
    assert wrap(app, []) is app  # no wrapper, no per-request work
    assert isinstance(wrap(app, [lambda inner: inner]), Stack)
