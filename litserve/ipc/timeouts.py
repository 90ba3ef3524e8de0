"""The one timeout rule of litserve: ``None`` waits, ``0`` never waits, ``>0`` waits
at most that many seconds, then ``TimeoutError`` (or a subclass)."""

from __future__ import annotations

import time

Timeout = float | None


def check(timeout: Timeout) -> None:
    if timeout is not None and (not isinstance(timeout, int | float) or timeout < 0):
        raise ValueError(
            f"timeout={timeout!r} is not valid; use None (wait), 0 (never wait) "
            "or a positive number of seconds"
        )


def deadline_of(timeout: Timeout) -> float | None:
    """Absolute ``time.monotonic()`` deadline for a timeout, or None for 'forever'."""
    check(timeout)
    return None if timeout is None else time.monotonic() + timeout


def remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (never negative), None for 'forever'."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())
