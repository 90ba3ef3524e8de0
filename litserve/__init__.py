"""litserve: a LitServe-compatible model server over a shared-memory pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import LitAPI
    from .callbacks import Callback
    from .client import AsyncClient, Client
    from .loggers import Logger
    from .server import LitServer, Request, Response
    from .utils import configure_logging, set_trace, set_trace_if_debug

__version__ = "0.1.0"

__all__ = ["AsyncClient", "Callback", "Client", "LitAPI", "LitServer", "Logger",
           "OpenAIEmbeddingSpec", "OpenAISpec", "Request", "Response", "__version__",
           "configure_logging", "examples", "set_trace", "set_trace_if_debug",
           "test_examples"]

# name -> the module that defines it; imported on first use, so that `import litserve`
# stays light for clients
_LAZY = {
    "LitAPI": ".api",
    "LitServer": ".server",
    "Request": ".server",
    "Response": ".server",
    "Callback": ".callbacks",
    "Logger": ".loggers",
    "Client": ".client",
    "AsyncClient": ".client",
    "OpenAISpec": ".specs",
    "OpenAIEmbeddingSpec": ".specs",
    "configure_logging": ".utils",
    "set_trace": ".utils",
    "set_trace_if_debug": ".utils",
}
_SUBMODULES = ("examples", "test_examples", "specs", "wire", "errors", "utils", "loggers",
               "callbacks", "loops", "mcp")


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'litserve' has no attribute {name!r}")
