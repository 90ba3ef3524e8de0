"""Names: one token per server, and ``leftovers`` listing exactly that token's entries."""

from __future__ import annotations

from litserve.ipc import Segment, Semaphore, names


def test_make_and_tokens():
    a, b = names.new_token(), names.new_token()
    assert a != b
    assert names.make(a, "req") == f"/lsv_{a}_req"


def test_leftovers_lists_segments_and_semaphores_of_one_token(token, name):
    seg = Segment(name("x"), 64, create=True)
    sem = Semaphore(name("x.items"), create=True)
    # a token that merely starts with ours is someone else's
    other = Segment(f"/lsv_{token}0_x", 64, create=True)
    try:
        assert names.leftovers(token) == [f"lsv_{token}_x", f"sem.lsv_{token}_x.items"]
        assert set(names.leftovers()) >= {f"lsv_{token}_x", f"lsv_{token}0_x"}
    finally:
        for obj in (seg, sem, other):
            obj.close()
            obj.unlink()
    assert names.leftovers(token) == []
