"""The supervisor: creates the shared memory, starts fronts and workers, restarts
the ones that die, and shuts everything down on SIGINT / SIGTERM.

It decides *when* a dead process's leftovers are repaired and *which* process replaces
it; *what* a dead front or worker left, and its repair, is that role's own code
(``litserve.http.recovery``, ``litserve.worker.recovery``).

Signal handlers only record the signal and wake the main loop through a pipe.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from . import loggers
from . import protocol as P
from .config import Plan
from .errors import ConfigError, StartupError
from .http import recovery as front_recovery
from .http.front import front_main
from .ipc import Ring
from .ipc.errors import IPCError, SharedMemoryFull
from .ipc.janitor import Janitor, sweep, sweep_dead
from .ipc.lease import Lease
from .sockets import bind
from .worker import recovery as worker_recovery
from .worker.main import worker_main

log = logging.getLogger("litserve")
RESTART_WINDOW_S = 60.0
WATCH_S = 0.25  # the longest the supervisor waits between looks at its children
MAX_RESTARTS_ENV = "LITSERVE_MAX_RESTARTS"


def max_restarts() -> int:
    """Deaths (fronts and workers together) tolerated within RESTART_WINDOW_S before the
    supervisor gives up: $LITSERVE_MAX_RESTARTS, default 20."""
    raw = os.environ.get(MAX_RESTARTS_ENV, "20")
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise StartupError(f"litserve: {MAX_RESTARTS_ENV}={raw!r} is not valid; give a "
                           "whole number >= 0 (deaths tolerated per minute)")
    return value


class Supervisor:
    def __init__(self, plan: Plan, sock: socket.socket) -> None:
        self.plan, self.sock = plan, sock
        self.ctx = multiprocessing.get_context("spawn")
        self.fronts: list[Any] = []
        self.workers: list[Any] = []
        self.gens = [0] * plan.workers
        self.front_gens = [0] * plan.fronts
        self.deaths: deque[float] = deque()  # when processes died, within the window
        self.stop_signal: int | None = None
        self.signals = 0  # received so far (a second one cuts the drain short)
        self.killed: set[int | None] = set()  # pids of workers killed for being stuck
        self.logger: Any = None  # the logger process, when the server has loggers
        self.log_ring: Ring | None = None
        self._wake_r, self._wake_w = os.pipe()

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until a signal; the exit code (0 clean, 1 failed)."""
        dead = sweep_dead()  # what servers that died before us left (whatever killed them)
        if dead.removed:
            log.info("litserve: removed %d /dev/shm names of dead servers", len(dead.removed))
        if dead.failed:
            log.warning("litserve: could not remove names of dead servers: %s", dead.problems())
        # Our names live exactly as long as one of our processes holds the lease; the
        # janitor removes them when the last one is gone, however it went.
        lease = Lease.create(self.plan.token)
        try:
            janitor = Janitor.start(self.plan.token)
        except BaseException:
            lease.release()
            sweep(self.plan.token)
            raise
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.max_restarts = max_restarts()
            try:
                self._create()
            except SharedMemoryFull as exc:
                raise StartupError(f"litserve: {exc}") from None
            self._start()
            if not self._wait_started():
                return 1 if self.stop_signal is None else 0
            self.board.set_started()
            log.info("litserve: %d worker(s) ready on %s", self.plan.workers,
                     ", ".join(sorted(set(self.plan.devices))))
            self._announce_started()
            return self._watch()
        except StartupError as exc:
            log.error("%s", exc)
            return 1
        finally:
            self._shutdown()
            left = sweep(self.plan.token)
            lease.release()
            if not janitor.stop():
                log.warning("litserve: a process of this server still holds its lease; "
                            "the next start removes its names")
            if left.failed:
                log.warning("litserve: could not remove: %s", left.problems())
            for s, h in old.items():
                signal.signal(s, h)
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _announce_started(self) -> None:
        """uvicorn's start-up line, said once the workers can serve (LitServe's tooling
        waits for it before it sends requests; the fronts' uvicorn does not say it)."""
        if self.plan.log_level in ("info", "debug", "trace"):
            print("INFO:     Application startup complete.", flush=True)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop_signal = signum
        self.signals += 1
        os.write(self._wake_w, b"!")

    def _create(self) -> None:
        plan = self.plan
        # Front i's listening socket, held here for as long as the server runs (see
        # front_main); with reuse_port one per front slot, the first made by run().
        self.sockets = [self.sock]
        if plan.reuse_port:
            try:
                self.sockets += [bind(plan.host, plan.port, reuse_port=True)
                                 for _ in range(1, plan.fronts)]
            except ConfigError as exc:
                raise StartupError(f"litserve: {exc}") from None
        names = P.ServerNames.of(plan.name)
        self.board = P.Board(names.board, plan.workers, plan.fronts, create=True)
        self.requests = Ring(names.requests, plan.request_ring_cells, P.CELL_SIZE, create=True)
        if plan.loggers:
            self.log_ring = loggers.create_ring(plan)

    def _start(self) -> None:
        if self.log_ring is not None:
            self.logger = self._spawn_logger()
        for i in range(self.plan.fronts):
            self.fronts.append(self._spawn_front(i))
        for j in range(self.plan.workers):
            self.workers.append(self._spawn_worker(j))

    def _spawn_front(self, i: int) -> Any:
        gen = self.front_gens[i]
        self.board.set_front(i, gen, P.STARTING)
        sock = self.sockets[i] if self.plan.reuse_port else self.sock
        p = self.ctx.Process(target=front_main, args=(self.plan, i, gen, sock, os.getpid()),
                             name=f"litserve-front-{i}")
        p.start()
        self.board.set_pid("front", i, p.pid or 0)
        return p

    def _spawn_logger(self) -> Any:
        p = self.ctx.Process(target=loggers.logger_main, args=(self.plan, os.getpid()),
                             name="litserve-logger")
        p.start()
        return p

    def _spawn_worker(self, j: int) -> Any:
        self.board.set_worker(j, self.gens[j], P.STARTING)
        self.board.reset_liveness(j)
        p = self.ctx.Process(target=worker_main, args=(self.plan, j, self.gens[j], os.getpid()),
                             name=f"litserve-worker-{j}")
        p.start()
        self.board.set_pid("worker", j, p.pid or 0)
        return p

    def _wait_started(self) -> bool:
        """Block until every worker finished setup; False if one failed or we were told to stop."""
        while self.stop_signal is None:
            if self.board.all_ready():
                return True
            # A process that died after it said it was ready is _watch's to restart (a
            # client may already have had its /health 200); one that died before: failed.
            for j, p in enumerate(self.workers):
                if p.exitcode is not None and self.board.worker(j)[1] != P.READY:
                    raise StartupError(
                        f"litserve: worker {j} exited with code {p.exitcode} during start-up "
                        "(its traceback is above); stopping")
            for i, p in enumerate(self.fronts):
                if p.exitcode is not None and self.board.front(i)[1] != P.READY:
                    raise StartupError(f"litserve: HTTP front {i} exited with code {p.exitcode} "
                                       "during start-up; stopping")
            live = [p.sentinel for p in self.workers + self.fronts if p.exitcode is None]
            self._wait(live, 0.05)
        return False

    def _wait(self, sentinels: list[int], timeout: float) -> list[Any]:
        ready = multiprocessing.connection.wait([*sentinels, self._wake_r], timeout)
        if self._wake_r in ready:
            os.read(self._wake_r, 64)
        return ready

    def _watch(self) -> int:
        while self.stop_signal is None:
            self._wait([p.sentinel for p in self._children()], WATCH_S)
            self._replace_stuck()
            if self.logger is not None and self.logger.exitcode is not None \
                    and self.stop_signal is None and not self._restart_logger():
                return 1
            for i, p in enumerate(self.fronts):
                dead = p.exitcode is not None and self.stop_signal is None
                if dead and not self._restart_front(i, p.exitcode):
                    return 1
            for j, p in enumerate(self.workers):
                dead = p.exitcode is not None and self.stop_signal is None
                if dead and not self._restart(j, p.exitcode):
                    return 1
        return 0

    def _children(self) -> list[Any]:
        return self.workers + self.fronts + ([self.logger] if self.logger is not None else [])

    def _restart_logger(self) -> bool:
        """Replace the dead logger process; entries it had not taken yet wait in the ring."""
        log.error("litserve: the logger process died (exit code %s); restarting it",
                  self.logger.exitcode)
        self._repair_log_ring(self.logger.pid)
        if not self._budget_left():
            return False
        self.logger = self._spawn_logger()
        return True

    def _repair_log_ring(self, pid: int | None) -> None:
        """Give back the log ring's cell a process died holding (a logger's producers
        are every front and worker, its consumer the logger process)."""
        ring = self.log_ring
        if ring is None or not pid:
            return

        def repair() -> None:
            ring.repair(dead=[pid])

        self._recover("process", pid, repair)

    def _replace_stuck(self) -> None:
        """Kill every worker that spent more than predict_timeout in one batch without
        progress (opt-in); the next look at it finds it dead and replaces it."""
        limit = self.plan.predict_timeout
        if not limit:
            return
        now = time.monotonic_ns()
        for j, p in enumerate(self.workers):
            busy = self.board.liveness(j)[1]
            if (p.exitcode is None and p.pid not in self.killed and busy
                    and now - busy > limit * 1e9):
                log.error("litserve: worker %d has been in one batch for %.0f s, more than "
                          "predict_timeout=%g; replacing it", j, (now - busy) / 1e9, limit)
                self.killed.add(p.pid)
                p.kill()

    def _budget_left(self) -> bool:
        """Count one death; False when too many came within the window (a crash loop)."""
        now = time.monotonic()
        self.deaths.append(now)
        while self.deaths and self.deaths[0] < now - RESTART_WINDOW_S:
            self.deaths.popleft()
        if len(self.deaths) > self.max_restarts:
            log.error("litserve: %d processes died within %.0f s (more than %s=%d); giving up",
                      len(self.deaths), RESTART_WINDOW_S, MAX_RESTARTS_ENV, self.max_restarts)
            return False
        return True

    def _restart(self, j: int, code: int) -> bool:
        """Replace dead worker j; its own recovery code repairs what it left.  False: the
        server stops (restart_workers=False, or too many deaths)."""
        stop = self.plan.restart_workers is False
        log.error("litserve: worker %d died (exit code %s); failing its requests and %s", j,
                  code, "stopping the server (restart_workers=False)" if stop else "restarting")
        old, pid = self.gens[j], self.workers[j].pid
        self._recover("worker", j, lambda: worker_recovery.after_death(
            self.plan, self.board, self.requests, j, old, pid))
        self._repair_log_ring(pid)
        if stop or not self._budget_left():
            return False  # (repaired all the same: its requests end now, not at a deadline)
        self.gens[j] = old + 1
        self.workers[j] = self._spawn_worker(j)
        return True

    def _restart_front(self, i: int, code: int) -> bool:
        """Replace dead front i.  First its next generation goes on the board: workers skip
        the old one's requests from then on and free the response blocks it held (releases
        name the front they come from, so a late one can never free a block lent since);
        then its own recovery code repairs what it left."""
        log.error("litserve: HTTP front %d died (exit code %s); restarting it", i, code)
        old, pid = self.front_gens[i], self.fronts[i].pid
        self.front_gens[i] = old + 1
        self.board.set_front(i, old + 1, P.STARTING)
        self._recover("HTTP front", i, lambda: front_recovery.after_death(
            self.plan, self.board, self.requests, i, old, pid))
        self._repair_log_ring(pid)
        if not self._budget_left():
            return False
        self.fronts[i] = self._spawn_front(i)
        return True

    @staticmethod
    def _recover(role: str, index: int, repair: Callable[[], None]) -> None:
        """Run a role's repair; a failure of it is logged, and the replacement starts all
        the same (its peers' deadlines bound what the repair left undone)."""
        try:
            repair()
        except Exception:
            log.exception("litserve: the repair after %s %d died failed", role, index)

    # -- shutdown ---------------------------------------------------------------------------
    def _shutdown(self) -> None:
        """Stop accepting, let the fronts finish what is in flight (up to plan.drain_s;
        a second signal cuts that short), then stop the workers."""
        if not hasattr(self, "board"):
            return
        for sock in getattr(self, "sockets", []):
            sock.close()  # the fronts close their copies as they stop: no new connections
        if self.stop_signal is not None and any(p.is_alive() for p in self.fronts):
            log.info("litserve: stopping; requests in flight may finish within %.0f s "
                     "(send the signal again to stop at once)", self.plan.drain_s)
        for p in self.fronts:
            if p.is_alive():
                p.terminate()  # SIGTERM: the front drains (http/front.py)
        self._join(self.fronts, self.plan.drain_s + 5.0)
        live = [p for p in self.workers if p.is_alive()]
        stop = P.RequestRecord(0, 0, P.STOP, 0, 0, 0, 0, P.NO_BLOCK, 0, 0, 0.0).pack()
        for _ in live:
            try:
                self.requests.put(stop, timeout=0.5)
            except IPCError:
                break
        self._join(live, 5.0)
        self._stop_logger()
        self.requests.close()
        self.board.close()

    def _stop_logger(self) -> None:
        """After the fronts and workers stopped: let the logger process finish what they
        logged (STOP comes last in the ring), then stop it."""
        if self.log_ring is None:
            return
        if self.logger is not None and self.logger.is_alive():
            try:
                self.log_ring.put(loggers.STOP, timeout=0.5)
            except IPCError:
                log.warning("litserve: the log ring is full; stopping the logger process "
                            "without waiting for the entries left in it")
            self._join([self.logger], 5.0)
        self.log_ring.close()

    def _join(self, procs: list[Any], timeout: float) -> None:
        """Wait for ``procs`` to exit, for at most ``timeout`` s or until another signal
        arrives; then kill what is left."""
        deadline = time.monotonic() + timeout
        signals = self.signals
        while self.signals == signals and (left := deadline - time.monotonic()) > 0:
            live = [p.sentinel for p in procs if p.exitcode is None]
            if not live:
                break
            self._wait(live, left)
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join(2.0)
