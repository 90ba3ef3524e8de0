"""The byte layouts written down in ring.py / slots.py / arena.py, checked from both
sides: what the C atomics write, ``struct`` reads, and the other way round."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import struct

import pytest
from ipc_children import stall_put
from ipc_support import kill_pid, recv, wait_stopped

from litserve.ipc import Arena, Ring, Segment, SlotTable, _shm
from litserve.ipc import arena as arena_mod
from litserve.ipc import ring as ring_mod
from litserve.ipc import slots as slots_mod

U64 = struct.Struct("<Q")
EDGES = [0, 1, 0xFF, 0x0102030405060708, 2**63, 2**64 - 1]


@pytest.fixture
def seg(name):
    s = Segment(name("words"), 4096, create=True)
    yield s
    s.close()
    s.unlink()


# -- the atomics ------------------------------------------------------------------
@pytest.mark.parametrize("value", EDGES)
def test_store64_is_read_by_struct_little_endian(seg, value):
    _shm.store64(seg.buf, 64, value)
    assert U64.unpack_from(seg.buf, 64)[0] == value
    assert bytes(seg.buf[64:72]) == value.to_bytes(8, "little")


@pytest.mark.parametrize("value", EDGES)
def test_struct_write_is_read_by_load64(seg, value):
    U64.pack_into(seg.buf, 4088, value)  # the last word of the segment
    assert _shm.load64(seg.buf, 4088) == value


def test_cas64_swaps_only_on_match(seg):
    U64.pack_into(seg.buf, 8, 5)
    assert _shm.cas64(seg.buf, 8, 4, 9) is False
    assert U64.unpack_from(seg.buf, 8)[0] == 5
    assert _shm.cas64(seg.buf, 8, 5, 2**64 - 1) is True
    assert U64.unpack_from(seg.buf, 8)[0] == 2**64 - 1


def test_fetch_add64_returns_old_value_and_wraps(seg):
    U64.pack_into(seg.buf, 16, 2**64 - 2)
    assert _shm.fetch_add64(seg.buf, 16, 3) == 2**64 - 2
    assert U64.unpack_from(seg.buf, 16)[0] == 1
    assert _shm.fetch_add64(seg.buf, 16, -2) == 1
    assert _shm.load64(seg.buf, 16) == 2**64 - 1


@pytest.mark.parametrize("offset", [-8, 4096, 4089, 2**40])
def test_out_of_bounds_offset_is_named(seg, offset):
    for call in (
        lambda: _shm.load64(seg.buf, offset),
        lambda: _shm.store64(seg.buf, offset, 1),
        lambda: _shm.cas64(seg.buf, offset, 0, 1),
        lambda: _shm.fetch_add64(seg.buf, offset, 1),
    ):
        with pytest.raises(ValueError, match=f"offset {offset} is outside the buffer of 4096"):
            call()


@pytest.mark.parametrize("offset", [1, 4, 12, 4087])
def test_misaligned_offset_is_named(seg, offset):
    with pytest.raises(ValueError, match=f"offset {offset} is not 8-byte aligned"):
        _shm.load64(seg.buf, offset)
    with pytest.raises(ValueError, match=f"offset {offset} is not 8-byte aligned"):
        _shm.store64(seg.buf, offset, 1)


@pytest.mark.parametrize("value", [-1, 2**64, 2**70])
def test_words_outside_u64_are_rejected_not_truncated(seg, value):
    _shm.store64(seg.buf, 0, 7)
    with pytest.raises(OverflowError, match=rf"value={value} is outside \[0, 2\*\*64\)"):
        _shm.store64(seg.buf, 0, value)
    with pytest.raises(OverflowError, match="desired"):
        _shm.cas64(seg.buf, 0, 7, value)
    assert _shm.load64(seg.buf, 0) == 7


def test_wrong_argument_types_are_named(seg):
    with pytest.raises(TypeError, match="offset must be an int, not float"):
        _shm.load64(seg.buf, 8.0)
    with pytest.raises(TypeError, match="value must be an int, not str"):
        _shm.store64(seg.buf, 8, "1")
    with pytest.raises(TypeError, match=r"load64\(\) takes 2 arguments \(1 given\)"):
        _shm.load64(seg.buf)


def test_store_into_read_only_buffer_is_refused():
    with pytest.raises(BufferError):
        _shm.store64(bytes(16), 0, 1)
    assert _shm.load64(bytes(range(8)) + bytes(8), 0) == 0x0706050403020100


# -- gather_copy ------------------------------------------------------------------
def test_gather_copy_concatenates_sources(seg):
    parts = [b"ab", bytearray(b"cde"), memoryview(b"")]
    assert _shm.gather_copy(seg.buf, 100, parts) == 5
    assert bytes(seg.buf[100:105]) == b"abcde"


def test_gather_copy_large_runs_and_checks_bounds(seg):
    big = bytes(range(256)) * 16  # 4096 bytes: the whole segment
    assert _shm.gather_copy(seg.buf, 0, [big]) == 4096
    assert bytes(seg.buf) == big
    with pytest.raises(ValueError, match="gather of 4096 bytes at offset 1 does not fit"):
        _shm.gather_copy(seg.buf, 1, [big])
    with pytest.raises(ValueError, match="at offset -1"):
        _shm.gather_copy(seg.buf, -1, [b""])


# -- ring.py ------------------------------------------------------------------------
def seq_word(seq: int, pid: int = 0) -> int:
    """A cell word spelled out by hand: seq41 << 23 | busy << 22 | pid22."""
    return (seq % 2**41) << 23 | ((1 << 22) | pid if pid else 0)


def test_cell_word_layout_agrees_between_c_and_python():
    assert (ring_mod.SEQ_SHIFT, ring_mod.BUSY) == (_shm.CELL_SEQ_SHIFT, _shm.CELL_BUSY)
    assert (ring_mod.SEQ_SHIFT, ring_mod.BUSY, ring_mod.PID_MASK) == (23, 1 << 22, 2**22 - 1)
    for seq in (0, 1, 2**41 - 1, 2**41, 2**41 + 5, 2**64 - 1):
        for pid in (0, 1, 2**22 - 1):
            assert ring_mod.cell_word(seq, pid) == seq_word(seq, pid) < 2**64
    assert (_shm.RING_BUSY, _shm.RING_SPURIOUS) == (ring_mod.NEIGHBOUR_BUSY, ring_mod.SPURIOUS)
    assert len({_shm.RING_BUSY, _shm.RING_SPURIOUS}) == 2


def test_ring_header_layout(name):
    ring = Ring(name("ring"), 8, 32, create=True)
    try:
        magic, capacity, cell_size = struct.unpack_from("<QQQ", ring._buf, 0)
        assert magic.to_bytes(8, "big") == b"lsv_ring" and magic == ring_mod.MAGIC
        assert (capacity, cell_size) == (8, 32)
        assert ring._seg.size == 192 + 8 * 32 == ring_mod.segment_size(8, 32)
        cells = [U64.unpack_from(ring._buf, 192 + i * 32)[0] for i in range(8)]
        assert cells == [i << 23 for i in range(8)]  # FREE(i): seq == position, no owner
        assert [ring.state(i) for i in range(8)] == [(ring_mod.FREE, 0)] * 8
    finally:
        ring.close()
        ring.unlink()


def test_ring_positions_and_cell_states_follow_the_doc(name):
    ring = Ring(name("ring"), 4, 24, create=True)
    try:
        for i in range(6):  # wrap around once
            ring.put(bytes([i + 1]) * 3)
            cell = 192 + (i % 4) * 24
            assert U64.unpack_from(ring._buf, 64)[0] == i + 1  # enqueue_pos
            assert U64.unpack_from(ring._buf, cell)[0] == seq_word(i + 1)  # FULL(i)
            assert ring.state(i) == (ring_mod.FULL, 0)
            assert bytes(ring._buf[cell + 8 : cell + 24]) == bytes([i + 1]) * 3 + bytes(13)
            assert ring.get(0) == bytes([i + 1]) * 3 + bytes(13)
            assert U64.unpack_from(ring._buf, 128)[0] == i + 1  # dequeue_pos
            assert U64.unpack_from(ring._buf, cell)[0] == seq_word(i + 4)  # FREE(i + 4)
            assert ring.state(i) == (ring_mod.FREE, 0)
    finally:
        ring.close()
        ring.unlink()


def test_ring_reads_a_cell_written_by_struct(name):
    ring = Ring(name("ring"), 2, 16, create=True)
    try:  # play the producer by hand, exactly as the doc says
        U64.pack_into(ring._buf, 192, seq_word(0, 4321))  # WRITING(0, 4321)
        U64.pack_into(ring._buf, 64, 1)
        U64.pack_into(ring._buf, 192 + 8, 0xABCD)
        U64.pack_into(ring._buf, 192, seq_word(1))  # FULL(0)
        ring.items.release()
        ring.space.acquire(0)
        assert ring.get(0) == U64.pack(0xABCD)
        assert U64.unpack_from(ring._buf, 192)[0] == seq_word(2)  # FREE(2)
    finally:
        ring.close()
        ring.unlink()


@pytest.mark.parametrize("start", [2**41 - 3, 2**64 - 3])
def test_positions_cross_the_41_bit_seq_and_the_64_bit_word(name, start):
    ring = Ring(name("ring"), 4, 16, create=True)
    try:  # an empty ring whose positions stand at start, as if that many had passed
        for pos in range(start, start + 4):
            U64.pack_into(ring._buf, 192 + 16 * (pos % 4), seq_word(pos))
        U64.pack_into(ring._buf, 64, start)
        U64.pack_into(ring._buf, 128, start)
        got = []
        for i in range(10):
            ring.put(U64.pack(i), timeout=0)
            if i % 3 == 2:  # three in, three out: every cell is used across the wrap
                got += [U64.unpack(ring.get(0))[0] for _ in range(3)]
        got.append(U64.unpack(ring.get(0))[0])
        assert got == list(range(10))
        assert len(ring) == 0 and ring.items.value == 0 and ring.space.value == 4
        end = (start + 10) % 2**64
        assert U64.unpack_from(ring._buf, 64)[0] == U64.unpack_from(ring._buf, 128)[0] == end
        assert ring.state(end) == (ring_mod.FREE, 0)
    finally:
        ring.close()
        ring.unlink()


def _raw_ring(seg):
    """Four 16-byte cells at 192 of a plain segment, FREE(0..3); positions at 64, 128."""
    for i in range(4):
        U64.pack_into(seg.buf, 192 + 16 * i, seq_word(i))


def test_ring_steps_refuse_a_layout_that_does_not_fit(seg):
    with pytest.raises(ValueError, match="do not fit the buffer of 4096 bytes"):
        _shm.ring_take(seg.buf, 64, 192, 255, 16)
    with pytest.raises(ValueError, match="mask=6 is not a power of two minus one"):
        _shm.ring_take(seg.buf, 64, 192, 6, 16)
    with pytest.raises(ValueError, match="cell_size=12"):
        _shm.ring_put(seg.buf, 64, 192, 3, 12, b"")
    with pytest.raises(ValueError, match="offset 4096 is outside"):
        _shm.ring_put(seg.buf, 4096, 192, 3, 16, b"")
    with pytest.raises(ValueError, match="record of 9 bytes exceeds the cell body of 8"):
        _shm.ring_put(seg.buf, 64, 192, 3, 16, b"123456789")
    with pytest.raises(ValueError, match="point=7 is not a stall point"):
        _shm.set_stall(7)


def test_ring_wait_reports_ready_or_time_up(seg):
    _raw_ring(seg)
    assert _shm.ring_wait(seg.buf, 64, 192, 3, 16, 0, 0) is True  # producer may go
    assert _shm.ring_wait(seg.buf, 128, 192, 3, 16, 1, 2_000_000) is False  # nothing yet
    assert _shm.ring_put(seg.buf, 64, 192, 3, 16, b"x") is None
    assert _shm.ring_wait(seg.buf, 128, 192, 3, 16, 1, 0) is True
    assert _shm.ring_take(seg.buf, 128, 192, 3, 16) == b"x" + bytes(7)


def test_ring_steps_tell_a_busy_neighbour_from_a_spurious_unit(seg):
    _raw_ring(seg)
    take = lambda: _shm.ring_take(seg.buf, 128, 192, 3, 16)  # noqa: E731
    put = lambda: _shm.ring_put(seg.buf, 64, 192, 3, 16, b"r")  # noqa: E731
    assert take() == _shm.RING_SPURIOUS  # FREE(0) at the dequeue position: empty
    U64.pack_into(seg.buf, 192, seq_word(0, 777))  # WRITING(0, 777), counter not moved
    assert put() is None  # a producer helps the counter past it, takes 1
    assert U64.unpack_from(seg.buf, 64)[0] == 2
    assert take() == _shm.RING_BUSY  # position 0 is still being written
    U64.pack_into(seg.buf, 192, seq_word(1))  # FULL(0)
    assert take() == bytes(8)
    assert take() == b"r" + bytes(7)
    assert take() == _shm.RING_SPURIOUS
    for _ in range(2):
        assert put() is None  # positions 2, 3
    U64.pack_into(seg.buf, 192 + 32, seq_word(3, 778))  # READING(2, 778)
    U64.pack_into(seg.buf, 128, 3)
    assert put() is None  # position 4 in cell 0 (freed at position 0)
    assert put() is None  # position 5 in cell 1
    assert put() == _shm.RING_BUSY  # position 6: cell 2 is still being read
    U64.pack_into(seg.buf, 192 + 32, seq_word(6))  # FREE(6)
    assert put() is None
    assert put() == _shm.RING_SPURIOUS  # position 7: cell 3 holds 3, unread: full
    assert U64.unpack_from(seg.buf, 64)[0] == 7


@pytest.mark.parametrize("how", ["spawn", "fork"])
def test_a_claimed_cell_names_its_owner(name, how):
    """The claim writes the claimer's pid into the cell before the counter moves; in a
    forked child too (the cached pid is refreshed after fork)."""
    ring = Ring(name("ring"), 4, 16, create=True)
    ctx = mp.get_context(how)
    mine, theirs = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=stall_put, args=(ring.name, b"owned", _shm.STALL_PUT_CLAIMED, theirs))
    try:
        proc.start()
        theirs.close()
        wait_stopped(proc.pid, 30, "the producer stopping after its claim")
        assert U64.unpack_from(ring._buf, 192)[0] == seq_word(0, proc.pid)  # WRITING(0, pid)
        assert ring.state(0) == (ring_mod.WRITING, proc.pid)
        assert U64.unpack_from(ring._buf, 64)[0] == 0  # not moved on yet
        os.kill(proc.pid, signal.SIGCONT)
        assert recv(mine, 30, "the producer finishing") == "done"
        assert ring.state(0) == (ring_mod.FULL, 0) and ring.get(0) == b"owned" + bytes(3)
    finally:
        kill_pid(proc.pid)
        proc.join(10)
        ring.close()
        ring.unlink()


# -- slots.py -----------------------------------------------------------------------
def test_slot_table_header_and_word_layout(name):
    table = SlotTable(name("slots"), 3, create=True)
    try:
        buf = table._buf
        assert struct.unpack_from("<QQ", buf, 0) == (slots_mod.MAGIC, 3)
        assert slots_mod.MAGIC.to_bytes(8, "big") == b"lsv_slot"
        assert table._seg.size == 64 + 3 * 8
        slot, seq = table.acquire()
        table.post(slot, seq)
        assert U64.unpack_from(buf, 64 + 8 * slot)[0] == (seq << 30) | 1
        assert table.claim(slot, seq, worker=5, gen=9)
        assert U64.unpack_from(buf, 64 + 8 * slot)[0] == (seq << 30) | (9 << 14) | (6 << 4) | 2
        table.release(slot)
        assert U64.unpack_from(buf, 64 + 8 * slot)[0] == 0
        slot, seq = table.acquire()
        table.post(slot, seq)
        assert table.cancel(slot, seq)
        assert U64.unpack_from(buf, 64 + 8 * slot)[0] == (seq << 30) | 3
        table.release(slot)
    finally:
        table.close()
        table.unlink()


def test_slot_word_written_by_struct_is_read_by_the_table(name):
    table = SlotTable(name("slots"), 2, create=True)
    try:
        U64.pack_into(table._buf, 64 + 8, (77 << 30) | (3 << 14) | (1023 << 4) | 2)
        assert table.state(1) == (77, slots_mod.MAX_WORKERS, slots_mod.CLAIMED)
        assert table.claimed_by(slots_mod.MAX_WORKERS, 3) == [(1, 77)]
        U64.pack_into(table._buf, 64 + 8, (78 << 30) | 1)
        assert table.claim(1, 78, worker=0)
        assert slots_mod.unpack(U64.unpack_from(table._buf, 72)[0]) == (78, 0, slots_mod.CLAIMED)
    finally:
        table.close()
        table.unlink()


def test_slot_word_helpers_round_trip():
    for seq in (0, 1, 2**33, slots_mod.SEQ_MASK):
        for worker in (0, 1, slots_mod.MAX_WORKERS):
            value = slots_mod.word(seq, slots_mod.CLAIMED, worker, 0xFFFF)
            assert value < 2**64
            assert slots_mod.unpack(value) == (seq, worker, slots_mod.CLAIMED)
            assert slots_mod.holder_gen(value) == 0xFFFF
        for state in (slots_mod.FREE, slots_mod.POSTED, slots_mod.CANCELLED):
            assert slots_mod.unpack(slots_mod.word(seq, state)) == (seq, -1, state)


# -- arena.py -----------------------------------------------------------------------
def test_arena_blocks_are_64_byte_aligned_and_rounded(name):
    arena = Arena(name("arena"), 1000, create=True)
    try:
        assert arena.size == 1024 == arena_mod.block_size(1000)
        offsets = [arena.alloc(n) for n in (0, 1, 64, 65)]
        assert offsets == [0, 64, 128, 192]
        assert arena.free_bytes == 1024 - 64 * 5
        assert arena_mod.block_size(0) == 64 and arena_mod.block_size(129) == 192
        for off in offsets:
            arena.free(off)
        assert arena.free_bytes == 1024
    finally:
        arena.close()
        arena.unlink()
