"""Fixtures: one real server per script, started on first use and shared by the session."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .harness import SpecServer

API_KEY = "test-key-123"

# name -> (script, args, env)
SCRIPTS: dict[str, tuple[str, tuple[str, ...], dict[str, str]]] = {
    "chat": ("chat.py", (), {}),
    "chat_custom": ("chat_custom.py", (), {}),
    "chat_batched": ("chat_batched.py", (), {}),
    "embeddings": ("embeddings.py", ("plain",), {}),
    "embeddings_batched": ("embeddings.py", ("batched",), {}),
    "multi": ("multi.py", (), {"LIT_SERVER_API_KEY": API_KEY}),
}


@pytest.fixture(scope="session")
def servers() -> Iterator[Callable[[str], SpecServer]]:
    """``servers(name)``: the ready server of that name (started on first use)."""
    started: dict[str, SpecServer] = {}

    def get(name: str) -> SpecServer:
        if name not in started:
            script, args, env = SCRIPTS[name]
            started[name] = SpecServer(script, *args, env=env)
            started[name].wait_ready()  # with X-API-Key when the server's env sets one
        return started[name]

    yield get
    for server in started.values():  # let them all shut down at once
        server.terminate()
    codes = {name: server.stop() for name, server in started.items()}
    for server in started.values():
        server.kill_group()
    failed = {name: code for name, code in codes.items() if code != 0}
    assert not failed, "servers exited badly: " + ", ".join(
        f"{name} ({code}):\n{started[name].output}" for name, code in failed.items())


@pytest.fixture(scope="session")
def chat(servers: Callable[[str], SpecServer]) -> SpecServer:
    return servers("chat")
