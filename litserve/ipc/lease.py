"""A server's lease: liveness that the kernel releases when a process dies.

Every server token has one lease file, ``/dev/shm/lsv_<token>_lease`` (mode 0600).  The
supervisor makes it (``Lease.create``) before any other name of the token exists; every
front and worker joins it first thing (``Lease.join``).  Each of them holds
``flock(LOCK_SH)`` on it for as long as it lives, and the kernel drops the lock of a
process that dies, SIGKILL included.  So the token's names are alive exactly while
some process holds the lease: whoever gets ``LOCK_EX`` on it (the janitor, blocking; a
later server's ``sweep_dead``, without waiting) knows that every process of the server
is gone, and removes the token's names while it holds the lock, the lease last.

    who                  lock             when
    supervisor           LOCK_SH          from Lease.create until release()
    front, worker        LOCK_SH          from Lease.join until release() or exit
    janitor              waits LOCK_EX    from start; gets it when the last holder is gone
    sweep_dead           LOCK_EX|LOCK_NB  at a server's start: succeeds only on dead sets

A waiting ``LOCK_EX`` does not hold back a later ``LOCK_SH`` on Linux
(``tests/ipc/test_lease.py`` checks it): a worker restarted while the janitor waits
joins at once.  ``LOCK_EX`` held means the set is dead and being swept, so ``join``
never waits for it: it fails, as it does when the lease file is gone or was replaced.

The file is never visible unlocked: it is made unnamed (``O_TMPFILE``), locked, and
only then linked to its name (which fails if the name exists).  Its descriptor is
close-on-exec, and a child made by ``os.fork`` closes its copy at once (a plain close,
which leaves the parent's lock alone): only processes that join keep the set alive.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from . import names
from .errors import LeaseNotFound, SegmentExists

_held: set[Lease] = set()
_fork_hook: list[bool] = []  # registered on the first lease, not at import


class Lease:
    """``LOCK_SH`` on a server's lease file, held until ``release`` (or exit)."""

    def __init__(self, token: str, fd: int) -> None:
        self.token, self.path, self._fd = token, lease_path(token), fd
        _held.add(self)
        if not _fork_hook:
            _fork_hook.append(True)
            os.register_at_fork(after_in_child=_forget_in_child)

    @classmethod
    def create(cls, token: str) -> Lease:
        """Make the token's lease, already locked; ``SegmentExists`` if it exists."""
        path = lease_path(token)
        fd = os.open(names.SHM_DIR, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            _link(fd, path)
        except FileExistsError as exc:
            os.close(fd)
            raise SegmentExists(f"lease {path!r} already exists: token {token!r} is "
                                "another server's") from exc
        except BaseException:
            os.close(fd)
            raise
        return cls(token, fd)

    @classmethod
    def join(cls, token: str) -> Lease:
        """Hold the lease of a running server; ``LeaseNotFound`` if it is gone."""
        path = lease_path(token)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise LeaseNotFound(f"lease {path!r} does not exist: the server of token "
                                f"{token!r} has stopped (or never started)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            if not os.path.samestat(os.fstat(fd), os.stat(path)):
                raise FileNotFoundError(path)
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)
            raise LeaseNotFound(f"lease {path!r}: the server of token {token!r} has "
                                "stopped; its names are being removed") from None
        except BaseException:
            os.close(fd)
            raise
        return cls(token, fd)

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        """Let go (idempotent).  The set lives on while another process holds it."""
        _held.discard(self)
        self._close()

    def _close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)  # never LOCK_UN: a forked child's copy shares the lock

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lease_path(token: str) -> str:
    return os.path.join(names.SHM_DIR, names.lease_entry(token))


def alive(token: str) -> bool:
    """True while some process holds the token's lease."""
    try:
        fd = os.open(lease_path(token), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def tokens_of(pid: int) -> list[str]:
    """Tokens whose lease process ``pid`` has open (a supervisor, front or worker).  By
    inode: /proc names a created lease's descriptor by its unnamed origin."""
    leases = {}
    for entry in names.leftovers():
        parsed = names.parse(entry)
        if parsed and entry == names.lease_entry(parsed[0]):
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(names.SHM_DIR, entry))
                leases[st.st_dev, st.st_ino] = parsed[0]
    found = set()
    fds = f"/proc/{pid}/fd"
    with contextlib.suppress(OSError):
        for fd in os.listdir(fds):
            with contextlib.suppress(OSError):
                st = os.stat(os.path.join(fds, fd))
                if (st.st_dev, st.st_ino) in leases:
                    found.add(leases[st.st_dev, st.st_ino])
    return sorted(found)


def _link(fd: int, path: str) -> None:
    """Give the unnamed file ``fd`` the name ``path``: linkat(2) of /proc/self/fd/N with
    AT_SYMLINK_FOLLOW (os.link uses it when given a src_dir_fd)."""
    proc_fds = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(str(fd), path, src_dir_fd=proc_fds)
    finally:
        os.close(proc_fds)


def _forget_in_child() -> None:
    """After os.fork(): the child closes its copies; the parent's locks stay."""
    for lease in _held:
        lease._close()
    _held.clear()
