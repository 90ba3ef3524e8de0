"""Named shared-memory segments (posix_ipc + mmap)."""

from __future__ import annotations

import mmap

import posix_ipc

from .errors import SegmentExists, SegmentNotFound


class Segment:
    """A named, fixed-size shared-memory segment mapped into this process.

    ``buf`` is a writable memoryview over the whole mapping.  The creator owns the
    name and calls ``unlink``; every process that mapped it calls ``close``.
    """

    def __init__(self, name: str, size: int | None = None, *, create: bool = False) -> None:
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
            if create:
                unlink(name)
            raise
        finally:
            shm.close_fd()
        self.size = len(self._mmap)
        self.buf = memoryview(self._mmap)

    def close(self) -> None:
        """Unmap.  Views handed out earlier must be dropped first."""
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


def unlink(name: str) -> bool:
    """Remove a segment name; False if it was already gone."""
    try:
        posix_ipc.unlink_shared_memory(name)
    except posix_ipc.ExistentialError:
        return False
    return True
