"""Hostile, slow and careless clients: nothing leaks, no one can stall a front.

Every test ends with the front holding no slot and no arena byte (``wait_idle``), and
checks that ordinary requests are still served.
"""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from .harness import Server, front_usage, pids_mapping, serve, server_names, wait_for, wait_idle

MiB = 1 << 20


def _addr(server: Server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def _connect(server: Server, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(_addr(server), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def _read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def _head(path: str = "/predict", **headers: str | int) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: x"] + [
        f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _square_ok(server: Server) -> None:
    assert server.post(json={"input": 4}).json() == {"output": 16}


def _front_pid(server: Server) -> int:
    """The front's pid (call it before the first request: then only the front maps its
    arena; workers attach at their first request)."""
    [front] = pids_mapping(server, "f0.0.arena")
    return front


def _rss_anon(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no RssAnon for pid {pid}")


# -- sizes are checked before anything is reserved -------------------------------------
def test_max_payload_size_is_the_exact_limit_and_the_413_names_it():
    with serve("basic:Echo", max_payload_size=MiB) as server:
        ok = np.ones(MiB // 4, dtype=np.float32)
        r = server.post(content=ok.tobytes(), headers={
            "content-type": "application/octet-stream", "x-tensor-dtype": "float32"})
        assert r.status_code == 200 and r.json()["sum"] == MiB // 4
        r = server.post(content=b"x" * (MiB + 1), headers={
            "content-type": "application/octet-stream", "x-tensor-dtype": "uint8"})
        assert r.status_code == 413
        assert f"limit of {MiB} bytes" in r.json()["detail"], r.text
        wait_idle(server)


def test_headers_only_requests_that_cannot_fit_never_use_up_the_slots():
    """A Content-Length just under the arena plus a long multipart boundary does not fit
    the arena with its meta; on the old code each one leaked a slot (4096 per front)."""
    boundary = "b" * 100
    with serve("basic:Square", max_payload_size=MiB) as server:

        def one(_: int) -> int:
            with _connect(server) as sock:
                sock.sendall(_head(content_type=f"multipart/form-data; boundary={boundary}",
                                   content_length=2 * MiB - 64))
                return _status(_read_answer(sock))

        with ThreadPoolExecutor(8) as pool:
            statuses = set(pool.map(one, range(4200)))
        assert statuses == {413}, statuses
        _square_ok(server)
        wait_idle(server)


def test_malformed_tensor_headers_near_the_limit_are_400_and_keep_nothing():
    """Each of these once answered 500 and kept its arena block: two of them used up a
    2 MiB arena, and the next large request got a 503."""
    big = 900 * 1024
    cases = [
        ({"content-type": "application/octet-stream", "x-tensor-dtype": "uint8",
          "x-tensor-shape": "18446744073709551616"}, b"\0" * big),
        ({"content-type": "application/octet-stream", "x-tensor-dtype": "uint8",
          "x-tensor-shape": "4294967296,4294967296,921600"}, b"\0" * big),
    ]
    with serve("basic:Echo", max_payload_size=MiB, queue_timeout=0.5) as server:
        for headers, body in cases * 3:
            r = server.post(content=body, headers=headers)
            assert r.status_code == 400, (headers, r.status_code, r.text)
            assert "X-Tensor-Shape" in r.json()["detail"] or "shape" in r.json()["detail"]
        good = np.full(big // 4, 2, dtype=np.float32)
        r = server.post(content=good.tobytes(), headers={
            "content-type": "application/octet-stream", "x-tensor-dtype": "float32"})
        assert r.status_code == 200 and r.json()["sum"] == big // 2
        wait_idle(server)


# -- slow and idle clients ---------------------------------------------------------------
def test_a_stalled_upload_cannot_keep_room_from_other_requests():
    """Headers of a body as large as the limit, one byte, then silence: the next request
    that needs the room gets it (the stalled upload is closed with a 408) well before
    the bounded wait for room (queue_timeout) runs out."""
    with serve("basic:Echo", max_payload_size=2 * MiB, queue_timeout=8, body_timeout=60
               ) as server:
        stalled = _connect(server, timeout=20)
        stalled.sendall(_head(content_type="application/octet-stream",
                              x_tensor_dtype="uint8", content_length=2 * MiB) + b"\0")
        wait_for(lambda: front_usage(server)[1] >= 2 * MiB, 10, "the upload reserving room")
        x = np.ones(MiB // 4, dtype=np.float32)
        start = time.monotonic()
        r = server.post(content=x.tobytes(), headers={
            "content-type": "application/octet-stream", "x-tensor-dtype": "float32"})
        took = time.monotonic() - start
        assert r.status_code == 200 and r.json()["sum"] == MiB // 4, r.text
        assert took < 5, f"the request waited {took:.1f} s for room a stalled upload held"
        answer = _read_answer(stalled)
        stalled.close()
        assert _status(answer) == 408, answer
        wait_idle(server)


def test_a_body_that_stops_arriving_is_408_after_body_timeout():
    with serve("basic:Echo", body_timeout=1) as server:
        with _connect(server) as sock:
            sock.sendall(_head(content_type="application/json", content_length=300)
                         + b'{"input": ')
            start = time.monotonic()
            answer = _read_answer(sock)
        assert _status(answer) == 408, answer
        assert 0.9 < time.monotonic() - start < 5
        wait_idle(server)


def test_slow_headers_are_408_after_header_timeout_and_huge_headers_431():
    with serve("basic:Square", header_timeout=1) as server:
        with _connect(server) as sock:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
            start = time.monotonic()
            answer = _read_answer(sock)
        assert _status(answer) == 408, answer
        assert time.monotonic() - start < 5
        with _connect(server) as sock:  # a connection that never sends a byte
            assert _status(_read_answer(sock)) == 408
        with _connect(server) as sock:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
            try:
                for _ in range(200):
                    sock.sendall(b"X-Filler: " + b"a" * 1000 + b"\r\n")
            except OSError:
                pass  # the server closed on us: what we want
            assert _status(_read_answer(sock)) == 431
        _square_ok(server)
        wait_idle(server)


def test_idle_connections_and_partial_small_bodies_hold_no_slot_and_little_memory():
    """4,100 connections that sent part of a 300-byte body once used up every slot; an
    idle connection cost a 256 KiB read buffer."""
    with serve("basic:Square", body_timeout=60, header_timeout=60) as server:
        front = _front_pid(server)
        before = _rss_anon(front)
        socks = []
        try:
            for _ in range(4100):
                sock = _connect(server)
                sock.sendall(_head(content_type="application/json", content_length=300)
                             + b'{"input": 1')
                socks.append(sock)
            _square_ok(server)  # served: once the front took all of them in
            assert front_usage(server)[0] == 0  # none of them holds a slot
            per_conn = (_rss_anon(front) - before) / len(socks)
            assert per_conn < 24 * 1024, f"{per_conn / 1024:.1f} KiB per idle connection"
        finally:
            for sock in socks:
                sock.close()
        wait_idle(server)


# -- chunked bodies ------------------------------------------------------------------------
def _chunked(sock: socket.socket, pieces: int, size: int, fill: int = 1) -> None:
    piece = bytes([fill]) * size
    for _ in range(pieces):
        sock.sendall(b"%x\r\n" % size + piece + b"\r\n")


def test_chunked_bodies_go_into_the_arena_as_they_arrive():
    with serve("basic:Echo", max_payload_size=64 * MiB) as server:
        front = _front_pid(server)
        before = _rss_anon(front)
        with _connect(server, timeout=30) as sock:
            sock.sendall(_head(content_type="application/octet-stream", x_tensor_dtype="uint8",
                               transfer_encoding="chunked"))
            _chunked(sock, 40, MiB)
            wait_for(lambda: front_usage(server)[1] >= 39 * MiB, 10,
                     "the chunked body landing in the arena")
            grown = _rss_anon(front) - before
            assert grown < 16 * MiB, f"the front's own memory grew by {grown / MiB:.0f} MiB"
            sock.sendall(b"0\r\n\r\n")
            head, _, body = sock.recv(1 << 16).partition(b"\r\n\r\n")
            while body.count(b"}") < 1:
                body += sock.recv(1 << 16)
        assert _status(head) == 200, head
        assert json.loads(body)["sum"] == 40 * MiB
        wait_idle(server)


def test_chunked_body_over_the_limit_is_413_and_gives_back_its_room():
    with serve("basic:Echo", max_payload_size=2 * MiB) as server:
        with _connect(server) as sock:
            sock.sendall(_head(content_type="application/octet-stream", x_tensor_dtype="uint8",
                               transfer_encoding="chunked"))
            _chunked(sock, 2, MiB)
            _chunked(sock, 1, 1)  # one byte over: all of it is read, so nothing is reset
            answer = _read_answer(sock)
        assert _status(answer) == 413, answer
        assert str(2 * MiB).encode() in answer
        wait_idle(server)


# -- overload ------------------------------------------------------------------------------
def test_full_arena_is_503_with_retry_after_within_bounded_memory(tmp_path: Path):
    gate = tmp_path / "gate"
    with serve("basic:GatedTensorOut", max_payload_size=MiB, queue_timeout=0.5,
               env={"LITSERVE_TEST_GATE": str(gate)}) as server:
        x = np.ones(200_000, dtype=np.float32)  # 800 KB: two fit the 2 MiB arena
        headers = {"content-type": "application/octet-stream", "x-tensor-dtype": "float32"}
        shm_before = _shm_bytes(server)
        with ThreadPoolExecutor(4) as pool:
            held = [pool.submit(server.post, content=x.tobytes(), headers=headers)
                    for _ in range(2)]
            wait_for(lambda: front_usage(server)[1] >= 1_600_000, 10, "two bodies queued")
            r = server.post(content=x.tobytes(), headers=headers)
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "1"
            assert "arena is full" in r.json()["detail"]
            assert _shm_bytes(server) - shm_before <= 3 * MiB  # the arena's size, not more
            gate.touch()
            assert [f.result().status_code for f in held] == [200, 200]
        wait_idle(server)


def _shm_bytes(server: Server) -> int:
    """The /dev/shm bytes the server's names take (its arenas are backed in full from the
    start, so this must not grow while it is full)."""
    return sum(Path("/dev/shm", e).stat().st_blocks * 512 for e in server_names(server))


# -- Accept --------------------------------------------------------------------------------
def test_accept_q_zero_means_not_acceptable():
    with serve("basic:TensorOut") as server:
        x = np.arange(4, dtype=np.float32)
        headers = {"content-type": "application/octet-stream", "x-tensor-dtype": "float32"}
        for accept, binary in [("application/octet-stream;q=0", False),
                               ("application/json, application/octet-stream;q=0.5", False),
                               ("application/octet-stream, */*;q=0.1", True),
                               ("application/json;q=0.2, application/octet-stream", True)]:
            r = httpx.post(server.url + "/predict", content=x.tobytes(),
                           headers={**headers, "accept": accept})
            assert r.status_code == 200
            got = r.headers["content-type"]
            assert (got == "application/octet-stream") == binary, (accept, got)
        wait_idle(server)
