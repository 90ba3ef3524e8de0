"""Many producers and consumers across real processes: every message is delivered
exactly once, with its checksum intact, and every arena block comes back; also while
another process repairs the ring over and over (it must never touch a live cell)."""

from __future__ import annotations

import multiprocessing as mp
import threading

import pytest
from ipc_children import DESC, STOP_P, stress_consumer, stress_producer
from ipc_support import recv

from litserve.ipc import Ring

PRODUCERS, CONSUMERS, PER_PRODUCER = 4, 2, 25_000


@pytest.mark.slow
@pytest.mark.parametrize("repairing", [False, True], ids=["plain", "repaired-meanwhile"])
def test_every_message_arrives_exactly_once_intact(name, spawn, repairing):
    names = {"requests": name("requests")}
    for p in range(PRODUCERS):
        names |= {f"arena{p}": name(f"arena{p}"), f"comp{p}": name(f"comp{p}")}
    requests = Ring(names["requests"], 256, 64, create=True)
    try:
        consumers = [_start(spawn, stress_consumer, c, names) for c in range(CONSUMERS)]
        producers = [
            _start(spawn, stress_producer, p, PER_PRODUCER, names) for p in range(PRODUCERS)
        ]
        with _repairing(requests, repairing) as repairs:
            reports = [
                recv(conn, 100, f"report of producer {p}") for p, conn in enumerate(producers)
            ]
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
    if repairing:
        assert repairs["runs"] > 10, f"only {repairs['runs']} repairs ran during the test"
        assert repairs["touched"] == 0, "repair took over a cell of a live process"


class _repairing:
    """While active (if ``on``), a thread repairs ``ring`` in a loop and counts the runs
    and the cells it took over (filled or freed); re-raises what the thread raised."""

    def __init__(self, ring: Ring, on: bool) -> None:
        self.ring, self.on, self.stop = ring, on, threading.Event()
        self.counts = {"runs": 0, "touched": 0}
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        try:
            while not self.stop.is_set():
                done = self.ring.repair(filler=b"never")
                self.counts["runs"] += 1
                self.counts["touched"] += done.filled + done.freed
        except BaseException as exc:  # handed to the test in __exit__
            self.error = exc

    def __enter__(self) -> dict[str, int]:
        if self.on:
            self.thread.start()
        return self.counts

    def __exit__(self, *exc: object) -> None:
        if self.on:
            self.stop.set()
            self.thread.join(30)
        if self.error is not None:
            raise self.error


def _start(spawn, target, *args):
    mine, theirs = mp.Pipe(duplex=False)
    spawn(target, *args, theirs)
    theirs.close()
    return mine
