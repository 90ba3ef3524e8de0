"""Segment: create / attach / close / unlink, and clear errors naming the segment."""

from __future__ import annotations

import os
import time

import numpy as np
import posix_ipc
import pytest

from litserve.ipc import Segment, SegmentExists, SegmentNotFound, SharedMemoryFull, names
from litserve.ipc import segment as segment_mod

MiB = 1 << 20


def test_create_attach_share_bytes_then_unlink(name, token):
    with Segment(name("s"), 10_000, create=True) as mine, Segment(name("s")) as theirs:
        assert mine.size == theirs.size >= 10_000
        mine.buf[:5] = b"hello"
        assert bytes(theirs.buf[:5]) == b"hello"
        assert names.leftovers(token) == [f"lsv_{token}_s"]
        mine.unlink()
        assert names.leftovers(token) == []
        assert bytes(theirs.buf[:5]) == b"hello"  # mappings outlive the name
    assert segment_mod.unlink(name("s")) is False  # already gone


def test_close_is_idempotent_and_tolerates_outstanding_views(name):
    seg = Segment(name("v"), 4096, create=True)
    try:
        array = np.frombuffer(seg.buf, dtype=np.uint8)  # user code still holds a view
        seg.close()
        seg.close()
        assert array.sum() == 0
        del array
    finally:
        seg.unlink()


def test_create_existing_names_it(name):
    with Segment(name("dup"), 64, create=True) as seg:
        try:
            with pytest.raises(SegmentExists, match=f"segment '{name('dup')}' already exists"):
                Segment(name("dup"), 64, create=True)
        finally:
            seg.unlink()


def test_attach_missing_names_it(name):
    with pytest.raises(SegmentNotFound, match=f"segment '{name('nope')}' does not exist") as e:
        Segment(name("nope"))
    assert isinstance(e.value, FileNotFoundError)


def test_attach_to_an_unfinished_segment_is_refused(name):
    half = posix_ipc.SharedMemory(name("half"), posix_ipc.O_CREX, size=0)
    half.close_fd()
    try:
        with pytest.raises(SegmentNotFound, match=r"is empty \(its creator did not finish\)"):
            Segment(name("half"))
    finally:
        half.unlink()


@pytest.mark.parametrize("size", [None, 0, -1, 1.5, "64"])
def test_bad_size_names_the_segment_and_value(name, size):
    with pytest.raises(ValueError, match=f"segment '{name('z')}': size={size!r} must be a pos"):
        Segment(name("z"), size, create=True)


@pytest.mark.parametrize("size", [1, 4096, 3 * MiB + 5])
def test_a_new_segment_is_backed_in_full(name, size):
    """Every page is allocated at creation (a hole written after /dev/shm filled up would
    be a SIGBUS); an attached segment keeps them."""
    with Segment(name("full"), size, create=True) as seg:
        try:
            st = os.stat(os.path.join(names.SHM_DIR, name("full")[1:]))
            assert st.st_blocks * 512 >= size
        finally:
            seg.unlink()


def test_a_segment_larger_than_dev_shm_fails_at_once_and_leaves_no_name(name, token):
    """Larger than the whole of /dev/shm (not merely its free part, so that the test never
    fills it for others): the kernel refuses before allocating anything."""
    st = os.statvfs(names.SHM_DIR)
    if st.f_blocks == 0:
        pytest.skip("/dev/shm has no size limit")
    size = st.f_blocks * st.f_frsize + MiB
    start = time.monotonic()
    with pytest.raises(SharedMemoryFull) as caught:
        Segment(name("huge"), size, create=True)
    assert time.monotonic() - start < 5
    assert names.leftovers(token) == []
    message = str(caught.value)
    assert f"segment '{name('huge')}' needs {size / MiB:.1f} MiB" in message
    assert "MiB free" in message and "--shm-size" in message
    assert "max_payload_size / response_buffer_size" in message
    assert (caught.value.name, caught.value.size) == (name("huge"), size)
    assert 0 <= caught.value.free <= size
