"""Entry point of an HTTP front process (spawned by the supervisor)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Generator
from typing import Any

import uvicorn

from ..config import Plan
from ..ipc.errors import SharedMemoryFull
from ..ipc.lease import Lease
from ..ipc.lifeline import die_with_parent
from ..loggers import attach as attach_loggers
from .app import Front
from .body import PRIVATE_MAX
from .direct import protocol_class
from .middleware import wrap

STARTUP_LINE = "Application startup complete."


class _NoStartupLine(logging.Filter):
    """Drops uvicorn's "Application startup complete." of each front: the supervisor
    says it once, when every worker is ready too."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != STARTUP_LINE


class _FrontServer(uvicorn.Server):
    """uvicorn, minus its signal handling: the supervisor tells us when to stop."""

    announce = False

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.announce and self.started and sockets:
            self._log_started_message(sockets)  # uvicorn skips it for inherited sockets


def front_main(plan: Plan, index: int, gen: int, sock: socket.socket, parent: int) -> None:
    """Serve HTTP on ``sock``: the listening socket all fronts share, or (``reuse_port``)
    this front slot's own SO_REUSEPORT socket, so the kernel spreads connections evenly.
    Either way the supervisor made it and keeps it open, so connections that arrive while
    this front is being replaced wait in its backlog for the next generation instead of
    being refused.  ``gen`` counts the restarts of front slot ``index``; it names this
    front's shared memory."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent, signal.SIGTERM)
    Lease.join(plan.token)  # held until exit: this process keeps the names alive
    shipped = plan.unpack()
    apis, specs = shipped.apis, shipped.specs
    attach_loggers(plan, apis)
    try:
        front = Front(plan, index, apis, specs, gen, shipped=shipped, parent=parent)
    except SharedMemoryFull as exc:  # a sentence says it all
        print(f"litserve: HTTP front {index} cannot start: {exc}", file=sys.stderr, flush=True)
        os._exit(3)
    kwargs: dict[str, Any] = {"access_log": False, "timeout_graceful_shutdown": plan.drain_s,
                              "ws": "none",
                              "http": protocol_class(front.place_direct, front.guard,
                                                     PRIVATE_MAX)}
    kwargs.update(plan.uvicorn_kwargs)
    config = uvicorn.Config(wrap(front, shipped.middlewares), host=plan.host, port=plan.port,
                            log_level=plan.log_level, lifespan="on", **kwargs)
    logging.getLogger("uvicorn.error").addFilter(_NoStartupLine())  # (after Config's set-up)
    server = _FrontServer(config)
    server.announce = index == 0 and gen == 0

    def stop(signum: int, frame: Any) -> None:
        # From the supervisor: stop accepting, let the requests in flight finish (up to
        # plan.drain_s).  From the kernel because the supervisor died (the workers died
        # with it): nothing in flight can finish, so go at once.
        server.should_exit = True
        if os.getppid() != parent:
            server.force_exit = True

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run(sockets=[sock])
    finally:
        logging.getLogger("uvicorn.error").info(
            "litserve: front %d served %d requests", index, server.server_state.total_requests)
        front.close()

