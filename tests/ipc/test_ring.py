"""Ring: order and content, the timeout rule when full or empty, blocked producers
released by a consumer, bad sizes and bad timeouts, and signal-safe waits."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import threading
import time

import pytest
from ipc_children import drain, put_then_report
from ipc_support import recv, thread_state, wait_for

from litserve.ipc import Ring, RingEmpty, RingFull, Segment, SegmentExists, SegmentNotFound
from litserve.ipc import ring as ring_mod
from litserve.ipc.semaphore import Semaphore

BAD_TIMEOUTS = [-1, -0.5, math.nan, "1", True, [1]]


@pytest.fixture
def ring(name):
    r = Ring(name("ring"), 8, 32, create=True)
    yield r
    r.close()
    r.unlink()


def record(i: int) -> bytes:
    return i.to_bytes(4, "little") * 6  # 24 bytes: the whole cell body


def test_fifo_order_and_content_across_wraparound(ring):
    for round_ in range(5):
        batch = [record(round_ * 100 + i) for i in range(8)]
        for body in batch:
            ring.put(body, timeout=0)
        assert len(ring) == 8
        assert [ring.get(timeout=0) for _ in batch] == batch
        assert len(ring) == 0


def test_short_records_are_zero_padded(ring):
    ring.put(b"\xff" * 24)
    assert ring.get() == b"\xff" * 24
    for _ in range(7):  # come back to the same cell
        ring.put(b"x")
        ring.get()
    ring.put(bytearray(b"ab"))
    ring.put(memoryview(b"cd"))
    assert ring.get() == b"ab" + bytes(22)
    assert ring.get() == b"cd" + bytes(22)


def test_attached_ring_sees_the_same_cells(ring, name):
    other = Ring(name("ring"))
    try:
        assert (other.capacity, other.cell_size, other.body_size) == (8, 32, 24)
        ring.put(b"hello")
        assert other.get(timeout=0).rstrip(b"\0") == b"hello"
        other.put(b"back")
        assert ring.try_get().rstrip(b"\0") == b"back"
    finally:
        other.close()


# -- full ------------------------------------------------------------------------------
def fill(ring: Ring) -> list[bytes]:
    batch = [record(i) for i in range(ring.capacity)]
    for body in batch:
        ring.put(body, timeout=0)
    return batch


def test_put_on_full_ring_with_timeout_zero_raises_at_once(ring):
    batch = fill(ring)
    start = time.monotonic()
    with pytest.raises(RingFull, match=r"is full \(8 cells\) after waiting 0 s"):
        ring.put(b"extra", timeout=0)
    assert time.monotonic() - start < 0.1  # no wait (generous for a busy machine)
    assert [ring.get(timeout=0) for _ in batch] == batch  # nothing lost or overwritten
    with pytest.raises(RingEmpty):
        ring.get(timeout=0)


@pytest.mark.parametrize("spin", [0, ring_mod.DEFAULT_SPIN])
def test_put_on_full_ring_waits_about_its_timeout(name, spin):
    ring = Ring(name("full"), 4, 32, create=True, spin=spin)
    try:
        batch = fill(ring)
        start = time.monotonic()
        with pytest.raises(RingFull):
            ring.put(b"extra", timeout=0.2)
        assert 0.2 <= time.monotonic() - start < 2.0
        assert [ring.get(timeout=0) for _ in batch] == batch
    finally:
        ring.close()
        ring.unlink()


def test_blocked_put_proceeds_when_a_consumer_takes_one(ring, spawn):
    batch = fill(ring)
    mine, theirs = mp.Pipe(duplex=False)
    spawn(put_then_report, ring.name, b"late", theirs)
    theirs.close()
    assert recv(mine, 30, "the producer starting its put") == "putting"
    assert not mine.poll(0), "a put into a full ring returned before anyone took a record"
    assert ring.space.value == 0 and len(ring) == 8
    assert ring.get(timeout=0) == batch[0]
    assert recv(mine, 30, "the blocked put finishing after a get") == "done"
    assert [ring.get(timeout=0) for _ in range(8)] == batch[1:] + [b"late" + bytes(20)]


# -- empty -----------------------------------------------------------------------------
def test_get_on_empty_ring_with_timeout_zero_raises_at_once(ring):
    start = time.monotonic()
    with pytest.raises(RingEmpty, match="nothing arrived within 0 s"):
        ring.get(timeout=0)
    assert time.monotonic() - start < 0.1  # no wait (generous for a busy machine)
    assert ring.try_get() is None


def test_get_on_empty_ring_waits_about_its_timeout(ring):
    start = time.monotonic()
    with pytest.raises(RingEmpty):
        ring.get(timeout=0.2)
    assert 0.2 <= time.monotonic() - start < 2.0
    assert issubclass(RingEmpty, TimeoutError) and issubclass(RingFull, TimeoutError)


def test_get_waits_for_another_process(ring, spawn, name):
    mine, theirs = mp.Pipe(duplex=False)
    spawn(drain, ring.name, 3, theirs)
    theirs.close()
    for i in range(3):
        ring.put(record(i), timeout=5)
    assert recv(mine, 30, "three records drained by a child") == [record(i) for i in range(3)]


def test_infinite_timeout_means_wait(ring):
    ring.put(b"x", timeout=math.inf)
    assert ring.get(timeout=math.inf).startswith(b"x")


def test_wait_survives_a_signal_whose_handler_returns(name):
    ring = Ring(name("sig"), 2, 16, create=True, spin=0)
    handled = threading.Event()
    old = signal.signal(signal.SIGUSR1, lambda *_: handled.set())
    main = threading.get_native_id()

    def poke() -> None:
        wait_for(lambda: thread_state(main) == "S", 10, "the main thread blocking in get")
        os.kill(os.getpid(), signal.SIGUSR1)
        handled.wait(10)
        ring.put(b"signal!!", timeout=5)

    helper = threading.Thread(target=poke)
    helper.start()
    try:
        assert ring.get(timeout=20) == b"signal!!"
        assert handled.is_set()
    finally:
        helper.join(10)
        signal.signal(signal.SIGUSR1, old)
        ring.close()
        ring.unlink()


# -- bad use ---------------------------------------------------------------------------
@pytest.mark.parametrize("timeout", BAD_TIMEOUTS)
def test_bad_timeouts_are_refused_and_change_nothing(ring, timeout):
    ring.put(b"keep")
    with pytest.raises(ValueError, match=r"timeout=.* is not valid; use None \(wait\)"):
        ring.put(b"x", timeout=timeout)
    with pytest.raises(ValueError, match="is not valid"):
        ring.get(timeout=timeout)
    assert len(ring) == 1 and ring.get(timeout=0).startswith(b"keep")


@pytest.mark.parametrize("capacity", [0, 1, 3, 6, 100, 2**31, 8.0, "8"])
def test_capacity_must_be_a_power_of_two(name, capacity):
    with pytest.raises(ValueError, match=f"capacity={capacity!r} must be a power of two"):
        Ring(name("bad"), capacity, 32, create=True)


@pytest.mark.parametrize("cell_size", [0, 8, 12, 20, 33, 16.0])
def test_cell_size_must_be_a_multiple_of_8_and_hold_a_body(name, cell_size):
    with pytest.raises(ValueError, match=f"cell_size={cell_size!r} must be a multiple of 8"):
        Ring(name("bad"), 8, cell_size, create=True)


@pytest.mark.parametrize("spin", [-1e-6, 1, math.nan, "0", None])
def test_spin_must_be_a_short_time(name, spin):
    with pytest.raises(ValueError, match="spin="):
        Ring(name("bad"), 8, 32, create=True, spin=spin)


def test_record_too_big_names_the_ring_and_the_limit(ring):
    with pytest.raises(ValueError, match=r"record of 25 bytes exceeds the cell body of 24 bytes"):
        ring.put(b"x" * 25)
    assert len(ring) == 0 and ring.space.value == 8


def test_attach_to_missing_ring_names_it(name):
    missing = name("nowhere")
    with pytest.raises(SegmentNotFound, match=f"segment '{missing}' does not exist"):
        Ring(missing)


def test_create_twice_is_refused_and_leaves_the_first_intact(ring, name):
    ring.put(b"one")
    with pytest.raises(SegmentExists, match=f"'{ring.name}' already exists"):
        Ring(ring.name, 8, 32, create=True)
    assert ring.get(timeout=0).startswith(b"one")


def test_half_failed_create_removes_what_it_made(name, token):
    from litserve.ipc import names

    squatter = Semaphore(name("r") + ".space", create=True)
    try:
        with pytest.raises(SegmentExists, match="semaphore .*r.space' already exists"):
            Ring(name("r"), 8, 32, create=True)
        assert names.leftovers(token) == [f"sem.lsv_{token}_r.space"]  # only the squatter
    finally:
        squatter.close()
        squatter.unlink()


def test_attach_to_a_segment_that_is_not_a_ring(name):
    seg = Segment(name("plain"), 4096, create=True)
    try:
        with pytest.raises(ValueError, match="is not a litserve ring"):
            Ring(name("plain"))
    finally:
        seg.close()
        seg.unlink()
