"""Repairing a ring after a process died between claiming a cell and finishing with it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from litserve.ipc import Ring, RingEmpty, RingFull

# A child attaches, claims the next position on one side with a bare CAS (what ring_put /
# ring_take do first) and exits without publishing / releasing: a process killed there.
CLAIM_AND_DIE = """
import sys
from litserve.ipc import Ring
from litserve.ipc import _shm, ring as r
ring = Ring(sys.argv[1])
off = r.OFF_ENQUEUE if sys.argv[2] == "put" else r.OFF_DEQUEUE
if sys.argv[2] == "get":
    ring.items.acquire(0)
pos = _shm.load64(ring._buf, off)
assert _shm.cas64(ring._buf, off, pos, pos + 1)
"""


def _claim_and_die(name: str, side: str) -> None:
    subprocess.run([sys.executable, "-c", CLAIM_AND_DIE, name, side], check=True, timeout=60)


@pytest.fixture
def ring(name):
    r = Ring(name("r"), 4, 64, create=True, spin=0)
    yield r
    r.close()
    r.unlink()


def test_a_producer_that_died_mid_put_wedges_until_its_cell_is_filled(ring):
    ring.put(b"a")
    _claim_and_die(ring.name, "put")  # position 1 claimed, never published
    ring.put(b"c")
    assert ring.get(0) == b"a".ljust(ring.body_size, b"\0")
    with pytest.raises(RingEmpty):
        ring.get(0.2)  # "c" is there, but position 1 blocks it
    assert ring.fill_abandoned(b"noop", settle=0.01) == 1
    assert ring.get(0).rstrip(b"\0") == b"noop"
    assert ring.get(0).rstrip(b"\0") == b"c"
    assert ring.fill_abandoned(b"noop", settle=0.01) == 0  # nothing left to repair
    ring.put(b"d")
    assert ring.get(0).rstrip(b"\0") == b"d"


def test_a_consumer_that_died_mid_get_wedges_producers_until_released(ring):
    for item in (b"a", b"b", b"c", b"d"):
        ring.put(item)
    _claim_and_die(ring.name, "get")  # took "a"'s unit and position, never released it
    assert [ring.get(0).rstrip(b"\0") for _ in range(3)] == [b"b", b"c", b"d"]
    with pytest.raises(RingFull):
        ring.put(b"e", timeout=0.2)  # a lap later, the dead consumer's cell is still full
    assert ring.release_abandoned(settle=0.01) == 1
    for item in (b"e", b"f", b"g", b"h"):
        ring.put(item, timeout=0)
    assert [ring.get(0).rstrip(b"\0") for _ in range(4)] == [b"e", b"f", b"g", b"h"]
    assert ring.release_abandoned(settle=0.01) == 0


def test_nothing_to_repair_in_a_healthy_ring(ring):
    ring.put(b"x")
    assert ring.fill_abandoned(b"noop", settle=0.01) == 0
    assert ring.release_abandoned(settle=0.01) == 0
    assert ring.get(0).rstrip(b"\0") == b"x"
