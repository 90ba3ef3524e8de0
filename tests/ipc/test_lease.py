"""The lease: a private file, never visible unlocked, held with LOCK_SH by every process
of a server; the set is alive exactly while someone holds it."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ipc_support import gone, read_line, wait_for
from test_janitor import CREATOR, waits_for_lease

from litserve.ipc import Lease, LeaseNotFound, SegmentExists, names
from litserve.ipc.janitor import sweep
from litserve.ipc.lease import alive, lease_path, tokens_of


def test_create_makes_a_private_held_lease(token):
    lease = Lease.create(token)
    try:
        st = os.lstat(lease_path(token))
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_uid == os.geteuid()
        assert fcntl.fcntl(lease._fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert alive(token) and lease.held
        assert tokens_of(os.getpid()).count(token) == 1
        with pytest.raises(SegmentExists, match=f"lease '{lease_path(token)}' already exists"):
            Lease.create(token)
    finally:
        lease.release()
    assert not alive(token) and not lease.held
    assert token not in tokens_of(os.getpid())
    lease.release()  # twice is harmless
    assert sweep(token).removed == [names.lease_entry(token)]


def test_the_lease_is_never_visible_unlocked(token):
    """A watcher opens the lease the moment its name appears and tries LOCK_EX at once."""
    seen: list[str] = []

    def watch() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                fd = os.open(lease_path(token), os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                seen.append("unlocked")
            except BlockingIOError:
                seen.append("locked")
            finally:
                os.close(fd)
            return

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with Lease.create(token):
            watcher.join(10)
    finally:
        watcher.join(10)
        sweep(token)
    assert seen == ["locked"]


def test_a_joined_lease_keeps_the_set_alive_after_its_creator_let_go(token):
    created = Lease.create(token)
    joined = Lease.join(token)  # another open file description: a lock of its own
    created.release()
    assert alive(token)
    joined.release()
    assert not alive(token)
    sweep(token)


def test_join_without_a_lease_names_it(token):
    with pytest.raises(LeaseNotFound, match=f"lease '{lease_path(token)}' does not exist"):
        Lease.join(token)


def test_join_refuses_a_set_being_swept(token):
    Lease.create(token).release()
    sweeper = os.open(lease_path(token), os.O_RDONLY)
    try:
        fcntl.flock(sweeper, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a janitor or sweep_dead
        with pytest.raises(LeaseNotFound, match="has stopped; its names are being removed"):
            Lease.join(token)
    finally:
        os.close(sweeper)
        sweep(token)


def test_a_waiting_janitor_does_not_hold_back_a_joining_worker(popen, token):
    """Linux flock has no writer preference: while the janitor waits for LOCK_EX, a later
    LOCK_SH (a restarted worker joining) is granted at once (join never waits)."""
    proc = popen([sys.executable, CREATOR, token, names.new_key()], start_new_session=True)
    ready = read_line(proc, 30, "the creator getting ready").split()
    janitor = int(ready[1])
    popen.track(janitor)
    wait_for(lambda: waits_for_lease(janitor, token), 10, "the janitor waiting for the lock")
    worker = Lease.join(token)
    try:
        assert waits_for_lease(janitor, token)
        proc.kill()
        proc.wait(30)
        # woken by the creator's death, it waits again: for us
        wait_for(lambda: waits_for_lease(janitor, token), 10, "the janitor waiting again")
        assert len(names.leftovers(token)) == 7
    finally:
        worker.release()
    wait_for(lambda: names.leftovers(token) == [], 10, "the sweep after the last holder left")
    wait_for(lambda: gone(janitor), 10, f"exit of the janitor (pid {janitor})")


def test_tokens_of_another_process(popen, token):
    proc = popen([sys.executable, CREATOR, token, names.new_key()], start_new_session=True)
    popen.track(int(read_line(proc, 30, "the creator getting ready").split()[1]))
    assert tokens_of(proc.pid) == [token]
    proc.kill()
    proc.wait(30)
    assert tokens_of(proc.pid) == []
    wait_for(lambda: names.leftovers(token) == [], 10, "the janitor sweeping")


CHILD_FDS = """
import os
for fd in os.listdir("/proc/self/fd"):
    try:
        print(os.stat(f"/proc/self/fd/{fd}").st_ino)
    except OSError:
        pass
"""


def inodes_in_a_child() -> set[int]:
    """Inodes of the descriptors an exec'd child gets (started without close_fds)."""
    out = subprocess.run([sys.executable, "-S", "-c", CHILD_FDS], close_fds=False,
                         check=True, capture_output=True, text=True).stdout
    return {int(line) for line in out.split()}


def test_an_execd_child_inherits_no_lease(token):
    with Lease.create(token) as lease:
        inode = os.stat(lease_path(token)).st_ino
        assert inode not in inodes_in_a_child()
        leak = os.dup(lease._fd)
        os.set_inheritable(leak, True)  # the check sees a descriptor that does leak
        try:
            assert inode in inodes_in_a_child()
        finally:
            os.close(leak)
    sweep(token)


INNER_TEST = """
import os
from litserve.ipc import Segment, names

def test_make_one_name_per_token():
    for token in os.environ["TOKENS"].split():
        Segment(names.make(token, "x"), 64, create=True).close()
"""


def test_the_session_guard_fails_on_a_leak_but_spares_a_live_set(tmp_path, token):
    """tests/conftest.py in a session of its own: a dead set's entry fails it (and is
    removed); an entry of a set whose lease this (outside) process holds is spared."""
    (tmp_path / "conftest.py").write_text(Path(__file__).parents[1].joinpath(
        "conftest.py").read_text())
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    live = Lease.create(names.new_token())
    try:
        env = {**os.environ, "TOKENS": f"{token} {live.token}", "PYTHONPATH": str(
            Path(__file__).parents[2]), "LITSERVE_SHM_GUARD_GRACE_S": "0"}
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              str(tmp_path)], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=60)
        assert run.returncode != 0, run.stdout
        assert f"left shared-memory names in /dev/shm: ['lsv_{token}_x'" in run.stdout
        assert f"lsv_{live.token}_x" not in run.stdout
        assert names.leftovers(token) == []
        assert names.leftovers(live.token) == [names.lease_entry(live.token),
                                               f"lsv_{live.token}_x"]
    finally:
        live.release()
        sweep(live.token)
