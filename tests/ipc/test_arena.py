"""Arena: blocks never overlap and always come back, the timeout rule when full,
waiting for a free from another thread, readers in other processes, bad use."""

from __future__ import annotations

import hashlib
import math
import multiprocessing as mp
import random
import threading
import time

import pytest
from ipc_children import digest_block
from ipc_support import recv, thread_state, wait_for

from litserve.ipc import Arena, ArenaFull, InvalidFree, PayloadTooLarge, SegmentNotFound
from litserve.ipc.arena import block_size


@pytest.fixture
def arena(name):
    a = Arena(name("arena"), 64 * 1024, create=True)
    yield a
    a.close()
    a.unlink()


def test_random_allocs_never_overlap_and_all_space_returns(arena):
    rng = random.Random(7)
    live: dict[int, int] = {}
    for _ in range(5000):
        n = rng.choice([0, 1, 63, 64, 65, rng.randrange(4096)])
        off = arena.try_alloc(n) if rng.random() < 0.55 else None
        if off is not None:
            assert off % 64 == 0
            arena.view(off, n)[:] = bytes([off // 64 % 251]) * n
            live[off] = n
        elif live:  # chose to free, or the arena had no room: free a random block
            off = rng.choice(list(live))
            assert bytes(arena.view(off, live[off])) == bytes([off // 64 % 251]) * live[off]
            arena.free(off)
            del live[off]
        spans = sorted((off, off + block_size(n)) for off, n in live.items())
        assert all(a_end <= b for (_, a_end), (b, _) in zip(spans, spans[1:], strict=False))
        assert arena.live_blocks == len(live)
        assert arena.free_bytes == arena.size - sum(end - start for start, end in spans)
    for off in list(live):
        arena.free(off)
    assert arena.free_bytes == arena.size and arena.live_blocks == 0
    assert arena.alloc(arena.size) == 0  # coalesced back into one extent
    arena.free(0)


def test_alloc_on_full_arena_with_timeout_zero_raises_at_once(arena):
    held = [arena.alloc(8192) for _ in range(8)]
    start = time.monotonic()
    with pytest.raises(ArenaFull, match=r"no free block of 64 bytes \(0 of 65536 free\)"):
        arena.alloc(1, timeout=0)
    assert time.monotonic() - start < 0.1  # no wait (generous for a busy machine)
    for off in held:
        arena.free(off)


def test_alloc_on_full_arena_waits_about_its_timeout(arena):
    held = arena.alloc(arena.size)
    start = time.monotonic()
    with pytest.raises(ArenaFull):
        arena.alloc(100, timeout=0.2)
    assert 0.2 <= time.monotonic() - start < 2.0
    arena.free(held)


def test_blocked_alloc_proceeds_when_another_thread_frees(arena):
    blocks = {arena.alloc(16384): bytes([i + 1]) * 16384 for i in range(4)}
    for off, data in blocks.items():
        arena.view(off, len(data))[:] = data
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(arena.alloc(16384, timeout=None)))
    waiter.start()
    try:
        wait_for(
            lambda: thread_state(waiter.native_id) == "S", 10, "alloc blocking on a full arena"
        )
        assert not got, "alloc on a full arena returned before anything was freed"
        victim = sorted(blocks)[1]
        arena.free(victim)
        waiter.join(10)
        assert got == [victim]
    finally:
        if waiter.is_alive():
            arena.free(sorted(blocks)[2])
            waiter.join(10)
    for off, data in blocks.items():  # the other blocks were not touched
        if off != victim:
            assert bytes(arena.view(off, len(data))) == data
            arena.free(off)
    arena.free(victim)


def test_reader_in_another_process_sees_the_owners_bytes(arena, spawn):
    data = random.Random(1).randbytes(40_000)
    off = arena.alloc(len(data))
    arena.view(off, len(data))[:] = data
    mine, theirs = mp.Pipe(duplex=False)
    spawn(digest_block, arena.name, off, len(data), theirs)
    theirs.close()
    assert recv(mine, 30, "the reader's digest") == hashlib.blake2b(data).hexdigest()
    arena.free(off)


def test_attached_arena_is_read_only(arena, name):
    reader = Arena(name("arena"))
    try:
        assert reader.size == arena.size and not reader.owner
        with pytest.raises(PermissionError, match="attached read-only; only its owner allocates"):
            reader.alloc(1)
        with pytest.raises(InvalidFree, match="attached read-only"):
            reader.free(0)
    finally:
        reader.close()


# -- bad use ---------------------------------------------------------------------------
def test_payload_larger_than_the_arena_names_the_limit(arena):
    with pytest.raises(
        PayloadTooLarge, match="65537 bytes do not fit arena .* of 65536 bytes"
    ) as e:
        arena.alloc(65537, timeout=None)  # refused at once, never waits
    assert (e.value.size, e.value.limit) == (65537, 65536)
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("nbytes", [-1, 1.5, "10", None, True])
def test_alloc_size_must_be_a_non_negative_int(arena, nbytes):
    with pytest.raises(ValueError, match=f"nbytes={nbytes!r} must be an int >= 0"):
        arena.alloc(nbytes)


@pytest.mark.parametrize("timeout", [-1, math.nan, "0"])
def test_alloc_refuses_bad_timeouts(arena, timeout):
    with pytest.raises(ValueError, match="is not valid"):
        arena.alloc(1, timeout=timeout)
    assert arena.live_blocks == 0


def test_double_free_names_the_arena(arena):
    off = arena.alloc(10)
    arena.free(off)
    with pytest.raises(
        InvalidFree, match=f"arena '{arena.name}': offset {off} is not an allocated"
    ):
        arena.free(off)
    with pytest.raises(InvalidFree, match="offset 5 is not"):
        arena.free(5)
    assert arena.free_bytes == arena.size


@pytest.mark.parametrize("size", [0, -64, 63, 1.5e6, "4096"])
def test_arena_size_must_be_at_least_one_block(name, size):
    with pytest.raises(ValueError, match=f"size={size!r} must be an int >= 64"):
        Arena(name("bad"), size, create=True)


def test_view_outside_the_arena_is_refused(arena):
    with pytest.raises(ValueError, match=r"range \[65500, 65600\) is outside its 65536 bytes"):
        arena.view(65500, 100)
    with pytest.raises(ValueError, match="outside"):
        arena.view(-1, 1)


def test_attach_to_missing_arena_names_it(name):
    with pytest.raises(SegmentNotFound, match=f"'{name('gone')}' does not exist"):
        Arena(name("gone"))


def test_try_extend_grows_in_place_only_into_free_space(name):
    a = Arena(name("grow"), 4096, create=True)
    try:
        first = a.alloc(64)
        assert a.try_extend(first, 1000)  # the rest of the arena is free
        assert a.free_bytes == 4096 - 1024
        second = a.alloc(64)
        assert second == 1024
        assert not a.try_extend(first, 1100)  # `second` is in the way
        assert a.free_bytes == 4096 - 1024 - 64
        assert a.try_extend(second, 4096 - 1024)  # exactly the rest
        assert a.free_bytes == 0
        a.free(first)
        a.free(second)
        assert a.free_bytes == 4096 and a.alloc(4096) == 0
    finally:
        a.close()
        a.unlink()
