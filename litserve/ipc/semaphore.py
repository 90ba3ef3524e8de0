"""Named POSIX counting semaphores (posix_ipc) with litserve's timeout rule."""

from __future__ import annotations

import contextlib

import posix_ipc

from . import timeouts
from .errors import SegmentExists, SegmentNotFound


class Semaphore:
    """A named counting semaphore shared between processes.

    ``acquire`` releases the GIL while it waits.  The creator is responsible for
    ``unlink``; every user ``close``s its handle.
    """

    def __init__(self, name: str, *, create: bool = False, initial: int = 0) -> None:
        self.name = name
        try:
            if create:
                self._sem = posix_ipc.Semaphore(
                    name, posix_ipc.O_CREX, mode=0o600, initial_value=initial
                )
            else:
                self._sem = posix_ipc.Semaphore(name)
        except posix_ipc.ExistentialError as exc:
            if create:
                raise SegmentExists(f"semaphore {name!r} already exists") from exc
            raise SegmentNotFound(
                f"semaphore {name!r} does not exist (was the server that made it stopped?)"
            ) from exc

    def acquire(self, timeout: timeouts.Timeout = None) -> None:
        """Take one unit; raise ``TimeoutError`` if none came within ``timeout``.

        A signal whose Python handler returns normally does not end the wait (PEP 475):
        the wait goes on for the time that is left.  A handler that raises ends it.
        """
        deadline = timeouts.deadline_of(timeout)
        left = timeouts.remaining(deadline)
        while True:
            try:
                self._sem.acquire(left)
                return
            except posix_ipc.BusyError:
                raise TimeoutError(f"semaphore {self.name!r}: nothing within {timeout} s") from None
            except posix_ipc.SignalError:
                left = timeouts.remaining(deadline)

    def try_acquire(self) -> bool:
        try:
            self._sem.acquire(0)
        except posix_ipc.BusyError:
            return False
        return True

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self._sem.release()

    @property
    def value(self) -> int:
        return int(self._sem.value)

    def close(self) -> None:
        with contextlib.suppress(posix_ipc.ExistentialError):
            self._sem.close()

    def unlink(self) -> None:
        unlink(self.name)


def unlink(name: str) -> bool:
    """Remove a semaphore name; False if it was already gone."""
    try:
        posix_ipc.unlink_semaphore(name)
    except posix_ipc.ExistentialError:
        return False
    return True
