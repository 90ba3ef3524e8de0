"""Named shared-memory segments (posix_ipc + mmap), and private mappings of their bytes."""

from __future__ import annotations

import mmap
import weakref
from dataclasses import dataclass

import posix_ipc

from ._shm import map_private, privatize
from .errors import SegmentExists, SegmentNotFound

PAGE = mmap.PAGESIZE


class Segment:
    """A named, fixed-size shared-memory segment mapped into this process.

    ``buf`` is a writable memoryview over the whole mapping.  The creator owns the
    name and calls ``unlink``; every process that mapped it calls ``close``.  With
    ``keep_fd`` the segment's file descriptor stays open until ``close``, so that
    ``private`` can map ranges of it.
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
            self._mmap = mmap.mmap(shm.fd, shm.size)
        except BaseException:
            shm.close_fd()
            if create:
                unlink(name)
            raise
        if not keep_fd:
            shm.close_fd()
        self._shm = shm
        self.size = len(self._mmap)
        self.buf = memoryview(self._mmap)

    def private(self, offset: int, nbytes: int) -> PrivateMapping:
        """Bytes [offset, offset + nbytes) mapped copy-on-write for this process alone."""
        if self._shm.fd < 0:
            raise ValueError(f"segment {self.name!r} was attached without keep_fd=True "
                             "(or is closed): private() needs its file descriptor")
        if offset < 0 or nbytes <= 0 or offset + nbytes > self.size:
            raise ValueError(f"segment {self.name!r}: range [{offset}, {offset + nbytes}) "
                             f"is empty or outside its {self.size} bytes")
        return PrivateMapping(self._shm.fd, offset, nbytes)

    def close(self) -> None:
        """Unmap.  Views handed out earlier must be dropped first."""
        if self._shm.fd >= 0:
            self._shm.close_fd()  # private mappings made from it stay valid
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
class MappingStats:
    """What ``PrivateMapping.settle`` did in this process (tests and benchmarks read it)."""

    mapped: int = 0  # private mappings made
    closed: int = 0  # settled with nothing kept: no copy
    privatized: int = 0  # settled while a view was still held: copied once
    privatized_bytes: int = 0


stats = MappingStats()


class PrivateMapping:
    """Bytes of a segment mapped copy-on-write (``MAP_PRIVATE``) for one reader alone.

    ``view`` is a writable memoryview of exactly those bytes.  A write copies the page it
    touches into this process first, so it never reaches the segment and no other
    process sees it; a page not written shows the segment's bytes, so whoever owns them
    must leave them unchanged until ``settle``.  The mapping covers whole pages (from the
    page floor of the range to the page ceiling of its end); bytes of the neighbouring
    pages' other owners lie outside ``view`` and are never written through it.

    ``settle`` ends the loan: after it the segment's bytes may change.  It drops this
    object's references to the mapping.  If nothing else referred to it, the mapping is
    gone (the common case, nothing copied).  If something still does (an array the user
    kept, a slice of it, a torch tensor over it, a traceback's frame), the mapping's pages
    are replaced by a private copy at the same address (``_shm.privatize``), so all of
    them keep their bytes for good.  The copy is freed with the last of them: the ``mmap``
    object unmaps its range when it is garbage.

    Every such holder refers to the ``mmap`` object itself (a NumPy array made over a
    memoryview takes the view's underlying object as its base and holds no buffer
    export, so ``mmap.close`` would unmap under it): liveness of that object, seen
    through a weak reference, is the test, never ``close``.
    """

    __slots__ = ("_map", "view", "nbytes")

    def __init__(self, fd: int, offset: int, nbytes: int) -> None:
        start = offset - offset % PAGE
        end = -(-(offset + nbytes) // PAGE) * PAGE
        # An anonymous mmap reserves (and owns) the address range; the file's pages are
        # then mapped over it.  (mmap.mmap(fd, ...) would keep a dup of the segment's fd
        # for as long as a view lives: one fd per kept input, and a dead front's whole
        # segment kept alive by it.)
        m = mmap.mmap(-1, end - start, flags=mmap.MAP_PRIVATE)
        try:
            map_private(m, fd, start)
        except BaseException:
            m.close()
            raise
        self._map: mmap.mmap | None = m
        self.view: memoryview | None = memoryview(m)[offset - start : offset - start + nbytes]
        self.nbytes = end - start  # whole pages
        stats.mapped += 1

    def settle(self) -> bool:
        """True: nothing else referred to the mapping, it is gone; False: something does,
        and now sees a private copy.  Idempotent (later calls return True)."""
        if self._map is None:
            return True
        ref = weakref.ref(self._map)
        self._map = self.view = None
        held = ref()
        if held is None:
            stats.closed += 1
            return True
        privatize(held)
        stats.privatized += 1
        stats.privatized_bytes += self.nbytes
        return False


def unlink(name: str) -> bool:
    """Remove a segment name; False if it was already gone."""
    try:
        posix_ipc.unlink_shared_memory(name)
    except posix_ipc.ExistentialError:
        return False
    return True
