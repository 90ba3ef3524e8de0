"""Remove the /dev/shm entries of one server token; and the janitor process.

Run as a script (``python -I -S _sweep.py TOKEN``) it is the janitor (``janitor.py``
starts it).  It ignores SIGTERM, SIGINT and SIGHUP, opens the server's lease file and
says ``R`` on its stdout (``N``: there is no lease), then blocks in ``flock(LOCK_EX)``.
It holds no lock while it waits, so it never keeps the server alive; every front,
worker and the supervisor hold ``LOCK_SH`` (``lease.py``), and the kernel drops a
process's lock when it dies, however it dies.  Once the last one is gone the janitor
gets the lock, removes the token's entries (the lease last) and exits.

It imports nothing but ``os``, ``sys``, ``fcntl`` and ``signal``, and nothing of
litserve: ``names.py`` holds the same prefix, directory and lease role.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys

SHM_DIR = "/dev/shm"
PREFIX = "lsv_"
LEASE = "lease"


def entries(token: str, uid: int) -> list[str]:
    """The token's /dev/shm entries owned by ``uid``, its lease last."""
    stems = (PREFIX + token + "_", "sem." + PREFIX + token + "_")
    lease = PREFIX + token + "_" + LEASE
    mine = []
    for entry in os.listdir(SHM_DIR):
        if entry.startswith(stems):
            try:
                st = os.lstat(os.path.join(SHM_DIR, entry))
            except FileNotFoundError:
                continue
            if st.st_uid == uid:
                mine.append(entry)
    return sorted(mine, key=lambda e: (e == lease, e))


def unlink_all(token: str, uid: int) -> tuple[list[str], list[tuple[str, int]]]:
    """Unlink every entry of ``token`` owned by ``uid``, the lease last.  Never raises for
    one entry: (entries removed, (entry, errno) of those that could not be)."""
    removed: list[str] = []
    failed: list[tuple[str, int]] = []
    try:
        mine = entries(token, uid)
    except OSError as exc:  # no /dev/shm to list
        return removed, [(SHM_DIR, exc.errno or 0)]
    for entry in mine:
        try:
            os.unlink(os.path.join(SHM_DIR, entry))
            removed.append(entry)
        except FileNotFoundError:
            pass  # someone else swept it
        except OSError as exc:
            failed.append((entry, exc.errno or 0))
    return removed, failed


def janitor(token: str) -> int:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    try:
        fd = os.open(os.path.join(SHM_DIR, PREFIX + token + "_" + LEASE),
                     os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        os.write(1, b"N")
        return 1
    os.write(1, b"R")
    os.close(1)
    fcntl.flock(fd, fcntl.LOCK_EX)  # every holder of LOCK_SH is gone
    for entry, errno in unlink_all(token, os.geteuid())[1]:
        sys.stderr.write(f"litserve janitor: could not remove /dev/shm/{entry}: "
                         f"{os.strerror(errno)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(janitor(sys.argv[1]))
