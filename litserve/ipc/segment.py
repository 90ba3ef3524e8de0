"""Named shared-memory segments (posix_ipc + mmap), and loans of their bytes."""

from __future__ import annotations

import errno
import mmap
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass

import posix_ipc

from ._shm import map_file, privatize
from .errors import SegmentExists, SegmentNotFound, SharedMemoryFull
from .names import SHM_DIR

PAGE = mmap.PAGESIZE
MiB = 1 << 20
IDLE_MAPPINGS = 8  # per segment: returned loan mappings kept for the next loan of their range

Pool = OrderedDict[tuple[int, int], mmap.mmap]


class Segment:
    """A named, fixed-size shared-memory segment mapped into this process.

    ``buf`` is a writable memoryview over the whole mapping.  The creator owns the
    name and calls ``unlink``; every process that mapped it calls ``close``.  With
    ``keep_fd`` the segment's file descriptor stays open until ``close``, so that
    ``loan`` can map ranges of it.  A new segment is backed in full at creation
    (``posix_fallocate``): a /dev/shm too small for it is ``SharedMemoryFull`` then,
    never a SIGBUS at a later write.
    """

    def __init__(self, name: str, size: int | None = None, *, create: bool = False,
                 keep_fd: bool = False) -> None:
        self.name = name
        if create and (not isinstance(size, int) or size <= 0):
            raise ValueError(f"segment {name!r}: size={size!r} must be a positive int")
        try:
            if create:
                shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=size)
            else:
                shm = posix_ipc.SharedMemory(name)
        except posix_ipc.ExistentialError as exc:
            if create:
                raise SegmentExists(f"shared-memory segment {name!r} already exists") from exc
            raise SegmentNotFound(
                f"shared-memory segment {name!r} does not exist "
                "(was the server that made it stopped?)"
            ) from exc
        try:
            if shm.size == 0:  # a creator died between shm_open and ftruncate
                raise SegmentNotFound(
                    f"shared-memory segment {name!r} is empty (its creator did not finish)"
                )
            if create:
                _back(shm.fd, name, shm.size)
            self._mmap = mmap.mmap(shm.fd, shm.size)
        except BaseException:
            shm.close_fd()
            if create:
                unlink(name)
            raise
        if not keep_fd:
            shm.close_fd()
        self._shm = shm
        self._idle: Pool = OrderedDict()
        self.size = len(self._mmap)
        self.buf = memoryview(self._mmap)

    def loan(self, offset: int, nbytes: int, *, copy_on_write: bool = False) -> Loan:
        """Bytes [offset, offset + nbytes) in a mapping of their own; see ``Loan``."""
        if self._shm.fd < 0:
            raise ValueError(f"segment {self.name!r} was attached without keep_fd=True "
                             "(or is closed): loan() needs its file descriptor")
        if offset < 0 or nbytes <= 0 or offset + nbytes > self.size:
            raise ValueError(f"segment {self.name!r}: range [{offset}, {offset + nbytes}) "
                             f"is empty or outside its {self.size} bytes")
        return Loan(self._shm.fd, offset, nbytes, copy_on_write,
                    None if copy_on_write else self._idle)

    def close(self) -> None:
        """Unmap.  Views handed out earlier must be dropped first."""
        while self._idle:
            self._idle.popitem()[1].close()
        if self._shm.fd >= 0:
            self._shm.close_fd()  # loans made from it stay valid
        if self._mmap.closed:
            return
        try:
            self.buf.release()
            self._mmap.close()
        except BufferError:
            # Someone still holds a view (e.g. a NumPy array handed to user code);
            # the mapping goes away with the process.
            pass

    def unlink(self) -> None:
        unlink(self.name)

    def __enter__(self) -> Segment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class LoanStats:
    """What ``Loan.settle`` did in this process (tests and benchmarks read it)."""

    loans: int = 0  # loans made
    mapped: int = 0  # of them, with a new mapping (the others reused an idle one)
    returned: int = 0  # settled with nothing else holding them: unmapped, no copy
    kept: int = 0  # settled while something still held them: copied once
    kept_bytes: int = 0


stats = LoanStats()


class Loan:
    """Bytes of a segment lent to this process in a mapping of their own, until ``settle``.

    ``view`` is a writable memoryview of exactly those bytes, in a mapping of whole pages
    (from the page floor of the range to the page ceiling of its end) made for this loan
    alone.  Until ``settle`` the bytes are the borrower's: the segment's owner leaves
    them alone, and what the borrower writes lands in them (``copy_on_write``: in pages
    copied into this process instead, so no write ever reaches the segment; each page
    written then costs a page fault and a copy).  Bytes of the neighbouring pages'
    other owners lie outside ``view``.

    ``settle`` ends the loan; after it the owner may reuse the bytes.  It drops this
    object's references to the mapping.  If nothing else referred to it, the mapping is
    gone (the common case, nothing copied).  If something still does (an array the user
    kept, a slice of it, a torch tensor over it, a traceback's frame), the mapping's pages
    are replaced by a private copy at the same address (``_shm.privatize``), so all of
    them keep their bytes for good and no later write through them reaches the segment.
    The copy is freed with the last of them: the ``mmap`` object unmaps its range when
    it is garbage.

    Every such holder refers to the ``mmap`` object itself (a NumPy array made over a
    memoryview takes the view's underlying object as its base and holds no buffer
    export, so ``mmap.close`` would unmap under it): its reference count, once this
    loan let go of it, is the test, never ``close``.

    A mapping nobody kept goes to the segment's ``pool`` of idle mappings (at most
    ``IDLE_MAPPINGS``, the oldest unmapped first): the next loan of the same pages (the
    arena's first fit hands a block of one size out again and again) reuses it with its
    page tables filled, instead of faulting every page in again.  A shared mapping
    always shows the segment's current bytes, so an idle one is never stale.
    """

    __slots__ = ("_map", "view", "nbytes", "_pool", "_key")

    def __init__(self, fd: int, offset: int, nbytes: int, copy_on_write: bool = False,
                 pool: Pool | None = None) -> None:
        start = offset - offset % PAGE
        end = -(-(offset + nbytes) // PAGE) * PAGE
        self._pool, self._key = pool, (start, end)
        m = pool.pop(self._key, None) if pool is not None else None
        if m is None:
            m = _map_range(fd, start, end, copy_on_write)
            stats.mapped += 1
        self._map: mmap.mmap | None = m
        self.view: memoryview | None = memoryview(m)[offset - start : offset - start + nbytes]
        self.nbytes = end - start  # whole pages
        stats.loans += 1

    def settle(self) -> bool:
        """True: nothing else referred to the mapping, it is idle again; False: something
        does, and now sees a private copy.  Idempotent (later calls return True)."""
        m = self._map
        if m is None:
            return True
        self._map = self.view = None
        if sys.getrefcount(m) <= 2:  # `m` here, and getrefcount's own argument
            self._idle(m)
            stats.returned += 1
            return True
        privatize(m)
        stats.kept += 1
        stats.kept_bytes += self.nbytes
        return False


    def _idle(self, m: mmap.mmap) -> None:
        pool = self._pool
        if pool is None:
            m.close()
            return
        old = pool.pop(self._key, None)
        if old is not None:
            old.close()
        pool[self._key] = m
        if len(pool) > IDLE_MAPPINGS:
            pool.popitem(last=False)[1].close()


def _map_range(fd: int, start: int, end: int, copy_on_write: bool) -> mmap.mmap:
    """The segment's pages [start, end) in a mapping of their own.  An anonymous mmap
    reserves (and owns) the address range; the file's pages are then mapped over it.
    (mmap.mmap(fd, ...) would keep a dup of the segment's fd for as long as a view
    lives: one fd per kept input, and a dead front's whole segment kept alive by it.)"""
    m = mmap.mmap(-1, end - start, flags=mmap.MAP_PRIVATE)
    try:
        map_file(m, fd, start, copy_on_write)
    except BaseException:
        m.close()
        raise
    return m


def _back(fd: int, name: str, size: int) -> None:
    """Allocate every page of a new segment now.  A sparse one would take pages as bytes
    are written, and a write into a hole after /dev/shm filled up is a SIGBUS."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EFBIG, errno.ENOMEM):
            raise
        st = os.statvfs(SHM_DIR)
        free = st.f_bavail * st.f_frsize
        raise SharedMemoryFull(
            f"shared-memory segment {name!r} needs {size / MiB:.1f} MiB but {SHM_DIR} has "
            f"only {free / MiB:.1f} MiB free ({exc.strerror}); give the machine more shared "
            "memory (in Docker: --shm-size, e.g. --shm-size=2g) or lower max_payload_size / "
            "response_buffer_size", name=name, size=size, free=free) from exc


def unlink(name: str) -> bool:
    """Remove a segment name; False if it was already gone."""
    try:
        posix_ipc.unlink_shared_memory(name)
    except posix_ipc.ExistentialError:
        return False
    return True
