"""The worker's view of the shared memory: fronts it serves, its own out-arena."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from .. import protocol as P
from ..config import Plan
from ..ipc import Arena, PayloadTooLarge, Ring, RingEmpty, SlotTable
from ..ipc._shm import gather_copy

FULL_POLL_S = 0.1  # how often a worker waiting for response-arena space looks again


class FrontLink:
    """Front i (generation gen): its arena (read; its fd kept for the private mappings
    of request bodies), slot table (claim) and completion ring (post)."""

    def __init__(self, plan: Plan, i: int, gen: int) -> None:
        self.key = (i, gen)
        self.tag = P.lend_tag(i, gen)  # how its releases name it
        names = P.FrontNames.of(plan.name, i, gen)
        self.arena = Arena(names.arena, keep_fd=True)
        try:
            self.slots = SlotTable(names.slots)
            self.done = Ring(names.done)
        except BaseException:
            self.arena.close()
            raise

    def close(self) -> None:
        for part in (self.done, self.slots, self.arena):
            part.close()


class OutArena:
    """This worker's response arena and the ring on which fronts hand blocks back.

    Every block posted to a front is remembered with that front's ``lend_tag`` until
    the front hands it back; a release naming another front is ignored, and the blocks
    of a front that died are freed here (``drop``).
    """

    def __init__(self, plan: Plan, j: int, gen: int) -> None:
        names = P.WorkerNames.of(plan.name, j, gen)
        self.arena = Arena(names.out, plan.response_arena_bytes, create=True)
        try:
            self.releases = Ring(names.releases, plan.release_ring_cells, P.RELEASE_CELL,
                                 create=True)
        except BaseException:
            self.arena.close()
            raise
        self.wait = plan.queue_wait * 6
        self.lent: dict[int, tuple[int, int]] = {}

    def lend(self, block: int, tag: tuple[int, int]) -> None:
        self.lent[block] = tag

    def _release(self, rec: bytes) -> None:
        block, i, gen = P.RELEASE.unpack_from(rec)
        if self.lent.get(block) == (i, gen):
            del self.lent[block]
            self.arena.free(block)

    def reclaim(self) -> None:
        while (rec := self.releases.try_get()) is not None:
            self._release(rec)

    def drop(self, tag: tuple[int, int]) -> int:
        """Free every block lent to the front of ``tag`` (it died); how many there were."""
        self.reclaim()
        blocks = [b for b, f in self.lent.items() if f == tag]
        for block in blocks:
            del self.lent[block]
            self.arena.free(block)
        return len(blocks)

    def write(self, meta: bytes, parts: list[Any],
              dead: Callable[[], Iterable[tuple[int, int]]] = tuple) -> tuple[int, int]:
        """Copy meta + parts into a new block; (offset, body length).  While the arena is
        full, the blocks lent to the fronts ``dead()`` names are freed too."""
        size = sum(memoryview(p).nbytes for p in parts)
        self.reclaim()
        block = self.arena.try_alloc(len(meta) + size)
        deadline = time.monotonic() + self.wait
        while block is None:
            for tag in dead():
                self.drop(tag)  # (reclaims what the ring holds too)
            block = self.arena.try_alloc(len(meta) + size)
            if block is not None:
                break
            left = deadline - time.monotonic()
            try:  # in slices, to notice a front that dies meanwhile
                rec = self.releases.get(timeout=max(0.0, min(left, FULL_POLL_S)))
            except RingEmpty:
                if left > FULL_POLL_S:
                    continue
                raise PayloadTooLarge(
                    f"the response arena ({self.arena.size} bytes) stayed full for "
                    f"{self.wait:.0f} s", size=size, limit=self.arena.size) from None
            self._release(rec)
            block = self.arena.try_alloc(len(meta) + size)
        gather_copy(self.arena.buf, block, [meta, *parts])
        return block, size

    def close(self) -> None:
        self.releases.close()
        self.arena.close()
