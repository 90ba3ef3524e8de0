"""Inputs are the user's: what decode_request received never changes afterwards, even
when the API keeps it past its response, and writes into it stay in it (issue 8.4).

Sequential requests of one size reuse the same block of the front's arena, so an input
that still showed that block would show the next request's bytes."""

from __future__ import annotations

import io
import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from litserve import wire

from .harness import Server, pids_mapping, serve, wait_for

OCTET = {"content-type": "application/octet-stream", "x-tensor-dtype": "float32"}
MIB = 1 << 18  # float32 items in 1 MiB
# a lent body (1 MiB), a copied one (16 KiB, under inputs.COPY_BELOW), an inline one
SIZES = [MIB, 4096, 8]


def octet(value: float, n: int = MIB) -> bytes:
    return np.full(n, value, np.float32).tobytes()


def op(server: Server, **body: Any) -> dict[str, Any]:
    r = server.post(json=body)
    assert r.status_code == 200, r.text
    return r.json()


def send(server: Server, **kwargs: Any) -> dict[str, Any]:
    r = server.post(**kwargs)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def keeper():
    with serve("kept:Keeper", max_payload_size=32 << 20) as server:
        yield server


def check_kept(server: Server, requests: list[dict[str, Any]], sums: list[float]
               ) -> tuple[dict[str, int], dict[str, int]]:
    """Send the requests; the first three are kept, and every answer after the third
    (and a report at the end) must show their sums unchanged."""
    op(server, op="reset")
    before = op(server, op="report")["stats"]
    answers = [send(server, **r) for r in requests]
    assert [a["sum"] for a in answers] == sums
    for i, a in enumerate(answers):
        assert a["kept"] == sums[: min(i + 1, 3)], f"request {i}: kept inputs changed"
    report = op(server, op="report")
    assert report["kept"] == sums[:3]
    return report["stats"], before


@pytest.mark.parametrize("n", SIZES)
def test_kept_tensors_never_change(keeper, n):
    """All-1s, all-2s, all-3s kept; all-4s ... all-7s reuse the block after them."""
    reqs = [{"content": octet(v, n), "headers": OCTET} for v in range(1, 8)]
    after, before = check_kept(keeper, reqs, [float(n * v) for v in range(1, 8)])
    if n == MIB:  # the three kept were copied once each; the four others not at all
        assert after["kept"] - before["kept"] == 3
        assert after["returned"] - before["returned"] == 4
        assert after["loans"] - before["loans"] == 7
    else:  # small bodies are copied when decoded and never lent
        assert after["loans"] == before["loans"]


def npy(value: int) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.full((512, 512), value, np.int32))  # 1 MiB
    return buf.getvalue()


def test_kept_npy_arrays_never_change(keeper):
    reqs = [{"content": npy(v), "headers": {"content-type": wire.NPY}} for v in range(1, 7)]
    check_kept(keeper, reqs, [512.0 * 512 * v for v in range(1, 7)])


def test_kept_bundles_never_change(keeper):
    def bundle(v: int) -> bytes:
        return wire.encode_bundle({"img": np.full((256, 1024), v, np.uint8),
                                   "scale": np.full(MIB // 2, 10 * v, np.float32)})
    reqs = [{"content": bundle(v), "headers": {"content-type": wire.BUNDLE}}
            for v in range(1, 7)]
    check_kept(keeper, reqs, [256.0 * 1024 * v + MIB // 2 * 10 * v for v in range(1, 7)])


@pytest.mark.parametrize("size", [300_000, 1000])  # lent / copied
def test_kept_form_files_never_change(keeper, size):
    reqs = [{"data": {"name": f"n{v}"}, "files": {"f": ("f.bin", bytes([v]) * size)}}
            for v in range(1, 7)]
    check_kept(keeper, reqs, [float(size * v) for v in range(1, 7)])


@pytest.fixture(scope="module")
def inplace():
    with serve("kept:InPlace", max_payload_size=32 << 20) as server:
        yield server


@pytest.mark.parametrize("n", SIZES)
def test_in_place_writes_work_and_never_reach_another_request(inplace, n):
    """decode_request divides its input in place, predict zeroes it, and from the
    second request on predict also writes into the first request's input, which it
    kept: every request still sees exactly its own bytes, the kept one only its own
    writes."""
    op(inplace, op="reset")
    for i, v in enumerate([1, 2, 3, 4, 5]):
        a = send(inplace, content=octet(255 * v, n), headers=OCTET)
        assert a["before"] == 255 * v * n  # nothing of the earlier writes shows through
        assert a["divided"] == pytest.approx(v * n, rel=1e-6)
        assert a["after"] == 0
        assert a["kept"] == (0 if i == 0 else -0.5 * n)


def test_concurrent_requests_see_their_own_bytes_while_kept_inputs_are_written():
    """Two workers, four clients: each worker keeps its first input and scribbles over
    it during every later request, while other requests fill the arena's blocks."""
    with serve("kept:InPlace", workers_per_device=2, max_payload_size=32 << 20) as server:
        def one(v: int) -> dict[str, Any]:
            return send(server, content=octet(255 * v), headers=OCTET) | {"v": v}

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(one, [v % 13 + 1 for v in range(48)]))
    for a in answers:
        assert a["before"] == 255 * a["v"] * MIB, a
        assert a["divided"] == pytest.approx(a["v"] * MIB, rel=1e-6)
        assert a["after"] == 0 and a["kept"] in (0, -0.5 * MIB)


def test_keeping_and_dropping_inputs_leaves_the_worker_bounded(keeper):
    """Hundreds of requests, the odd ones kept until the next reset: the worker's
    resident memory and its number of mappings come back to where they were."""
    def rounds(count: int) -> None:
        kept: list[float] = []
        for v in range(1, count + 1):
            a = send(keeper, content=octet(v), headers=OCTET)
            if v % 2:
                kept.append(float(v * MIB))
            assert a["sum"] == v * MIB and a["kept"] == kept, f"request {v}"
            if v % 40 == 0:  # drop what was kept
                op(keeper, op="reset", policy="odd")
                kept = []

    op(keeper, op="reset", policy="odd")
    rounds(80)  # the worker's allocator and page tables settle
    base = op(keeper, op="reset", policy="odd")
    rounds(400)
    end = op(keeper, op="reset", policy="odd")
    assert end["pid"] == base["pid"]
    assert end["stats"]["kept"] - base["stats"]["kept"] == 200
    assert end["maps"] <= base["maps"] + 8, "private mappings were left behind"
    assert end["rss"] <= base["rss"] + (16 << 20), "kept copies were not freed"


def test_kept_inputs_outlive_their_front():
    """The front whose arena the kept inputs came from is killed and replaced (its
    segment unlinked): the worker goes on, the kept inputs unchanged."""
    with serve("kept:Keeper", max_payload_size=32 << 20) as server:
        [front] = pids_mapping(server, "f0.0.arena")
        for v in (1, 2, 3, 4):
            send(server, content=octet(v), headers=OCTET)
        worker = op(server, op="report")["pid"]
        os.kill(front, signal.SIGKILL)
        wait_for(lambda: pids_mapping(server, "f0.1.arena"), 30, "front 0 starting again")
        wait_for(lambda: server.health() == 200, 30, "the new front answering")
        a = send(server, content=octet(5), headers=OCTET)  # the worker drops the old link
        assert a["kept"] == [MIB * 1.0, MIB * 2.0, MIB * 3.0]
        report = op(server, op="report")
        assert report["pid"] == worker and report["kept"] == a["kept"]


def test_streams_let_their_inputs_go_at_the_end_and_kept_ones_stay():
    """Chunks go out while the input is lent; at END nothing of the worker holds it: no
    copy unless the API kept it, and then the kept input never changes."""
    def stream(server: Server, **kwargs: Any) -> list[Any]:
        r = server.post(**kwargs)
        assert r.status_code == 200, r.text
        return [json.loads(line) for line in r.text.splitlines()]

    with serve("kept:StreamKeeper", stream=True, max_payload_size=32 << 20) as server:
        [before] = stream(server, json={"keep": 0})
        for v in (1, 2):
            parts = stream(server, content=octet(v), headers=OCTET)
            assert sum(parts) == v * MIB and len(parts) == 3
        [after] = stream(server, json={"keep": 1})
        assert after["stats"]["kept"] == before["stats"]["kept"]  # no copy at all
        assert after["stats"]["returned"] - before["stats"]["returned"] == 2
        for v in (3, 4, 5):  # 3 is kept, 4 and 5 reuse its block
            assert sum(stream(server, content=octet(v), headers=OCTET)) == v * MIB
        [report] = stream(server, json={})
        assert report["kept"] == [3.0 * MIB]
        assert report["stats"]["kept"] - after["stats"]["kept"] == 1
