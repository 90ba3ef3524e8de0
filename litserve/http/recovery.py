"""What a dead front leaves behind, and its repair.

The front role owns this code; the supervisor only decides *when* it runs: once it
reaped the dead process and published the slot's next generation on the board (from
then on, workers skip the old generation's requests and free the response blocks it
held).  A dead front may have left, half done:

- a request-ring cell it claimed but never published (filled with an IGNORE record);
- a release-ring cell of a worker it was handing a block back on (filled with a
  release of nothing; the worker frees the dead front's blocks itself);
- its completion ring, on which a worker may be waiting for room (drained);
- its arena, slot table and completion ring, which nobody else will remove.

Its open connections are lost: their clients see the connection close.
"""

from __future__ import annotations

import logging

from .. import protocol as P
from ..config import Plan
from ..ipc import Ring
from ..ipc.errors import IPCError

log = logging.getLogger("litserve")

NOTHING = P.RELEASE.pack(P.NO_BLOCK, 0, 0)


def after_death(plan: Plan, board: P.Board, requests: Ring, i: int, gen: int, pid: int
                ) -> None:
    """Repair what front ``i`` of generation ``gen`` (process ``pid``, reaped) left."""
    ignore = P.RequestRecord(i, 0, P.IGNORE, gen, 0, 0, 0, P.NO_BLOCK, 0, 0, 0.0).pack()
    if requests.repair(dead={pid}, filler=ignore):
        log.warning("litserve: repaired request-ring cells dead front %d held", i)
    for j in range(plan.workers):
        wgen, state = board.worker(j)
        if state != P.READY:
            continue  # a worker still starting has a new ring the dead front never used
        _repair(P.WorkerNames.of(plan.name, j, wgen).releases, pid, NOTHING)
    names = P.FrontNames.of(plan.name, i, gen)
    _drain(names.done)
    names.unlink()
    board.front_usage_writer(i)(0, 0)  # what it held went with its arena


def _repair(name: str, pid: int, filler: bytes) -> None:
    try:
        ring = Ring(name)
    except (IPCError, ValueError) as exc:  # that peer died or is being replaced
        log.warning("litserve: ring %s is gone (%s)", name, exc)
        return
    try:
        if ring.repair(dead={pid}, filler=filler):
            log.warning("litserve: repaired cells of %s the dead front held", name)
    finally:
        ring.close()


def _drain(name: str) -> None:
    """Empty the dead front's completion ring: a worker waiting for room in it goes on."""
    try:
        done = Ring(name)
    except (IPCError, ValueError):
        return  # it died before (or while) making it
    try:
        while done.try_get() is not None:
            pass
    finally:
        done.close()
