"""``litserve.mcp``: a LitAPI as an MCP tool, listed and called with the official ``mcp``
client over streamable HTTP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field

import litserve as ls
from litserve.errors import ConfigError
from litserve.mcp import MCP, MOUNT, McpApp, input_schema, plan_tools

from .harness import SERVERS, SpecServer


class PowerRequest(BaseModel):
    input: float


class PowerAPI(ls.examples.SimpleLitAPI):
    def decode_request(self, request: PowerRequest) -> float:
        return request.input


class Documented(ls.LitAPI):
    """Echoes what it gets."""

    def decode_request(self, text: str, times: int = Field(2, ge=1, description="repeats"),
                       note: str | None = None, context: Any = None) -> Any:
        return text

    def predict(self, x: Any) -> Any:
        return x


# -- without a server ----------------------------------------------------------------------------
def test_input_schema_from_a_pydantic_annotation() -> None:
    schema = input_schema(PowerAPI().decode_request)
    assert schema["properties"] == {"request": {"$ref": "#/$defs/PowerRequest"}}
    assert schema["required"] == ["request"] and schema["type"] == "object"
    assert schema["$defs"]["PowerRequest"]["properties"]["input"]["type"] == "number"


def test_input_schema_from_plain_annotations_and_fields() -> None:
    schema = input_schema(Documented().decode_request)
    props = schema["properties"]
    assert list(props) == ["text", "times", "note"]  # context is not the caller's
    assert props["text"]["type"] == "string"
    assert props["times"] == {"default": 2, "description": "repeats", "minimum": 1,
                              "title": "Times", "type": "integer"}
    assert {"type": "null"} in props["note"]["anyOf"]
    assert schema["required"] == ["text"]


def test_tools_of_a_plan_one_app_for_all() -> None:
    first, second = MCP(description="squares"), MCP(name="/docs/echo")
    server = ls.LitServer([PowerAPI(mcp=first), ls.examples.SimpleLitAPI(api_path="/plain"),
                           Documented(api_path="/v1/echo", mcp=second)])
    plan = server.plan(port=0)
    tools = [tool for _, tool in plan_tools(plan)]
    assert [(t.name, t.path, t.description) for t in tools] == [
        ("predict", "/predict", "squares"), ("docs_echo", "/v1/echo", "Echoes what it gets.")]
    assert tools[0].body({"request": {"input": 4}}) == {"input": 4}
    assert tools[1].body({"text": "a", "times": 3}) == {"text": "a", "times": 3}
    mounts = first.asgi_mounts(plan)
    assert [prefix for prefix, _ in mounts] == [MOUNT] == ["/mcp"]
    assert isinstance(mounts[0][1], McpApp) and sorted(mounts[0][1].tools) == [
        "docs_echo", "predict"]
    assert second.asgi_mounts(plan) == []  # the first MCP's app serves every tool


def test_description_is_required() -> None:
    server = ls.LitServer(PowerAPI(mcp=MCP()))
    with pytest.raises(ConfigError, match=r"MCP\(description="):
        plan_tools(server.plan(port=0))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"description": ""}, "description=''"), ({"name": 3}, "name=3"),
    ({"description": "x", "input_schema": "{}"}, "input_schema='{}'"),
])
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        MCP(**kwargs)


def test_duplicate_tool_names_are_refused() -> None:
    server = ls.LitServer([PowerAPI(mcp=MCP(description="a", name="t")),
                           PowerAPI(api_path="/b", mcp=MCP(description="b", name="t"))])
    with pytest.raises(ConfigError, match="repeat"):
        McpApp([tool for _, tool in plan_tools(server.plan(port=0))])


def test_http_before_the_lifespan_is_a_503() -> None:
    app = McpApp([])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "path": "/mcp/", "method": "POST", "headers": []},
                    receive, send))
    assert sent[0]["status"] == 503 and b"lifespan" in sent[1]["body"]


def test_without_the_mcp_package() -> None:
    code = ("import sys; sys.modules['mcp'] = None\n"
            "import litserve as ls\n"
            "from litserve.mcp import MCP, MCPUnavailable\n"
            "ls.LitAPI(); ls.LitServer(ls.examples.SimpleLitAPI()).plan(port=0)\n"
            "try:\n    MCP(description='x')\n"
            "except MCPUnavailable as exc:\n    print('refused:', exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONWARNINGS": "error"})
    assert out.returncode == 0, out.stderr
    assert "pip install 'litserve[mcp]'" in out.stdout


# -- with servers --------------------------------------------------------------------------------
async def _list_and_call(url: str) -> tuple[list[Any], Any, Any]:
    from mcp import ClientSession
    from mcp.client import streamable_http

    # the newer name where the client has it (the old one warns), LitServe's e2e name else
    client = getattr(streamable_http, "streamable_http_client", None) \
        or streamable_http.streamablehttp_client
    async with client(url) as (read, write, _), \
            ClientSession(read, write) as session:
        await session.initialize()
        tools = (await session.list_tools()).tools
        good = await session.call_tool("predict", {"request": {"input": 4}})
        bad = await session.call_tool("predict", {"request": {"input": "four"}})
        return tools, good, bad


def _check(tools: list[Any], good: Any, bad: Any) -> None:
    assert [t.name for t in tools] == ["predict"], tools
    assert tools[0].description == "Returns the power of a number."
    assert tools[0].inputSchema["properties"] == {"request": {"$ref": "#/$defs/PowerRequest"}}
    assert not good.isError and good.structuredContent == {"output": 16.0}
    assert '"output": 16.0' in good.content[0].text
    assert bad.isError and "four" in bad.content[0].text


@pytest.fixture(scope="module")
def litserver() -> Iterator[SpecServer]:
    server = SpecServer("mcp_power.py")
    try:
        server.wait_ready()
        yield server
        assert server.stop() == 0, server.output
    finally:
        server.kill_group()


def test_app_under_uvicorn_calls_the_api(litserver: SpecServer) -> None:
    """Temporary check while no front mounts the app: the MCP app alone under uvicorn,
    calling the litserve server's endpoint."""
    app = subprocess.Popen([sys.executable, str(SERVERS / "mcp_power.py"), litserver.url],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert app.stdout is not None
        url = ""
        for line in app.stdout:
            if "Uvicorn running on " in line:
                url = line.split("Uvicorn running on ")[1].split()[0]
                break
        assert url, "the MCP app did not start"
        _check(*asyncio.run(_list_and_call(url + "/mcp/")))
    finally:
        app.terminate()
        app.wait(15)
        if app.stdout is not None:
            app.stdout.close()


def test_litserver_serves_mcp(litserver: SpecServer) -> None:
    _check(*asyncio.run(_list_and_call(litserver.url + "/mcp/")))
    assert litserver.post(json={"input": 3}).json() == {"output": 9.0}  # still a plain API
