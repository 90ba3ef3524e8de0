"""A tiny watchdog process that removes a server's names when its creator dies.

The creator starts it with ``Janitor.start(token)`` and keeps the write end of a pipe
to its stdin.  When the creator exits for any reason (SIGKILL included) the kernel
closes that pipe; the janitor sees end-of-file, removes every ``/dev/shm`` entry of
the token (``_sweep.py``) and exits.  ``stop()`` does the same on purpose.

Only the creator may hold the write end: a child made by ``os.fork`` (multiprocessing's
"fork" start method) closes its copy at once, and exec'd children never inherit it
(the descriptor is close-on-exec).  Otherwise a surviving child would keep the names
alive after the creator died.  A started janitor is referenced from a module-level
set until ``stop()``, so dropping the ``Janitor`` object does not trigger a sweep.

The janitor runs in its own session so a Ctrl+C aimed at the server's process group
does not reach it, and its stdout goes to /dev/null so that it never holds a pipe
of the creator's open (its stderr is inherited, for diagnostics).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from ._sweep import sweep

__all__ = ["Janitor", "sweep"]

_SCRIPT = str(Path(__file__).with_name("_sweep.py"))
_running: set[Janitor] = set()
_lock = threading.Lock()
_fork_hook: list[bool] = []  # registered on the first start(), not at import


class Janitor:
    def __init__(self, proc: subprocess.Popen[bytes], pipe_fd: int = -1) -> None:
        self._proc = proc
        self._fd = pipe_fd

    @classmethod
    def start(cls, token: str) -> Janitor:
        read_fd, write_fd = os.pipe()  # both close-on-exec
        try:
            proc = subprocess.Popen(
                [sys.executable, "-S", _SCRIPT, token],
                stdin=read_fd,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        janitor = cls(proc, write_fd)
        with _lock:
            _running.add(janitor)
            if not _fork_hook:
                os.register_at_fork(after_in_child=_forget_in_child)
                _fork_hook.append(True)
        return janitor

    @property
    def pid(self) -> int:
        return self._proc.pid

    def stop(self, timeout: float = 5.0) -> None:
        """Close the pipe (the janitor sweeps and exits) and reap it."""
        self._close_pipe()
        with _lock:
            _running.discard(self)
        self._proc.wait(timeout)

    def _close_pipe(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def _forget_in_child() -> None:
    """After os.fork(): the child must not keep its parent's janitors alive.  The
    objects stay referenced (so that no Popen is finalised in the child)."""
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    for janitor in _running:
        janitor._close_pipe()
