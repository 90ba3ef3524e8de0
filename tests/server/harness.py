"""Start real servers for tests and talk to them over real sockets."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

from litserve.ipc import SlotTable, names
from litserve.ipc.slots import FREE
from litserve.protocol import Board

APPS = Path(__file__).parent / "apps"
PYTHON = sys.executable
BANNER = re.compile(r"Uvicorn running on http://([\d.]+):(\d+)")


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``check()`` until truthy; fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(interval)


def children(pid: int) -> list[int]:
    """All descendants of pid (from /proc)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for k in map(int, kids):
            found.append(k)
            todo.append(k)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Server:
    """A litserve server in its own process group; output collected line by line."""

    def __init__(self, apis: str, server_kwargs: dict[str, Any] | None = None,
                 run_kwargs: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                 cwd: Path | None = None, argv: list[str] | None = None) -> None:
        cmd = argv or [PYTHON, str(APPS / "launch.py"), apis, json.dumps(server_kwargs or {}),
                       json.dumps(run_kwargs or {})]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd,
            env={**os.environ, **(env or {})}, start_new_session=True)
        self.headers = {"X-API-Key": env["LIT_SERVER_API_KEY"]} if env and \
            "LIT_SERVER_API_KEY" in env else {}
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""
        self._signalled = False
        self._token = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def token(self) -> str:
        """The token in the server's /dev/shm names (read from the supervisor's mapping of
        its control board while it runs, then remembered)."""
        if not self._token:
            try:
                maps = Path(f"/proc/{self.proc.pid}/maps").read_text()
            except OSError:
                maps = ""
            for line in maps.splitlines():
                entry = line.rsplit("/", 1)[-1] if "/dev/shm/" in line else ""
                token, role = entry_parts(entry)
                if role == "ctl":
                    self._token = token
                    break
        if not self._token:
            raise AssertionError("the server's control board is not mapped (not started?)")
        return self._token

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout: float = 60.0) -> Server:
        def started() -> Any:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.output}")
            m = BANNER.search(self.output)
            return m and self.health() == 200
        wait_for(started, timeout, "server start-up (banner and /health 200)")
        assert self.token
        return self

    def health(self) -> int:
        m = BANNER.search(self.output)
        if not m:
            return 0
        self.url = f"http://127.0.0.1:{m.group(2)}"
        try:
            return httpx.get(self.url + "/health", timeout=2, headers=self.headers).status_code
        except httpx.HTTPError:
            return 0

    def post(self, path: str = "/predict", **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("timeout", 30)
        return httpx.post(self.url + path, **kwargs)

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` once (so several servers can be told to stop at the same time)."""
        if not self._signalled and self.proc.poll() is None:
            self.proc.send_signal(sig)
        self._signalled = True

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """``terminate``, then wait; the exit code."""
        self.terminate(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
            raise AssertionError(
                f"server did not stop within {timeout} s:\n{self.output}") from None
        finally:
            self._reader.join(5)

    def kill_group(self) -> None:
        """Make sure nothing of the server is left, then release its pipe."""
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextmanager
def serve(apis: str, **server_kwargs: Any) -> Iterator[Server]:
    """A ready server for the block; stopped (and checked to stop cleanly) after it."""
    env = server_kwargs.pop("env", None)
    run_kwargs = server_kwargs.pop("run_kwargs", None)
    server = Server(apis, server_kwargs, run_kwargs, env=env)
    try:
        server.wait_ready()
        yield server
    finally:
        try:
            code = server.stop()
        finally:
            server.kill_group()
        assert code == 0, f"server exited with {code}:\n{server.output}"


def entry_parts(entry: str) -> tuple[str, str]:
    """(token, role) of a /dev/shm entry of ours: ``[sem.]lsv_<token>_<role>[_<mac>]``."""
    parts = entry.removeprefix("sem.").split("_")
    return (parts[1], parts[2]) if len(parts) > 2 else ("", "")


def shm_name(server: Server, role: str) -> str:
    """The POSIX name of one of the server's segments (``role`` as in litserve.protocol,
    e.g. ``f0.0.slots``), or "" while it does not exist."""
    entry = next((e for e in names.leftovers(server.token) if not e.startswith("sem.")
                  and entry_parts(e)[1] == role), "")
    return "/" + entry if entry else ""


def server_names(server: Server) -> list[str]:
    """Every /dev/shm entry (segments and semaphores) of the server."""
    return names.leftovers(server.token)


def slot_table(server: Server) -> SlotTable:
    """Attach to front 0's slot table, to watch request states from outside."""
    return SlotTable(shm_name(server, "f0.0.slots"))


def board(server: Server) -> Board:
    """Attach to the server's control board."""
    return Board(shm_name(server, "ctl"))


def pids(server: Server, role: str) -> list[int]:
    """The pids of the server's current fronts (``role`` "front") or workers ("worker"),
    as the supervisor publishes them on the control board."""
    b = board(server)
    try:
        count = b.fronts if role == "front" else b.workers
        return [b.pid(role, i) for i in range(count)]
    finally:
        b.close()


def front_usage(server: Server, front: int = 0) -> tuple[int, int]:
    """(request slots, request-arena bytes) that ``front`` holds now."""
    b = board(server)
    try:
        return b.front_usage(front)
    finally:
        b.close()


def wait_idle(server: Server, front: int = 0, timeout: float = 10.0) -> None:
    """Wait until ``front`` holds no slot and no arena byte; fail saying what it holds."""
    last: list[tuple[int, int]] = []

    def idle() -> bool:
        last[:] = [front_usage(server, front)]
        return last[0] == (0, 0)

    try:
        wait_for(idle, timeout, "the front giving back every slot and arena byte")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; still held (slots, arena bytes): {last[0]}") from None


def predicted_by(log: Path, tag: str) -> int:
    """The pid of the worker that started predict for ``tag`` (0: none yet), from the
    lines apps/basic.py notes in $LITSERVE_TEST_LOG ("predict <tag> pid=<pid>")."""
    if not log.exists():
        return 0
    for line in log.read_text().splitlines():
        if line.split()[1:2] == [tag]:
            return int(line.split("pid=")[1])
    return 0


def states(slots: SlotTable) -> list[int]:
    return [slots.state(i)[2] for i in range(slots.count)]


def all_free(slots: SlotTable) -> bool:
    return all(s == FREE for s in states(slots))


def pids_mapping(server: Server, suffix: str) -> list[int]:
    """The server's processes that have its segment of role ``suffix`` (e.g. ``f0.0.arena``)
    mapped."""
    token = server.token
    found = []
    for pid in children(server.proc.pid):
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        entries = [line.rstrip().rsplit("/", 1)[-1].removesuffix(" (deleted)")
                   for line in maps.splitlines() if "/dev/shm/" in line]
        if any(entry_parts(e) == (token, suffix) for e in entries):
            found.append(pid)
    return found


def start_script(script: str, *args: str, env: dict[str, str] | None = None) -> Server:
    """A server started by running ``apps/<script>.py ARGS`` (for servers whose LitServer
    arguments are objects, which launch.py's JSON cannot carry); not yet ready."""
    return Server("", argv=[PYTHON, str(APPS / f"{script}.py"), *args], env=env)


@contextmanager
def serve_ready(server: Server, health: str = "/health",
                headers: dict[str, str] | None = None) -> Iterator[Server]:
    """Like ``serve``, for a server made by the caller (``Server(...)``,
    ``start_script``) whose health check may be at another path or need ``headers``;
    stopped (and checked to exit 0, also when it stopped itself) after the block."""
    def ready() -> bool:
        if server.proc.poll() is not None:
            raise AssertionError(f"server exited with {server.proc.returncode}:\n{server.output}")
        m = BANNER.search(server.output)
        if not m:
            return False
        server.url = f"http://127.0.0.1:{m.group(2)}"
        try:
            return httpx.get(server.url + health, headers=headers, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, 60, f"server start-up (banner and {health} 200)")
        assert server.token
        yield server
    finally:
        try:
            code = server.stop()
        finally:
            server.kill_group()
        assert code == 0, f"server exited with {code}:\n{server.output}"
