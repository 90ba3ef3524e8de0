"""``litserve bench`` as a real process against a real server process.

Every run's JSON is checked against the server's own counts: each request the bench
wrote was seen by the server, and each status the server sent was counted.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

from cli_support import ROOT, bench, check_plausible, delta, support


def test_json_requests_match_the_server_count(server: Any) -> None:
    before = server.stats()
    r, _ = bench(server.url + "/predict", "-n", "200", "-c", "4", "--warmup", "0",
                 "--expect", '{"output": 16.0}')
    after = server.stats()
    assert (r["requests"], r["ok"], r["errors"], r["sent_total"]) == (200, 200, 0, 200)
    assert delta(before, after, "/predict") == 200
    assert r["statuses"] == {"200": 200} and r["payload"] == "json"
    assert r["request_mb_per_s"] > 0 and r["response_mb_per_s"] > 0
    check_plausible(r)


def test_duration_with_warmup_and_two_processes(server: Any) -> None:
    before = server.stats()
    r, _ = bench(server.url, "-d", "1", "--warmup", "0.3", "-c", "4", "--procs", "2")
    after = server.stats()
    assert r["requests"] > 50 and r["warmup_requests"] > 0 and r["errors"] == 0
    assert r["sent_total"] == r["requests"] + r["warmup_requests"]
    assert delta(before, after, "/predict") == r["sent_total"]
    assert 0.9 <= r["elapsed_s"] <= 1.6 and r["procs"] == 2
    check_plausible(r)


def test_tensor_payload_binary_echo(server: Any) -> None:
    before = server.stats()
    r, _ = bench(server.url, "--tensor", "32x32x3:uint8", "--expect", "echo", "-n", "100",
                 "-c", "2", "--warmup", "0")
    assert (r["requests"], r["ok"]) == (100, 100) and r["payload"] == "tensor"
    assert r["request_bytes"] > 32 * 32 * 3
    assert delta(before, server.stats(), "/predict") == 100
    r, _ = bench(server.url, "--tensor", "image=8x8:float16", "--tensor", "scale=:int64",
                 "-n", "20", "-c", "1", "--warmup", "0", "--tensor-format", "npy")
    assert r["ok"] == 20


def test_streaming_route_counts_chunks(server: Any) -> None:
    want = json.dumps([{"i": i} for i in range(5)])
    before = server.stats()
    r, _ = bench(server.url + "/stream", "--stream", "--data", '{"n": 5}', "-n", "40", "-c", "4",
                 "--warmup", "0", "--expect", want)
    assert (r["requests"], r["ok"], r["chunks"]) == (40, 40, 200)
    assert delta(before, server.stats(), "/stream") == 40
    assert r["ttfc_ms"]["max"] <= r["latency_ms"]["max"]
    assert r["inter_chunk_ms"] is not None and r["stream"] == "chunks"
    check_plausible(r)


def test_openai_streamed_chat(server: Any) -> None:
    before = server.stats()
    r, _ = bench(server.url, "--openai", "--prompt", "a b c", "-n", "30", "-c", "3",
                 "--warmup", "0", "--expect", "a b c ")
    assert r["url"].endswith("/v1/chat/completions") and r["stream"] == "sse"
    assert (r["requests"], r["ok"]) == (30, 30)
    assert r["chunks"] == 30 * 4  # three words and the closing chunk; [DONE] is not one
    assert delta(before, server.stats(), "/v1/chat/completions") == 30
    assert r["ttfc_ms"]["p50"] <= r["latency_ms"]["p50"]


def test_server_errors_are_counted_by_status(server: Any) -> None:
    before = server.stats()
    r, _ = bench(server.url + "/flaky", "-n", "90", "-c", "3", "--warmup", "0")
    after = server.stats()
    assert r["errors_by_status"] == {"500": delta(before, after, "/flaky 500", "statuses")}
    assert r["ok"] == delta(before, after, "/flaky 200", "statuses") and r["errors"] == 30
    check_plausible(r)
    r, _ = bench(server.url + "/fail", "-n", "10", "-c", "2", "--warmup", "0", expect_rc=1)
    assert r["errors_by_status"] == {"500": 10} and r["ok"] == 0


def test_wrong_answers_are_errors(server: Any) -> None:
    r, _ = bench(server.url, "-n", "20", "-c", "2", "--warmup", "0",
                 "--expect", '{"output": 17}', expect_rc=1)
    assert r["errors_by_kind"] == {"wrong answer": 20} and r["ok"] == 0
    assert "expected {'output': 17}" in r["first_wrong_answer"]


def test_timeouts_are_counted_not_retried(server: Any) -> None:
    before = server.stats()
    r, _ = bench(server.url + "/slow?delay=3", "-n", "4", "-c", "2", "--warmup", "0",
                 "--timeout", "0.3", expect_rc=1)
    assert r["errors_by_kind"] == {"timeout": 4} and r["sent_total"] == 4
    assert r["first_error"] == "timeout: no answer within 0.3 s"
    assert delta(before, server.stats(), "/slow") == 4


def test_open_loop_rate(server: Any) -> None:
    before = server.stats()
    r, _ = bench(server.url, "--rate", "200", "-d", "1", "-c", "8", "--warmup", "0")
    assert 130 <= r["requests"] <= 270 and r["rate"] == 200 and r["dropped"] == 0
    assert delta(before, server.stats(), "/predict") == r["sent_total"] == r["requests"]
    check_plausible(r)


def test_connection_close_answers_reconnect(server: Any) -> None:
    r, _ = bench(server.url + "/close", "-n", "20", "-c", "2", "--warmup", "0")
    assert (r["requests"], r["ok"]) == (20, 20)


def test_api_key(keyed_server: Any) -> None:
    r, _ = bench(keyed_server.url, "-n", "5", "-c", "1", "--warmup", "0", "--api-key", "s3cret")
    assert r["ok"] == 5
    r, _ = bench(keyed_server.url, "-n", "5", "-c", "1", "--warmup", "0", expect_rc=1)
    assert r["errors_by_status"] == {"401": 5}


def test_text_summary_and_progress(server: Any) -> None:
    cmd = [sys.executable, "-m", "litserve", "bench", server.url, "-d", "0.8", "-c", "2",
           "--warmup", "0.2", "--progress"]
    proc = subprocess.run(cmd, capture_output=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for text in (b"requests", b"req/s", b"latency ms", b"p99.9", b"errors", b"warmup"):
        assert text in proc.stdout
    assert b"\r" in proc.stderr and b"req/s" in proc.stderr  # the live line, rewritten


def test_nothing_listening_fails_fast() -> None:
    url = f"http://127.0.0.1:{support.free_port()}"  # type: ignore[attr-defined]
    r, err = bench(url, "-n", "5", expect_rc=2, timeout=30)
    assert "cannot connect" in err


def test_https(tls_server: Any) -> None:
    before = tls_server.stats()
    r, _ = bench(tls_server.url, "-n", "50", "-c", "2", "--warmup", "0",
                 "--cacert", str(tls_server.cert), "--expect", '{"output": 16.0}')
    assert (r["requests"], r["ok"]) == (50, 50)
    assert delta(before, tls_server.stats(), "/predict") == 50
    r, _ = bench(tls_server.url, "-n", "5", "-c", "1", "--warmup", "0", "--insecure")
    assert r["ok"] == 5
    _, err = bench(tls_server.url, "-n", "5", "-c", "1", expect_rc=2)
    assert "CERTIFICATE_VERIFY_FAILED" in err


def test_open_loop_overload_queues_then_drops(server: Any) -> None:
    """One connection, 0.3 s per answer, 40 arrivals/s: queued arrivals count their wait,
    those still queued at the end are dropped, never sent."""
    before = server.stats()
    r, _ = bench(server.url + "/slow?delay=0.3", "--rate", "40", "-c", "1", "-d", "1",
                 "--warmup", "0")
    assert 2 <= r["requests"] <= 6 and r["ok"] == r["requests"]
    assert r["dropped"] >= 10
    assert delta(before, server.stats(), "/slow") == r["sent_total"] == r["requests"]
    assert r["latency_ms"]["max"] >= 450  # waited for the connection, then 0.3 s


def test_ctrl_c_stops_early_with_a_summary(server: Any) -> None:
    cmd = [sys.executable, "-m", "litserve", "bench", server.url, "-d", "60", "-c", "2",
           "--warmup", "0", "--json", "-", "--no-progress"]
    before = server.stats()["counts"].get("/predict", 0)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while server.stats()["counts"].get("/predict", 0) < before + 100:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the bench never sent 100 requests"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    r = json.loads(out)
    assert r["requests"] >= 100 and r["errors"] == 0 and r["elapsed_s"] < 30
    assert server.stats()["counts"]["/predict"] - before == r["sent_total"]
