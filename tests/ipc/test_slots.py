"""SlotTable: the state machine of one request, and the cancellation race across
processes: every request is either claimed or cancelled, never both, never neither,
and a descriptor for a cancelled and reused slot is never claimable."""

from __future__ import annotations

import multiprocessing as mp
import random
import struct
import threading

import pytest
from ipc_children import DONE, REQ, STOP, claimer
from ipc_support import recv

from litserve.ipc import Arena, IPCError, Ring, SegmentNotFound, SlotTable
from litserve.ipc import slots as slots_mod
from litserve.ipc.slots import ABANDONED, CANCELLED, CLAIMED, FREE, MAX_WORKERS, POSTED


@pytest.fixture
def table(name):
    t = SlotTable(name("slots"), 4, create=True)
    yield t
    t.close()
    t.unlink()


def test_claim_then_release(table):
    slot, seq = table.acquire()
    table.post(slot, seq)
    assert table.state(slot) == (seq, -1, POSTED)
    assert table.claim(slot, seq, worker=3, gen=7)
    assert table.state(slot) == (seq, 3, CLAIMED)
    assert not table.claim(slot, seq, worker=4), "claimed twice"
    assert not table.cancel(slot, seq), "cancelled after a claim"
    assert table.claimed_by(3, 7) == [(slot, seq)]
    assert table.claimed_by(3, 6) == [], "another generation of worker 3 holds nothing"
    table.release(slot)
    assert table.state(slot) == (0, -1, FREE) and table.in_use == 0


def test_cancel_then_claim_fails(table):
    slot, seq = table.acquire()
    table.post(slot, seq)
    assert table.cancel(slot, seq)
    assert table.state(slot) == (seq, -1, CANCELLED)
    assert not table.claim(slot, seq, worker=0)
    assert not table.cancel(slot, seq)
    table.release(slot)


def test_old_seq_of_a_reused_slot_is_never_claimable(name):
    table = SlotTable(name("one"), 1, create=True)
    try:
        slot, old = table.acquire()
        table.post(slot, old)
        assert table.cancel(slot, old)
        table.release(slot)
        again, new = table.acquire()
        assert again == slot and new > old  # seq is never reused
        table.post(slot, new)
        assert not table.claim(slot, old, worker=0)
        assert table.claim(slot, new, worker=0)
        table.release(slot)
    finally:
        table.close()
        table.unlink()


def test_acquire_returns_none_when_all_slots_are_in_use(table):
    held = [table.acquire() for _ in range(4)]
    assert table.acquire() is None and table.in_use == 4
    assert len({seq for _, seq in held}) == 4
    for slot, seq in held:
        table.post(slot, seq)
        table.release(slot)  # POSTED -> FREE: never claimed, e.g. its ring was full
    assert table.in_use == 0


def test_seqs_stay_unique_across_threads(name):
    table = SlotTable(name("many"), 4000, create=True)
    got: list[list[int]] = [[] for _ in range(4)]

    def grab(out: list[int]) -> None:
        for _ in range(1000):
            out.append(table.acquire()[1])

    threads = [threading.Thread(target=grab, args=(out,)) for out in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    try:
        assert len({seq for out in got for seq in out}) == 4000
    finally:
        table.close()
        table.unlink()


def test_release_twice_is_an_error(table):
    slot, seq = table.acquire()
    table.post(slot, seq)
    table.release(slot)
    with pytest.raises(IPCError, match=f"slot {slot} released twice"):
        table.release(slot)


def test_bad_slot_worker_and_count(table, name):
    with pytest.raises(IndexError, match="slot 4 outside 0..3"):
        table.state(4)
    with pytest.raises(ValueError, match=f"worker={MAX_WORKERS + 1} outside"):
        table.claim(0, 1, worker=MAX_WORKERS + 1)
    for count in (0, -1, 2.0):
        with pytest.raises(ValueError, match=f"count={count!r} must be an int >= 1"):
            SlotTable(name("bad"), count, create=True)
    with pytest.raises(SegmentNotFound, match="does not exist"):
        SlotTable(name("missing"))


# -- the race across processes ------------------------------------------------------------
REQUESTS, SLOTS, WORKERS = 50_000, 64, 2


def test_cancellation_race_each_request_is_claimed_xor_cancelled(name, spawn):
    names = {role: name(role) for role in ("requests", "done", "slots", "arena")}
    requests = Ring(names["requests"], 256, 32, create=True)
    done = Ring(names["done"], 128, 32, create=True)  # >= SLOTS: claimers never block
    table = SlotTable(names["slots"], SLOTS, create=True)
    arena = Arena(names["arena"], SLOTS * 64, create=True)
    try:
        reports = _start_claimers(spawn, names)
        cancelled, completed, lost = _owner(requests, done, table, arena)
        for _ in range(WORKERS):
            requests.put(REQ.pack(STOP, 0), timeout=10)
        results = [recv(conn, 60, f"report of claimer {w}") for w, conn in enumerate(reports)]
    finally:
        for obj in (requests, done, table, arena):
            obj.close()
            obj.unlink()

    claimed = [seq for got, _, _ in results for seq in got]
    skipped = [seq for _, gone, _ in results for seq in gone]
    errors = [e for _, _, errs in results for e in errs]
    assert errors == []
    assert len(claimed) == len(set(claimed)), "a request was claimed twice"
    assert sorted(claimed) == sorted(completed)
    assert not set(claimed) & cancelled, "a request was both claimed and cancelled"
    assert set(claimed) | cancelled == set(range(1, REQUESTS + 1)), "a request was lost"
    assert sorted(skipped) == sorted(cancelled), "a cancelled request was not skipped"
    assert set(lost) <= set(claimed), "a cancel failed but nobody had claimed the request"
    counts = f"{len(cancelled)} cancelled, {len(claimed)} claimed, {len(lost)} cancels lost"
    # the mix depends on scheduling (a busy machine lets claimers win most races)
    assert cancelled and claimed, counts
    # Whether a cancel ever loses a photo finish depends on scheduling (it often does not
    # on an idle machine); that outcome is pinned down deterministically in
    # test_claim_then_cancel_fails_and_abandon_marks_it.


def test_claim_then_cancel_fails_and_abandon_marks_it(table):
    slot, seq = table.acquire()
    table.post(slot, seq)
    assert table.claim(slot, seq, worker=5)
    assert not table.cancel(slot, seq), "a cancel must lose to an earlier claim"
    assert not table.abandoned(slot, seq)
    assert table.abandon(slot, seq)
    assert table.abandoned(slot, seq)
    assert table.state(slot) == (seq, 5, ABANDONED)  # the holder is kept ...
    assert table.claimed_by(5, 0) == [(slot, seq)]  # ... so a dead worker's requests are found
    assert not table.abandon(slot, seq + 1), "only the current request can be abandoned"
    table.release(slot)
    assert table.abandoned(slot, seq), "a reused slot no longer belongs to the old request"


def _start_claimers(spawn, names):
    conns = []
    for worker in range(WORKERS):
        mine, theirs = mp.Pipe(duplex=False)
        spawn(claimer, worker, names, theirs)
        theirs.close()
        conns.append(mine)
    return conns


def _owner(requests: Ring, done: Ring, table: SlotTable, arena: Arena):
    """Post REQUESTS requests, cancelling random outstanding ones while claimers race
    for them; release a slot when its completion arrives or its cancel wins."""
    rng = random.Random(3)
    pending: dict[int, int] = {}  # seq -> slot, posted and not yet resolved
    cancelled: set[int] = set()
    completed: list[int] = []
    lost: list[int] = []  # cancels that a claimer beat

    def complete(record: bytes) -> None:
        slot, seq, _ = DONE.unpack_from(record)
        del pending[seq]
        completed.append(seq)
        table.release(slot)

    for _ in range(REQUESTS):
        while (got := table.acquire()) is None:
            complete(done.get(timeout=30))
        slot, seq = got
        struct.pack_into("<Q", arena.buf, slot * 64, seq)  # the payload
        table.post(slot, seq)
        requests.put(REQ.pack(slot, seq), timeout=30)
        pending[seq] = slot
        while (record := done.try_get()) is not None:
            complete(record)
        if pending and rng.random() < 0.5:
            # the newest (likely unclaimed) or the oldest (likely being claimed right now)
            victim = max(pending) if rng.random() < 0.5 else next(iter(pending))
            if table.cancel(pending[victim], victim):
                cancelled.add(victim)
                table.release(pending.pop(victim))  # free at once: the slot is reused
            else:
                lost.append(victim)
    while pending:
        complete(done.get(timeout=30))
    return cancelled, completed, lost


def test_attach_to_a_segment_that_is_not_a_slot_table(name):
    from litserve.ipc import Segment

    for size in (8, 4096):
        seg = Segment(name(f"plain{size}"), size, create=True)
        try:
            with pytest.raises(ValueError, match="is not a litserve slot table"):
                SlotTable(name(f"plain{size}"))
        finally:
            seg.close()
            seg.unlink()


def test_unacquire_hands_back_a_slot_that_was_never_posted(table):
    taken = [table.acquire() for _ in range(table.count)]
    assert table.acquire() is None
    slot, _ = taken[0]
    table.unacquire(slot)
    again = table.acquire()
    assert again is not None and again[0] == slot
    table.post(slot, again[1])
    with pytest.raises(IPCError, match="was posted; release it"):
        table.unacquire(slot)


def test_a_dead_workers_claims_are_told_apart_from_its_replacements(table):
    """Worker 2 of generation 4 died; its replacement (generation 5) already claimed a
    request before the front looked: only generation 4's claim is the dead one's."""
    (old_slot, old_seq), (new_slot, new_seq) = table.acquire(), table.acquire()
    for slot, seq in ((old_slot, old_seq), (new_slot, new_seq)):
        table.post(slot, seq)
    assert table.claim(old_slot, old_seq, worker=2, gen=4)
    assert table.claim(new_slot, new_seq, worker=2, gen=5)
    assert table.claimed_by(2, 4) == [(old_slot, old_seq)]
    assert table.claimed_by(2, 5) == [(new_slot, new_seq)]
    assert table.claimed_by(2, 4 + 2**16) == [(old_slot, old_seq)]  # generations mod 2**16


def test_seqs_stay_inside_their_field(table):
    table._seqs = iter([slots_mod.SEQ_MASK + 5])
    slot, seq = table.acquire()
    assert seq == 4
    table.post(slot, seq)
    assert table.claim(slot, seq, worker=slots_mod.MAX_WORKERS, gen=0xFFFF)
    assert table.state(slot) == (4, slots_mod.MAX_WORKERS, CLAIMED)
