"""What the sync and async clients share: URL and option checks, request heads,
and turning an error response into ``HTTPStatusError``."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from litserve.client import _body
from litserve.client._http1 import Head, request_head
from litserve.client.errors import HTTPStatusError, Timeout

USER_AGENT: Final = "litserve-client/0.1"
SMALL_BODY: Final = 64 * 1024  # below this, head and body go out in one send
MAX_ERROR_BODY: Final = 1 << 20


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()  # "use the client's timeout"


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    path: str  # the predict route: the URL's own path, else api_path

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host_header}"


def parse_url(url: str, api_path: str | None) -> Endpoint:
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"url={url!r} is not supported; use http://HOST[:PORT][/PATH] "
                         "or https://..., e.g. 'http://127.0.0.1:8000'")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path if parts.path not in ("", "/") else (api_path or "/predict")
    if parts.path not in ("", "/") and api_path is not None:
        raise ValueError(f"give the route either in url={url!r} or as api_path={api_path!r}, "
                         "not both")
    if parts.query:
        path += "?" + parts.query
    return Endpoint(parts.scheme, parts.hostname, port, path)


def check_timeout(timeout: float | None, name: str = "timeout") -> float | None:
    if timeout is not None and not timeout > 0:
        raise ValueError(f"{name}={timeout!r} is not valid; use a number of seconds > 0, "
                         "or None to wait without limit")
    return timeout


class Deadline:
    """A point in time a call must finish by (``None``: no limit)."""

    def __init__(self, timeout: float | None, what: str) -> None:
        self.timeout = timeout
        self.what = what
        self.at = None if timeout is None else time.monotonic() + timeout

    def left(self) -> float | None:
        if self.at is None:
            return None
        left = self.at - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left

    def expired(self) -> Timeout:
        return Timeout(f"{self.what} took longer than the timeout of {self.timeout} s")


class BaseClient:
    """Options and request building common to ``Client`` and ``AsyncClient``."""

    def __init__(self, url: str = "http://127.0.0.1:8000", *, api_path: str | None = None,
                 api_key: str | None = None, timeout: float | None = 60.0,
                 headers: dict[str, str] | None = None, tensor_format: str = "octet",
                 max_idle: int = 16) -> None:
        self.endpoint = parse_url(url, api_path)
        self.timeout = check_timeout(timeout)
        if tensor_format not in _body.TENSOR_FORMATS:
            raise ValueError(f"tensor_format={tensor_format!r} is not supported; use one of "
                             + ", ".join(repr(k) for k in _body.TENSOR_FORMATS))
        self.tensor_format = tensor_format
        key = api_key if api_key is not None else os.environ.get("LIT_SERVER_API_KEY")
        self.headers = [("User-Agent", USER_AGENT)]
        self.headers += [("X-API-Key", key)] if key else []
        self.headers += list((headers or {}).items())
        self.max_idle = max_idle

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint.origin + self.endpoint.path!r})"

    def _timeout(self, timeout: Any) -> float | None:
        return self.timeout if timeout is DEFAULT else check_timeout(timeout)

    def _request(self, method: str, path: str | None, body: _body.Body | None,
                 accept: str, extra: dict[str, str] | None) -> tuple[bytes, list[Any]]:
        """The request head and the body pieces to send after it."""
        headers = [*self.headers, ("Accept", accept)]
        if body is not None:
            headers += [("Content-Type", body.content_type),
                        ("Content-Length", str(body.length)), *body.headers]
        headers += list((extra or {}).items())
        head = request_head(method, path or self.endpoint.path, self.endpoint.host_header,
                            headers)
        pieces = body.pieces if body is not None else []
        if body is not None and body.length < SMALL_BODY:
            return head + b"".join(pieces), []
        return head, pieces

    def _predict_request(self, x: Any, path: str | None, binary: bool | None,
                         headers: dict[str, str] | None) -> tuple[bytes, list[Any]]:
        body = _body.encode(x, self.tensor_format)
        wants_binary = body.is_tensor if binary is None else binary
        accept = _body.ACCEPT_BINARY if wants_binary else _body.JSON
        return self._request("POST", path, body, accept, headers)

    def _stream_request(self, x: Any, path: str | None,
                        headers: dict[str, str] | None) -> tuple[bytes, list[Any]]:
        accept = "application/x-ndjson, text/event-stream, */*;q=0.5"
        return self._request("POST", path, _body.encode(x, self.tensor_format), accept,
                             headers)

    def _error(self, head: Head, body: bytes, path: str | None) -> HTTPStatusError:
        """The exception for a 3xx/4xx/5xx answer (redirects are not followed)."""
        url = self.endpoint.origin + (path or self.endpoint.path)
        detail = _body.error_detail(head.content_type, body)
        if head.status < 400:
            where = head.headers.get("location", "?")
            detail = f"redirected to {where}; the client does not follow redirects, use that URL"
        return HTTPStatusError(head.status, detail, url, head.headers, body)
