"""The one timeout rule of litserve: ``None`` waits, ``0`` never waits, ``>0`` waits
at most that many seconds, then ``TimeoutError`` (or a subclass).

``float('inf')`` is accepted as another spelling of ``None``; negative numbers, NaN,
booleans and non-numbers are refused with a ``ValueError`` naming the value.
"""

from __future__ import annotations

import math
import time

Timeout = float | None


def check(timeout: Timeout) -> None:
    if timeout is None:
        return
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or math.isnan(timeout)
        or timeout < 0
    ):
        raise ValueError(
            f"timeout={timeout!r} is not valid; use None (wait), 0 (never wait) "
            "or a positive number of seconds"
        )


def deadline_of(timeout: Timeout) -> float | None:
    """Absolute ``time.monotonic()`` deadline for a timeout, or None for 'forever'."""
    check(timeout)
    if timeout is None or math.isinf(timeout):
        return None
    return time.monotonic() + timeout


def remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (never negative), None for 'forever'."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())
