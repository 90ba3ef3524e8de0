"""``MCP``: offer a LitAPI to AI agents as a Model Context Protocol tool.

    class PowerRequest(BaseModel):
        input: float

    class PowerAPI(ls.LitAPI):
        def decode_request(self, request: PowerRequest):
            return request.input
        def predict(self, x):
            return x ** 2

    ls.LitServer(PowerAPI(mcp=MCP(description="Squares a number."))).run(port=8000)

Every front then also serves one MCP server (streamable HTTP, stateless, JSON
replies) at ``/mcp/`` with one tool per LitAPI that has an ``MCP``.  A tool is named
``name`` (default: the API's path without the leading ``/``, other ``/`` as ``_``),
described by ``description`` (default: the LitAPI's docstring), and takes
``input_schema`` (default: worked out from ``decode_request``'s parameters: a pydantic
model parameter becomes a ``$ref`` into ``$defs``, other annotations their JSON types).

A tool call is an ordinary request to the API's own endpoint, sent over loopback to the
front that received the call (with the caller's ``X-API-Key`` / ``Authorization``): the
body is the argument of the model parameter (``{"request": {"input": 4}}`` posts
``{"input": 4}``), else all the arguments.  A JSON reply comes back as structured
content (and as its text); anything else as text; an error status as a tool error.

The ``mcp`` package is optional (``pip install 'litserve[mcp]'``): this module imports
without it, and ``MCP(...)`` says how to install it.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

from pydantic import BaseModel, create_model

from .errors import ConfigError, LitServeError

__all__ = ["MCP", "MCPUnavailable", "MOUNT", "input_schema"]

log = logging.getLogger("litserve.mcp")

MOUNT = "/mcp"  # where each front serves the MCP server
_FORWARDED = ("x-api-key", "authorization")  # caller headers the tool's request carries

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class MCPUnavailable(LitServeError, RuntimeError):
    """``MCP`` was used, but the optional ``mcp`` package is not installed."""


class MCP:
    """Serve the LitAPI it is given to (``LitAPI(mcp=MCP(...))``) as an MCP tool."""

    def __init__(self, description: str | None = None, input_schema: dict[str, Any] | None = None,
                 name: str | None = None) -> None:
        if importlib.util.find_spec("mcp") is None:
            raise MCPUnavailable("LitAPI(mcp=MCP(...)) needs the 'mcp' package, which is not "
                                 "installed; install it with: pip install 'litserve[mcp]'")
        for arg, value in (("description", description), ("name", name)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"MCP({arg}={value!r}) is not valid; use a non-empty string "
                                  "or leave it out")
        if input_schema is not None and not isinstance(input_schema, dict):
            raise ConfigError(f"MCP(input_schema={input_schema!r}) is not valid; use a JSON "
                              "schema dict such as {'type': 'object', 'properties': {...}}")
        self.description = description
        self.input_schema = input_schema
        self.name = _tool_name(name) if name else None
        self.key = uuid.uuid4().hex  # the same in every process's copy (it is pickled)

    def tool(self, api: Any, api_path: str) -> Tool:
        """This API's tool; a ``ConfigError`` when it has no description."""
        own_doc = type(api).__doc__  # the class's own (a base class's says nothing of it)
        description = self.description or (inspect.cleandoc(own_doc) if own_doc else None)
        if not description:
            raise ConfigError(f"MCP for {type(api).__name__} has no description; pass "
                              "MCP(description='what the tool does') or give the LitAPI a "
                              "docstring")
        schema = self.input_schema or input_schema(api.decode_request)
        return Tool(self.name or _tool_name(api_path), description, schema, api_path,
                    _body_argument(api.decode_request, schema, self.input_schema is not None))

    def asgi_mounts(self, plan: Any) -> list[tuple[str, Any]]:
        """``[(MOUNT, app)]`` for the first API of ``plan`` with an MCP (that one app has
        every API's tool); ``[]`` for the others, so a front mounts it once."""
        tools = plan_tools(plan)
        if not tools or tools[0][0] != self.key:
            return []
        return [(MOUNT, McpApp([t for _, t in tools]))]


def plan_tools(plan: Any) -> list[tuple[str, Tool]]:
    """(MCP key, tool) of every API of the plan that has an MCP, in the plan's order."""
    apis = plan.unpack().apis
    return [(api.mcp.key, api.mcp.tool(api, route.api_path))
            for api, route in zip(apis, plan.routes, strict=True)
            if getattr(api, "mcp", None) is not None]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    schema: dict[str, Any]
    path: str  # the API's endpoint the tool posts to
    body_argument: str | None  # the argument that is the request body (None: all of them)

    def body(self, arguments: dict[str, Any]) -> Any:
        if self.body_argument is not None and self.body_argument in arguments:
            return arguments[self.body_argument]
        return arguments


def _tool_name(path: str) -> str:
    return path.removeprefix("/").replace("/", "_")


# -- the input schema ------------------------------------------------------------------------
def _parameters(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    """decode_request's parameters a caller fills (not *args, **kwargs or context)."""
    plain = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
             inspect.Parameter.KEYWORD_ONLY)
    try:  # resolve string annotations (``from __future__ import annotations``)
        signature = inspect.signature(fn, eval_str=True)
    except NameError as exc:
        raise ConfigError(f"MCP cannot work out the input schema of {_qualname(fn)}: its "
                          f"annotation names something undefined ({exc}); pass "
                          "MCP(input_schema={...})") from exc
    return [p for p in signature.parameters.values()
            if p.kind in plain and p.name != "context"]


def _qualname(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def input_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """The JSON schema of ``fn``'s arguments (an unannotated one is a string)."""
    fields: dict[str, Any] = {}
    for p in _parameters(fn):
        annotation = str if p.annotation is inspect.Parameter.empty else p.annotation
        fields[p.name] = (annotation, ... if p.default is inspect.Parameter.empty else p.default)
    model = create_model(f"{getattr(fn, '__name__', 'tool')}Arguments", **fields)
    schema: dict[str, Any] = model.model_json_schema()
    return schema


def _body_argument(fn: Callable[..., Any], schema: dict[str, Any], custom: bool) -> str | None:
    """The argument whose value is the request body: decode_request's pydantic parameter."""
    models = [p.name for p in _parameters(fn) if _is_model(p.annotation)]
    if len(models) == 1 and models[0] in schema.get("properties", {}):
        return models[0]
    return None if custom or len(_parameters(fn)) != 1 else _parameters(fn)[0].name


# -- the ASGI app ------------------------------------------------------------------------------
class McpApp:
    """An ASGI app: the MCP server of some tools, answering every HTTP request it is given
    (the front routes ``/mcp`` and ``/mcp/...`` here) and running its session manager
    during the ASGI lifespan (or ``async with app.lifespan()``)."""

    def __init__(self, tools: list[Tool], base_url: str | None = None) -> None:
        from mcp.server.lowlevel import Server
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        self.tools = {t.name: t for t in tools}
        if len(self.tools) != len(tools):
            names = [t.name for t in tools]
            raise ConfigError(f"MCP tool names {names} repeat; give each MCP(name=...) its own")
        self.server = cast(Any, Server("litserve"))  # its decorators are untyped
        self.server.list_tools()(self._list_tools)
        self.server.call_tool()(self._call_tool)
        self.manager = StreamableHTTPSessionManager(app=self.server, json_response=True,
                                                    stateless=True)
        self.base_url = base_url  # where the APIs are; None: the front that got the call
        self.client: Any = None

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        import httpx

        async with self.manager.run(), httpx.AsyncClient(timeout=None) as client:
            self.client = client
            try:
                yield
            finally:
                self.client = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            if self.client is None:
                await _plain(send, 503, b"the MCP server is not started (no lifespan ran)")
                return
            await self.manager.handle_request(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        try:
            async with self.lifespan():
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown
        except Exception as exc:  # tell the server why it cannot start (or stop cleanly)
            log.exception("the MCP server failed")
            kind = "startup" if self.client is None else "shutdown"
            await send({"type": f"lifespan.{kind}.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})

    async def _list_tools(self) -> list[Any]:
        from mcp.types import Tool as McpTool

        return [McpTool(name=t.name, description=t.description, inputSchema=t.schema)
                for t in self.tools.values()]

    async def _call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        from mcp.types import TextContent

        tool = self.tools.get(name)
        if tool is None:
            raise ValueError(f"no tool named {name!r}; the tools are {sorted(self.tools)}")
        request = self.server.request_context.request  # the HTTP request of this call
        headers = {k: v for k, v in request.headers.items() if k in _FORWARDED}
        base = self.base_url or _own_url(request.scope)
        reply = await self.client.post(base + tool.path, json=tool.body(arguments),
                                       headers=headers)
        if reply.status_code >= 400:
            raise RuntimeError(f"{tool.path} answered {reply.status_code}: {reply.text}")
        if reply.headers.get("content-type", "").startswith("application/json"):
            data = reply.json()
            if isinstance(data, dict):
                return data  # structured content, and its JSON as text
            return [TextContent(type="text", text=json.dumps(data))]
        return [TextContent(type="text", text=reply.text)]


def _own_url(scope: Scope) -> str:
    """The address the call came in on: the front itself, over loopback."""
    host, port = scope["server"]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _plain(send: Send, status: int, text: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": text})
