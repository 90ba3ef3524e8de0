"""Names: a random token per server, a secret key mixed into every name (so that nobody
can compute one from what /dev/shm lists), within NAME_MAX, and ``leftovers`` / ``parse``
reading them back."""

from __future__ import annotations

import os
from dataclasses import astuple

import pytest

from litserve import protocol as P
from litserve.config import Plan
from litserve.ipc import Ring, Segment, Semaphore, names


def test_make_without_a_key_and_tokens():
    a, b = names.new_token(), names.new_token()
    assert a != b
    assert names.make(a, "req") == f"/lsv_{a}_req"


def test_tokens_carry_no_pid():
    """(They used to start with the pid in hex: every token of one process alike.)"""
    pid = f"{os.getpid():x}"
    tokens = [names.new_token() for _ in range(20)]
    assert len({t[: len(pid)] for t in tokens}) > 1
    assert all(len(t) == 16 and int(t, 16) >= 0 for t in tokens)


def every_role(fronts: int = 3, workers: int = 3, gens: int = 3) -> list[str]:
    """Every role a server names, as the typed name records spell them (given the
    identity as their namer, they hold the roles themselves)."""
    def role(r: str) -> str:
        return r

    records: list[object] = [P.ServerNames.of(role)]
    for gen in range(gens):
        records += [P.FrontNames.of(role, i, gen) for i in range(fronts)]
        records += [P.WorkerNames.of(role, j, gen) for j in range(workers)]
    return [r for record in records for r in astuple(record)]


def plan(token: str) -> Plan:
    return Plan(apis_blob=b"", routes=[], devices=["cpu"], fronts=1, timeout=None, token=token)


def test_the_next_name_cannot_be_computed_without_the_key():
    """All that /dev/shm shows of a server is its token and the roles (fixed strings):
    two servers with the same token but different keys share no name, and what a name
    adds to them (the mac) changes with the key."""
    token = names.new_token()
    a, b = plan(token), plan(token)
    assert a.name_key != b.name_key
    for role in every_role():
        assert a.name(role) != b.name(role)
        for p in (a, b):
            visible = names.make(token, role) + "_"
            assert p.name(role).startswith(visible)
            assert p.name(role).removeprefix(visible) == names.mac(p.name_key, role)
    macs = {names.mac(names.new_key(), "f0.1.arena") for _ in range(50)}
    assert len(macs) == 50


def test_the_key_stays_out_of_the_plans_repr():
    p = plan(names.new_token())
    assert p.name_key not in repr(p) and "name_key" not in repr(p)


def test_the_longest_role_fits_with_a_rings_semaphores(token):
    key = names.new_key()
    longest = "r" * (names.NAME_MAX - names.SUFFIX_ROOM - len(f"sem.lsv_{token}__") - 16)
    ring = Ring(names.make(token, longest, key), 8, 64, create=True)
    try:
        assert len(names.leftovers(token)) == 3
        assert max(len(e) for e in names.leftovers(token)) <= names.NAME_MAX
    finally:
        ring.close()
        ring.unlink()
    with pytest.raises(ValueError, match=f"is {len(longest) + 1} characters long; with this "
                                         f"token at most {len(longest)} fit"):
        names.make(token, longest + "r", key)


@pytest.mark.parametrize("role", ["a_b", "a/b", "lease", "ä"])
def test_bad_roles_are_refused(role):
    with pytest.raises(ValueError, match=f"name role={role!r} is not valid"):
        names.make("abc", role, "k")


def test_bad_tokens_are_refused():
    with pytest.raises(ValueError, match="name token='a_b' is not valid"):
        names.make("a_b", "req")


def test_parse_reads_token_and_role_back():
    key = names.new_key()
    ring = names.make("tok", "f0.1.done", key)[1:]
    assert names.parse(f"sem.{ring}.items") == ("tok", "f0.1.done")
    assert names.parse(ring) == ("tok", "f0.1.done")
    assert names.parse(names.lease_entry("tok")) == ("tok", "lease")
    assert names.parse("lsv_tok_x.items") == ("tok", "x.items")
    for other in ("sem.other", "lsv_", "lsv_tok", "lsv__x"):
        assert names.parse(other) is None


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
