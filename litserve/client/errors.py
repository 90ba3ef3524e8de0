"""What the clients raise.  Every error derives from ``ClientError``.

``HTTPStatusError`` carries the server's answer (``status_code``, ``detail``,
``headers``, ``body``); ``Timeout`` is also a ``TimeoutError`` and ``ConnectError``
also a ``ConnectionError``, so code that catches the built-ins keeps working.
"""

from __future__ import annotations

from ..ipc.errors import LitServeError  # a plain module: no posix_ipc, no C extension


class ClientError(LitServeError):
    """Root of the client's errors (under litserve's root, ``LitServeError``)."""


class HTTPStatusError(ClientError):
    """The server answered with a 4xx or 5xx status (or a 3xx redirect, not followed)."""

    def __init__(self, status_code: int, detail: str, url: str = "",
                 headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.status_code = status_code
        self.detail = detail
        self.url = url
        self.headers = headers or {}
        self.body = body
        where = f" from {url}" if url else ""
        super().__init__(f"HTTP {status_code}{where}: {detail}" if detail
                         else f"HTTP {status_code}{where}")

    @property
    def status(self) -> int:
        return self.status_code


class Timeout(ClientError, TimeoutError):
    """The server did not answer within the client's timeout."""


class ConnectError(ClientError, ConnectionError):
    """The connection could not be made, or broke before the response was complete."""


class ProtocolError(ClientError):
    """The server's response was not valid HTTP/1.1 or not in the declared format."""
