"""What a dead worker leaves behind, and its repair.

The worker role owns this code; the supervisor only decides *when* it runs: once it
reaped the dead process, before it starts the replacement.  A dead worker may have
left, half done:

- a request-ring cell it was taking a request from (consumer), or a STOP record it
  was putting back (producer);
- a completion-ring cell of a front it was posting a record to;
- requests it claimed and never finished: every live front is told with a
  ``WORKER_DIED`` record naming the worker's slot *and generation*, so a front that
  reads it late never fails what the replacement (same slot, next generation)
  claimed meanwhile;
- its response arena and release ring, which nobody else will remove.
"""

from __future__ import annotations

import logging

from .. import protocol as P
from ..config import Plan
from ..ipc import Ring
from ..ipc.errors import IPCError

log = logging.getLogger("litserve")

NOOP = P.Completion(0, 0, P.NOOP, 0, 0, 0, P.NO_BLOCK, 0, 0, 0).pack()
IGNORE = P.RequestRecord(0, 0, P.IGNORE, 0, 0, 0, 0, P.NO_BLOCK, 0, 0, 0.0).pack()
NOTICE_WAIT_S = 1.0  # how long a front's full completion ring may hold up the notice


def after_death(plan: Plan, board: P.Board, requests: Ring, j: int, gen: int, pid: int
                ) -> None:
    """Repair what worker ``j`` of generation ``gen`` (process ``pid``, reaped) left."""
    if requests.repair(dead={pid}, filler=IGNORE):
        log.warning("litserve: repaired request-ring cells dead worker %d held", j)
    died = P.Completion(j, gen, P.WORKER_DIED, 500, 0, 0, P.NO_BLOCK, 0, 0, 0).pack()
    for i in range(plan.fronts):
        _notify(plan, board, i, j, pid, died)
    P.WorkerNames.of(plan.name, j, gen).unlink()


def _notify(plan: Plan, board: P.Board, i: int, j: int, pid: int, died: bytes) -> None:
    """Repair front i's completion ring and tell it worker j died.  A front that is not
    serving (starting, or being replaced) holds no request of the dead worker."""
    fgen, state = board.front(i)
    if state != P.READY:
        return
    try:
        done = Ring(P.FrontNames.of(plan.name, i, fgen).done)
    except (IPCError, ValueError) as exc:  # it died meanwhile; its own recovery runs
        log.warning("litserve: front %d's completion ring is gone (%s)", i, exc)
        return
    try:
        if done.repair(dead={pid}, filler=NOOP):
            log.warning("litserve: filled completion cells dead worker %d held", j)
        done.put(died, timeout=NOTICE_WAIT_S)
    except IPCError as exc:
        # its requests still end, at their deadline (504)
        log.error("litserve: could not tell front %d that worker %d died: %s", i, j, exc)
    finally:
        done.close()
