"""``ls.Logger``: values that ``LitAPI.log(key, value)`` records, handed to the user's
loggers in a process of their own.

How an entry travels::

    any hook, any worker or front                      logger process (one per server)
    self.log(key, value) ── pickle ──▶ log ring ──────▶ every Logger.process(key, value)
                            (never waits: a full ring drops the entry, counted and
                             reported once per process)

The ring is a ``litserve.ipc.Ring`` in shared memory (role ``log``), made by the
supervisor only when the server has loggers; without them ``self.log`` does nothing.
A record is a 4-byte little-endian length and the pickle of ``(key, value)``; length 0
tells the logger process to stop (the supervisor sends it after the fronts and workers
stopped, so what they logged is processed first).  An entry whose pickle does not fit a
cell (``LOG_CELL`` bytes) is dropped like one that finds the ring full.

Loggers reach the logger process (and the fronts, which serve their ``mount``\\ s) inside
the pickle of the server.  One that cannot be pickled (it holds a lock, a metrics
registry, ...) is re-created there from its class, without arguments, as LitServe does;
a warning says so.

A logger that raises is logged, and the entry goes on to the others; the process never
dies of it.  If the process dies anyway, the supervisor repairs the ring and starts
another.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import struct
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .config import instances_of
from .errors import ConfigError
from .ipc import Ring
from .ipc.errors import RingFull
from .ipc.lifeline import die_with_parent

if TYPE_CHECKING:
    from .config import Plan

log = logging.getLogger("litserve.loggers")

LOG_ROLE = "log"  # the ring's role in the server's names
LOG_CELL = 4096  # bytes per cell: 8 of them the ring's, 4 the length, the rest the pickle
LOG_CELLS = 1024  # entries that may wait for the logger process
_LEN = struct.Struct("<I")
STOP = _LEN.pack(0)


class Logger(ABC):
    """Subclass and implement ``process(key, value)``; pass instances to
    ``LitServer(loggers=...)``.  ``process`` runs in the logger process, one entry at a
    time, in the order each process logged them."""

    def __init__(self) -> None:
        self._config: dict[str, Any] = {}
        self._mounts: list[tuple[str, Any]] = []

    def mount(self, path: str, app: Any) -> None:
        """Serve the ASGI ``app`` under ``path`` on the server's fronts (e.g. a
        Prometheus ``/metrics`` endpoint)."""
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError(f"Logger.mount(path={path!r}) is not valid; use a path "
                              "starting with '/', e.g. '/metrics'")
        if not hasattr(self, "_mounts"):  # a subclass that skipped super().__init__()
            self._mounts = []
            self._config = {}
        self._mounts.append((path, app))
        self._config["mount"] = {"path": path, "app": app}

    @abstractmethod
    def process(self, key: str, value: Any) -> None:
        """Handle one entry that a hook logged with ``self.log(key, value)``."""


def as_loggers(value: Any) -> list[Logger]:
    """``LitServer(loggers=...)``: None, one Logger or a list of them."""
    return instances_of(value, Logger, "loggers",
                        "subclass litserve.Logger, implement process(key, value) and pass "
                        "instances: LitServer(api, loggers=[MyLogger()])")


class _Recreated:
    """Stands in, in a pickle, for a logger that cannot be pickled: unpickled, it is a
    fresh instance of the logger's class (with its mounts, where they pickle)."""

    def __init__(self, cls: type[Logger], mounts: list[tuple[str, Any]]) -> None:
        self.cls, self.mounts = cls, mounts

    def __reduce__(self) -> tuple[Any, ...]:
        return _recreate, (self.cls, self.mounts)


def _recreate(cls: type[Logger], mounts: list[tuple[str, Any]]) -> Logger:
    logger = cls()
    for path, app in mounts:
        logger.mount(path, app)
    return logger


def shippable(loggers: Iterable[Logger]) -> list[Any]:
    """The loggers as they can travel to other processes (see the module doc)."""
    from .pickling import dumps

    out: list[Any] = []
    for logger in loggers:
        try:
            dumps(logger)
            out.append(logger)
            continue
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
        mounts = list(getattr(logger, "_mounts", []))
        try:
            dumps(mounts)
        except Exception:
            mounts = []
        log.warning("litserve: logger %s cannot be pickled (%s); the logger process and "
                    "the fronts create their own with %s()%s", type(logger).__name__, reason,
                    type(logger).__name__, "" if mounts or not getattr(logger, "_mounts", [])
                    else ", without the apps it mounted")
        out.append(_Recreated(type(logger), mounts))
    return out


# -- the producing side: every worker and front -----------------------------------------
class LogSink:
    """Puts entries on the log ring without ever waiting; counts what it had to drop."""

    def __init__(self, ring: Ring) -> None:
        self.ring = ring
        self.dropped = 0

    def put(self, key: str, value: Any) -> None:
        try:
            data = pickle.dumps((key, value), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            self._drop(key, f"its value cannot be pickled ({type(exc).__name__}: {exc})")
            return
        if len(data) + _LEN.size > self.ring.body_size:
            self._drop(key, f"it takes {len(data)} bytes pickled, more than the "
                            f"{self.ring.body_size - _LEN.size} a log entry may")
            return
        try:
            self.ring.put(_LEN.pack(len(data)) + data, timeout=0)
        except RingFull:
            self._drop(key, f"the loggers' queue is full ({self.ring.capacity} entries "
                            "wait for the logger process)")

    def _drop(self, key: str, why: str) -> None:
        self.dropped += 1
        if self.dropped == 1:
            log.warning("dropped the log entry %r: %s; further drops in this "
                        "process (pid %d) are counted, not reported", key, why, os.getpid())


def attach(plan: Plan, apis: Iterable[Any]) -> LogSink | None:
    """Connect every LitAPI's ``log`` to the server's log ring (None: it has no loggers,
    and ``log`` stays a no-op).  Called once in each worker and front at start-up."""
    if not plan.loggers:
        return None
    sink = LogSink(Ring(plan.name(LOG_ROLE)))
    for api in apis:
        api._log_sink = sink
    return sink


# -- the consuming side: the logger process -----------------------------------------------
def create_ring(plan: Plan) -> Ring:
    return Ring(plan.name(LOG_ROLE), LOG_CELLS, LOG_CELL, create=True)


def logger_main(plan: Plan, parent: int) -> None:
    """Entry point of the logger process: hand every entry to every logger until STOP."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # (it sends STOP, then waits)
    die_with_parent(parent, signal.SIGKILL)
    logging.basicConfig(level=plan.log_level.upper() if plan.log_level != "trace" else "DEBUG",
                        format="%(levelname)s:%(name)s: %(message)s")
    loggers = list(plan.unpack().server.loggers)
    ring = Ring(plan.name(LOG_ROLE))
    try:
        while (entry := _next(ring)) is not None:
            for logger in loggers:
                _process(logger, *entry)
    finally:
        ring.close()


def _next(ring: Ring) -> tuple[str, Any] | None:
    """The next entry (None: STOP); a record that cannot be read is logged and skipped."""
    while True:
        record = ring.get()
        (size,) = _LEN.unpack_from(record)
        if size == 0:
            return None
        try:
            key, value = pickle.loads(record[_LEN.size:_LEN.size + size])
            return key, value
        except Exception:
            log.exception("a log entry could not be unpickled; skipped")


def _process(logger: Logger, key: str, value: Any) -> None:
    try:
        logger.process(key, value)
    except Exception:
        log.exception("%s.process raised for the entry %r (value %.200r); it "
                      "goes on with the next", type(logger).__name__, key, value)
