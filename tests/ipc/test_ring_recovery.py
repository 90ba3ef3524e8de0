"""Repairing a ring after a process died inside ``put`` / ``get``, with real processes
stopped (SIGSTOP, by the ring's own test hooks) inside each window and then killed or
let go on: a dead one's cell is repaired, a live one's never, and lost semaphore
units are recounted."""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import signal
import threading
import time

import pytest
from ipc_children import stall_get, stall_put
from ipc_support import gone, recv, thread_state, wait_for, wait_stopped

from litserve.ipc import Ring, RingEmpty, RingFull, _shm
from litserve.ipc import ring as ring_mod
from litserve.ipc.ring import FREE, READING, WRITING, RingRepair

BODY = 56  # cell body bytes of the rings below


@pytest.fixture
def ring(name):
    r = Ring(name("r"), 4, 64, create=True, spin=0)
    yield r
    r.close()
    r.unlink()


def rec(tag: bytes) -> bytes:
    """A record that fills the whole body, so a torn or mixed one shows."""
    return (tag * BODY)[:BODY]


def stopped(spawn, target, *args):
    """Start ``target(*args, conn)`` in a child and wait until it has stopped itself at
    its stall point; returns (process, our end of its pipe)."""
    mine, theirs = mp.Pipe(duplex=False)
    proc = spawn(target, *args, theirs)
    theirs.close()
    wait_stopped(proc.pid, 30, f"{target.__name__}{args[1:]} stopping at its stall point")
    return proc, mine


def kill(proc, reap: bool = True) -> int:
    """SIGKILL a (stopped) child; reap it unless asked not to (then it stays a zombie)."""
    os.kill(proc.pid, signal.SIGKILL)
    if reap:
        proc.join(10)
    else:
        wait_for(lambda: gone(proc.pid), 10, f"pid {proc.pid} dying")
    return proc.pid


def go_on(proc) -> None:
    os.kill(proc.pid, signal.SIGCONT)


def drain(ring: Ring) -> list[bytes]:
    out = []
    while (body := ring.try_get()) is not None:
        out.append(body)
    return out


def words(ring: Ring) -> list[int]:
    return [ring_mod.load64(ring._buf, ring._cell(i)) for i in range(ring.capacity)]


def assert_consistent(ring: Ring) -> None:
    """Empty, with every unit back and nothing left to repair."""
    assert drain(ring) == []
    assert (ring.items.value, ring.space.value) == (0, ring.capacity)
    assert [ring.state(i)[0] for i in range(ring.capacity)] == [FREE] * ring.capacity
    assert not ring.repair()


# -- a dead process inside the C step ------------------------------------------------
@pytest.mark.parametrize("named", [True, False], ids=["dead-named", "dead-found"])
def test_a_producer_killed_after_its_claim_is_filled_and_records_flow(ring, spawn, named):
    ring.put(rec(b"a"))
    proc, _ = stopped(spawn, stall_put, ring.name, rec(b"b"), _shm.STALL_PUT_CLAIMED)
    assert ring.state(1) == (WRITING, proc.pid)
    pid = kill(proc, reap=not named)  # named: still a zombie, so only `dead` can tell
    ring.put(rec(b"c"))  # helps the enqueue counter past the dead claim
    assert ring.get(0) == rec(b"a")
    with pytest.raises(RingEmpty):
        ring.get(0.1)  # "c" waits behind position 1
    done = ring.repair(dead={pid} if named else (), filler=b"noop")
    assert done == RingRepair(filled=1, items_added=1)
    assert [ring.get(0), ring.get(0)] == [b"noop" + bytes(BODY - 4), rec(b"c")]
    assert_flows(ring)


def assert_flows(ring):
    """Three full laps go through in order, and the ring is consistent after."""
    for lap in range(3):
        batch = [rec(bytes([lap, i])) for i in range(4)]
        for body in batch:
            ring.put(body, timeout=0)
        assert [ring.get(0) for _ in batch] == batch
    assert_consistent(ring)


def test_a_consumer_killed_after_its_claim_is_freed_for_the_next_lap(ring, spawn):
    batch = [rec(bytes([i])) for i in range(4)]
    for body in batch:
        ring.put(body)
    proc, _ = stopped(spawn, stall_get, ring.name, _shm.STALL_TAKE_CLAIMED)
    assert ring.state(0) == (READING, proc.pid)
    pid = kill(proc)
    assert [ring.get(0) for _ in range(3)] == batch[1:]
    with pytest.raises(RingFull):
        ring.put(rec(b"e"), timeout=0.1)  # a lap later, position 4 is the dead one's cell
    assert ring.repair(dead={pid}) == RingRepair(freed=1, space_added=1)
    assert_flows(ring)


# -- a dead process in a Python window: a semaphore unit is lost --------------------
def test_a_consumer_killed_holding_an_items_unit_leaves_its_record_gettable(ring, spawn):
    ring.put(rec(b"only"))
    proc, _ = stopped(spawn, stall_get, ring.name, ring_mod.GET_HOLDS_ITEM)
    pid = kill(proc)
    assert ring.items.value == 0 and len(ring) == 1
    assert ring.repair(dead={pid}) == RingRepair(items_added=1)
    assert ring.get(5) == rec(b"only")  # no further put needed
    assert_consistent(ring)


def test_a_producer_killed_before_releasing_its_items_unit_leaves_its_record_gettable(ring, spawn):
    proc, _ = stopped(spawn, stall_put, ring.name, rec(b"mine"), ring_mod.PUT_BEFORE_ITEMS)
    pid = kill(proc)
    with pytest.raises(RingEmpty):
        ring.get(0)
    assert ring.repair(dead={pid}) == RingRepair(items_added=1)
    assert ring.get(5) == rec(b"mine")
    assert_consistent(ring)


@pytest.mark.parametrize(
    "target, point",
    [(stall_put, ring_mod.PUT_HOLDS_SPACE), (stall_get, ring_mod.GET_BEFORE_SPACE)],
    ids=["producer-holding-space", "consumer-before-releasing-space"],
)
def test_a_space_unit_lost_by_a_dead_process_is_recounted(ring, spawn, target, point):
    if target is stall_get:
        ring.put(rec(b"x"))
    args = (ring.name, rec(b"never")) if target is stall_put else (ring.name,)
    proc, _ = stopped(spawn, target, *args, point)
    kill(proc)
    assert ring.space.value == 3 and len(ring) == 0  # the ring would hold only 3
    assert ring.repair() == RingRepair(space_added=1)
    batch = [rec(bytes([i])) for i in range(4)]
    for body in batch:
        ring.put(body, timeout=0)
    assert [ring.get(0) for _ in batch] == batch
    assert_consistent(ring)


# -- live processes that are merely slow are never touched ------------------------
def test_repair_fills_the_dead_producers_cell_and_not_a_stopped_live_ones(ring, spawn):
    live, live_conn = stopped(spawn, stall_put, ring.name, rec(b"L"), _shm.STALL_PUT_CLAIMED)
    dead, _ = stopped(spawn, stall_put, ring.name, rec(b"D"), _shm.STALL_PUT_CLAIMED)
    assert [ring.state(0), ring.state(1)] == [(WRITING, live.pid), (WRITING, dead.pid)]
    pid = kill(dead)
    assert ring.repair(dead={pid}, filler=b"noop") == RingRepair(filled=1, items_added=1)
    assert ring.state(0) == (WRITING, live.pid)
    with pytest.raises(RingEmpty):
        ring.get(0.1)  # position 0 is still the live producer's
    go_on(live)
    assert recv(live_conn, 30, "the live producer finishing its put") == "done"
    assert ring.get(0) == rec(b"L")  # intact and in full
    assert ring.get(0) == b"noop" + bytes(BODY - 4)
    assert_consistent(ring)


def test_repair_frees_the_dead_consumers_cell_and_not_a_stopped_live_ones(ring, spawn):
    ring.put(rec(b"a"))
    ring.put(rec(b"b"))
    live, live_conn = stopped(spawn, stall_get, ring.name, _shm.STALL_TAKE_CLAIMED)
    dead, _ = stopped(spawn, stall_get, ring.name, _shm.STALL_TAKE_CLAIMED)
    assert [ring.state(0), ring.state(1)] == [(READING, live.pid), (READING, dead.pid)]
    pid = kill(dead)
    assert ring.repair(dead={pid}) == RingRepair(freed=1, space_added=1)
    assert ring.state(0) == (READING, live.pid)
    for tag in (b"c", b"d"):  # positions 2 and 3
        ring.put(rec(tag), timeout=0)
    with pytest.raises(RingFull):
        ring.put(rec(b"e"), timeout=0.1)  # position 4 is the live consumer's cell
    go_on(live)
    assert recv(live_conn, 30, "the live consumer's record") == rec(b"a")
    for tag in (b"e", b"f"):
        ring.put(rec(tag), timeout=0)
    assert [ring.get(0) for _ in range(4)] == [rec(t) for t in (b"c", b"d", b"e", b"f")]
    assert_consistent(ring)


def test_repair_with_nothing_to_do_changes_nothing_and_is_idempotent(ring, spawn):
    ring.put(rec(b"a"))
    ring.put(rec(b"b"))
    reader, reader_conn = stopped(spawn, stall_get, ring.name, _shm.STALL_TAKE_CLAIMED)
    writer, writer_conn = stopped(spawn, stall_put, ring.name, rec(b"c"), _shm.STALL_PUT_CLAIMED)
    before = (words(ring), ring.items.value, ring.space.value, bytes(ring._buf))
    for _ in range(3):  # live owners, however slow, are not dead ones
        assert ring.repair(filler=b"noop") == RingRepair()
        assert not ring.repair(filler=b"noop")
        assert (words(ring), ring.items.value, ring.space.value, bytes(ring._buf)) == before
    go_on(reader)
    go_on(writer)
    assert recv(reader_conn, 30, "the stopped reader's record") == rec(b"a")
    assert recv(writer_conn, 30, "the stopped writer finishing") == "done"
    assert [ring.get(0), ring.get(0)] == [rec(b"b"), rec(b"c")]
    ring.put(rec(b"d"))
    proc, _ = stopped(spawn, stall_get, ring.name, ring_mod.GET_HOLDS_ITEM)
    pid = kill(proc)
    assert ring.repair(dead={pid})  # the unit it took is recounted ...
    after = (words(ring), ring.items.value, ring.space.value)
    assert not ring.repair(dead={pid}) and not ring.repair()  # ... once
    assert (words(ring), ring.items.value, ring.space.value) == after
    assert ring.get(0) == rec(b"d")
    assert_consistent(ring)


# -- excess units are harmless -------------------------------------------------------
def test_excess_units_give_no_wrong_result_and_no_busy_wait(ring):
    batch = [rec(bytes([i])) for i in range(4)]
    for body in batch:
        ring.put(body, timeout=0)
    ring.items.release(3)  # as a recount that counted a process mid-window would
    ring.space.release(3)
    start = time.monotonic()
    with pytest.raises(RingFull):
        ring.put(rec(b"extra"), timeout=0)  # the cells say full, whatever the units say
    assert time.monotonic() - start < 0.5
    assert [ring.get(0) for _ in batch] == batch  # nothing overwritten
    with pytest.raises(RingEmpty):
        ring.get(0)
    ring.items.release(3)
    cpu, switches = time.thread_time(), _sleeps()
    with pytest.raises(RingEmpty):
        ring.get(0.5)  # nothing to get: it must sleep, not poll on the excess units
    cpu, switches = time.thread_time() - cpu, _sleeps() - switches
    assert switches <= 10 and cpu < 0.01, f"an idle get woke {switches} times, ran {cpu} s"
    assert ring.items.value == 0  # the excess units were dropped, not handed round
    ring.put(rec(b"after"), timeout=0)
    assert ring.get(0) == rec(b"after")


def _sleeps() -> int:
    """How many times this thread went to sleep (voluntary context switches)."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw


def test_a_waiter_drops_excess_units_then_sleeps_until_a_real_record(ring):
    ring.items.release(2)
    main = threading.get_native_id()
    helper = threading.Thread(
        target=lambda: (
            wait_for(lambda: thread_state(main) == "S", 10, "the getter sleeping"),
            ring.put(rec(b"real"), timeout=5),
        )
    )
    helper.start()
    try:
        assert ring.get(20) == rec(b"real")
    finally:
        helper.join(10)
    assert_consistent(ring)


def test_the_stall_hooks_refuse_an_unknown_point(ring):
    with pytest.raises(ValueError, match="point='later' is not a ring window; use one of"):
        ring._stall_at("later")
    with pytest.raises(ValueError, match="point=7 is not a stall point"):
        _shm.set_stall(7)
