"""Cleanup: whatever ends a server -- a clean close, SIGTERM, SIGKILL of the creator, or
SIGKILL of its whole tree, janitor included -- no name of it is left in /dev/shm at
the latest once ``sweep_dead`` ran (every server runs it at start).  A set is alive
while any process holds its lease, and only dead sets of our own uid are swept."""

from __future__ import annotations

import errno
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from ipc_support import gone, read_line, wait_for

from litserve.ipc import Janitor, Lease, LeaseNotFound, Segment, Semaphore, names
from litserve.ipc.janitor import sweep, sweep_dead
from litserve.ipc.lease import lease_path

CREATOR = str(Path(__file__).with_name("shm_creator.py"))
NOBODY = 65534


def expected(token: str, key: str) -> list[str]:
    """What shm_creator.py makes: its segments, the ring's semaphores, and the lease."""
    def entry(role: str) -> str:
        return names.make(token, role, key)[1:]

    sems = [entry("requests") + ".items", entry("requests") + ".space", entry("wake")]
    return sorted([entry("requests"), entry("arena"), entry("slots"),
                   *("sem." + s for s in sems), names.lease_entry(token)])


@dataclass
class Creator:
    proc: subprocess.Popen[str]
    janitor: int
    child: int  # 0: none
    key: str

    def expected(self, token: str) -> list[str]:
        return expected(token, self.key)


def start_creator(popen, token: str, child: str = "") -> Creator:
    """A creator in a session (and process group) of its own."""
    key = names.new_key()
    proc = popen([sys.executable, CREATOR, token, key, *([child] if child else [])],
                 start_new_session=True)
    ready = read_line(proc, 30, "the creator getting ready").split()
    assert ready[0] == "ready", ready
    made = Creator(proc, int(ready[1]), int(ready[2]), key)
    popen.track(made.janitor)
    if made.child:
        popen.track(made.child)
    assert names.leftovers(token) == made.expected(token), "names missing while it lives"
    return made


def waits_for_lease(pid: int, token: str) -> bool:
    """True while ``pid`` is blocked in flock(LOCK_EX) on the token's lease (/proc/locks
    lists a blocked request as ``N: -> FLOCK ADVISORY WRITE PID MAJ:MIN:INODE ...``)."""
    inode = os.stat(lease_path(token)).st_ino
    with open("/proc/locks") as f:
        for line in f:
            fields = line.split()
            if fields[1:3] == ["->", "FLOCK"] and fields[4] == "WRITE" \
                    and fields[5] == str(pid) and fields[6].endswith(f":{inode}"):
                return True
    return False


def ignored_signals(pid: int) -> set[int]:
    with open(f"/proc/{pid}/status") as f:
        mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn:"))
    return {s for s in range(1, 65) if mask >> (s - 1) & 1}


def test_normal_close_leaves_nothing(popen, token):
    c = start_creator(popen, token)
    c.proc.stdin.write("close\n")
    c.proc.stdin.flush()
    # Its own sweep found only the lease; the janitor swept after the lease was let go.
    said = read_line(c.proc, 30, "the creator closing")
    assert said == f"closed True ['{names.lease_entry(token)}']"
    assert c.proc.wait(30) == 0
    assert names.leftovers(token) == []
    assert gone(c.janitor)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_creator_leaves_nothing(popen, token, sig):
    c = start_creator(popen, token)
    c.proc.send_signal(sig)
    assert c.proc.wait(30) == -sig
    wait_for(lambda: names.leftovers(token) == [], 10, f"the janitor sweeping after {sig.name}")
    wait_for(lambda: gone(c.janitor), 10, f"exit of the janitor (pid {c.janitor})")


def test_forked_child_does_not_keep_names_alive(popen, token):
    c = start_creator(popen, token, "fork")
    c.proc.kill()
    c.proc.wait(30)
    assert not gone(c.child), "the forked child should still be running"
    wait_for(lambda: names.leftovers(token) == [], 10, "a sweep while a forked child lives")
    wait_for(lambda: gone(c.janitor), 10, f"exit of the janitor (pid {c.janitor})")


def test_a_member_keeps_the_names_until_it_exits(popen, token):
    c = start_creator(popen, token, "member")
    c.proc.kill()
    assert c.proc.wait(30) == -signal.SIGKILL  # its lock went with it
    wait_for(lambda: waits_for_lease(c.janitor, token), 10, "the janitor waiting for the lock")
    assert not gone(c.child)
    assert names.leftovers(token) == c.expected(token)
    os.kill(c.child, signal.SIGKILL)
    wait_for(lambda: names.leftovers(token) == [], 10, "the sweep after the member died")
    wait_for(lambda: gone(c.janitor), 10, f"exit of the janitor (pid {c.janitor})")


def test_the_janitor_outlives_termination_signals_and_sweeps_later(popen, token):
    c = start_creator(popen, token)
    stops = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    assert stops <= ignored_signals(c.janitor)  # so the kernel drops them when they are sent
    for sig in stops:
        os.kill(c.janitor, sig)
    wait_for(lambda: waits_for_lease(c.janitor, token), 10, "the janitor waiting for the lock")
    assert names.leftovers(token) == c.expected(token)
    c.proc.kill()
    c.proc.wait(30)
    wait_for(lambda: names.leftovers(token) == [], 10, "the janitor sweeping")
    wait_for(lambda: gone(c.janitor), 10, f"exit of the janitor (pid {c.janitor})")


def dead_set_of_another_user() -> tuple[str, list[str]]:
    """A dead set (its lease unlocked) whose entries belong to another uid: chowned for
    real when we are root, else ours (the test then sweeps as another uid)."""
    other = names.new_token()
    lease = Lease.create(other)
    seg = Segment(names.make(other, "x", names.new_key()), 64, create=True)
    seg.close()
    lease.release()
    entries = names.leftovers(other)
    if os.geteuid() == 0:
        for entry in entries:
            os.chown(os.path.join(names.SHM_DIR, entry), NOBODY, NOBODY)
    return other, entries


def test_sweep_dead_removes_a_tree_killed_at_once_and_nothing_else(popen, token):
    dead = start_creator(popen, token, "member")
    live_token = names.new_token()
    live = start_creator(popen, live_token)
    other, other_entries = dead_set_of_another_user()
    as_uid = None if os.geteuid() == 0 else os.geteuid() + 1
    try:
        os.killpg(dead.proc.pid, signal.SIGKILL)  # creator and member: one process group
        os.kill(dead.janitor, signal.SIGKILL)  # in a session of its own (psutil kills it too)
        dead.proc.wait(30)
        wait_for(lambda: gone(dead.child) and gone(dead.janitor), 10, "the whole tree dying")
        assert names.leftovers(token) == dead.expected(token), "nobody swept: yet"
        if as_uid is not None:  # not root: to a sweep as another uid, our entries are foreign
            assert sweep_dead(uid=as_uid, tokens={other}).removed == []
        swept = sweep_dead()
        assert set(dead.expected(token)) <= set(swept.removed)
        assert names.leftovers(token) == []
        assert names.leftovers(live_token) == live.expected(live_token)
        assert names.leftovers(other) == other_entries
        assert not [e for e, _ in swept.failed if token in e or live_token in e]
    finally:
        sweep_dead(uid=NOBODY if as_uid is None else None, tokens={other})
        assert names.leftovers(other) == []
        live.proc.kill()  # its janitor sweeps (before the popen fixture kills it)
        wait_for(lambda: names.leftovers(live_token) == [], 10, "the live set's janitor")


def test_a_held_lease_keeps_even_an_old_set(token):
    with Lease.create(token):
        seg = Segment(names.make(token, "x"), 64, create=True)
        seg.close()
        assert sweep_dead(grace=0, tokens={token}).removed == []
        assert len(names.leftovers(token)) == 2
    assert sweep_dead(tokens={token}).removed == [f"lsv_{token}_x", names.lease_entry(token)]


def test_a_set_without_a_lease_is_swept_once_all_of_it_is_old(token):
    seg = Segment(names.make(token, "x"), 64, create=True)
    seg.close()
    assert sweep_dead(grace=3600, tokens={token}).removed == []
    assert sweep_dead(grace=0, tokens={token}).removed == [f"lsv_{token}_x"]


def test_an_older_versions_set_is_kept_while_its_pid_lives():
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    tokens = {f"{pid:x}{secrets.token_hex(4)}": pid for pid in (os.getpid(), int(done.stdout))}
    mine, dead = tokens
    try:
        for tok in tokens:
            Semaphore(names.make(tok, "x"), create=True).close()
        assert sweep_dead(grace=0, tokens=set(tokens)).removed == [f"sem.lsv_{dead}_x"]
        assert names.leftovers(mine) == [f"sem.lsv_{mine}_x"]
    finally:
        for tok in tokens:
            sweep(tok)


def test_sweeps_go_on_past_an_entry_they_cannot_remove(token):
    """A non-empty directory named like an entry: unlink fails (EISDIR), even for root."""
    blocker = Path(names.SHM_DIR, f"lsv_{token}_dir")
    blocker.mkdir()
    (blocker / "inside").touch()
    try:
        for make_dead in (False, True):
            lease = Lease.create(token) if make_dead else None
            Segment(names.make(token, "a"), 64, create=True).close()
            Semaphore(names.make(token, "b"), create=True).close()
            if lease:
                lease.release()
            swept = sweep_dead(tokens={token}) if lease else sweep(token)
            assert swept.removed == [f"lsv_{token}_a", f"sem.lsv_{token}_b",
                                     *([names.lease_entry(token)] if lease else [])]
            assert swept.failed == [(blocker.name, errno.EISDIR)]
            assert "EISDIR" in swept.problems() and blocker.name in swept.problems()
            assert names.leftovers(token) == [blocker.name]
    finally:
        (blocker / "inside").unlink()
        blocker.rmdir()


def test_sweep_removes_only_its_token(token):
    mine = Segment(names.make(token, "a"), 64, create=True)
    other = Segment(f"/lsv_{token}x_a", 64, create=True)
    try:
        assert sweep(token).removed == [f"lsv_{token}_a"]
        assert f"lsv_{token}x_a" in names.leftovers()
    finally:
        mine.close()
        other.close()
        other.unlink()


def test_stop_after_release_sweeps(token):
    lease = Lease.create(token)
    janitor = Janitor.start(token)
    Segment(names.make(token, "x"), 64, create=True).close()
    assert names.leftovers(token) == [names.lease_entry(token), f"lsv_{token}_x"]
    lease.release()
    assert janitor.stop() is True
    assert names.leftovers(token) == []
    assert gone(janitor.pid)
    assert janitor.stop() is True  # twice is harmless


def test_stop_kills_a_janitor_that_overruns(token):
    lease = Lease.create(token)
    janitor = Janitor.start(token)
    assert janitor.stop(timeout=0) is False  # we still hold the lease: it must wait
    assert gone(janitor.pid)
    assert names.leftovers(token) == [names.lease_entry(token)]
    lease.release()
    assert sweep(token).removed == [names.lease_entry(token)]


def test_a_janitor_needs_a_lease(token):
    with pytest.raises(LeaseNotFound, match=f"lease '/dev/shm/lsv_{token}_lease' does not exist"):
        Janitor.start(token)
