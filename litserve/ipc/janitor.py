"""A tiny watchdog process that removes a server's names when its creator dies.

The creator starts it with ``Janitor.start(token)`` and keeps the write end of its
stdin open.  When the creator exits for any reason (SIGKILL included) the kernel
closes that pipe; the janitor sees end-of-file, removes every ``/dev/shm`` entry of
the token (``_sweep.py``) and exits.  It runs in its own session so a Ctrl+C aimed
at the server's process group does not reach it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ._sweep import sweep

__all__ = ["Janitor", "sweep"]

_SCRIPT = str(Path(__file__).with_name("_sweep.py"))


class Janitor:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    @classmethod
    def start(cls, token: str) -> Janitor:
        proc = subprocess.Popen(
            [sys.executable, "-S", _SCRIPT, token],
            stdin=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
        return cls(proc)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def stop(self, timeout: float = 5.0) -> None:
        """Close the pipe (the janitor sweeps and exits) and reap it."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        self._proc.wait(timeout)
