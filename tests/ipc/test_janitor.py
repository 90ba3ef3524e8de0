"""Cleanup: after a normal close, after SIGTERM and after SIGKILL of the creating
process, no name of ours is left in /dev/shm (the janitor sweeps for the dead)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
from ipc_support import gone, read_line, wait_for

from litserve.ipc import Segment, names
from litserve.ipc.janitor import Janitor, sweep

CREATOR = str(Path(__file__).with_name("shm_creator.py"))
EVERYTHING = [
    "arena",
    "requests",
    "slots",
    "sem.{}requests.items",
    "sem.{}requests.space",
    "sem.{}wake",
]


def expected(token: str) -> list[str]:
    stem = f"lsv_{token}_"
    return sorted(e.format(stem) if e.startswith("sem.") else stem + e for e in EVERYTHING)


def start_creator(popen, token: str, *extra: str) -> tuple[object, int, int]:
    proc = popen([sys.executable, CREATOR, token, *extra])
    ready = read_line(proc, 30, "the creator getting ready").split()
    assert ready[0] == "ready", ready
    janitor, child = int(ready[1]), int(ready[2])
    popen.track(janitor)
    if child:
        popen.track(child)
    assert names.leftovers(token) == expected(token), "names missing while the creator lives"
    return proc, janitor, child


def test_normal_close_and_unlink_leaves_nothing(popen, token):
    proc, janitor, _ = start_creator(popen, token)
    proc.stdin.write("close\n")
    proc.stdin.flush()
    assert read_line(proc, 30, "the creator closing") == "closed"
    assert proc.wait(30) == 0
    assert names.leftovers(token) == []
    wait_for(lambda: gone(janitor), 10, f"exit of the janitor (pid {janitor})")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_creator_leaves_nothing(popen, token, sig):
    proc, janitor, _ = start_creator(popen, token)
    proc.send_signal(sig)
    assert proc.wait(30) == -sig
    wait_for(lambda: names.leftovers(token) == [], 10, f"the janitor sweeping after {sig.name}")
    wait_for(lambda: gone(janitor), 10, f"exit of the janitor (pid {janitor})")


def test_forked_child_does_not_keep_names_alive(popen, token):
    proc, janitor, child = start_creator(popen, token, "fork")
    proc.kill()
    proc.wait(30)
    assert not gone(child), "the forked child should still be running"
    wait_for(lambda: names.leftovers(token) == [], 10, "a sweep while a forked child lives")
    wait_for(lambda: gone(janitor), 10, f"exit of the janitor (pid {janitor})")


def test_stop_sweeps_in_process(token):
    janitor = Janitor.start(token)
    seg = Segment(names.make(token, "x"), 64, create=True)
    seg.close()
    assert names.leftovers(token) == [f"lsv_{token}_x"]
    janitor.stop()
    assert names.leftovers(token) == []
    assert gone(janitor.pid)
    janitor.stop()  # twice is harmless


def test_sweep_removes_only_its_token(token):
    mine = Segment(names.make(token, "a"), 64, create=True)
    other = Segment(f"/lsv_{token}x_a", 64, create=True)
    try:
        assert sweep(token) == [f"lsv_{token}_a"]
        assert names.leftovers() and f"lsv_{token}x_a" in names.leftovers()
    finally:
        mine.close()
        other.close()
        other.unlink()
