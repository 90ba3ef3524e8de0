"""Fixtures of the IPC tests: a fresh name token per test (checked for leftovers),
and started processes that are always stopped and reaped, by pid."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import subprocess
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess
from typing import Any

import pytest
from ipc_support import gone, kill_pid, wait_for

from litserve.ipc import names
from litserve.ipc.janitor import sweep

SPAWN = mp.get_context("spawn")


@pytest.fixture
def token() -> Iterator[str]:
    """A fresh name token; the test must leave no /dev/shm entry of it behind."""
    tok = names.new_token()
    yield tok
    left = names.leftovers(tok)
    sweep(tok)
    assert not left, f"test left shared-memory names behind: {left}"


@pytest.fixture
def name(token: str) -> Callable[[str], str]:
    """name(role) -> a POSIX name under this test's token."""
    return lambda role: names.make(token, role)


@pytest.fixture
def spawn() -> Iterator[Callable[..., BaseProcess]]:
    """spawn(target, *args) starts a spawn-context process; teardown kills any that is
    still running (by pid) and reaps all of them."""
    started: list[BaseProcess] = []

    def start(target: Callable[..., Any], *args: Any) -> BaseProcess:
        proc = SPAWN.Process(target=target, args=args, daemon=True)
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.is_alive():
            assert proc.pid is not None
            kill_pid(proc.pid)
        proc.join(10)
        proc.close()


@pytest.fixture
def popen() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """popen(argv, **kw) starts a subprocess with text pipes; teardown kills and reaps it.
    ``track(pid)`` registers further pids (grandchildren) to kill and wait for."""
    started: list[subprocess.Popen[str]] = []
    extra: list[int] = []

    def start(argv: list[str], **kw: Any) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, **kw
        )
        started.append(proc)
        return proc

    start.track = extra.append  # type: ignore[attr-defined]
    yield start
    for proc in started:
        if proc.poll() is None:
            kill_pid(proc.pid)
        proc.wait(10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
    for pid in extra:
        if pid != os.getpid():
            kill_pid(pid)
            wait_for(lambda p=pid: gone(p), 10, f"exit of pid {pid}")
