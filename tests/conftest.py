"""Suite-wide guards.

``no_leaked_shm_names`` fails the run when a /dev/shm entry of ours (``lsv_*`` or
``sem.lsv_*``) exists at the end of the session that was not there at its start.
Another test session running at the same time on this machine is left alone: an
entry whose creator (the pid in its token, see ``litserve.ipc.names``) is alive and
is neither this process nor one of its descendants is not counted.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import pytest

from litserve.ipc import names

GRACE_S = 5.0  # janitors sweep asynchronously after their creator died


def _creator_pid(entry: str) -> int | None:
    stem = entry.removeprefix("sem.").removeprefix(names.PREFIX)
    token = stem.split("_", 1)[0]
    try:
        return int(token[:-8], 16) if len(token) > 8 else None
    except ValueError:
        return None


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[1])


def _ours(entry: str) -> bool:
    """True unless the entry belongs to a live process outside this session's tree."""
    pid = _creator_pid(entry)
    if pid is None:
        return True
    seen = 0
    while pid is not None and pid > 1 and seen < 64:
        if pid == os.getpid():
            return True
        pid, seen = _parent(pid), seen + 1
    return _parent(_creator_pid(entry) or 0) is None  # creator dead: a leak of ours


def _new_entries(before: set[str]) -> list[str]:
    return [e for e in names.leftovers() if e not in before and _ours(e)]


@pytest.fixture(scope="session", autouse=True)
def no_leaked_shm_names() -> Iterator[None]:
    before = set(names.leftovers())
    yield
    deadline = time.monotonic() + GRACE_S
    while (leaked := _new_entries(before)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if leaked:
        for entry in leaked:  # leave a clean machine behind, then fail
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(names.SHM_DIR, entry))
        pytest.fail(f"the test session left shared-memory names in /dev/shm: {leaked}")
