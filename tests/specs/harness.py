"""Real servers for the spec tests: one subprocess per script in ``servers/``, started
through LitServer.run with the server tests' harness (port from uvicorn's banner, up
once ``GET /health`` answers 200, stopped with SIGTERM to its pid)."""

from __future__ import annotations

import sys
from pathlib import Path

from server.harness import Server  # tests/ is on sys.path (pytest rootdir-less packages)

SERVERS = Path(__file__).parent / "servers"


class SpecServer(Server):
    """``python servers/<script> <args>`` with its output collected."""

    def __init__(self, script: str, *args: str, env: dict[str, str] | None = None) -> None:
        super().__init__("", argv=[sys.executable, str(SERVERS / script), *args], env=env)
        self.name = script
