"""encode_response returning a starlette / FastAPI Response: its status, headers, media
type and body reach the client, from a plain worker and from an async one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .harness import Server, serve, wait_for


@pytest.fixture(scope="module", params=["Responses", "AsyncResponses"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with serve(f"aio:{request.param}") as s:
        yield s


def test_a_response_with_status_headers_and_media_type(server: Server):
    r = server.post(json={"kind": "csv"})
    assert r.status_code == 201
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["x-rows"] == "1"
    assert r.headers["set-cookie"] == "k=v"
    assert r.headers["content-length"] == "8"
    assert r.content == b"a,b\n1,2\n"


def test_json_and_plain_text_responses(server: Server):
    r = server.post(json={"kind": "json"})
    assert (r.status_code, r.headers["content-type"], r.headers["x-json"]) == \
        (202, "application/json", "yes")
    assert r.json() == {"made": "here"}
    r = server.post(json={"kind": "text"})
    assert (r.status_code, r.headers["content-type"]) == (418, "text/plain; charset=utf-8")
    assert r.text == "plain words"


def test_a_large_binary_body_and_an_empty_one(server: Server):
    r = server.post(json={"kind": "bytes"})
    assert r.headers["content-type"] == "image/png"
    assert r.content == bytes(range(256)) * 1024
    r = server.post(json={"kind": "empty"})
    assert r.status_code == 204 and r.content == b""


def test_a_streaming_response_is_a_500_that_the_log_explains(server: Server):
    r = server.post(json={"kind": "stream"})
    assert r.status_code == 500
    assert r.json()["detail"] == "Internal Server Error"
    wait_for(lambda: "StreamingResponse, whose body is produced while it is sent"
             in server.output, 5, "the reason logged")


def test_a_header_that_cannot_be_sent_is_a_500(server: Server):
    r = server.post(json={"kind": "bad-header"})
    assert r.status_code == 500
    assert "injected" not in r.headers


def test_other_outputs_are_still_json(server: Server):
    assert server.post(json={"kind": "other"}).json() == {"kind": "other"}
