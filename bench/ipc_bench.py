"""Micro-benchmark: the shared-memory ring + arena against multiprocessing.Queue.

Moves NumPy arrays of several sizes from one process to another, both ways side by
side in the same run, and prints throughput (GB/s), time per message when pipelined,
and the latency of one message at a time (send, consumer copies it, acknowledgement
back), plus a small-message round trip over two rings (post + wake + completion).

Ring path: the producer copies the array into its arena (``gather_copy``), posts a
descriptor on the request ring; the consumer copies the bytes out of the arena
into a reusable buffer (``np.copyto``, as a worker stacks requests into its batch
buffer) and posts a completion; the producer frees the block.  Queue path: the
producer ``put``s the array; the consumer ``get``s it and copies it into a reusable
buffer the same way, so that both consumers touch every byte alike.

    .venv/bin/python bench/ipc_bench.py                      # 4 KiB, 1 MiB, 24 MiB
    .venv/bin/python bench/ipc_bench.py --sizes 64KiB,8MiB --rounds 5000
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import struct
import sys
import time

import numpy as np

from litserve.ipc import Arena, Ring, _shm, names
from litserve.ipc.ring import DEFAULT_SPIN

SPAWN = mp.get_context("spawn")
DESC = struct.Struct("<QQQ")  # offset, nbytes, stop
COMP = struct.Struct("<QQ")  # offset, last byte seen (keeps the copy from being elided)
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
DEPTH = 1024  # ring cells: the most messages in flight


def parse_size(text: str) -> int:
    for unit in sorted(UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * UNITS[unit])
    return int(text)


def human(n: int) -> str:
    for unit in ("GiB", "MiB", "KiB"):
        if n >= UNITS[unit] and n % UNITS[unit] == 0:
            return f"{n // UNITS[unit]} {unit}"
    return f"{n} B"


def messages_for(size: int, budget: int) -> int:
    return max(40, min(50_000, budget // max(size, 1)))


def touch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """What both consumers do with a message: copy every byte into a reusable buffer
    (as a worker stacks requests into its batch buffer); returns the buffer."""
    if dst.size != src.size:
        dst = np.empty_like(src)
    np.copyto(dst, src)
    return dst


# -- ring -------------------------------------------------------------------------------
def ring_consumer(prefix: str) -> None:
    req, comp, arena = Ring(prefix + "req"), Ring(prefix + "comp"), Arena(prefix + "arena")
    dst = np.empty(0, np.uint8)
    try:
        while True:
            offset, nbytes, stop = DESC.unpack_from(req.get())
            if stop:
                break
            dst = touch(np.frombuffer(arena.view(offset, nbytes), np.uint8), dst)
            comp.put(COMP.pack(offset, int(dst[-1]) if nbytes else 0))
    finally:
        for obj in (req, comp, arena):
            obj.close()


class RingLink:
    """Producer end of one ring + arena link to a consumer process."""

    def __init__(self, size: int) -> None:
        self.token = names.new_token()
        prefix = names.make(self.token, "")
        self.size = size
        self.arena = Arena(prefix + "arena", max(64 << 20, 4 * size), create=True)
        self.req = Ring(prefix + "req", DEPTH, 32, create=True)
        self.comp = Ring(prefix + "comp", DEPTH, 32, create=True)
        self.inflight = 0
        self.proc = SPAWN.Process(target=ring_consumer, args=(prefix,), daemon=True)
        self.proc.start()

    def send(self, src: np.ndarray) -> None:
        while self.inflight >= DEPTH:
            self.reap(block=True)
        while (offset := self.arena.try_alloc(self.size)) is None:
            self.reap(block=True)
        _shm.gather_copy(self.arena.buf, offset, [src])
        self.req.put(DESC.pack(offset, self.size, 0))
        self.inflight += 1

    def reap(self, block: bool) -> None:
        """Free the blocks of one completion (waiting for it if ``block``) and of
        every other completion already there."""
        record = self.comp.get() if block else self.comp.try_get()
        while record is not None:
            self.arena.free(COMP.unpack_from(record)[0])
            self.inflight -= 1
            record = self.comp.try_get()

    def drain(self) -> None:
        while self.inflight:
            self.reap(block=True)

    def close(self) -> None:
        self.drain()
        self.req.put(DESC.pack(0, 0, 1))
        self.proc.join(30)
        for obj in (self.req, self.comp, self.arena):
            obj.close()
            obj.unlink()


# -- queue ------------------------------------------------------------------------------
def queue_consumer(q: mp.Queue, acks: mp.Queue) -> None:
    dst = np.empty(0, np.uint8)
    while True:
        item = q.get()
        if item is None:
            break
        dst = touch(item, dst)  # the same touch as the ring consumer
        acks.put(int(dst[-1]) if dst.size else 0)


class QueueLink:
    def __init__(self) -> None:
        self.q, self.acks = SPAWN.Queue(), SPAWN.Queue()
        self.inflight = 0
        self.proc = SPAWN.Process(target=queue_consumer, args=(self.q, self.acks), daemon=True)
        self.proc.start()

    def send(self, src: np.ndarray) -> None:
        while self.inflight >= DEPTH:
            self.reap(block=True)
        self.q.put(src)
        self.inflight += 1

    def reap(self, block: bool) -> None:
        self.acks.get()
        self.inflight -= 1

    def drain(self) -> None:
        while self.inflight:
            self.reap(block=True)

    def close(self) -> None:
        self.drain()
        self.q.put(None)
        self.proc.join(30)
        for q in (self.q, self.acks):
            q.close()
            q.join_thread()


# -- measuring --------------------------------------------------------------------------
def throughput(link: RingLink | QueueLink, src: np.ndarray, count: int) -> float:
    """Seconds to move ``count`` messages, pipelined, until the last one is acknowledged."""
    for _ in range(min(count, 8)):  # warm up: map and fault in the pages on both sides
        link.send(src)
    link.drain()
    start = time.perf_counter()
    for _ in range(count):
        link.send(src)
    link.drain()
    return time.perf_counter() - start


def one_at_a_time(link: RingLink | QueueLink, src: np.ndarray, count: int) -> float:
    """Median seconds for one message: send, consumer copies, acknowledgement back."""
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        link.send(src)
        link.drain()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def compare(size: int, budget: int, repeat: int) -> dict[str, float]:
    """Both paths for one size; each timing is the best of ``repeat`` runs, since
    other work on the machine only ever makes a run slower."""
    src = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    count = messages_for(size, budget)
    row: dict[str, float] = {"size": size, "count": count}
    for label, make in (("ring", lambda: RingLink(size)), ("queue", QueueLink)):
        link = make()
        try:
            seconds = min(throughput(link, src, count) for _ in range(repeat))
            row[f"{label}_gbps"] = size * count / seconds / 1e9
            row[f"{label}_us_per_msg"] = seconds / count * 1e6
            row[f"{label}_latency_us"] = 1e6 * min(
                one_at_a_time(link, src, min(count, 200)) for _ in range(repeat)
            )
        finally:
            link.close()
    row["ratio"] = row["ring_gbps"] / row["queue_gbps"]
    return row


# -- round trip -------------------------------------------------------------------------
def echo(ping: str, pong: str, spin: float) -> None:
    a, b = Ring(ping, spin=spin), Ring(pong, spin=spin)
    try:
        while (body := a.get())[0] != 0xFF:
            b.put(body)
    finally:
        a.close()
        b.close()


def round_trip(rounds: int, spin: float) -> tuple[float, float]:
    token = names.new_token()
    ping, pong = names.make(token, "ping"), names.make(token, "pong")
    a = Ring(ping, 64, 64, create=True, spin=spin)
    b = Ring(pong, 64, 64, create=True, spin=spin)
    proc = SPAWN.Process(target=echo, args=(ping, pong, spin), daemon=True)
    proc.start()
    body, samples = b"\x01" * 56, []
    try:
        for i in range(rounds + 1000):
            start = time.perf_counter_ns()
            a.put(body)
            b.get()
            if i >= 1000:  # the first thousand warm up
                samples.append(time.perf_counter_ns() - start)
        a.put(b"\xff")
        proc.join(30)
    finally:
        for ring in (a, b):
            ring.close()
            ring.unlink()
    samples.sort()
    return samples[len(samples) // 2] / 1e3, samples[int(len(samples) * 0.99)] / 1e3


# -- report -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="4KiB,1MiB,24MiB", help="comma-separated sizes")
    parser.add_argument("--budget", default="1GiB", help="bytes moved per size, path and run")
    parser.add_argument("--rounds", type=int, default=20_000, help="round trips to time")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing; best is kept")
    args = parser.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    budget = parse_size(args.budget)
    if args.repeat < 1 or args.rounds < 100:
        parser.error("--repeat must be >= 1 and --rounds >= 100")

    print(f"# {platform.node()} | {os.cpu_count()} CPUs | Python {platform.python_version()}")
    print(f"# numpy {np.__version__} | {' '.join(sys.argv)}")
    head = f"{'size':>8} {'msgs':>6} | {'ring GB/s':>9} {'queue GB/s':>10} {'ratio':>6} |"
    print(head + f" {'µs/msg ring':>11} {'queue':>8} | {'1-msg µs ring':>13} {'queue':>8}")
    for size in sizes:
        r = compare(size, budget, args.repeat)
        print(
            f"{human(size):>8} {r['count']:>6} | {r['ring_gbps']:>9.2f} {r['queue_gbps']:>10.2f}"
            f" {r['ratio']:>5.1f}x | {r['ring_us_per_msg']:>11.1f} {r['queue_us_per_msg']:>8.1f}"
            f" | {r['ring_latency_us']:>13.1f} {r['queue_latency_us']:>8.1f}"
        )
    for spin in (DEFAULT_SPIN, 0.0):
        median, p99 = round_trip(args.rounds, spin)
        print(
            f"round trip, 56-byte record over two rings (spin={spin * 1e6:.0f} µs): "
            f"median {median:.1f} µs, p99 {p99:.1f} µs ({args.rounds} rounds)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
