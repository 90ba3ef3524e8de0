"""litserve: a LitServe-compatible model server over a shared-memory pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import LitAPI
    from .client import AsyncClient, Client
    from .server import LitServer

__version__ = "0.1.0"

__all__ = ["LitAPI", "LitServer", "examples", "test_examples", "Client", "AsyncClient",
           "__version__"]


def __getattr__(name: str) -> Any:
    # submodules and optional parts are imported on first use, so `import litserve`
    # stays light for clients
    import importlib

    if name == "LitAPI":
        return importlib.import_module(".api", __name__).LitAPI
    if name == "LitServer":
        return importlib.import_module(".server", __name__).LitServer
    if name in ("examples", "test_examples", "specs", "wire", "errors", "loops"):
        return importlib.import_module(f".{name}", __name__)
    if name in ("Client", "AsyncClient"):
        return getattr(importlib.import_module(".client", __name__), name)
    if name in ("OpenAISpec", "OpenAIEmbeddingSpec"):
        return getattr(importlib.import_module(".specs", __name__), name)
    raise AttributeError(f"module 'litserve' has no attribute {name!r}")
