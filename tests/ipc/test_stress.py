"""Many producers and consumers across real processes: every message is delivered
exactly once, with its checksum intact, and every arena block comes back."""

from __future__ import annotations

import multiprocessing as mp

import pytest
from ipc_children import DESC, STOP_P, stress_consumer, stress_producer
from ipc_support import recv

from litserve.ipc import Ring

PRODUCERS, CONSUMERS, PER_PRODUCER = 4, 2, 25_000


@pytest.mark.slow
def test_every_message_arrives_exactly_once_intact(name, spawn):
    names = {"requests": name("requests")}
    for p in range(PRODUCERS):
        names |= {f"arena{p}": name(f"arena{p}"), f"comp{p}": name(f"comp{p}")}
    requests = Ring(names["requests"], 256, 64, create=True)
    try:
        consumers = [_start(spawn, stress_consumer, c, names) for c in range(CONSUMERS)]
        producers = [
            _start(spawn, stress_producer, p, PER_PRODUCER, names) for p in range(PRODUCERS)
        ]
        reports = [recv(conn, 100, f"report of producer {p}") for p, conn in enumerate(producers)]
        for _ in range(CONSUMERS):
            requests.put(DESC.pack(STOP_P, 0, 0, 0, 0), timeout=10)
        seen = [recv(conn, 30, f"report of consumer {c}") for c, conn in enumerate(consumers)]
    finally:
        requests.close()
        requests.unlink()

    for p, (sent, completed, errors) in enumerate(reports):
        assert errors == [], f"producer {p}: {errors[:5]}"
        assert sent == PER_PRODUCER
        assert completed == list(range(PER_PRODUCER)), f"producer {p}: completions"
    for p in range(PRODUCERS):
        handled = sorted(seq for report in seen for seq in report.get(p, []))
        assert handled == list(range(PER_PRODUCER)), f"producer {p}: not exactly once"
    assert all(report for report in seen), "a consumer never got any message"


def _start(spawn, target, *args):
    mine, theirs = mp.Pipe(duplex=False)
    spawn(target, *args, theirs)
    theirs.close()
    return mine
