"""Nothing leaks out: exception texts stay in the log, header lines stay single, JSON
numbers stay exact.  One real server serves every hostile API of ``apps/hostile.py``."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from litserve.specs.openai_types import ErrorResponse

from .apps.hostile import BAD_HEADERS, SECRET
from .harness import Server, serve, wait_for

CHAT = "/v1/chat/completions"
APIS = ";".join([
    "hostile:Leaky",
    'hostile:LeakyBatch({"api_path": "/batch", "max_batch_size": 2, "batch_timeout": 2})',
    'hostile:LeakyStream({"api_path": "/stream", "stream": true})',
    'hostile:Headers({"api_path": "/headers"})',
    'hostile:Exact({"api_path": "/exact"})',
    'hostile:Big({"api_path": "/big"})',
    'hostile:TypedExact({"api_path": "/typed"})',
    "hostile:LeakyChat",
])
REQUEST_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def server():
    with serve(APIS) as s:
        yield s


def bare_500(r: httpx.Response) -> str:
    """Check ``r`` is our plain 500 (no detail, a request id); the request id."""
    assert r.status_code == 500, r.text
    body = r.json()
    assert set(body) == {"detail", "request_id"} and body["detail"] == "Internal Server Error"
    assert REQUEST_ID.fullmatch(body["request_id"]), body
    assert r.headers["x-request-id"] == body["request_id"]
    assert SECRET not in r.text and SECRET not in str(r.headers)
    return str(body["request_id"])


def logged(server: Server, request_id: str, *needles: str) -> str:
    """The server's log line naming ``request_id``; it and the traceback after it must hold
    ``needles`` (the log is read from a pipe, so it may trail the response a little)."""
    def found() -> str:
        out = server.output
        at = out.find(request_id)
        if at < 0 or "Traceback" not in out[at:]:
            return ""
        tail = out[at:]
        end = tail.find("\nERROR", 1)  # the next record
        return tail if end < 0 else tail[:end]
    record = wait_for(found, 10, f"a log line (with a traceback) for request {request_id}")
    for needle in needles:
        assert needle in record, f"{needle!r} not in the log record:\n{record}"
    return str(record)


# -- exception texts ---------------------------------------------------------------------------
@pytest.mark.parametrize(("where", "hook", "text"), [
    ("decode", "Leaky.decode_request", "ValueError: bad request field"),
    ("predict", "Leaky.predict", "RuntimeError: model exploded"),
    ("encode", "Leaky", "cannot write value"),  # pydantic's, writing encode_response's output
])
def test_an_unexpected_exception_is_a_bare_500_whose_id_is_in_the_log(
        server: Server, where: str, hook: str, text: str) -> None:
    request_id = bare_500(server.post(json={"where": where}))
    logged(server, request_id, f"failed in {hook}", text, SECRET)
    assert server.post(json={"where": "nowhere"}).json() == {"ok": True}


def test_every_request_of_a_failed_batch_has_its_own_id(server: Server) -> None:
    with ThreadPoolExecutor(2) as pool:
        rs = list(pool.map(lambda _: server.post("/batch", json={}), range(2)))
    ids = [bare_500(r) for r in rs]
    assert len(set(ids)) == 2
    for request_id in ids:
        logged(server, request_id, "LeakyBatch.predict", "exploded", SECRET)


def test_a_stream_that_fails_ends_with_a_bare_error_line(server: Server) -> None:
    r = server.post("/stream", json={})
    assert r.status_code == 200 and SECRET not in r.text
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert lines[:2] == [{"i": 0}, {"i": 1}]
    assert lines[2]["detail"] == "Internal Server Error" and len(lines) == 3
    logged(server, lines[2]["request_id"], "RuntimeError: generator broke", SECRET)


# -- response headers --------------------------------------------------------------------------
@pytest.mark.parametrize("via", ["response", "http"])
@pytest.mark.parametrize("how", sorted(BAD_HEADERS))
def test_a_header_that_is_not_one_valid_line_is_refused(server: Server, how: str,
                                                         via: str) -> None:
    r = server.post("/headers", json={"how": how, "via": via})
    assert "set-cookie" not in r.headers and "x-note" not in r.headers, r.headers
    request_id = bare_500(r)
    [(name, value)] = BAD_HEADERS[how].items()
    name = name.lower() if via == "response" else name  # starlette lowercases Response's
    logged(server, request_id, repr(name), repr(value))
    good = server.post("/headers", json={"how": "good", "via": via})
    assert good.headers["x-note"] == ("fine\tand good" if via == "response" else "fine")
    assert good.status_code == (200 if via == "response" else 409)


# -- JSON numbers ------------------------------------------------------------------------------
def test_request_integers_of_any_size_stay_exact(server: Server) -> None:
    body = (b'{"big": 123456789012345678901234567890, "u64": 18446744073709551616, '
            b'"i64": -9223372036854775809, "small": 7, "text": "1234567890123456789012"}')
    r = server.post("/exact", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json() == {"big": 123456789012345678901234567890, "u64": 2**64,
                        "i64": -(2**63) - 1, "small": 7, "text": "1234567890123456789012"}
    refused = server.post("/exact", content=b'{"big": 12345678901234567890123,}')
    assert refused.status_code == 400 and "not valid JSON" in refused.json()["detail"]


def test_request_nan_and_infinities_are_accepted_like_json_loads(server: Server) -> None:
    body = b'{"nan": NaN, "inf": Infinity, "ninf": -Infinity, "huge": 1e400}'
    r = server.post("/exact", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json() == {"nan": "float nan", "inf": "float inf", "ninf": "float -inf",
                        "huge": "float inf"}


def test_response_integers_beyond_64_bits_stay_exact(server: Server) -> None:
    r = server.post("/big", json={"n": 1})
    assert r.status_code == 200, r.text
    assert r.json() == {"big": 2**100, "neg": -(2**80), "edges": [2**63 - 1, 2**64 - 1, -(2**63)],
                        "nested": [{"id": 10**30 + 7}], "x": {"n": 1}}
    assert b'"big":1267650600228229401496703205376' in r.content


def test_a_pydantic_request_follows_pydantics_rules_and_answers_exactly(server: Server) -> None:
    r = server.post("/typed", content=b'{"id": 1000000000000000000000000000001, "score": NaN}')
    assert r.status_code == 200, r.text
    assert r.json() == {"id": 10**30 + 1, "score": "float nan"}


# -- OpenAISpec --------------------------------------------------------------------------------
def chat_body(text: str, stream: bool = False) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], "stream": stream}


def openai_500(r: httpx.Response) -> str:
    """Check ``r`` is a 500 in OpenAI's shape that says only its request id; the id."""
    assert r.status_code == 500, r.text
    assert SECRET not in r.text and SECRET not in str(r.headers)
    return openai_internal(r.json())


def openai_internal(body: dict[str, Any]) -> str:
    ErrorResponse.model_validate(body)
    error = body["error"]
    assert (error["type"], error["code"], error["param"]) == ("server_error", "internal_error",
                                                              None)
    m = re.fullmatch(r"Internal Server Error \(request id: ([0-9a-f]{32})\)", error["message"])
    assert m, error
    return m.group(1)


@pytest.mark.parametrize("stream", [False, True])
def test_openai_crash_before_the_first_token(server: Server, stream: bool) -> None:
    r = server.post(CHAT, json=chat_body("start", stream))
    request_id = openai_500(r)
    assert r.headers["x-request-id"] == request_id
    logged(server, request_id, "failed in LeakyChat", "crashed before the first token", SECRET)


def test_openai_crash_mid_stream_ends_with_a_bare_error_event(server: Server) -> None:
    r = server.post(CHAT, json=chat_body("mid", stream=True))
    assert r.status_code == 200 and SECRET not in r.text
    events = [e for e in r.text.split("\n\n") if e]
    assert any('"content":"one"' in e for e in events[:-1]), events
    request_id = openai_internal(json.loads(events[-1].removeprefix("data: ")))
    logged(server, request_id, "failed in the middle", SECRET)


def test_openai_output_of_the_wrong_type_is_not_echoed(server: Server) -> None:
    request_id = openai_500(server.post(CHAT, json=chat_body("object")))
    logged(server, request_id, "TypeError", "produced set", SECRET)


def test_openai_populate_context_crash_in_the_front(server: Server) -> None:
    request_id = openai_500(server.post(CHAT, json=chat_body("populate")))
    logged(server, request_id, "LeakySpec.populate_context", SECRET)
