"""A bounded multi-producer / multi-consumer ring of fixed-size cells in shared memory.

The algorithm is Dmitry Vyukov's bounded MPMC queue: every cell carries a sequence
word, producers and consumers claim positions with a compare-and-swap, and a cell's
body is published by a release-store of its sequence.  Two named counting semaphores
make it blocking without polling: ``space`` starts at the capacity (a producer takes
one unit before it writes), ``items`` starts at 0 (a consumer takes one before it reads).

Byte layout of the segment (all words unsigned 64-bit, little-endian, 8-aligned;
``tests/ipc/test_layout.py`` checks it against the C atomics):

    offset  size  field
    0       8     magic        0x6C73765F72696E67 ("lsv_ring")
    8       8     capacity     number of cells, a power of two
    16      8     cell_size    bytes per cell, a multiple of 8, >= 16
    64      8     enqueue_pos  next position a producer claims (own cache line)
    128     8     dequeue_pos  next position a consumer claims (own cache line)
    192     ...   cells        capacity x cell_size bytes

    cell:   0  8  sequence     == pos        : free for the producer of pos
                               == pos + 1    : holds the item of pos
            8  cell_size - 8   body (the caller's fixed-size record)

Semaphores: ``<name>.items`` and ``<name>.space``.

The claim-and-copy steps run in C (``_shm.ring_put`` / ``ring_take``); waiting and
timeouts stay here.  A waiter first spins for up to ``spin`` seconds without the GIL
watching the next cell (``_shm.ring_wait``), because waking a process blocked on a
semaphore costs tens of microseconds; then it blocks on the semaphore.

A short record is zero-padded to the cell body, so a reader never sees an older
record's bytes.

A process killed inside ``put`` / ``get`` (a window of well under a microsecond, in C):
killed between claiming a cell and publishing it, a producer wedges the ring at that
cell, and a consumer killed between claiming and releasing one wedges it for the
producers a lap later.  Whoever supervises the processes repairs that with
``fill_abandoned`` / ``release_abandoned`` once it knows the process is dead.  A
consumer killed between taking its ``items`` unit and claiming the cell leaves one
record uncounted, so it is handed out only when the next record arrives.
"""

from __future__ import annotations

import os
import time

from . import _shm, timeouts
from .errors import RingEmpty, RingFull
from .segment import Segment
from .segment import unlink as unlink_segment
from .semaphore import Semaphore
from .semaphore import unlink as unlink_semaphore

MAGIC = 0x6C73765F72696E67
OFF_MAGIC, OFF_CAPACITY, OFF_CELL_SIZE = 0, 8, 16
OFF_ENQUEUE, OFF_DEQUEUE, OFF_CELLS = 64, 128, 192
MAX_CAPACITY = 1 << 30  # a semaphore counts the free cells (SEM_VALUE_MAX is 2**31 - 1)
DEFAULT_SPIN = 50e-6  # seconds a waiter spins before it sleeps on the semaphore
_GRACE_TRIES = 64  # yields granted to a neighbour still copying our cell, even at timeout=0

load64, store64, cas64 = _shm.load64, _shm.store64, _shm.cas64
ring_put, ring_take, ring_wait = _shm.ring_put, _shm.ring_take, _shm.ring_wait


def segment_size(capacity: int, cell_size: int) -> int:
    return OFF_CELLS + capacity * cell_size


def _validate(capacity: int, cell_size: int) -> None:
    if (
        not isinstance(capacity, int)
        or capacity < 2
        or capacity > MAX_CAPACITY
        or capacity & (capacity - 1)
    ):
        raise ValueError(f"ring capacity={capacity!r} must be a power of two in 2..{MAX_CAPACITY}")
    if not isinstance(cell_size, int) or cell_size < 16 or cell_size % 8:
        raise ValueError(f"ring cell_size={cell_size!r} must be a multiple of 8, >= 16")


def _check_spin(spin: float) -> None:
    if isinstance(spin, bool) or not isinstance(spin, int | float) or not 0 <= spin < 1:
        raise ValueError(f"ring spin={spin!r} must be a number of seconds in [0, 1)")


class Ring:
    """Open (``create=True``) or attach to a ring; see the module doc for the layout."""

    def __init__(
        self,
        name: str,
        capacity: int = 0,
        cell_size: int = 0,
        *,
        create: bool = False,
        spin: float = DEFAULT_SPIN,
    ) -> None:
        self.name = name
        _check_spin(spin)
        self.spin = spin
        if create:
            _validate(capacity, cell_size)
            self._seg = Segment(name, segment_size(capacity, cell_size), create=True)
            self._create(capacity, cell_size)
        else:
            self._seg = Segment(name)
            self._attach()
        self._buf = self._seg.buf
        self.capacity: int = load64(self._buf, OFF_CAPACITY)
        self.cell_size: int = load64(self._buf, OFF_CELL_SIZE)
        self.body_size = self.cell_size - 8
        self._mask = self.capacity - 1

    def _create(self, capacity: int, cell_size: int) -> None:
        """Lay out the new segment and make both semaphores; undo all of it on failure."""
        buf, made = self._seg.buf, []
        try:
            for i in range(capacity):
                store64(buf, OFF_CELLS + i * cell_size, i)
            store64(buf, OFF_CAPACITY, capacity)
            store64(buf, OFF_CELL_SIZE, cell_size)
            store64(buf, OFF_MAGIC, MAGIC)
            made.append(Semaphore(self.name + ".items", create=True, initial=0))
            made.append(Semaphore(self.name + ".space", create=True, initial=capacity))
        except BaseException:
            for sem in made:
                sem.close()
                sem.unlink()
            self._seg.close()
            self._seg.unlink()
            raise
        self.items, self.space = made

    def _attach(self) -> None:
        seg = self._seg
        try:
            if seg.size < OFF_CELLS or load64(seg.buf, OFF_MAGIC) != MAGIC:
                raise ValueError(f"segment {self.name!r} is not a litserve ring")
            capacity, cell_size = load64(seg.buf, OFF_CAPACITY), load64(seg.buf, OFF_CELL_SIZE)
            _validate(capacity, cell_size)
            if segment_size(capacity, cell_size) > seg.size:
                raise ValueError(
                    f"ring {self.name!r}: header says {capacity} x {cell_size} bytes but the "
                    f"segment has only {seg.size}"
                )
            self.items = Semaphore(self.name + ".items")
            self.space = Semaphore(self.name + ".space")
        except BaseException:
            seg.close()
            raise

    # -- producer ---------------------------------------------------------------
    def put(self, body: bytes, timeout: timeouts.Timeout = None) -> None:
        """Append one record (zero-padded to the cell body); wait for a free cell as
        the timeout rule says, then raise ``RingFull``."""
        size = len(body) if type(body) is bytes else memoryview(body).nbytes
        if size > self.body_size:
            raise ValueError(
                f"ring {self.name!r}: record of {size} bytes exceeds the "
                f"cell body of {self.body_size} bytes"
            )
        deadline = timeouts.deadline_of(timeout)
        if not self._unit(self.space, OFF_ENQUEUE, 0, deadline) or not self._put(body, deadline):
            raise RingFull(
                f"ring {self.name!r} is full ({self.capacity} cells) after waiting {timeout} s"
            )
        self.items.release()

    def _put(self, body: bytes, deadline: float | None) -> bool:
        buf, mask, size = self._buf, self._mask, self.cell_size
        tries = 0
        while not ring_put(buf, OFF_ENQUEUE, OFF_CELLS, mask, size, body):
            tries += 1
            if not _back_off(tries, deadline):
                self.space.release()
                return False
        return True

    # -- consumer ---------------------------------------------------------------
    def get(self, timeout: timeouts.Timeout = None) -> bytes:
        """Take the oldest record; wait for one as the timeout rule says, then raise
        ``RingEmpty``."""
        deadline = timeouts.deadline_of(timeout)
        body = self._take(deadline) if self._unit(self.items, OFF_DEQUEUE, 1, deadline) else None
        if body is None:
            raise RingEmpty(f"ring {self.name!r}: nothing arrived within {timeout} s")
        return body

    def try_get(self) -> bytes | None:
        """Take a record if one is ready now, else None (never waits)."""
        if not self.items.try_acquire():
            return None
        return self._take(time.monotonic())

    def _take(self, deadline: float | None) -> bytes | None:
        buf, mask, size = self._buf, self._mask, self.cell_size
        tries = 0
        while (body := ring_take(buf, OFF_DEQUEUE, OFF_CELLS, mask, size)) is None:
            tries += 1
            if not _back_off(tries, deadline):
                self.items.release()
                return None
        self.space.release()
        return body

    # -- waiting ----------------------------------------------------------------
    def _unit(self, sem: Semaphore, pos_off: int, lag: int, deadline: float | None) -> bool:
        """Take one unit of ``sem``: now, else after a GIL-free spin of at most
        ``self.spin`` watching the next cell, else by sleeping on it until ``deadline``."""
        if sem.try_acquire():
            return True
        now = time.monotonic()
        if deadline is not None and deadline <= now:
            return False
        end = now + self.spin if deadline is None else min(now + self.spin, deadline)
        buf, mask, size = self._buf, self._mask, self.cell_size
        while (left := end - time.monotonic()) > 0:
            ring_wait(buf, pos_off, OFF_CELLS, mask, size, lag, int(left * 1e9))
            if sem.try_acquire():
                return True
        try:
            sem.acquire(timeouts.remaining(deadline))
        except TimeoutError:
            return False
        return True

    # -- recovery after a process died inside put / get -------------------------------
    def fill_abandoned(self, filler: bytes, settle: float = 0.05) -> int:
        """Publish ``filler`` in every cell a producer claimed but never published.

        Call it only after a producer of this ring died.  Live producers publish within
        microseconds of claiming, so a cell still unpublished ``settle`` seconds later
        is taken to be the dead one's.  Returns the number of cells filled.
        """
        first = self._unpublished()
        if not first:
            return 0
        time.sleep(settle)
        filled = 0
        for pos in sorted(first & self._unpublished()):
            cell = self._cell(pos)
            self._buf[cell + 8 : cell + 8 + self.body_size] = filler.ljust(self.body_size, b"\0")
            if cas64(self._buf, cell, pos, pos + 1):
                self.items.release()  # the unit the dead producer never posted
                filled += 1
        return filled

    def release_abandoned(self, settle: float = 0.05) -> int:
        """Free every cell a consumer claimed but never released (call it only after a
        consumer of this ring died; same ``settle`` rule as ``fill_abandoned``)."""
        first = self._unreleased()
        if not first:
            return 0
        time.sleep(settle)
        freed = 0
        for pos in sorted(first & self._unreleased()):
            if cas64(self._buf, self._cell(pos), pos + 1, pos + self.capacity):
                self.space.release()  # the unit the dead consumer never gave back
                freed += 1
        return freed

    def repair(self, dead: object = (), filler: bytes = b"") -> int:
        """Repair what dead peers left half done on either side (both guesses above)."""
        return self.fill_abandoned(filler) + self.release_abandoned()

    def _cell(self, pos: int) -> int:
        return OFF_CELLS + (pos & self._mask) * self.cell_size

    def _unpublished(self) -> set[int]:
        """Positions claimed by a producer (below enqueue_pos) whose cell is still free."""
        deq, enq = load64(self._buf, OFF_DEQUEUE), load64(self._buf, OFF_ENQUEUE)
        return {p for p in range(deq, enq) if load64(self._buf, self._cell(p)) == p}

    def _unreleased(self) -> set[int]:
        """Positions claimed by a consumer (below dequeue_pos) whose cell still holds
        its record."""
        deq = load64(self._buf, OFF_DEQUEUE)
        start = max(0, deq - self.capacity)
        return {p for p in range(start, deq) if load64(self._buf, self._cell(p)) == p + 1}

    def __len__(self) -> int:
        """Records in the ring now (approximate while others are working on it)."""
        dequeued = load64(self._buf, OFF_DEQUEUE)  # first: it never passes enqueue_pos
        return min(self.capacity, load64(self._buf, OFF_ENQUEUE) - dequeued)

    def close(self) -> None:
        self.items.close()
        self.space.close()
        self._seg.close()

    def unlink(self) -> None:
        unlink(self.name)


def _back_off(tries: int, deadline: float | None) -> bool:
    """Wait a little for a neighbour that still owns our cell; False once past the
    deadline (after a short grace, so that timeout=0 survives a neighbour mid-copy)."""
    if tries > _GRACE_TRIES and deadline is not None and time.monotonic() >= deadline:
        return False
    if tries < _GRACE_TRIES:
        os.sched_yield()
    else:
        time.sleep(min(1e-3, 1e-6 * tries))
    return True


def unlink(name: str) -> None:
    unlink_segment(name)
    unlink_semaphore(name + ".items")
    unlink_semaphore(name + ".space")
