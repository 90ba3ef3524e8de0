"""Real servers for the spec tests: one subprocess per server script, through LitServer.run.

Each script in ``servers/`` binds port 0 on 127.0.0.1; the port is read from uvicorn's
banner, and the server counts as up once ``GET /health`` answers 200.  Servers are
stopped with SIGTERM to their pid and waited for.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

SERVERS = Path(__file__).parent / "servers"
BANNER = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``check()`` until it is truthy; fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)
    return value


class SpecServer:
    """``python servers/<script> <args>`` with its output collected."""

    def __init__(self, script: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.name = script
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVERS / script), *args], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""
        self.terminated = False

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, headers: dict[str, str] | None = None) -> SpecServer:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n"
                                     f"{self.output}")
            match = BANNER.search(self.output)
            if not match:
                return False
            self.url = f"http://127.0.0.1:{match.group(1)}"
            try:
                health = httpx.get(self.url + "/health", headers=headers, timeout=2)
                return health.status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, START_TIMEOUT, f"{self.name}: banner and GET /health == 200")
        return self

    def terminate(self) -> None:
        """Send SIGTERM once (a second one during shutdown would kill it outright)."""
        if not self.terminated and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.terminated = True

    def stop(self) -> int:
        """SIGTERM (unless already sent), then wait; its exit code."""
        self.terminate()
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"{self.name} did not stop on SIGTERM:\n{self.output}") from None
        finally:
            self._reader.join(5)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
