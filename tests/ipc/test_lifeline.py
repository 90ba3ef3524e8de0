"""Children end when their parent dies: the kernel's way, and the polling fallback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ipc_support import wait_for

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from litserve.ipc import lifeline
    if sys.argv[1] == "poll":  # behave as on a kernel without PR_SET_PDEATHSIG
        lifeline.set_parent_death_signal = lambda sig: -1
        lifeline.POLL = 0.05
    lifeline.die_with_parent(int(sys.argv[2]), signal.SIGTERM)
    print("armed", flush=True)
    time.sleep(60)
""")

PARENT = textwrap.dedent("""
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], str(os.getpid())],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "armed\\n"
    print(child.pid, flush=True)
    time.sleep(60)
""")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("mode", ["kernel", "poll"])
def test_child_ends_when_its_parent_is_killed(mode):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, mode],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait(10)
        wait_for(lambda: not _alive(child), 10, f"the child ({mode}) exiting after its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()


def test_child_whose_parent_is_already_gone_exits_at_once():
    out = subprocess.run([sys.executable, "-c", CHILD, "kernel", str(os.getpid() + 10**6)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "armed" not in out.stdout
