"""``litserve bench`` against the real litserve server; the API counts its own calls."""

from __future__ import annotations

import json
from typing import Any

from cli_support import bench, check_plausible

from litserve.client import Client


def api_counts(server: Any) -> dict[str, int]:
    return dict(Client(server.url).predict({"count": True}))


def test_json_requests_match_the_api_count(real_server: Any) -> None:
    before = api_counts(real_server)
    r, _ = bench(real_server.url, "-d", "1", "--warmup", "0.2", "-c", "8",
                 "--expect", '{"output": 16.0}')
    after = api_counts(real_server)
    assert r["errors"] == 0 and r["requests"] > 20
    assert after["count"] - before["count"] == r["sent_total"]
    assert r["sent_total"] == r["requests"] + r["warmup_requests"]
    check_plausible(r)


def test_tensor_echo(real_server: Any) -> None:
    before = api_counts(real_server)
    r, _ = bench(real_server.url, "--tensor", "64x64x3:uint8", "--expect", "echo", "-n", "100",
                 "-c", "4", "--warmup", "0")
    assert (r["requests"], r["ok"]) == (100, 100)
    assert api_counts(real_server)["count"] - before["count"] == 100


def test_server_errors_counted(real_server: Any) -> None:
    before = api_counts(real_server)
    r, _ = bench(real_server.url, "--data", '{"flaky": true}', "-n", "60", "-c", "1",
                 "--warmup", "0")
    after = api_counts(real_server)
    failures = after["flaky_failures"] - before["flaky_failures"]
    assert failures == 20 and r["errors_by_status"] == {"500": failures}
    assert r["ok"] == 40 and after["count"] - before["count"] == 60
    check_plausible(r)


def test_stream_and_openai(real_server: Any) -> None:
    want = json.dumps([{"i": i} for i in range(4)])
    r, _ = bench(real_server.url + "/stream", "--stream", "--data", '{"n": 4}', "-n", "30",
                 "-c", "3", "--warmup", "0", "--expect", want)
    assert (r["ok"], r["chunks"]) == (30, 120) and r["ttfc_ms"] is not None
    r, _ = bench(real_server.url, "--openai", "--prompt", "one two three", "-n", "20", "-c", "2",
                 "--warmup", "0", "--expect", "one two three ")
    assert r["ok"] == 20 and r["chunks"] >= 20 * 3
    check_plausible(r)
