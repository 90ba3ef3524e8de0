"""Request slot states, changed with compare-and-swap so that a cancelled request is
never handed to a worker and a claimed one is never freed under it.

One table per owner (an HTTP front).  Each slot is one 64-bit state word:

    bits 63..30  seq     the owner's request number mod 2**34, unique per table for
                         17 billion requests (it only has to outlive a descriptor)
    bits 29..14  gen     generation (mod 2**16) of the claiming worker, 0 when unclaimed
    bits 13..4   holder  worker id + 1 of the claimer, 0 when unclaimed
    bits  3..0   state   FREE 0, POSTED 1, CLAIMED 2, CANCELLED 3, ABANDONED 4

The claimer is named by worker id *and* generation, so when a dead worker's requests
are failed, a replacement of the same id that already claimed requests keeps them.

Transitions (who: how):
    FREE -> POSTED        owner: store, before its descriptor goes on the request ring
    POSTED -> CLAIMED     worker: CAS; only after this may the worker read the payload
    POSTED -> CANCELLED   owner: CAS (client went away / deadline); the owner may free at once
    POSTED -> FREE        owner: CAS (release of a request never claimed, e.g. its
                          descriptor could not be posted); fails if a worker claimed it
    CLAIMED -> ABANDONED  owner: CAS (client went away after the claim); the holder is
                          kept, and a worker that sees it may stop early (a stream)
    CLAIMED/CANCELLED/ABANDONED -> FREE  owner: store, once the request ended

Because the descriptor carries ``seq``, a worker that pops a descriptor for a slot
that was cancelled and reused fails its CAS and skips it.

Byte layout: word ``i`` at offset ``HEADER + 8 * i``; offset 0 holds the magic
0x6C73765F736C6F74 ("lsv_slot"), offset 8 the slot count.
"""

from __future__ import annotations

import itertools
from collections import deque

from . import _shm
from .errors import IPCError
from .segment import Segment

FREE, POSTED, CLAIMED, CANCELLED, ABANDONED = 0, 1, 2, 3, 4
MAGIC = 0x6C73765F736C6F74
HEADER = 64
MAX_WORKERS = (1 << 10) - 2
SEQ_BITS = 34
SEQ_MASK = (1 << SEQ_BITS) - 1
GEN_MASK = 0xFFFF

load64, store64, cas64 = _shm.load64, _shm.store64, _shm.cas64


def word(seq: int, state: int, holder: int = 0, gen: int = 0) -> int:
    if state != CLAIMED:
        return (seq << 30) | state
    return (seq << 30) | ((gen & GEN_MASK) << 14) | ((holder + 1) << 4) | state


def unpack(value: int) -> tuple[int, int, int]:
    """(seq, holder worker id or -1, state) of a state word."""
    return value >> 30, ((value >> 4) & 0x3FF) - 1, value & 0xF


def holder_gen(value: int) -> int:
    """The generation (mod 2**16) of the worker that holds the slot of ``value``."""
    return (value >> 14) & GEN_MASK


class SlotTable:
    def __init__(self, name: str, count: int = 0, *, create: bool = False) -> None:
        self.name = name
        if create:
            if not isinstance(count, int) or count < 1:
                raise ValueError(f"slot table {name!r}: count={count!r} must be an int >= 1")
            self._seg = Segment(name, HEADER + 8 * count, create=True)
            store64(self._seg.buf, 8, count)
            store64(self._seg.buf, 0, MAGIC)
        else:
            self._seg = Segment(name)
            self._check_attached()
        self._buf = self._seg.buf
        self.count = load64(self._buf, 8)
        self._free: deque[int] = deque(range(self.count)) if create else deque()
        self._seqs = itertools.count(1)  # next() is atomic under the GIL

    def _check_attached(self) -> None:
        seg = self._seg
        if seg.size < HEADER or load64(seg.buf, 0) != MAGIC:
            seg.close()
            raise ValueError(f"segment {self.name!r} is not a litserve slot table")
        if HEADER + 8 * load64(seg.buf, 8) > seg.size:
            seg.close()
            raise ValueError(f"slot table {self.name!r}: header count does not fit the segment")

    def _off(self, slot: int) -> int:
        if not 0 <= slot < self.count:
            raise IndexError(f"slot table {self.name!r}: slot {slot} outside 0..{self.count - 1}")
        return HEADER + 8 * slot

    # -- owner ------------------------------------------------------------------
    def acquire(self) -> tuple[int, int] | None:
        """A free slot and a fresh seq for a new request, or None if all are in use."""
        if not self._free:
            return None
        try:
            slot = self._free.popleft()
        except IndexError:  # another thread took the last one
            return None
        return slot, next(self._seqs) & SEQ_MASK

    def unacquire(self, slot: int) -> None:
        """Hand back a slot from ``acquire`` that was never posted (it is still FREE)."""
        if load64(self._buf, self._off(slot)) & 0xF != FREE:
            raise IPCError(f"slot table {self.name!r}: slot {slot} was posted; release it "
                           "once its request ended instead")
        self._free.append(slot)

    def post(self, slot: int, seq: int) -> None:
        store64(self._buf, self._off(slot), word(seq, POSTED))

    def cancel(self, slot: int, seq: int) -> bool:
        """POSTED -> CANCELLED; False when a worker claimed it first."""
        return cas64(self._buf, self._off(slot), word(seq, POSTED), word(seq, CANCELLED))

    def release(self, slot: int) -> None:
        """End a request: the slot is FREE and may be handed out again."""
        off = self._off(slot)
        current = load64(self._buf, off)
        state = current & 0xF
        if state == FREE:
            raise IPCError(f"slot table {self.name!r}: slot {slot} released twice")
        if state == POSTED and not cas64(self._buf, off, current, FREE):
            raise IPCError(
                f"slot table {self.name!r}: slot {slot} was claimed while being released; "
                "wait for its completion before releasing it"
            )
        if state != POSTED:
            store64(self._buf, off, FREE)
        self._free.append(slot)

    def release_any(self, slot: int) -> None:
        """End a slot's request whatever became of it: never posted, or posted."""
        if load64(self._buf, self._off(slot)) & 0xF == FREE:
            self.unacquire(slot)
        else:
            self.release(slot)

    def claimed_by(self, worker: int, gen: int) -> list[tuple[int, int]]:
        """(slot, seq) of every request that generation ``gen`` of ``worker`` claimed and
        has not finished (a later generation's claims are not among them)."""
        found = []
        for slot in range(self.count):
            value = load64(self._buf, HEADER + 8 * slot)
            seq, holder, state = unpack(value)
            if (state in (CLAIMED, ABANDONED) and holder == worker
                    and holder_gen(value) == gen & GEN_MASK):
                found.append((slot, seq))
        return found

    def abandon(self, slot: int, seq: int) -> bool:
        """CLAIMED -> ABANDONED (holder kept); False unless ``seq`` is claimed now."""
        off = self._off(slot)
        current = load64(self._buf, off)
        if current >> 30 != seq or current & 0xF != CLAIMED:
            return False
        return cas64(self._buf, off, current, (current & ~0xF) | ABANDONED)

    def abandoned(self, slot: int, seq: int) -> bool:
        """Whether the owner gave up on request ``seq`` (worker side, one atomic load)."""
        current = load64(self._buf, self._off(slot))
        return current >> 30 != seq or current & 0xF == ABANDONED

    @property
    def in_use(self) -> int:
        return self.count - len(self._free)

    # -- worker -----------------------------------------------------------------
    def claim(self, slot: int, seq: int, worker: int, gen: int = 0) -> bool:
        """POSTED -> CLAIMED by generation ``gen`` of ``worker``; False if cancelled or
        already reused."""
        if not 0 <= worker <= MAX_WORKERS:
            raise ValueError(f"worker={worker} outside 0..{MAX_WORKERS}")
        return cas64(self._buf, self._off(slot), word(seq, POSTED),
                     word(seq, CLAIMED, worker, gen))

    def state(self, slot: int) -> tuple[int, int, int]:
        return unpack(load64(self._buf, self._off(slot)))

    def close(self) -> None:
        self._seg.close()

    def unlink(self) -> None:
        self._seg.unlink()
