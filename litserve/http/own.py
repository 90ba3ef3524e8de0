"""The server's own routes beside ``/health``: ``/info``, the shutdown API,
``/openapi.json`` and ``/docs``.  Each answer is made by the front, from documents
encoded once at start; none of them reaches a worker.

* ``GET info_path``: ``{"model": model_metadata, "server": {...}}`` (``plan.info``, or a
  minimal document of the same shape when the plan has none).
* ``POST shutdown_path`` (``enable_shutdown_api``): with ``Authorization: Bearer <key>``
  (the plan's shutdown key, from ``LIT_SHUTDOWN_API_KEY`` or generated at start) it
  answers 200 and then tells the supervisor to stop (SIGTERM: every front drains its
  requests in flight); any other key is a 401.
"""

from __future__ import annotations

import hmac
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .. import protocol as P
from ..config import Plan
from .auth import bearer
from .openapi import DOCS_PATH, OPENAPI_PATH, docs_page, document
from .replies import Reply, json_error

Headers = dict[bytes, bytes]
SHUTDOWN_KEY_ENV = "LIT_SHUTDOWN_API_KEY"
WRONG_SHUTDOWN_KEY = ("Invalid or missing shutdown key: send 'Authorization: Bearer "
                      "<SHUTDOWN_API_KEY>' (the LIT_SHUTDOWN_API_KEY the server started with)")


@dataclass(slots=True)
class OwnRoute:
    """A route answered by the front: ``answer(headers)``; then ``after()`` once a 200
    was sent."""

    methods: tuple[str, ...]
    answer: Callable[[Headers], Reply]
    after: Callable[[], None] | None = None


def info_document(plan: Plan, server: Any) -> dict[str, Any]:
    """``plan.info`` when the plan has it, else the same shape from the LitServer."""
    info = getattr(plan, "info", None)
    if info is not None:
        return dict(info)
    return {"model": getattr(server, "model_metadata", None),
            "server": {"devices": list(getattr(server, "devices", plan.devices)),
                       "workers_per_device": getattr(server, "workers_per_device", 1),
                       "timeout": plan.timeout if plan.timeout else False,
                       "stream": {r.api_path: r.stream for r in plan.routes},
                       "max_payload_size": plan.max_payload_bytes,
                       "track_requests": plan.track_requests}}


def shutdown_key(plan: Plan) -> bytes | None:
    key = getattr(plan, "shutdown_api_key", None) or os.environ.get(SHUTDOWN_KEY_ENV)
    return key.encode() if key else None


def own_routes(plan: Plan, shipped: Any, parent: int) -> dict[str, OwnRoute]:
    """Path -> route, for every route of the server's own that ``plan`` turns on."""
    routes: dict[str, OwnRoute] = {}
    info = _fixed(P.CT_JSON, orjson.dumps(info_document(plan, shipped.server), default=str))
    routes[plan.info_path] = OwnRoute(("GET", "HEAD"), info)
    if plan.enable_shutdown_api:
        routes[plan.shutdown_path] = OwnRoute(("POST",), _shutdown_answer(shutdown_key(plan)),
                                              lambda: _stop_server(parent))
    if not plan.disable_openapi_url:
        doc = orjson.dumps(document(plan, shipped.apis, shipped.specs))
        routes[OPENAPI_PATH] = OwnRoute(("GET", "HEAD"), _fixed(P.CT_JSON, doc))
        page = Reply(P.RESULT, 200, P.CT_OTHER, b"content-type: text/html; charset=utf-8\r\n",
                     docs_page())
        routes[DOCS_PATH] = OwnRoute(("GET", "HEAD"), lambda headers: page)
    return routes


def _fixed(ctype: int, body: bytes) -> Callable[[Headers], Reply]:
    reply = Reply(P.RESULT, 200, ctype, b"", body)
    return lambda headers: reply


def _shutdown_answer(key: bytes | None) -> Callable[[Headers], Reply]:
    done = Reply(P.RESULT, 200, P.CT_TEXT, b"", b"Server is shutting down gracefully.")

    def answer(headers: Headers) -> Reply:
        if key is None or not hmac.compare_digest(bearer(headers), key):
            return json_error(401, WRONG_SHUTDOWN_KEY, b"www-authenticate: Bearer\r\n")
        return done

    return answer


def _stop_server(parent: int) -> None:
    """Ask the supervisor to stop, as Ctrl+C would (if it is still our parent)."""
    if os.getppid() == parent:
        os.kill(parent, signal.SIGTERM)
