"""A process that creates one of everything under a token, with a janitor, for the
cleanup tests.  Usage: python shm_creator.py TOKEN [fork]

Prints "ready JANITOR_PID CHILD_PID" once everything exists (CHILD_PID is 0 unless
"fork": then a child made with os.fork outlives it until killed).  On the stdin line
"close" it closes and unlinks everything, stops the janitor and prints "closed".
"""

from __future__ import annotations

import os
import signal
import sys

from litserve.ipc import Arena, Ring, Semaphore, SlotTable, names
from litserve.ipc.janitor import Janitor


def main(token: str, fork: bool) -> None:
    janitor = Janitor.start(token)
    made = [
        Ring(names.make(token, "requests"), 8, 64, create=True),
        Arena(names.make(token, "arena"), 1 << 20, create=True),
        SlotTable(names.make(token, "slots"), 16, create=True),
        Semaphore(names.make(token, "wake"), create=True),
    ]
    child = os.fork() if fork else 0
    if fork and child == 0:  # the child waits for its SIGKILL
        while True:
            signal.pause()
    print(f"ready {janitor.pid} {child}", flush=True)
    if sys.stdin.readline().strip() == "close":
        for obj in made:
            obj.close()
            obj.unlink()
        janitor.stop()
        print("closed", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] == ["fork"])
