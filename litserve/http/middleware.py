"""``LitServer(middlewares=[...])``: ASGI middlewares around the front's app.

Each item is a middleware class (or any callable that takes the app and returns an ASGI
app), or a ``(callable, {keyword arguments})`` pair, as with Starlette's
``app.add_middleware``.  The first item wraps the app, the last is outermost (the order
Starlette and LitServe give them).  Lifespan events go to the front directly, so a
middleware that does not forward them cannot keep a front from starting.

With no middleware the app is served as it is: no wrapper, no per-request work.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

Scope = dict[str, Any]
_EXAMPLE = ("for example middlewares=[GZipMiddleware, (CORSMiddleware, "
            "{'allow_origins': ['*']})]")


def check_middlewares(value: Any) -> list[Any]:
    """The validated middleware list (None: none), or a ``ConfigError`` naming the bad
    value or item and the accepted forms."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"middlewares={value!r} is not valid; use a list of middleware "
                          f"classes or (class, kwargs) pairs, {_EXAMPLE}")
    for item in value:
        if isinstance(item, tuple):
            if len(item) == 2 and callable(item[0]) and isinstance(item[1], dict):
                continue
        elif callable(item):
            continue
        raise ConfigError(f"middlewares: item {item!r} is not valid; use a middleware class "
                          f"(or a callable taking the app) or a (class, dict of keyword "
                          f"arguments) pair, {_EXAMPLE}")
    return value


def wrap(app: Any, middlewares: list[Any]) -> Any:
    """``app`` inside ``middlewares`` (``app`` itself when there are none)."""
    if not middlewares:
        return app
    chain = app
    for item in middlewares:
        factory, kwargs = item if isinstance(item, tuple) else (item, {})
        chain = factory(chain, **kwargs)
    return Stack(app, chain)


class Stack:
    """HTTP through the middlewares, lifespan straight to the front."""

    def __init__(self, app: Any, chain: Any) -> None:
        self.app, self.chain = app, chain

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
        else:
            await self.chain(scope, receive, send)
