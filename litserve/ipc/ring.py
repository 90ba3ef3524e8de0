"""A bounded multi-producer / multi-consumer ring of fixed-size cells in shared memory.

The algorithm is Dmitry Vyukov's bounded MPMC queue, with owner-attributed cells:
every cell carries one word holding a sequence number and, while a process works on
the cell, that process's pid.  A producer or consumer claims a cell with a
compare-and-swap *on the cell's word* that writes its pid into it, and only then
moves the position counter on (any neighbour that finds the cell claimed moves it on
too), so a claimed cell always names its owner; the body is published by a
release-store of the word.  Two named counting semaphores make it blocking without
polling: ``space`` starts at the capacity (a producer takes one unit before it
writes), ``items`` starts at 0 (a consumer takes one before it reads).

Byte layout of the segment (all words unsigned 64-bit, little-endian, 8-aligned;
``tests/ipc/test_layout.py`` checks it against the C atomics):

    offset  size  field
    0       8     magic        0x6C73765F72696E67 ("lsv_ring")
    8       8     capacity     number of cells, a power of two
    16      8     cell_size    bytes per cell, a multiple of 8, >= 16
    64      8     enqueue_pos  next position a producer claims (own cache line)
    128     8     dequeue_pos  next position a consumer claims (own cache line)
    192     ...   cells        capacity x cell_size bytes; position p uses cell p % capacity

    cell:   0  8  word         seq << 23 | busy << 22 | pid
            8  cell_size - 8   body (the caller's fixed-size record)

    word:   bits 63..23  seq   a position mod 2**41 (compared as a signed 41-bit
                               difference, so the 64-bit positions never overflow it)
            bit  22      busy  a process is writing or reading the cell
            bits 21..0   pid   that process while busy (Linux pid_max <= 2**22), else 0

States of the cell of position p, and who moves it on (``cell_word`` spells them):

    FREE(p)          seq p                 producer of p: CAS -> WRITING(p, me)
    WRITING(p, pid)  seq p,     busy, pid  that producer: copy, release-store -> FULL(p)
    FULL(p)          seq p + 1             consumer of p: CAS -> READING(p, me)
    READING(p, pid)  seq p + 1, busy, pid  that consumer: copy out, store -> FREE(p + capacity)

After its claim the claimer CASes the position counter from p to p + 1 once; anyone
who finds the counter at p and the cell claimed (or past p) does the same, so the
counter never stays behind a claimed cell.  A counter passes p only after the cell of
p was claimed, which gives the two facts everything below rests on: a consumer that
finds FREE(p) at the dequeue position sees an empty ring, and a producer that finds
FULL(p - capacity) (unowned) at the enqueue position sees a full one.

Semaphores: ``<name>.items`` and ``<name>.space``.  They only say when to look: the
cells decide.  A unit taken when the cells say the ring is empty (full) is an excess
one; the C step says RING_SPURIOUS, the unit is dropped (not given back) and the
caller waits for another within its deadline.  So an excess unit costs one spurious
wake-up and nothing else, which is what makes repair by recounting safe.

The claim-and-copy steps run in C (``_shm.ring_put`` / ``ring_take``); waiting and
timeouts stay here.  A waiter first spins for up to ``spin`` seconds without the GIL
watching the next cell (``_shm.ring_wait``), because waking a process blocked on a
semaphore costs tens of microseconds; then it blocks on the semaphore.  A cell still
owned by a neighbour (RING_BUSY) is retried with a back-off.

A short record is zero-padded to the cell body, so a reader never sees an older
record's bytes.

A process killed inside ``put`` / ``get``, and how ``repair`` undoes it:

    killed ...                                   leaves                repair
    producer, holding a space unit, before the   one space unit lost   recount: space += 1
      claim
    producer, after its claim, before the        WRITING(p, dead)      fill: filler body,
      publish (C, well under a microsecond)                            FULL(p); then recount
    producer, after the publish, before          a record no consumer  recount: items += 1
      items.release()                            is woken for
    consumer, holding an items unit, before      the same              recount: items += 1
      its claim
    consumer, after its claim, before the        READING(p, dead)      free: FREE(p + cap);
      release (C)                                                      then recount
    consumer, after the release, before          one space unit lost   recount: space += 1
      space.release()

``repair`` takes over (CAS) only cells whose owner is dead: named in ``dead`` or no
longer existing.  A live owner that is merely slow (stopped, descheduled) is never
touched, so repair needs no timing guess.  The recount then gives each semaphore the
units the cells say are missing; it reads the cells, the semaphores, and the cells
again, so that a put or get running meanwhile can only make it count too many (an
excess unit: harmless, see above), never too few.  The owner pid is the process's
pid as seen in its own pid namespace: every process attached to a ring must share
the repairer's.

Test hooks stop a process (SIGSTOP, once) inside each window, so that tests can kill
it there or let it go on: ``_shm.set_stall`` inside the C step (after the claim,
before the counter moves and before any copy; one predicted branch when off), and
``Ring._stall_at`` around it (it swaps in a semaphore that stops: nothing when off).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Collection
from dataclasses import dataclass

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

SEQ_SHIFT = 23  # cell word: seq << SEQ_SHIFT | BUSY | pid
SEQ_MASK = (1 << 41) - 1
BUSY = 1 << 22
PID_MASK = BUSY - 1
_U64 = (1 << 64) - 1

FREE, FULL, WRITING, READING = 0, 1, 2, 3  # Ring.state(); see the module doc
NEIGHBOUR_BUSY, SPURIOUS = _shm.RING_BUSY, _shm.RING_SPURIOUS  # what a step says if not done

# The windows of a put / get outside the C step (``Ring._stall_at``, a test hook): which
# semaphore, and whether the process stops right after taking a unit of it or right
# before releasing one.
PUT_HOLDS_SPACE = "put-holds-space"  # a space unit taken, ring_put not yet called
PUT_BEFORE_ITEMS = "put-before-items"  # the record published, items not yet released
GET_HOLDS_ITEM = "get-holds-item"  # an items unit taken, ring_take not yet called
GET_BEFORE_SPACE = "get-before-space"  # the cell handed back, space not yet released
_WINDOWS = {
    PUT_HOLDS_SPACE: ("space", True),
    PUT_BEFORE_ITEMS: ("items", False),
    GET_HOLDS_ITEM: ("items", True),
    GET_BEFORE_SPACE: ("space", False),
}

load64, store64, cas64 = _shm.load64, _shm.store64, _shm.cas64
ring_put, ring_take, ring_wait = _shm.ring_put, _shm.ring_take, _shm.ring_wait


def cell_word(seq: int, pid: int = 0) -> int:
    """The word of a cell at sequence ``seq`` (a position; kept mod 2**41), owned by
    ``pid`` (busy) or by nobody (0)."""
    return (seq & SEQ_MASK) << SEQ_SHIFT | (BUSY | pid if pid else 0)


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


@dataclass(frozen=True)
class RingRepair:
    """What one ``Ring.repair`` did; true when it did anything."""

    filled: int = 0  # cells a dead producer claimed, published with the filler
    freed: int = 0  # cells a dead consumer claimed, handed back to producers
    items_added: int = 0  # units released on ``items`` by the recount
    space_added: int = 0  # units released on ``space`` by the recount

    def __bool__(self) -> bool:
        return bool(self.filled or self.freed or self.items_added or self.space_added)


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
                store64(buf, OFF_CELLS + i * cell_size, cell_word(i))
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
        """Write ``body`` for the space unit we hold: False (the unit given back) if a
        neighbour kept our cell past the deadline, or no unit that counted came."""
        buf, mask, size = self._buf, self._mask, self.cell_size
        tries = 0
        while (code := ring_put(buf, OFF_ENQUEUE, OFF_CELLS, mask, size, body)) is not None:
            if code == SPURIOUS:  # the ring is full: our unit counted nothing; drop it
                if not self._unit(self.space, OFF_ENQUEUE, 0, deadline):
                    return False
                tries = 0
                continue
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
        """Take the record of the items unit we hold: None (the unit given back) if a
        neighbour kept our cell past the deadline, or no unit that counted came."""
        buf, mask, size = self._buf, self._mask, self.cell_size
        tries = 0
        while not isinstance(got := ring_take(buf, OFF_DEQUEUE, OFF_CELLS, mask, size), bytes):
            if got == SPURIOUS:  # the ring is empty: our unit counted nothing; drop it
                if not self._unit(self.items, OFF_DEQUEUE, 1, deadline):
                    return None
                tries = 0
                continue
            tries += 1
            if not _back_off(tries, deadline):
                self.items.release()
                return None
        self.space.release()
        return got

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

    # -- repair after a process died inside put / get ---------------------------------
    def repair(self, dead: Collection[int] = (), filler: bytes = b"") -> RingRepair:
        """Undo what processes that died inside ``put`` / ``get`` left half done (the
        windows are listed in the module doc).

        A cell is abandoned when its owner's pid is in ``dead`` or no longer exists
        (a zombie still exists: pass the pid of a child not reaped yet in ``dead``, and
        never the pid of a process that may be attached to this ring: call it before
        starting a replacement).  A cell a dead producer claimed is published with
        ``filler`` (zero-padded: a record the consumers must recognise and skip); one
        a dead consumer claimed is handed back to the producers.  Cells of live
        processes are never touched, however long they take.  Then every semaphore
        unit the cells say is missing is released (possibly one too many for a
        process in a window right now: harmless).  Safe from any attached process, at
        any time, repeatedly; does not wait.
        """
        if len(filler) > self.body_size:
            raise ValueError(
                f"ring {self.name!r}: filler of {len(filler)} bytes exceeds the "
                f"cell body of {self.body_size} bytes"
            )
        return self._repair(frozenset(dead) - {os.getpid()}, filler)

    def _repair(self, dead: frozenset[int], filler: bytes | None) -> RingRepair:
        """``repair``; a ``filler`` of None leaves dead producers' cells alone."""
        filled = freed = 0
        for i in range(self.capacity):
            word = load64(self._buf, self._cell(i))
            if not word & BUSY or not _abandoned(word & PID_MASK, dead):
                continue
            if self._state(i, word) == READING:
                freed += self._free(i, word)
            elif filler is not None:
                filled += self._fill(i, word, filler)
        items_added, space_added = self._recount()
        return RingRepair(filled, freed, items_added, space_added)

    def _fill(self, i: int, word: int, filler: bytes) -> int:
        """Take WRITING(p, dead) over, publish ``filler`` in it; 1 if this call did."""
        cell, seq = self._cell(i), word >> SEQ_SHIFT
        if not cas64(self._buf, cell, word, cell_word(seq, os.getpid())):
            return 0  # someone else repaired it meanwhile
        self._advance(OFF_ENQUEUE, seq)  # the dead one may not have moved it on
        self._buf[cell + 8 : cell + self.cell_size] = filler.ljust(self.body_size, b"\0")
        store64(self._buf, cell, cell_word(seq + 1))
        return 1

    def _free(self, i: int, word: int) -> int:
        """Hand READING(p, dead) back to the producers; 1 if this call did."""
        seq = word >> SEQ_SHIFT
        self._advance(OFF_DEQUEUE, seq - 1)  # (the cell is claimed: moving on is right)
        return int(cas64(self._buf, self._cell(i), word, cell_word(seq - 1 + self.capacity)))

    def _advance(self, pos_off: int, seq: int) -> None:
        """Move a position counter that still stands at ``seq`` (mod 2**41) on by one."""
        pos = load64(self._buf, pos_off)
        if pos & SEQ_MASK == seq & SEQ_MASK:
            cas64(self._buf, pos_off, pos, (pos + 1) & _U64)

    def _recount(self) -> tuple[int, int]:
        """Release the items / space units the cells say are missing.

        A cell counts as full (free) if it was full (free) in the first look or the
        second, or its seq changed between them; the semaphores are read between the
        looks.  A cell full at that moment was full in the first look or was published
        after it (its seq changed), so it is counted: the count is never short.  Any
        error over-counts, which costs one spurious wake-up per unit.
        """
        first = self._words()
        items, space = self.items.value, self.space.value
        full = free = 0
        for i, (a, b) in enumerate(zip(first, self._words(), strict=True)):
            moved = (a ^ b) >> SEQ_SHIFT != 0
            states = (self._state(i, a), self._state(i, b))
            full += moved or FULL in states
            free += moved or FREE in states
        items_added, space_added = max(0, full - items), max(0, free - space)
        self.items.release(items_added)
        self.space.release(space_added)
        return items_added, space_added

    def _words(self) -> list[int]:
        buf, cell = self._buf, self._cell
        return [load64(buf, cell(i)) for i in range(self.capacity)]

    def state(self, pos: int) -> tuple[int, int]:
        """(FREE / FULL / WRITING / READING, owner pid or 0) of the cell of ``pos`` now."""
        word = load64(self._buf, self._cell(pos))
        return self._state(pos, word), word & PID_MASK

    def _state(self, pos: int, word: int) -> int:
        """FREE / FULL / WRITING / READING: busy, and whether seq is one past the
        position (seq - pos is 0 or 1 mod capacity: the capacity divides 2**41)."""
        return (word >> 21 & 2) | (((word >> SEQ_SHIFT) - pos) & self._mask)

    def _cell(self, pos: int) -> int:
        return OFF_CELLS + (pos & self._mask) * self.cell_size

    def _stall_at(self, point: str) -> None:
        """Test hook: make this process stop itself (SIGSTOP) once inside the window
        ``point`` (PUT_HOLDS_SPACE ...) of its next put / get on this ring object, so
        that a test can kill it there or let it go on.  (The windows inside the C step
        have ``_shm.set_stall``.)  Nothing is checked on the hot path: the hook swaps
        in a semaphore that stops."""
        if point not in _WINDOWS:
            raise ValueError(f"point={point!r} is not a ring window; use one of {sorted(_WINDOWS)}")
        role, after_take = _WINDOWS[point]
        setattr(self, role, _StopOnce(getattr(self, role), after_take))

    # -- the old names (the supervisor on main still calls them) -------------------------
    def __len__(self) -> int:
        """Positions producers claimed that consumers have not (records ready or being
        written); approximate while others are working on the ring."""
        dequeued = load64(self._buf, OFF_DEQUEUE)  # first: it never passes enqueue_pos
        return min(self.capacity, (load64(self._buf, OFF_ENQUEUE) - dequeued) & _U64)

    def close(self) -> None:
        self.items.close()
        self.space.close()
        self._seg.close()

    def unlink(self) -> None:
        unlink(self.name)


def _abandoned(pid: int, dead: frozenset[int]) -> bool:
    """True if the owner ``pid`` of a busy cell is dead: named in ``dead``, or gone."""
    if pid in dead:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


class _StopOnce(Semaphore):
    """The semaphore of a ring under the test hook: this process stops itself (SIGSTOP)
    once, right after it took a unit (``after_take``) or right before it releases one."""

    def __init__(self, sem: Semaphore, after_take: bool) -> None:
        self.__dict__.update(sem.__dict__)  # the same handle; no new semaphore is opened
        self._after_take, self._armed = after_take, True

    def _stop(self) -> None:
        if self._armed:
            self._armed = False
            os.kill(os.getpid(), signal.SIGSTOP)

    def try_acquire(self) -> bool:
        took = super().try_acquire()
        if took and self._after_take:
            self._stop()
        return took

    def acquire(self, timeout: timeouts.Timeout = None) -> None:
        super().acquire(timeout)
        if self._after_take:
            self._stop()

    def release(self, n: int = 1) -> None:
        if not self._after_take:
            self._stop()
        super().release(n)


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
