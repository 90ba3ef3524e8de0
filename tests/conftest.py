"""Suite-wide guards.

``no_leaked_shm_names`` fails the run when a /dev/shm entry of ours (``lsv_*`` or
``sem.lsv_*``, owned by our uid) exists at the end of the session that was not there
at its start, and removes it.  Tokens are random, so they no longer say who made a set;
a set still alive elsewhere is left alone instead:

- its lease is held: another test session's running server (``litserve.ipc.lease``);
- a live process outside this session's tree maps one of its entries or has it open:
  another session's bare test objects, which have no lease;
- its token is an older version's (``<pid hex><8 hex>``, from a session running older
  code) and that pid lives outside this session's tree.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator

import pytest

from litserve.ipc import names
from litserve.ipc.lease import alive

_SHM = f"{names.SHM_DIR}/"
# janitors sweep asynchronously after the last process of a server died
GRACE_S = float(os.environ.get("LITSERVE_SHM_GUARD_GRACE_S", "5"))


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[1])


def _in_this_session(pid: int) -> bool:
    """``pid`` is this process or one of its descendants."""
    seen = 0
    while pid > 1 and seen < 64:
        if pid == os.getpid():
            return True
        pid, seen = _parent(pid) or 0, seen + 1
    return False


def _paths(pid: int) -> list[str]:
    """/dev/shm paths a process maps or has open."""
    found = []
    with contextlib.suppress(OSError), open(f"/proc/{pid}/maps") as f:
        found += [line.split(maxsplit=5)[-1].strip() for line in f if _SHM in line]
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return [p.removesuffix(" (deleted)") for p in found if p.startswith(_SHM)]


def _used_elsewhere() -> set[str]:
    """Tokens with an entry mapped or open in a live process outside this session's tree,
    and older versions' tokens (``<pid hex><8 hex>``) whose pid lives outside it."""
    tokens = set()
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        if not _in_this_session(pid):
            parsed = (names.parse(os.path.basename(path)) for path in _paths(pid))
            tokens |= {p[0] for p in parsed if p}
    for entry in names.leftovers():
        token = (names.parse(entry) or ("",))[0]
        pid = int(token[:-8], 16) if re.fullmatch(r"[0-9a-f]{9,15}", token) else 0
        if pid > 0 and _parent(pid) is not None and not _in_this_session(pid):
            tokens.add(token)
    return tokens


def _mine(entry: str) -> bool:
    try:
        return os.lstat(os.path.join(names.SHM_DIR, entry)).st_uid == os.geteuid()
    except FileNotFoundError:
        return False


def _new_entries(before: set[str]) -> list[str]:
    new = [e for e in names.leftovers() if e not in before and _mine(e)]
    if not new:
        return []
    elsewhere = _used_elsewhere()
    tokens = {t for t, _ in filter(None, map(names.parse, new))}
    live = {t for t in tokens if t in elsewhere or alive(t)}
    return [e for e in new if (names.parse(e) or ("",))[0] not in live]


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
