"""Errors in OpenAI's shape, over raw HTTP, for every way a request can fail."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from server.harness import wait_for  # tests/ is on sys.path (pytest rootdir-less packages)

from litserve.specs.openai_base import error_document
from litserve.specs.openai_types import ErrorResponse

from .conftest import API_KEY
from .harness import SpecServer

CHAT, EMBED = "/v1/chat/completions", "/v1/embeddings"
KEY = {"X-API-Key": API_KEY}


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    ErrorResponse.model_validate(body)
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def messages(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def multi(servers: Any) -> SpecServer:
    return servers("multi")


# -- answered by the front ---------------------------------------------------------------------
def test_body_that_is_not_json(chat: SpecServer) -> None:
    err = error_of(httpx.post(chat.url + CHAT, content=b"{not json"), 400)
    assert err["message"].startswith("request body is not valid JSON")
    assert err["type"] == "invalid_request_error"


@pytest.mark.parametrize(("body", "param"), [
    ({}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": [{"content": "no role"}]}, "messages.0.role"),
    ({"messages": messages("x"), "temperature": "hot"}, "temperature"),
    ({"messages": [{"role": "user", "content": [{"type": "video", "url": "v"}]}]},
     "messages.0.content.str"),
])
def test_invalid_chat_request(chat: SpecServer, body: dict[str, Any], param: str) -> None:
    err = error_of(httpx.post(chat.url + CHAT, json=body), 422)
    assert (err["type"], err["code"], err["param"]) == ("invalid_request_error",
                                                         "invalid_value", param)
    assert param in err["message"]


@pytest.mark.parametrize("n", [0, -1, 129])
def test_choice_count_out_of_range(chat: SpecServer, n: int) -> None:
    err = error_of(httpx.post(chat.url + CHAT, json={"messages": messages("x"), "n": n}), 400)
    assert err["param"] == "n" and f"n={n} is out of range: ask for 1 to 128" in err["message"]


def test_wrong_method(chat: SpecServer) -> None:
    err = error_of(httpx.get(chat.url + CHAT), 405)
    assert err["code"] == "method_not_allowed"


def test_invalid_embedding_request(servers: Any) -> None:
    url = servers("embeddings").url + EMBED
    assert error_of(httpx.post(url, json={"input": [], "model": "e"}), 422)["param"] == "input"
    err = error_of(httpx.post(url, json={"input": "x", "encoding_format": "hex"}), 422)
    assert err["param"] == "encoding_format"


@pytest.mark.parametrize("path", [CHAT, EMBED, "/v1/models"])
def test_missing_api_key(multi: SpecServer, path: str) -> None:
    call = httpx.get if path == "/v1/models" else httpx.post
    err = error_of(call(multi.url + path), 401)
    assert err["code"] == "invalid_api_key" and "API key" in err["message"]


def test_body_over_the_limit(multi: SpecServer) -> None:
    big = b'{"input": "' + b"a" * (2 << 20) + b'"}'
    err = error_of(httpx.post(multi.url + EMBED, content=big, headers=KEY), 413)
    assert err["code"] == "request_too_large" and "max_payload_size" in err["message"]


def test_unknown_model_card(chat: SpecServer) -> None:
    assert httpx.get(chat.url + "/v1/models/nope").status_code == 404


# -- answered by the worker --------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
def test_deadline(multi: SpecServer, stream: bool) -> None:
    body = {"messages": messages("slow 1.5"), "stream": stream}
    err = error_of(httpx.post(multi.url + CHAT, json=body, headers=KEY, timeout=30), 504)
    assert (err["type"], err["code"]) == ("server_error", "timeout")
    assert "timed out after 1 s" in err["message"]


def test_hook_raising_http_exception(chat: SpecServer) -> None:
    err = error_of(httpx.post(chat.url + CHAT, json={"messages": messages("fail-start")}), 400)
    assert err["message"] == "the model refuses 'fail-start'"


def internal(err: dict[str, Any], server: SpecServer, *logged: str) -> str:
    """Check a 500 says only its request id, and the server logged ``logged`` for that id."""
    assert (err["type"], err["code"]) == ("server_error", "internal_error")
    m = re.fullmatch(r"Internal Server Error \(request id: ([0-9a-f]{32})\)", err["message"])
    assert m, err["message"]

    def record() -> str:
        out = server.output
        return out[out.find(m.group(1)):] if m.group(1) in out else ""
    found = wait_for(record, 10, f"a log record for request {m.group(1)}")
    for text in logged:
        assert text in found
    return m.group(1)


def test_hook_crashing(chat: SpecServer) -> None:
    r = httpx.post(chat.url + CHAT, json={"messages": messages("crash-start")})
    request_id = internal(error_of(r, 500), chat, "RuntimeError: the model crashed")
    assert r.headers["x-request-id"] == request_id and "crashed" not in r.text


def test_embedding_count_mismatch(servers: Any) -> None:
    server = servers("embeddings")
    r = httpx.post(server.url + EMBED, json={"input": "wrong-count"})
    internal(error_of(r, 500), server, "2 embeddings for 1 inputs")


def test_error_mid_stream_is_the_last_event(chat: SpecServer) -> None:
    body = {"messages": messages("fail-mid a b c"), "stream": True}
    with httpx.stream("POST", chat.url + CHAT, json=body, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        events = response.read().decode().split("\n\n")
    assert events[-1] == ""
    assert all(e.startswith("data: {") for e in events[:-1])
    assert '"error":' not in "".join(events[:2])
    last = httpx.Response(200, content=events[-2][len("data: "):]).json()
    ErrorResponse.model_validate(last)
    internal(last["error"], chat, "failed in the middle")


# -- the error document itself -----------------------------------------------------------------
@pytest.mark.parametrize(("status", "kind", "code"), [
    (400, "invalid_request_error", None), (401, "invalid_request_error", "invalid_api_key"),
    (404, "invalid_request_error", "not_found"), (418, "invalid_request_error", None),
    (429, "rate_limit_error", "rate_limit_exceeded"), (500, "server_error", "internal_error"),
    (502, "server_error", None), (503, "server_error", "service_unavailable"),
    (504, "server_error", "timeout"),
])
def test_error_document_kinds(status: int, kind: str, code: str | None) -> None:
    assert error_document(status, "why") == {
        "error": {"message": "why", "type": kind, "param": None, "code": code}}


def test_error_document_details() -> None:
    errors = [{"loc": ("a", 0), "msg": "bad"}, {"loc": ("b",), "msg": "worse"}]
    assert error_document(422, errors)["error"] | {"type": None} == {
        "message": "a.0: bad; b: worse", "type": None, "param": "a.0", "code": "invalid_value"}
    assert error_document(400, {"message": "m", "x": 1})["error"]["message"] == "m"
    ready = {"error": {"message": "m", "type": "t", "param": None, "code": "c"}}
    assert error_document(500, ready) is ready
