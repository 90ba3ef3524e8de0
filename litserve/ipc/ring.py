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
"""

from __future__ import annotations

import os

from . import _shm, timeouts
from .errors import RingEmpty, RingFull
from .segment import Segment
from .segment import unlink as unlink_segment
from .semaphore import Semaphore
from .semaphore import unlink as unlink_semaphore

MAGIC = 0x6C73765F72696E67
OFF_MAGIC, OFF_CAPACITY, OFF_CELL_SIZE = 0, 8, 16
OFF_ENQUEUE, OFF_DEQUEUE, OFF_CELLS = 64, 128, 192

load64, store64, cas64 = _shm.load64, _shm.store64, _shm.cas64


def segment_size(capacity: int, cell_size: int) -> int:
    return OFF_CELLS + capacity * cell_size


def _validate(capacity: int, cell_size: int) -> None:
    if not isinstance(capacity, int) or capacity < 2 or capacity & (capacity - 1):
        raise ValueError(f"ring capacity={capacity!r} must be a power of two >= 2")
    if not isinstance(cell_size, int) or cell_size < 16 or cell_size % 8:
        raise ValueError(f"ring cell_size={cell_size!r} must be a multiple of 8, >= 16")


class Ring:
    """Open (``create=True``) or attach to a ring; see the module doc for the layout."""

    def __init__(
        self, name: str, capacity: int = 0, cell_size: int = 0, *, create: bool = False
    ) -> None:
        self.name = name
        if create:
            _validate(capacity, cell_size)
            self._seg = Segment(name, segment_size(capacity, cell_size), create=True)
            buf = self._seg.buf
            for i in range(capacity):
                store64(buf, OFF_CELLS + i * cell_size, i)
            store64(buf, OFF_CAPACITY, capacity)
            store64(buf, OFF_CELL_SIZE, cell_size)
            store64(buf, OFF_MAGIC, MAGIC)
            self.items = Semaphore(name + ".items", create=True, initial=0)
            self.space = Semaphore(name + ".space", create=True, initial=capacity)
        else:
            self._seg = Segment(name)
            if load64(self._seg.buf, OFF_MAGIC) != MAGIC:
                raise ValueError(f"segment {name!r} is not a litserve ring")
            self.items = Semaphore(name + ".items")
            self.space = Semaphore(name + ".space")
        self._buf = self._seg.buf
        self.capacity = load64(self._buf, OFF_CAPACITY)
        self.cell_size = load64(self._buf, OFF_CELL_SIZE)
        self.body_size = self.cell_size - 8
        self._mask = self.capacity - 1

    # -- producer ---------------------------------------------------------------
    def put(self, body: bytes, timeout: timeouts.Timeout = None) -> None:
        """Append one record; wait for a free cell as the timeout rule says."""
        if len(body) > self.body_size:
            raise ValueError(
                f"ring {self.name!r}: record of {len(body)} bytes exceeds the "
                f"cell body of {self.body_size} bytes"
            )
        try:
            self.space.acquire(timeout)
        except TimeoutError:
            raise RingFull(
                f"ring {self.name!r} is full ({self.capacity} cells) after waiting {timeout} s"
            ) from None
        cell = self._claim(OFF_ENQUEUE, 0)
        start = cell + 8
        self._buf[start : start + len(body)] = body
        pos = load64(self._buf, cell)
        store64(self._buf, cell, pos + 1)
        self.items.release()

    # -- consumer ---------------------------------------------------------------
    def get(self, timeout: timeouts.Timeout = None) -> bytes:
        """Take the oldest record; wait for one as the timeout rule says."""
        try:
            self.items.acquire(timeout)
        except TimeoutError:
            raise RingEmpty(f"ring {self.name!r}: nothing arrived within {timeout} s") from None
        return self._take()

    def try_get(self) -> bytes | None:
        """Take a record if one is ready now, else None (never waits)."""
        if not self.items.try_acquire():
            return None
        return self._take()

    def _take(self) -> bytes:
        cell = self._claim(OFF_DEQUEUE, 1)
        body = bytes(self._buf[cell + 8 : cell + self.cell_size])
        pos = load64(self._buf, cell) - 1
        store64(self._buf, cell, pos + self.capacity)
        self.space.release()
        return body

    def _claim(self, pos_off: int, lag: int) -> int:
        """Claim the next position on the producer (lag 0) or consumer (lag 1) side.

        Holding a semaphore unit guarantees a cell exists, but the neighbour that
        owns it may still be writing it; then we yield and look again.
        """
        buf, size = self._buf, self.cell_size
        pos = load64(buf, pos_off)
        while True:
            cell = OFF_CELLS + (pos & self._mask) * size
            dif = load64(buf, cell) - (pos + lag)
            if dif == 0:
                if cas64(buf, pos_off, pos, pos + 1):
                    return cell
                pos = load64(buf, pos_off)
            elif dif < 0:
                os.sched_yield()
                pos = load64(buf, pos_off)
            else:
                pos = load64(buf, pos_off)

    def __len__(self) -> int:
        """Records in the ring now (approximate while others are working on it)."""
        return load64(self._buf, OFF_ENQUEUE) - load64(self._buf, OFF_DEQUEUE)

    def close(self) -> None:
        self.items.close()
        self.space.close()
        self._seg.close()

    def unlink(self) -> None:
        unlink(self.name)


def unlink(name: str) -> None:
    unlink_segment(name)
    unlink_semaphore(name + ".items")
    unlink_semaphore(name + ".space")

