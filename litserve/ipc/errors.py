"""Exceptions of the IPC layer; the root of litserve's exception tree lives here so
that ``ipc`` needs nothing above it (``litserve.errors`` re-exports all of them)."""

from __future__ import annotations


class LitServeError(Exception):
    """Root of every exception litserve raises on purpose."""


class IPCError(LitServeError):
    """Something went wrong with shared memory, a ring, an arena or a semaphore."""


class SegmentNotFound(IPCError, FileNotFoundError):
    """Attaching to a shared-memory segment or semaphore name that does not exist."""


class SegmentExists(IPCError, FileExistsError):
    """Creating a segment or semaphore whose name is already taken."""


class SharedMemoryFull(IPCError):
    """/dev/shm had no room to back a new segment (it is backed in full at creation)."""

    def __init__(self, message: str, *, name: str, size: int, free: int) -> None:
        super().__init__(message)
        self.name, self.size, self.free = name, size, free


class LeaseNotFound(IPCError, FileNotFoundError):
    """Joining a server whose lease is gone: every process of it has exited."""


class RingFull(IPCError, TimeoutError):
    """A ring had no free cell within the allowed wait."""


class RingEmpty(IPCError, TimeoutError):
    """A ring had nothing to take within the allowed wait."""


class ArenaFull(IPCError, TimeoutError):
    """An arena had no free block large enough within the allowed wait."""


class PayloadTooLarge(IPCError, ValueError):
    """A single allocation larger than the arena could ever hold."""

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class InvalidFree(IPCError, ValueError):
    """Freeing an offset that is not a live allocation (double free, or a wrong offset)."""
