"""Running a bench over ``--procs`` generator processes and merging what they counted.

The parent spawns the processes; each opens its connections and says it is ready;
the parent then sets one common start time and lets them go.  While they run the
parent reads their counters from a shared array (for the progress display) and, at
the end, merges their ``Stats``.  Ctrl+C asks every process to stop issuing and drain.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import Any

from litserve.cli.bench.engine import EngineConfig
from litserve.cli.bench.stats import Stats

LOOPS = ("auto", "uvloop", "asyncio")
START_DELAY_S = 0.05
READY_GRACE_S = 30.0


class BenchError(Exception):
    """The bench could not run (no connection, a generator process died, ...)."""


@dataclass(frozen=True)
class Progress:
    elapsed_s: float
    requests: int
    errors: int
    warmup: int
    sent: int


def split(total: int, parts: int, i: int) -> int:
    return total // parts + (1 if i < total % parts else 0)


def engine_configs(base: EngineConfig, procs: int) -> list[EngineConfig]:
    """Split connections, rate and request count over the processes."""
    return [
        replace(base, connections=split(base.connections, procs, i),
                rate=None if base.rate is None else base.rate / procs,
                requests=None if base.requests is None else split(base.requests, procs, i),
                seed=base.seed + i)
        for i in range(procs)
    ]


def new_loop(name: str) -> Any:
    import asyncio

    if name in ("auto", "uvloop"):
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            if name == "uvloop":
                raise BenchError("--loop uvloop: uvloop is not installed") from None
    return asyncio.new_event_loop()


def _child(index: int, cfg: EngineConfig, loop_name: str, pipe: Connection, shared: Any,
           go: Any, procs: int) -> None:
    """A generator process: connect, report ready, wait for go, run, report."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl+C
    # The parent's stdout may carry the JSON report (``--json -``): whatever a generator
    # process (or a library inside it) prints goes to stderr instead.
    os.dup2(2, 1)
    from litserve.cli.bench.engine import Engine

    loop = new_loop(loop_name)
    try:
        engine = Engine(cfg, shared, index)
        err = loop.run_until_complete(engine.connect_all())
        pipe.send(("ready", err))
        if err or not go.wait(cfg.timeout_s + READY_GRACE_S) or shared[procs * 4 + 1]:
            return  # no connection, no start signal, or the run was called off
        stats = loop.run_until_complete(engine.run(shared[procs * 4]))
        times = os.times()
        stats.cpu_s = times.user + times.system
        pipe.send(("done", stats.to_dict()))
    finally:
        loop.close()
        pipe.close()


class Runner:
    def __init__(self, base: EngineConfig, procs: int, loop: str = "auto") -> None:
        self.cfgs = engine_configs(base, procs)
        self.procs = procs
        self.loop = loop
        self.ctx = mp.get_context("spawn")
        self.shared = self.ctx.RawArray("q", procs * 4 + 2)  # counters, start, stop flag
        self.go = self.ctx.Event()
        self.children: list[Any] = []
        self.pipes: list[Connection] = []
        self.started = 0.0
        self.failed = False
        limit = (base.duration_s or 0) + base.warmup_s + 2 * base.timeout_s + READY_GRACE_S
        self.hard_limit_s = limit

    def run(self, on_progress: Callable[[Progress], None] | None = None,
            every_s: float = 0.5) -> Stats:
        try:
            self._spawn()
            self._wait_ready()
            self.shared[self.procs * 4] = time.monotonic_ns() + int(START_DELAY_S * 1e9)
            self.go.set()
            self.started = time.monotonic() + START_DELAY_S
            return self._collect(on_progress, every_s)
        except BaseException:
            self.failed = True
            raise
        finally:
            self._reap()

    def stop(self) -> None:
        """Ask every generator to stop issuing requests and finish the ones in flight."""
        self.shared[self.procs * 4 + 1] = 1

    def _spawn(self) -> None:
        for i, cfg in enumerate(self.cfgs):
            recv, send = self.ctx.Pipe(duplex=False)
            child = self.ctx.Process(
                target=_child, name=f"litserve-bench-{i}", daemon=True,
                args=(i, cfg, self.loop, send, self.shared, self.go, self.procs))
            child.start()
            send.close()
            self.children.append(child)
            self.pipes.append(recv)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.cfgs[0].timeout_s + READY_GRACE_S
        waiting = list(self.pipes)
        while waiting:
            ready = wait(waiting, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                raise BenchError("the generator processes did not start in time")
            for pipe in ready:
                kind, err = self._recv(pipe)
                if err:
                    raise BenchError(err)
                waiting.remove(pipe)  # type: ignore[arg-type]

    def _recv(self, pipe: Any) -> tuple[str, Any]:
        try:
            msg: tuple[str, Any] = pipe.recv()
        except (EOFError, OSError):
            codes = [c.exitcode for c in self.children]
            raise BenchError(f"a generator process died (exit codes {codes})") from None
        return msg

    def _collect(self, on_progress: Callable[[Progress], None] | None,
                 every_s: float) -> Stats:
        total = Stats()
        waiting = list(self.pipes)
        stop_at = time.monotonic() + self.hard_limit_s
        while waiting:
            try:
                ready = wait(waiting, timeout=every_s)
            except KeyboardInterrupt:
                self.stop()
                stop_at = min(stop_at, time.monotonic() + self.cfgs[0].timeout_s + 5)
                continue
            for pipe in ready:
                total.merge(Stats.from_dict(self._recv(pipe)[1]))
                waiting.remove(pipe)  # type: ignore[arg-type]
            if on_progress is not None and waiting:
                on_progress(self.progress())
            if time.monotonic() > stop_at:
                self.stop()
                if time.monotonic() > stop_at + 10:
                    raise BenchError("the generator processes did not finish in time")
        return total

    def progress(self) -> Progress:
        vals = list(self.shared[: self.procs * 4])
        sums = [sum(vals[k::4]) for k in range(4)]
        return Progress(max(0.0, time.monotonic() - self.started), *sums)

    def _reap(self) -> None:
        if self.failed:
            # Call the run off and release the processes still waiting for the start:
            # they return on their own, so none is cut off while it writes or prints.
            self.stop()
            self.go.set()
        for child in self.children:
            child.join(timeout=5)
            if child.is_alive():
                child.terminate()  # our own child, by its pid
                child.join(timeout=5)
        for pipe in self.pipes:
            pipe.close()
