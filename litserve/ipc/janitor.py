"""Removing a server's names: after its last process died, whatever killed it.

Three sweeps, each run by someone who knows the set is finished (``lease.py``):

    sweep(token)   the server itself, at the end of a clean shutdown
    Janitor        a watchdog process per server: waits for LOCK_EX on the lease, that
                   is, for the last front, worker and supervisor to be gone, then sweeps
    sweep_dead()   every server at start, before it creates anything: removes the sets
                   of our uid whose lease nobody holds, for the case where the janitor
                   was killed along with its server (``kill -9 -- -PGID`` of the tree
                   plus the janitor's pid, or a psutil harness killing every child)

None of them ever touches another user's entry, and none stops at an entry it cannot
remove: every error is collected in the ``Swept`` it returns.

The janitor (``_sweep.py``, run with ``python -I -S``) ignores SIGTERM, SIGINT and SIGHUP,
lives in its own session (a Ctrl+C at the server's process group does not reach it)
with ``/`` as its working directory, and inherits only stderr, for diagnostics.  It
exits on its own once the server's last process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import select
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import _sweep, names
from .errors import IPCError, LeaseNotFound
from .lease import lease_path

__all__ = ["GRACE_S", "Janitor", "Swept", "sweep", "sweep_dead"]

GRACE_S = 60.0  # a set without a lease is swept once all its entries are this old
READY_S = 10.0  # seconds a new janitor may take to say it is watching
_SCRIPT = str(Path(__file__).with_name("_sweep.py"))
_running: set[Janitor] = set()  # started and not stopped: no Popen finalised while it runs
_LEGACY = re.compile(r"[0-9a-f]{9,15}")  # an older version's token: pid hex + 8 hex digits


@dataclass
class Swept:
    """What a sweep did: entries removed, and (entry, errno) of those it could not remove."""

    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, int]] = field(default_factory=list)

    def add(self, removed: list[str], failed: list[tuple[str, int]]) -> None:
        self.removed += removed
        self.failed += failed

    def problems(self) -> str:
        """One line naming every entry left behind and why ('' if none)."""
        return "; ".join(f"/dev/shm/{entry}: {errno.errorcode.get(code, code)} "
                         f"({os.strerror(code)})" for entry, code in self.failed)


class Janitor:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    @classmethod
    def start(cls, token: str) -> Janitor:
        """Start the token's janitor.  Call after ``Lease.create(token)``; returns once
        the janitor watches the lease (``LeaseNotFound`` if there is none)."""
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", _SCRIPT, token],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, bufsize=0,
            start_new_session=True, close_fds=True, cwd="/",
        )
        try:
            said = _first_word(proc)
        except BaseException:
            _kill(proc)
            raise
        if said != b"R":
            _kill(proc)
            if said == b"N":
                raise LeaseNotFound(f"janitor: lease {lease_path(token)!r} does not exist; "
                                    "start the janitor after Lease.create")
            raise IPCError(f"janitor for token {token!r} exited with {proc.returncode} "
                           "before it was ready (its stderr is above)")
        janitor = cls(proc)
        _running.add(janitor)
        return janitor

    @property
    def pid(self) -> int:
        return self._proc.pid

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Wait for the janitor to sweep and exit, which it does once no process holds the
        lease: call it after this process released its own.  True: it finished; False:
        it was still waiting after ``timeout`` s (some process still holds the lease) and
        was killed; the next server's ``sweep_dead`` removes the set.  Idempotent."""
        _running.discard(self)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill(self._proc)
            return False
        return self._proc.returncode == 0


def _first_word(proc: subprocess.Popen[bytes]) -> bytes:
    out = proc.stdout
    assert out is not None
    try:
        if not select.select([out], [], [], READY_S)[0]:
            raise IPCError(f"janitor (pid {proc.pid}) did not start within {READY_S} s")
        said = out.read(1) or b""
    finally:
        out.close()
    if not said:
        proc.wait(READY_S)
    return said


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()


def sweep(token: str) -> Swept:
    """Remove every entry of ``token`` (ours only, the lease last); never raises for one."""
    swept = Swept()
    swept.add(*_sweep.unlink_all(token, os.geteuid()))
    return swept


def sweep_dead(grace: float = GRACE_S, *, uid: int | None = None,
               tokens: set[str] | None = None) -> Swept:
    """Remove the sets of ``uid`` (default: ours) whose server is gone; never raises for
    one entry.  A set with a lease is dead when ``LOCK_EX`` on it can be had at once (it
    is swept holding the lock); a set without one (older versions, bare test objects) is
    dead once all its entries are ``grace`` s old, unless its token is an older
    version's ``<pid><8 hex>`` and that pid lives.  ``tokens``: look at those only."""
    uid = os.geteuid() if uid is None else uid
    swept = Swept()
    for token, (leased, youngest) in _sets(uid).items():
        if tokens is not None and token not in tokens:
            continue
        if leased:
            _sweep_if_unlocked(token, uid, swept)
        elif time.time() - youngest >= grace and not _legacy_alive(token):
            swept.add(*_sweep.unlink_all(token, uid))
    return swept


def _sets(uid: int) -> dict[str, tuple[bool, float]]:
    """token -> (has a lease, ctime of its youngest entry), over the entries of ``uid``."""
    found: dict[str, tuple[bool, float]] = {}
    for entry in names.leftovers():
        parsed = names.parse(entry)
        if parsed is None:
            continue
        try:
            st = os.lstat(os.path.join(names.SHM_DIR, entry))
        except FileNotFoundError:
            continue
        if st.st_uid != uid:
            continue
        token = parsed[0]
        leased, youngest = found.get(token, (False, 0.0))
        lease = entry == names.lease_entry(token) and stat.S_ISREG(st.st_mode)
        found[token] = (leased or lease, max(youngest, st.st_ctime))
    return found


def _sweep_if_unlocked(token: str, uid: int, swept: Swept) -> None:
    path = lease_path(token)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return  # swept meanwhile
    except OSError as exc:
        swept.failed.append((names.lease_entry(token), exc.errno or 0))
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        swept.add(*_sweep.unlink_all(token, uid))
    except BlockingIOError:
        pass  # alive
    except OSError as exc:
        swept.failed.append((names.lease_entry(token), exc.errno or 0))
    finally:
        os.close(fd)


def _legacy_alive(token: str) -> bool:
    """An older version's token is its creator's pid in hex and 8 random hex digits."""
    pid = int(token[:-8], 16) if _LEGACY.fullmatch(token) else 0
    if pid < 1:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # another user's process
    except ProcessLookupError:
        return False
    return True
