"""LitServe's helpers under their LitServe names: ``is_package_installed``,
``configure_logging``, ``set_trace`` / ``set_trace_if_debug`` (a debugger that works in
the worker processes) and ``wrap_litserve_start`` (a server for a test, in a
``with``)."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pdb
import socket
import sys
import time
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import LitServer

DEFAULT_LOG_FORMAT = ("%(asctime)s - %(processName)s[%(process)d] - %(name)s - "
                      "%(levelname)s - %(filename)s:%(lineno)d - %(message)s")


def is_package_installed(package_name: str) -> bool:
    """Whether ``import package_name`` would find it (without importing it)."""
    return importlib.util.find_spec(package_name) is not None


def configure_logging(level: str | int = logging.INFO, format: str = DEFAULT_LOG_FORMAT,
                      stream: IO[str] | None = None, use_rich: bool = False) -> None:
    """Send the ``litserve`` loggers' records at ``level`` and above to ``stream``
    (default stdout) in ``format``, replacing the handlers set before; ``use_rich``
    uses rich's handler where rich is installed."""
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
    handler: logging.Handler
    if use_rich and is_package_installed("rich"):
        from rich.logging import RichHandler

        handler = RichHandler(rich_tracebacks=True)
    else:
        handler = logging.StreamHandler(stream or sys.stdout)
        handler.setFormatter(logging.Formatter(format))
    library = logging.getLogger("litserve")
    for old in library.handlers[:]:
        library.removeHandler(old)
    library.setLevel(level)
    library.addHandler(handler)
    library.propagate = False


class _ForkedPdb(pdb.Pdb):
    """pdb that reads the terminal even in a child process (whose stdin is not it)."""

    def interaction(self, *args: Any, **kwargs: Any) -> None:
        saved = sys.stdin
        try:
            with open("/dev/stdin") as sys.stdin:
                super().interaction(*args, **kwargs)
        finally:
            sys.stdin = saved


def set_trace() -> None:
    """Stop in the debugger here, also inside a worker's hooks."""
    _ForkedPdb().set_trace(sys._getframe().f_back)


def set_trace_if_debug(debug_env_var: str = "LITSERVE_DEBUG",
                       debug_env_var_value: str = "1") -> None:
    """``set_trace()`` when $LITSERVE_DEBUG (or ``debug_env_var``) is ``"1"``."""
    if os.environ.get(debug_env_var) == debug_env_var_value:
        _ForkedPdb().set_trace(sys._getframe().f_back)


@contextlib.contextmanager
def wrap_litserve_start(server: LitServer, worker_monitor: bool = False) -> Iterator[LitServer]:
    """Run ``server`` for the ``with`` block: LitServe's test helper.

    LitServe runs the workers in-process and the test drives ``server.app`` through a
    FastAPI ``TestClient``.  Here the server is real: it runs (fronts, workers, shared
    memory) in a child process on a free loopback port, and ``server.app`` is an ASGI app
    that forwards each request to it, so ``TestClient(server.app)`` works as with
    LitServe; ``server.url`` is its address.  The server is stopped after the block.
    ``worker_monitor`` is accepted for LitServe's signature (workers are always watched).
    """
    import multiprocessing

    import cloudpickle

    port = _free_port()
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_serve, args=(cloudpickle.dumps(server), port),
                       name="litserve-wrapped-server")
    proc.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, server.healthcheck_path)
        server.url = url  # type: ignore[attr-defined]
        server.app = _Forward(url)  # type: ignore[attr-defined]
        yield server
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(blob: bytes, port: int) -> None:
    import cloudpickle

    server = cloudpickle.loads(blob)
    server.run(host="127.0.0.1", port=port, generate_client_file=False)


def _wait_healthy(url: str, proc: Any, path: str, timeout: float = 120.0) -> None:
    import httpx

    key = os.environ.get("LIT_SERVER_API_KEY")
    headers = {"X-API-Key": key} if key else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.is_alive():
            raise RuntimeError(f"the server exited with code {proc.exitcode} during start-up "
                               "(its output is above)")
        try:
            if httpx.get(url + path, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"the server at {url} was not healthy within {timeout:.0f} s")


class _Forward:
    """An ASGI app that sends each HTTP request on to the server at ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        import httpx

        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k.lower() not in (b"host", b"content-length")]
        query = scope.get("query_string", b"").decode("latin-1")
        target = self.url + scope["path"] + (f"?{query}" if query else "")
        async with httpx.AsyncClient(timeout=None) as client, client.stream(
                scope["method"], target, content=bytes(body), headers=headers) as response:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": [(k.encode("latin-1"), v.encode("latin-1"))
                                    for k, v in response.headers.multi_items()
                                    if k.lower() not in ("content-length",
                                                         "transfer-encoding")]})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
