"""Helpers for the IPC tests: waiting with a deadline, and watching processes.

No fixed sleeps: every wait polls a condition until a deadline and then fails with
a message saying what never happened.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

T = TypeVar("T")
POLL_S = 0.005


class NeverHappened(AssertionError):
    """A condition a test waited for did not come true before its deadline."""


def wait_for(predicate: Callable[[], T], timeout: float, what: str) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise NeverHappened(f"{what} did not happen within {timeout} s")
        time.sleep(POLL_S)


def recv(conn: Connection, timeout: float, what: str) -> Any:
    """Receive one object from a pipe, or fail naming what never arrived."""
    if not conn.poll(timeout):
        raise NeverHappened(f"{what} did not arrive within {timeout} s")
    try:
        return conn.recv()
    except EOFError:
        raise NeverHappened(f"{what} never came: the sender closed its pipe (died?)") from None


def proc_state(pid: int) -> str | None:
    """The /proc state letter of a process (or thread id), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def thread_state(tid: int) -> str | None:
    try:
        with open(f"/proc/self/task/{tid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie nobody reaps counts as exited)."""
    return proc_state(pid) in (None, "Z", "X")


def read_line(proc: subprocess.Popen[str], timeout: float, what: str) -> str:
    """One line of a child's stdout within ``timeout``; fail if it died or stayed silent."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise NeverHappened(f"{what}: no line from pid {proc.pid} within {timeout} s")
    line = proc.stdout.readline()
    if not line:
        raise NeverHappened(f"{what}: pid {proc.pid} closed its stdout (rc={proc.poll()})")
    return line.strip()


def wait_stopped(pid: int, timeout: float, what: str) -> None:
    """Wait until ``pid`` is stopped (SIGSTOP: state T); fail at once if it exits."""

    def stopped() -> bool:
        state = proc_state(pid)
        if state in (None, "Z", "X"):
            raise NeverHappened(f"{what}: pid {pid} exited instead of stopping")
        return state in ("T", "t")

    wait_for(stopped, timeout, what)


def kill_pid(pid: int) -> None:
    """SIGKILL a process that may already be gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)
