"""The one timeout rule: None waits, 0 never waits, >0 waits that long."""

from __future__ import annotations

import math
import time

import pytest

from litserve.ipc import timeouts


@pytest.mark.parametrize("good", [None, 0, 0.0, 1e-9, 5, math.inf])
def test_accepted(good):
    timeouts.check(good)


@pytest.mark.parametrize("bad", [-1, -1e-9, math.nan, -math.inf, True, False, "1", b"1", [1]])
def test_refused_with_the_value_named(bad):
    with pytest.raises(ValueError, match=rf"timeout={bad!r} is not valid".replace("[", r"\[")):
        timeouts.check(bad)


def test_deadlines():
    assert timeouts.deadline_of(None) is None and timeouts.deadline_of(math.inf) is None
    assert timeouts.remaining(None) is None
    deadline = timeouts.deadline_of(0)
    assert timeouts.remaining(deadline) == 0.0
    deadline = timeouts.deadline_of(10)
    assert 9 < timeouts.remaining(deadline) <= 10
    assert timeouts.remaining(time.monotonic() - 1) == 0.0
