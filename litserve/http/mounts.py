"""ASGI apps mounted beside the LitAPIs: a logger's ``/metrics``, an API's MCP server.

Where they come from, collected once per front at start:

* each logger of ``LitServer(loggers=...)`` (None, one, or a list): its ``_mounts``,
  the ``(path_prefix, app)`` pairs ``Logger.mount(path, app)`` recorded;
* each LitAPI with an ``mcp``: ``api.mcp.asgi_mounts(plan)``.

A request goes to a mounted app when no route of the front's own has its path and the
path is the prefix or starts with ``prefix + "/"`` (the longest prefix wins).  As with
Starlette's ``Mount``, the app sees the whole ``path`` and the prefix added to
``root_path``.  Every mounted app's lifespan runs inside the front's: startup before
the front says it is ready (an app that answers ``startup.failed`` stops the front),
shutdown when it stops.  An app that does not speak the lifespan protocol (raises or
returns at once, as Prometheus' app does) is simply served without one, as uvicorn's
``lifespan="auto"`` does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..errors import ConfigError

log = logging.getLogger("litserve.front")
Scope = dict[str, Any]
Mount = tuple[str, Any]
SHUTDOWN_S = 10.0  # how long a mounted app's lifespan shutdown may take


def collect(shipped: Any, plan: Any) -> list[Mount]:
    """Every ``(prefix, app)`` pair the loggers and the LitAPIs' MCP servers ask for."""
    loggers = getattr(shipped.server, "loggers", None)
    if loggers is None:
        loggers = []
    elif not isinstance(loggers, list | tuple):
        loggers = [loggers]
    found: list[Mount] = []
    for logger in loggers:
        found.extend(getattr(logger, "_mounts", None) or [])
    for api in shipped.apis:
        mcp = getattr(api, "mcp", None)
        if mcp is not None:
            found.extend(mcp.asgi_mounts(plan))
    return [_checked(prefix, app) for prefix, app in found]


def _checked(prefix: Any, app: Any) -> Mount:
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise ConfigError(f"mount path {prefix!r} is not valid; use a path starting with '/', "
                          "e.g. logger.mount('/metrics', app)")
    if not callable(app):
        raise ConfigError(f"the app mounted at {prefix!r} ({app!r}) is not an ASGI app")
    return prefix.rstrip("/"), app


class Mounts:
    """The mounted apps of one front: dispatch and lifespans."""

    def __init__(self, mounts: list[Mount]) -> None:
        self.mounts = sorted(mounts, key=lambda m: len(m[0]), reverse=True)
        self._lifespans: list[Lifespan] = []

    def __bool__(self) -> bool:
        return bool(self.mounts)

    def find(self, path: str) -> Mount | None:
        for prefix, app in self.mounts:
            if path == prefix or path.startswith(prefix + "/"):
                return prefix, app
        return None

    @staticmethod
    async def serve(mount: Mount, scope: Scope, receive: Any, send: Any) -> None:
        prefix, app = mount
        child = dict(scope)
        child["root_path"] = scope.get("root_path", "") + prefix
        await app(child, receive, send)

    async def startup(self) -> None:
        """Start every app's lifespan, in mount order; ``RuntimeError`` when one fails."""
        for prefix, app in self.mounts:
            lifespan = Lifespan(prefix, app)
            await lifespan.startup()
            self._lifespans.append(lifespan)

    async def shutdown(self) -> None:
        """End the lifespans, the last started first."""
        while self._lifespans:
            await self._lifespans.pop().shutdown()


class Lifespan:
    """The lifespan protocol of one mounted app, run as a task of the front's loop."""

    def __init__(self, prefix: str, app: Any) -> None:
        self.prefix, self.app = prefix, app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.started = False

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": {}}
        try:
            await self.app(scope, self.inbox.get, self.outbox.put)
        except BaseException as exc:
            if self.started:
                log.error("the app mounted at %s failed in its lifespan", self.prefix,
                          exc_info=exc)
            else:
                log.debug("the app mounted at %s has no lifespan (%r)", self.prefix, exc)

    async def _answer(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The app's next lifespan message; None when it ended (or took too long)."""
        assert self.task is not None
        get = asyncio.ensure_future(self.outbox.get())
        done, _ = await asyncio.wait({get, self.task}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if get in done:
            return get.result()
        get.cancel()
        return None

    async def startup(self) -> None:
        self.task = asyncio.ensure_future(self._run())
        await self.inbox.put({"type": "lifespan.startup"})
        msg = await self._answer()
        if msg is not None and msg["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"the app mounted at {self.prefix} failed to start: "
                               f"{msg.get('message', '')}")
        self.started = msg is not None

    async def shutdown(self) -> None:
        task = self.task
        if task is None or task.done():
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        if await self._answer(SHUTDOWN_S) is None and not task.done():
            log.warning("the app mounted at %s did not finish its lifespan shutdown within "
                        "%g s", self.prefix, SHUTDOWN_S)
            task.cancel()
