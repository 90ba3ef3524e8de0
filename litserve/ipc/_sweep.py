"""Remove every /dev/shm entry of one server token.

Run as a script (``python -S _sweep.py TOKEN``) it is the janitor: it blocks until
its stdin reaches end-of-file -- that is, until the process holding the other end
died or let go -- then sweeps.  It imports nothing but ``os`` and ``sys``.
"""

import os
import sys

SHM_DIR = "/dev/shm"
PREFIX = "lsv_"


def sweep(token: str) -> list[str]:
    """Unlink every segment and semaphore of ``token``; return the entries removed."""
    stems = (PREFIX + token + "_", "sem." + PREFIX + token + "_")
    removed = []
    for entry in os.listdir(SHM_DIR):
        if entry.startswith(stems):
            try:
                os.unlink(os.path.join(SHM_DIR, entry))
                removed.append(entry)
            except FileNotFoundError:
                pass
    return removed


if __name__ == "__main__":
    while os.read(0, 4096):
        pass
    sweep(sys.argv[1])
