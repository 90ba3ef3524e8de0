"""One owner for what a request holds in its front: a request slot and an arena block.

Every write of request bytes into this front's arena goes through ``Intake``, and every
way out of a request gives its ``Hold`` back here, exactly once.  What the front holds
is published on the control board after every change (``Board.front_usage``), so tests
and metrics read exact counts.

Life of a hold (who: what):

    reserve     app / protocol: a slot, plus an arena block when the body does not
                travel inline; checked against the limits *before* anything is taken
    filling     app / protocol: bytes written as they arrive (``write`` grows the block
                of a body of unknown length, in place when it can, else by moving it)
    posted      dispatcher: the request is on the ring; it ends the hold (``give_back``)
                when the request ended, whatever the way
    returned    after ``give_back``; a second ``give_back`` does nothing

Sizes: the body (``max_payload_size``) and the meta before it must fit the arena; a
body over the limit is refused with a 413 that names the limit, before any reservation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .. import protocol as P
from ..config import Plan
from ..ipc import Arena, SlotTable
from .replies import Busy, Refused

WAIT_POLL_S = 0.002  # how often a request waiting for room looks again
GROW_MIN = 1 << 20  # the first arena block of a body of unknown length


class Hold:
    """A request's slot and (``block`` not None) arena block: meta at the block's start,
    the body at ``body_at`` with room for ``capacity`` bytes, ``filled`` of them written."""

    __slots__ = ("slot", "seq", "block", "meta_len", "capacity", "filled", "live")

    def __init__(self, slot: int, seq: int, block: int | None, meta_len: int,
                 capacity: int) -> None:
        self.slot, self.seq, self.block = slot, seq, block
        self.meta_len, self.capacity, self.filled = meta_len, capacity, 0
        self.live = True

    @property
    def body_at(self) -> int:
        assert self.block is not None
        return self.block + P.align64(self.meta_len)


def too_large(size: int, limit: int) -> Refused:
    return Refused(413, f"request body of {size} bytes exceeds this server's limit of "
                        f"{limit} bytes (LitServer(max_payload_size=...))")


class Intake:
    """This front's slot table and arena, and every reservation made from them."""

    def __init__(self, plan: Plan, index: int, gen: int, board: P.Board) -> None:
        self.index = index
        self._write_usage = board.front_usage_writer(index)
        names = P.FrontNames.of(plan.name, index, gen)
        arena, slots = names.arena, names.slots
        self.arena = Arena(arena, plan.request_arena_bytes, create=True)
        try:
            self.slots = SlotTable(slots, plan.slots_per_front, create=True)
        except BaseException:
            self.arena.close()
            raise
        self._publish()  # (0, 0): not what a dead predecessor of this slot last said
        self.limit = min(plan.max_payload_bytes, self.arena.size - P.META_ROOM)
        self.queue_wait = plan.queue_wait
        self.on_short: Callable[[], object] = lambda: None  # frees room held by stalled uploads

    # -- limits -------------------------------------------------------------------------
    def check(self, meta_len: int, length: int) -> None:
        """Refuse (413) a body that can never fit, before anything is reserved."""
        if length > self.limit or P.align64(meta_len) + length > self.arena.size:
            raise too_large(length, self.limit)

    # -- reserving ----------------------------------------------------------------------
    def try_reserve(self, meta: bytes, length: int, inline: bool = False) -> Hold | None:
        """A hold for a body of ``length`` bytes (a slot only when ``inline``), or None
        when no slot or arena room is free right now.  Writes ``meta`` into the block."""
        if not inline:
            self.check(len(meta), length)
        got = self.slots.acquire()
        if got is None:
            return None
        if inline:
            hold = Hold(got[0], got[1], None, 0, 0)
        else:
            block = self.arena.try_alloc(P.align64(len(meta)) + length)
            if block is None:
                self.slots.unacquire(got[0])
                return None
            hold = Hold(got[0], got[1], block, len(meta), length)
            self.arena.buf[block : block + len(meta)] = meta
        self._publish()
        return hold

    async def reserve(self, meta: bytes, length: int, wait_until: float,
                      inline: bool = False) -> Hold:
        """``try_reserve``, waiting (at most until ``wait_until``) for room; ``Busy``."""
        while (hold := self.try_reserve(meta, length, inline)) is None:
            self.on_short()
            await self.wait_room(wait_until, self._why_short())
        return hold

    async def wait_room(self, wait_until: float, why: str) -> None:
        """Sleep a little, or raise ``Busy`` once ``wait_until`` has passed."""
        if time.monotonic() >= wait_until:
            raise Busy(f"server busy: {why} (waited {self.queue_wait:g} s); retry later")
        await asyncio.sleep(WAIT_POLL_S)

    def _why_short(self) -> str:
        if self.slots.in_use == self.slots.count:
            return "all request slots of this front are in use"
        return "the request arena is full"

    # -- writing ------------------------------------------------------------------------
    def view(self, hold: Hold, length: int | None = None) -> memoryview:
        """The hold's first ``length`` body bytes (default: what was written)."""
        stop = hold.filled if length is None else length
        return self.arena.buf[hold.body_at : hold.body_at + stop]

    def write(self, hold: Hold, chunk: bytes | bytearray) -> None:
        """Append ``chunk`` to the body, growing the block up to the limit (413 past it;
        ``Busy`` when the arena has no room for the larger block)."""
        end = hold.filled + len(chunk)
        if end > hold.capacity:
            self._grow(hold, end)
        at = hold.body_at + hold.filled
        self.arena.buf[at : at + len(chunk)] = chunk
        hold.filled = end

    def _grow(self, hold: Hold, need: int) -> None:
        if need > self.limit:
            raise too_large(need, self.limit)
        capacity = min(self.limit, max(need, 2 * hold.capacity, GROW_MIN))
        assert hold.block is not None
        meta_room = P.align64(hold.meta_len)
        if not self.arena.try_extend(hold.block, meta_room + capacity):
            block = self.arena.try_alloc(meta_room + capacity)
            if block is None:
                raise Busy("server busy: the request arena is full; retry later")
            old = hold.block
            size = meta_room + hold.filled
            self.arena.buf[block : block + size] = self.arena.buf[old : old + size]
            self.arena.free(old)
            hold.block = block
        hold.capacity = capacity
        self._publish()

    # -- giving back --------------------------------------------------------------------
    def give_back(self, hold: Hold) -> None:
        """End the hold: free its block and its slot (once; later calls do nothing)."""
        if not hold.live:
            return
        hold.live = False
        if hold.block is not None:
            self.arena.free(hold.block)
        self.slots.release_any(hold.slot)
        self._publish()

    def _publish(self) -> None:
        self._write_usage(self.slots.in_use, self.arena.size - self.arena.free_bytes)

    def close(self) -> None:
        self.slots.close()
        self.arena.close()
