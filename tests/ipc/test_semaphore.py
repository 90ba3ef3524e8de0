"""Semaphore: the timeout rule, counting across handles, errors naming the semaphore."""

from __future__ import annotations

import math
import time

import pytest

from litserve.ipc import SegmentExists, SegmentNotFound, Semaphore
from litserve.ipc import semaphore as semaphore_mod


@pytest.fixture
def sem(name):
    s = Semaphore(name("sem"), create=True, initial=2)
    yield s
    s.close()
    s.unlink()


def test_counts_across_handles(sem, name):
    other = Semaphore(name("sem"))
    try:
        assert sem.value == 2
        other.acquire(0)
        assert sem.try_acquire() and not sem.try_acquire()
        sem.release(3)
        assert other.value == 3
    finally:
        other.close()


def test_timeout_zero_and_positive(sem):
    sem.acquire(0)
    sem.acquire(None)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=f"semaphore '{sem.name}': nothing within 0 s"):
        sem.acquire(0)
    assert time.monotonic() - start < 0.1  # no wait (generous for a busy machine)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        sem.acquire(0.1)
    assert 0.1 <= time.monotonic() - start < 2.0


@pytest.mark.parametrize("timeout", [-1, math.nan, "1", True])
def test_bad_timeouts(sem, timeout):
    with pytest.raises(ValueError, match="is not valid"):
        sem.acquire(timeout)
    assert sem.value == 2


def test_errors_name_the_semaphore(sem, name):
    with pytest.raises(SegmentExists, match=f"semaphore '{sem.name}' already exists"):
        Semaphore(sem.name, create=True)
    with pytest.raises(SegmentNotFound, match=f"semaphore '{name('none')}' does not exist"):
        Semaphore(name("none"))
    assert semaphore_mod.unlink(name("none")) is False
