"""Who may call a route: a LitAPI's own ``authorize``, else the API key, else anyone.

LitServe runs ``authorize`` as a FastAPI dependency, so users write it in three ways,
all served here, sync or async:

* no argument: ``def authorize(self)``;
* the request: ``def authorize(self, request: Request)`` (a Starlette ``Request`` made
  from the scope; the body is not read yet, so it has headers, query and client only);
* FastAPI ``Depends`` defaults, e.g. ``auth: HTTPAuthorizationCredentials =
  Depends(HTTPBearer())``: the dependency is called the same way (a security scheme
  takes the request) and awaited; its own 401 / 403 answers are the answer.

An ``HTTPException`` (Starlette's or FastAPI's) raised on the way is the answer, with
its status, detail and headers; any other exception is logged and answered 500.  It runs
in the front before anything of the request is reserved or queued, so ``predict``
never sees a refused request.  How to call each ``authorize`` is worked out once, at
start; routes without one pay nothing.
"""

from __future__ import annotations

import hmac
import inspect
import logging
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from .replies import Refused

log = logging.getLogger("litserve.front")
Scope = dict[str, Any]
KEY_MISSING = ("Invalid or missing API key: send the X-API-Key header "
               "(or Authorization: Bearer <key>)")


class Resolver:
    """How to call one function of an ``authorize`` chain: each parameter is the request
    (``None``) or another ``Resolver`` (a ``Depends``)."""

    def __init__(self, fn: Callable[..., Any], args: dict[str, Resolver | None]) -> None:
        self.fn, self.args = fn, args

    async def call(self, request: Any) -> Any:
        kwargs = {name: request if sub is None else await sub.call(request)
                  for name, sub in self.args.items()}
        result = self.fn(**kwargs)
        return await result if inspect.isawaitable(result) else result


def resolver(fn: Callable[..., Any], where: str) -> Resolver:
    """How to call ``fn`` (``where`` names it in errors), or a ``ConfigError`` for a
    parameter that can be neither the request nor a ``Depends``."""
    try:
        sig = inspect.signature(fn, eval_str=True)
    except (NameError, TypeError, ValueError):
        sig = inspect.signature(fn)
    args: dict[str, Resolver | None] = {}
    for p in sig.parameters.values():
        dependency = _dependency(p)
        if dependency is not None:
            args[p.name] = resolver(dependency, f"{where} -> {_name(dependency)}")
        elif _is_request(p):
            args[p.name] = None
        elif p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ConfigError(
                f"{where}: parameter {p.name!r} cannot be given; authorize takes no "
                "argument, `request: Request`, or FastAPI Depends(...) defaults such as "
                "`auth: HTTPAuthorizationCredentials = Depends(HTTPBearer())`")
    return Resolver(fn, args)


def _dependency(p: inspect.Parameter) -> Any:
    try:
        from fastapi.params import Depends
    except ImportError:  # without FastAPI nobody can write a Depends
        return None
    if not isinstance(p.default, Depends):
        return None
    return p.default.dependency or p.annotation  # Depends() alone: the annotation


def _is_request(p: inspect.Parameter) -> bool:
    from starlette.requests import HTTPConnection

    ann = p.annotation
    if isinstance(ann, type) and issubclass(ann, HTTPConnection):
        return True
    return p.name == "request" and ann in (p.empty, "Request")


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


class Authorizer:
    """One LitAPI's ``authorize``, ready to call with a request's scope."""

    def __init__(self, api: Any) -> None:
        self.where = f"{type(api).__name__}.authorize"
        self.resolver = resolver(api.authorize, self.where)

    async def check(self, scope: Scope) -> None:
        """Nothing when allowed; ``Refused`` with the answer otherwise."""
        from starlette.exceptions import HTTPException
        from starlette.requests import Request

        try:
            await self.resolver.call(Request(scope))
        except HTTPException as exc:
            raise Refused(exc.status_code, exc.detail, _header_lines(exc.headers)) from None
        except Exception:
            log.exception("%s raised; the request is answered 500", self.where)
            raise Refused(500, "Internal Server Error") from None


def authorizer(api: Any) -> Authorizer | None:
    """``api``'s Authorizer, None when it defines no ``authorize``."""
    return Authorizer(api) if callable(getattr(api, "authorize", None)) else None


def check_authorize(apis: list[Any]) -> None:
    """Fail at ``LitServer(...)`` (not in each front) on an ``authorize`` that cannot be
    called."""
    for api in apis:
        authorizer(api)


def _header_lines(headers: Any) -> bytes:
    if not headers:
        return b""
    return b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in dict(headers).items())


def key_matches(headers: dict[bytes, bytes], key: bytes) -> bool:
    """The request carries ``key`` in X-API-Key or as a bearer token."""
    given = headers.get(b"x-api-key")
    if given is None:
        given = bearer(headers)
    return hmac.compare_digest(given, key)


def bearer(headers: dict[bytes, bytes]) -> bytes:
    """The token of an ``Authorization: Bearer <token>`` header, b"" when none."""
    auth = headers.get(b"authorization", b"")
    return auth[7:].strip() if auth[:7].lower() == b"bearer " else b""


class Gate:
    """Which check each path gets: its API's ``authorize`` (``guards``), else the API
    key (every path but ``exempt``), else none."""

    def __init__(self, api_key: bytes | None, guards: dict[str, Authorizer],
                 exempt: frozenset[str]) -> None:
        self.api_key, self.guards, self.exempt = api_key, guards, exempt

    async def check(self, path: str, scope: Scope, headers: dict[bytes, bytes]) -> None:
        guard = self.guards.get(path)
        if guard is not None:
            await guard.check(scope)
        elif self.api_key is not None and path not in self.exempt \
                and not key_matches(headers, self.api_key):
            raise Refused(401, KEY_MISSING)
