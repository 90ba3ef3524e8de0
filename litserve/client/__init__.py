"""Python clients for litserve servers: ``Client`` (blocking) and ``AsyncClient``.

Both keep connections alive, send NumPy arrays and torch tensors in the binary tensor
format (no base64 or JSON detour), return arrays for binary answers, iterate streams,
send the API key, honour timeouts and raise ``HTTPStatusError`` carrying the server's
status and detail.  Importing this package imports neither NumPy nor the server.
"""

from typing import TYPE_CHECKING, Any

from litserve.client.errors import (
    ClientError,
    ConnectError,
    HTTPStatusError,
    ProtocolError,
    Timeout,
)
from litserve.client.sync import Client

if TYPE_CHECKING:
    from litserve.client.aio import AsyncClient

__all__ = [
    "AsyncClient",
    "Client",
    "ClientError",
    "ConnectError",
    "HTTPStatusError",
    "ProtocolError",
    "Timeout",
]


def __getattr__(name: str) -> Any:
    if name == "AsyncClient":  # imported on first use: asyncio costs ~35 ms to import
        from litserve.client.aio import AsyncClient

        return AsyncClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
