"""Names of our shared-memory segments and semaphores.

Every name starts with ``/lsv_`` followed by a random token per server (or per test),
so that ours are easy to list in ``/dev/shm`` and never collide with another run's.
Segments show up as ``/dev/shm/lsv_*``, semaphores as ``/dev/shm/sem.lsv_*``.
"""

from __future__ import annotations

import os
import secrets

PREFIX = "lsv_"
SHM_DIR = "/dev/shm"


def new_token() -> str:
    return f"{os.getpid():x}{secrets.token_hex(4)}"


def make(token: str, role: str) -> str:
    """The POSIX name (leading slash) for one segment or semaphore of a server."""
    return f"/{PREFIX}{token}_{role}"


def leftovers(token: str | None = None) -> list[str]:
    """Entries of ours still in /dev/shm (for one token, or for any)."""
    stem = PREFIX + (token + "_" if token else "")
    try:
        entries = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    return sorted(e for e in entries if e.startswith(stem) or e.startswith("sem." + stem))
