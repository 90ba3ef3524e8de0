"""A server-like process for the cleanup tests: a lease, a janitor and one of every IPC
object under a token and key, like a supervisor.

    python shm_creator.py TOKEN KEY [member | fork]

Prints "ready JANITOR_PID CHILD_PID" once everything exists.  CHILD_PID is 0, unless
"member": then a child started like a front or worker (a new interpreter, in this
process group) joined the lease and mapped the arena; or "fork": then a child made
with os.fork (which joins nothing) waits.  Either child waits for its SIGKILL.  On the
stdin line "close" it shuts down as a supervisor does (close and unlink everything,
sweep, release the lease, stop the janitor) and prints "closed" and what stop() said.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from litserve.ipc import Arena, Janitor, Lease, Ring, Semaphore, SlotTable, names
from litserve.ipc.janitor import sweep

ROLES = {"requests": "ring", "arena": "arena", "slots": "slots", "wake": "semaphore"}


def create(token: str, key: str) -> list[Ring | Arena | SlotTable | Semaphore]:
    def name(role: str) -> str:
        return names.make(token, role, key)

    return [
        Ring(name("requests"), 8, 64, create=True),
        Arena(name("arena"), 1 << 20, create=True),
        SlotTable(name("slots"), 16, create=True),
        Semaphore(name("wake"), create=True),
    ]


def start_member(token: str, key: str) -> int:
    child = subprocess.Popen([sys.executable, __file__, "--member", token, key],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    said = child.stdout.readline().strip()
    if said != "joined":
        raise SystemExit(f"the member did not join: {said!r}")
    return child.pid


def member(token: str, key: str) -> None:
    lease = Lease.join(token)
    arena = Arena(names.make(token, "arena", key))
    print("joined", flush=True)
    while lease.held and arena:
        signal.pause()


def main(token: str, key: str, child_kind: str) -> None:
    lease = Lease.create(token)
    janitor = Janitor.start(token)
    made = create(token, key)
    child = 0
    if child_kind == "member":
        child = start_member(token, key)
    elif child_kind == "fork":
        child = os.fork()
        if child == 0:
            while True:
                signal.pause()
    print(f"ready {janitor.pid} {child}", flush=True)
    if sys.stdin.readline().strip() == "close":
        for obj in made:
            obj.close()
            obj.unlink()
        swept = sweep(token)
        lease.release()
        print(f"closed {janitor.stop()} {swept.removed}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--member":
        member(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1], sys.argv[2], (sys.argv[3:] or [""])[0])
