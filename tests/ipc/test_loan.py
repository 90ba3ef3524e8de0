"""Loans of a segment's bytes (segment.Loan) and the C steps under them: ``_shm.map_file``
and ``_shm.privatize``."""

from __future__ import annotations

import errno
import gc
import mmap
from pathlib import Path

import numpy as np
import pytest

from litserve.ipc import Segment, _shm
from litserve.ipc import segment as segment_mod
from litserve.ipc.segment import PAGE

SIZE = 64 * PAGE


@pytest.fixture
def pair(name):
    """(owner, reader): the segment's creator, and a reader that kept its fd."""
    owner = Segment(name("arena"), SIZE, create=True)
    reader = Segment(name("arena"), keep_fd=True)
    owner.buf[:] = b"\x01" * SIZE
    yield owner, reader
    reader.close()
    owner.close()
    owner.unlink()


def mapping_of(address: int) -> str:
    """The /proc/self/maps line of the mapping that holds ``address``."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        if lo <= address < hi:
            return line
    raise AssertionError(f"address {address:#x} is not mapped")


def maps_count() -> int:
    return len(Path("/proc/self/maps").read_text().splitlines())


def rss_bytes() -> int:
    fields = Path("/proc/self/statm").read_text().split()
    return int(fields[1]) * PAGE


@pytest.mark.parametrize("cow", [False, True], ids=["shared", "copy-on-write"])
def test_a_loan_shows_exactly_its_bytes_and_takes_writes(pair, cow):
    owner, reader = pair
    m = reader.loan(3 * PAGE + 64, 5 * PAGE, copy_on_write=cow)  # neither end on a page
    a = np.ndarray((5 * PAGE,), np.uint8, buffer=m.view)
    assert int(a.sum()) == 5 * PAGE
    assert m.nbytes == 6 * PAGE  # from the page floor to the page ceiling
    assert segment_mod.stats.loans >= 1
    a[:] = 7
    # the borrower's writes land in its bytes (copy-on-write: only in its own pages)
    assert bytes(owner.buf[3 * PAGE + 64 : 3 * PAGE + 72]) == (b"\x01" if cow else b"\x07") * 8
    assert bytes(owner.buf[3 * PAGE : 3 * PAGE + 64]) == b"\x01" * 64  # the neighbours' bytes
    assert bytes(owner.buf[8 * PAGE + 64 : 8 * PAGE + 72]) == b"\x01" * 8
    assert owner.name.lstrip("/") in mapping_of(a.ctypes.data)  # still the segment's pages
    assert mapping_of(a.ctypes.data).split()[1] == ("rw-p" if cow else "rw-s")
    del a
    assert m.settle() is True


def test_settle_with_nothing_held_keeps_the_mapping_idle_for_the_next_loan(pair):
    owner, reader = pair
    before = segment_mod.stats.kept
    m = reader.loan(0, 8 * PAGE)
    address = np.ndarray((1,), np.uint8, buffer=m.view).ctypes.data
    assert m.settle() is True
    assert segment_mod.stats.kept == before  # no copy
    assert m.settle() is True  # idempotent
    mapped = segment_mod.stats.mapped
    again = reader.loan(0, 8 * PAGE)  # the same pages: the idle mapping, no new one
    assert segment_mod.stats.mapped == mapped
    assert np.ndarray((1,), np.uint8, buffer=again.view).ctypes.data == address
    owner.buf[0] = 77  # a shared mapping: the owner's later writes show
    assert again.view[0] == 77
    assert again.settle() is True
    reader.close()  # idle mappings go with the segment
    with pytest.raises(AssertionError, match="is not mapped"):
        mapping_of(address)


def test_idle_mappings_are_bounded(pair):
    _, reader = pair
    count = segment_mod.IDLE_MAPPINGS + 2
    for i in range(count):
        m = reader.loan(i * 2 * PAGE, PAGE)
        assert m.settle() is True
    # /proc/self/maps lines of our segment, by file offset (the reader's whole mapping: 0)
    with open("/proc/self/maps") as maps:
        lines = [line.split() for line in maps if reader.name[1:] in line]
    offsets = sorted(int(f[2], 16) for f in lines if int(f[2], 16) or
                     int(f[0].split("-")[1], 16) - int(f[0].split("-")[0], 16) == PAGE)
    assert offsets == [i * 2 * PAGE for i in range(2, count)], offsets  # the oldest went


@pytest.mark.parametrize("keep", [
    lambda v: np.ndarray((4 * PAGE,), np.uint8, buffer=v),  # what wire.view makes
    lambda v: np.ndarray((4 * PAGE,), np.uint8, buffer=v)[PAGE:][::2],  # a view of a view
    lambda v: np.frombuffer(v, np.uint8),
    lambda v: memoryview(v)[10:],  # a memoryview slice (a form file's getbuffer)
])
@pytest.mark.parametrize("cow", [False, True], ids=["shared", "copy-on-write"])
def test_a_kept_view_gets_a_private_copy_that_never_changes(pair, keep, cow):
    owner, reader = pair
    m = reader.loan(2 * PAGE, 4 * PAGE, copy_on_write=cow)
    kept = keep(m.view)
    np.ndarray((4 * PAGE,), np.uint8, buffer=m.view)[:PAGE] = 9  # a write before the end
    expected = bytes(memoryview(kept).cast("B")) if isinstance(kept, memoryview) \
        else kept.tobytes()
    address = np.asarray(kept).ctypes.data
    assert m.settle() is False
    owner.buf[:] = b"\x05" * SIZE  # the owner reuses the block
    got = bytes(memoryview(kept).cast("B")) if isinstance(kept, memoryview) else kept.tobytes()
    assert got == expected
    assert np.asarray(kept).ctypes.data == address  # same address: every pointer stays valid
    assert owner.name.lstrip("/") not in mapping_of(address)  # anonymous memory now
    np.asarray(kept)[...] = 3  # still writable, and private
    assert bytes(owner.buf[2 * PAGE : 2 * PAGE + 8]) == b"\x05" * 8
    assert segment_mod.stats.kept_bytes >= 4 * PAGE


def test_before_settle_the_owners_writes_show_through_unwritten_pages(pair):
    """Why a loan must be settled before the owner reuses the block (even one made
    copy-on-write: a page not yet written is the segment's)."""
    owner, reader = pair
    m = reader.loan(0, 2 * PAGE, copy_on_write=True)
    a = np.ndarray((2 * PAGE,), np.uint8, buffer=m.view)
    a[:PAGE] = 4  # page 0 is now private, page 1 still the segment's
    owner.buf[: 2 * PAGE] = b"\x08" * (2 * PAGE)
    assert a[0] == 4 and a[PAGE] == 8
    del a
    m.settle()


def test_kept_views_outlive_the_segment_name_and_fd(name):
    owner = Segment(name("gone"), SIZE, create=True)
    reader = Segment(name("gone"), keep_fd=True)
    owner.buf[:] = b"\x02" * SIZE
    kept = np.ndarray((SIZE,), np.uint8, buffer=reader.loan(0, SIZE).view)
    unsettled = reader.loan(0, SIZE)
    owner.close()
    owner.unlink()  # the front died and was swept
    reader.close()
    assert int(kept.sum()) == 2 * SIZE  # (never settled: the mapping keeps the pages)
    assert int(np.frombuffer(unsettled.view, np.uint8).sum()) == 2 * SIZE
    assert unsettled.settle() is True


def test_keeping_and_dropping_many_inputs_leaks_no_mapping_and_no_memory(pair):
    owner, reader = pair
    kept: list[np.ndarray] = []

    def churn(rounds: int) -> None:
        for i in range(rounds):
            m = reader.loan((i % 8) * 4 * PAGE + 64, 16 * PAGE)
            a = np.ndarray((16 * PAGE,), np.uint8, buffer=m.view)
            a[::PAGE] += 1  # a write into every page: private pages to free later
            if i % 2:
                kept.append(a)
            del a
            m.settle()
            if len(kept) > 20:
                kept.clear()

    churn(200)  # warm up the allocator and the page tables
    gc.collect()
    maps, rss = maps_count(), rss_bytes()
    churn(2000)
    kept.clear()
    gc.collect()
    assert maps_count() <= maps + 4, "private mappings were left behind"
    assert rss_bytes() <= rss + 8 * 16 * PAGE * 4, "private copies were not freed"


def test_privatize_and_map_file_check_their_arguments():
    with pytest.raises(ValueError, match="page-aligned buffer of whole"):
        _shm.privatize(bytearray(PAGE + 1))
    m = mmap.mmap(-1, 2 * PAGE, flags=mmap.MAP_PRIVATE)
    try:
        with pytest.raises(ValueError, match=f"whole {PAGE}-byte pages"):
            _shm.privatize(memoryview(m)[1:])
        with pytest.raises(BufferError, match="not writable"):
            _shm.privatize(b"\0" * PAGE)
        with pytest.raises(ValueError, match="offset=10 must be a multiple of the page size"):
            _shm.map_file(m, 0, 10, False)
        with pytest.raises(ValueError, match="fd=-1 is not an open file descriptor"):
            _shm.map_file(m, -1, 0, False)
        with pytest.raises(OSError, match=r"map_file: mmap\(MAP_SHARED \| MAP_FIXED\) of "
                                          rf"{2 * PAGE} bytes failed: Bad file descriptor") as e:
            _shm.map_file(m, 2**30, 0, False)
        assert e.value.errno == errno.EBADF
        m[:5] = b"hello"
        _shm.privatize(m)  # anonymous pages over anonymous pages: the bytes stay
        assert m[:5] == b"hello"
    finally:
        m.close()


def test_private_needs_the_kept_fd_and_a_range_inside(name):
    seg = Segment(name("nofd"), SIZE, create=True)
    try:
        with pytest.raises(ValueError, match="without keep_fd=True"):
            seg.loan(0, PAGE)
        seg.close()
        reader = Segment(name("nofd"), keep_fd=True)
        with pytest.raises(ValueError, match=rf"range \[{SIZE - 1}, {SIZE + 1}\) .* outside"):
            reader.loan(SIZE - 1, 2)
        with pytest.raises(ValueError, match="is empty"):
            reader.loan(0, 0)
        reader.close()
        with pytest.raises(ValueError, match="or is closed"):
            reader.loan(0, PAGE)
    finally:
        seg.unlink()

