"""LitServe 0.2.19's MCP example: x**2 as an MCP tool whose input schema comes from
decode_request's pydantic annotation, next to an API without MCP (not a tool).

    python mcp_power.py            # a litserve server (the fronts serve /mcp/)
    python mcp_power.py URL        # only the MCP app, under uvicorn, calling the API at URL
"""

import sys

import uvicorn
from pydantic import BaseModel, Field

import litserve as ls
from litserve.mcp import MCP, McpApp, plan_tools


class PowerRequest(BaseModel):
    input: float = Field(description="the number to square")


class PowerAPI(ls.examples.SimpleLitAPI):
    def decode_request(self, request: PowerRequest):
        assert isinstance(request, PowerRequest), type(request)
        return request.input


class EchoAPI(ls.LitAPI):
    def predict(self, x):
        return x


def server():
    return ls.LitServer([PowerAPI(mcp=MCP(description="Returns the power of a number.")),
                         EchoAPI(api_path="/echo")])


if __name__ == "__main__":
    if len(sys.argv) == 1:
        server().run(host="127.0.0.1", port=0, generate_client_file=False)
    else:
        tools = [tool for _, tool in plan_tools(server().plan(port=0))]
        uvicorn.run(McpApp(tools, base_url=sys.argv[1]), host="127.0.0.1", port=0)
