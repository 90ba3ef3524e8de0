"""Child processes end when the process that started them dies."""

from __future__ import annotations

import os
import threading
import time

from ._shm import set_parent_death_signal

POLL = 0.5  # seconds between parent checks where the kernel cannot tell us


def die_with_parent(parent: int, sig: int) -> None:
    """Arrange for ``sig`` to reach this process when ``parent`` dies; exit at once if
    it is already gone.  Linux: ``PR_SET_PDEATHSIG``; elsewhere a daemon thread polls."""
    now = set_parent_death_signal(sig)
    if now == -1:
        now = os.getppid()
        threading.Thread(target=_watch, args=(parent, sig), daemon=True,
                         name="litserve-lifeline").start()
    if now != parent:
        os._exit(1)


def _watch(parent: int, sig: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL)
    os.kill(os.getpid(), sig)
