"""Single-owner arenas: variable-size blocks carved from one fixed shared-memory segment.

Exactly one process (the owner) allocates and frees; the bookkeeping lives in the
owner's private memory, so no cross-process lock is needed.  Other processes attach
to the segment by name and only read the blocks they are told about; they say "done"
by posting a record back to the owner, who then frees.

Byte layout of the segment: the whole segment is payload.  Blocks start at multiples
of ``ALIGN`` (64 bytes, so any NumPy dtype can be viewed in place) and a block of
``n`` bytes occupies ``max(ALIGN, round_up(n, ALIGN))`` bytes.

Within the owner, ``alloc`` and ``free`` may be called from several threads.
"""

from __future__ import annotations

import bisect
import threading

from . import timeouts
from .errors import ArenaFull, InvalidFree, PayloadTooLarge
from .segment import Loan, Segment

ALIGN = 64


def block_size(nbytes: int) -> int:
    return max(ALIGN, (nbytes + ALIGN - 1) // ALIGN * ALIGN)


class Arena:
    """An arena segment.  Create it in the owner; ``attach`` elsewhere to read."""

    def __init__(self, name: str, size: int = 0, *, create: bool = False,
                 keep_fd: bool = False) -> None:
        self.name = name
        if create and (not isinstance(size, int) or size < ALIGN):
            raise ValueError(f"arena {name!r}: size={size!r} must be an int >= {ALIGN}")
        self._seg = Segment(name, block_size(size) if create else None, create=create,
                            keep_fd=keep_fd)
        self.buf = self._seg.buf
        self.size = self._seg.size
        self.owner = create
        self._starts: list[int] = [0]  # free extents, sorted by start
        self._lengths: dict[int, int] = {0: self.size}
        self._live: dict[int, int] = {}
        self._free_total = self.size
        self._cond = threading.Condition(threading.Lock())

    # -- owner side ---------------------------------------------------------------
    def alloc(self, nbytes: int, timeout: timeouts.Timeout = 0) -> int:
        """Offset of a new block of ``nbytes``; waits for frees as the timeout rule says."""
        need = self._need(nbytes)
        deadline = timeouts.deadline_of(timeout)
        with self._cond:
            while True:
                off = self._carve(need)
                if off is not None:
                    return off
                left = timeouts.remaining(deadline)
                if left == 0.0 or not self._cond.wait(left):
                    raise ArenaFull(
                        f"arena {self.name!r} has no free block of {need} bytes "
                        f"({self._free_total} of {self.size} free) after {timeout} s"
                    )

    def try_alloc(self, nbytes: int) -> int | None:
        need = self._need(nbytes)
        with self._cond:
            return self._carve(need)

    def try_extend(self, offset: int, nbytes: int) -> bool:
        """Grow the block at ``offset`` in place to hold ``nbytes``, if the space right
        after it is free; False (nothing changed) otherwise."""
        need = self._need(nbytes)
        with self._cond:
            have = self._live.get(offset)
            if have is None:
                raise InvalidFree(f"arena {self.name!r}: offset {offset!r} is not an "
                                  "allocated block")
            if need <= have:
                return True
            nxt = offset + have
            extra = self._lengths.get(nxt, 0)
            if have + extra < need:
                return False
            i = bisect.bisect_left(self._starts, nxt)
            del self._lengths[nxt]
            if have + extra == need:
                del self._starts[i]
            else:
                self._starts[i] = offset + need
                self._lengths[offset + need] = have + extra - need
            self._live[offset] = need
            self._free_total -= need - have
            return True

    def free(self, offset: int) -> None:
        with self._cond:
            length = self._live.pop(offset, None)
            if length is None:
                raise InvalidFree(
                    f"arena {self.name!r}: offset {offset!r} is not an allocated block "
                    "(double free, wrong offset, or an arena attached read-only)"
                )
            self._free_total += length
            self._give_back(offset, length)
            self._cond.notify_all()

    @property
    def free_bytes(self) -> int:
        return self._free_total

    @property
    def live_blocks(self) -> int:
        return len(self._live)

    def _need(self, nbytes: int) -> int:
        if not self.owner:
            raise PermissionError(
                f"arena {self.name!r} is attached read-only; only its owner allocates"
            )
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise ValueError(f"arena {self.name!r}: nbytes={nbytes!r} must be an int >= 0")
        if block_size(nbytes) > self.size:
            raise PayloadTooLarge(
                f"{nbytes} bytes do not fit arena {self.name!r} of {self.size} bytes",
                size=nbytes,
                limit=self.size,
            )
        return block_size(nbytes)

    def _carve(self, need: int) -> int | None:
        for i, start in enumerate(self._starts):
            length = self._lengths[start]
            if length < need:
                continue
            del self._lengths[start]
            if length == need:
                del self._starts[i]
            else:
                self._starts[i] = start + need
                self._lengths[start + need] = length - need
            self._live[start] = need
            self._free_total -= need
            return start
        return None

    def _give_back(self, start: int, length: int) -> None:
        i = bisect.bisect_left(self._starts, start)
        if i < len(self._starts) and start + length == self._starts[i]:  # merge right
            length += self._lengths.pop(self._starts.pop(i))
        if i > 0:  # merge left
            prev = self._starts[i - 1]
            if prev + self._lengths[prev] == start:
                self._lengths[prev] += length
                return
        self._starts.insert(i, start)
        self._lengths[start] = length

    # -- any side -----------------------------------------------------------------
    def view(self, offset: int, nbytes: int) -> memoryview:
        if offset < 0 or nbytes < 0 or offset + nbytes > self.size:
            raise ValueError(
                f"arena {self.name!r}: range [{offset}, {offset + nbytes}) is outside "
                f"its {self.size} bytes"
            )
        return self.buf[offset : offset + nbytes]

    def loan(self, offset: int, nbytes: int) -> Loan:
        """[offset, offset + nbytes) in a mapping of its own, until settled (attach with
        ``keep_fd=True``); see ``segment.Loan``."""
        return self._seg.loan(offset, nbytes)

    def close(self) -> None:
        self._seg.close()

    def unlink(self) -> None:
        self._seg.unlink()
