"""Names of our shared-memory segments and semaphores.

A server's name for role ``role`` is ``/lsv_<token>_<role>_<mac>``:

    part    what                                                  who can know it
    token   16 random hex digits, one per server (``new_token``)  anyone, once its first
                                                                  entry exists
    role    what the entry is: ``req``, ``f0.1.arena``, ...       anyone (fixed strings)
    mac     HMAC-SHA256(key, role), first 16 hex digits           the server's processes

``key`` is the server's secret (``new_key``): the supervisor puts it in the Plan, which
reaches fronts and workers only through multiprocessing's private spawn pipe.  /dev/shm
is world-listable and first come, first served (``O_EXCL``): a local user who could
compute a name before we create it could take it and stop our start-up.  The token is
visible as soon as the server's lease (``lease.py``) exists and the roles are fixed, but
the mac cannot be computed without the key.  Without a key (``key=""``, tests) the name
is ``/lsv_<token>_<role>``.

In /dev/shm a segment shows up as ``lsv_...``, a semaphore as ``sem.lsv_...``, and a
ring's two semaphores add ``.items`` / ``.space`` to the ring's name: ``make`` keeps
room for that within NAME_MAX.  Roles never contain ``_``, so ``parse`` can split an
entry back into its token and role.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets

PREFIX = "lsv_"
SHM_DIR = "/dev/shm"
LEASE = "lease"  # the role of a server's lease file (lease.py); no other name may use it
NAME_MAX = 255  # bytes in a /dev/shm entry name
SUFFIX_ROOM = 8  # for the ".items" / ".space" a ring adds to its semaphores' names
MAC_DIGITS = 16
_TOKEN = re.compile(r"[0-9A-Za-z]+")
_ROLE = re.compile(r"[0-9A-Za-z.-]*")  # "" gives the bare prefix (bench/ipc_bench.py)


def new_token() -> str:
    """16 random hex digits: no pid, no time, nothing another user could guess."""
    return secrets.token_hex(8)


def new_key() -> str:
    """A server's secret, mixed into every name it makes."""
    return secrets.token_hex(16)


def make(token: str, role: str, key: str = "") -> str:
    """The POSIX name (leading slash) of ``role`` in the server of ``token`` and ``key``."""
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"name token={token!r} is not valid; use letters and digits only")
    if not _ROLE.fullmatch(role) or role == LEASE:
        raise ValueError(f"name role={role!r} is not valid; use letters, digits, '.' and '-' "
                         f"(not '_'), and not {LEASE!r}")
    name = f"/{PREFIX}{token}_{role}" + (f"_{mac(key, role)}" if key else "")
    over = len(name) - 1 + len("sem.") + SUFFIX_ROOM - NAME_MAX
    if over > 0:
        longest = len(role) - over
        raise ValueError(f"name role={role!r} is {len(role)} characters long; with this token "
                         f"at most {longest} fit in a /dev/shm name")
    return name


def mac(key: str, role: str) -> str:
    return hmac.new(key.encode(), role.encode(), hashlib.sha256).hexdigest()[:MAC_DIGITS]


def parse(entry: str) -> tuple[str, str] | None:
    """(token, role) of a /dev/shm entry of ours (``lsv_...`` or ``sem.lsv_...``), else None."""
    stem = entry.removeprefix("sem.")
    if not stem.startswith(PREFIX):
        return None
    token, _, rest = stem[len(PREFIX):].partition("_")
    if not token or not rest:
        return None
    return token, rest.split("_", 1)[0]


def lease_entry(token: str) -> str:
    """The /dev/shm entry of a server's lease file."""
    return f"{PREFIX}{token}_{LEASE}"


def leftovers(token: str | None = None) -> list[str]:
    """Entries of ours still in /dev/shm (for one token, or for any)."""
    stem = PREFIX + (token + "_" if token else "")
    try:
        entries = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    return sorted(e for e in entries if e.startswith(stem) or e.startswith("sem." + stem))
