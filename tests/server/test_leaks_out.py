"""Nothing leaks out: JSON numbers stay exact.  One real server serves every hostile API of
``apps/hostile.py``."""

from __future__ import annotations

import pytest

from .harness import Server, serve

APIS = ";".join([
    'hostile:Exact({"api_path": "/exact"})',
    'hostile:Big({"api_path": "/big"})',
    'hostile:TypedExact({"api_path": "/typed"})',
])


@pytest.fixture(scope="module")
def server():
    with serve(APIS) as s:
        yield s


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
