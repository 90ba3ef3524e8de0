"""What the OpenAI specs share: request validation in the front, ``GET /v1/models``,
and errors in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``.

Every error of an OpenAI route goes through ``error_body``: invalid requests (400 /
422, answered by the front), a missing API key (401), an oversized body (413), a
full server (503), a deadline (504), and exceptions raised by the user's hooks (an
HTTPException's status and detail; any other exception is a 500 whose message says only
``Internal Server Error (request id: ...)``, the id of the server's log line that holds
the exception and its traceback).  A stream that fails after it started ends with one
``data: {"error": ...}`` event, which the official client raises as ``APIError``.
"""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from .. import jsonx
from ..errors import ConfigError
from .base import Endpoint, Forward, Immediate, LitSpec

MODELS_PATH = "/v1/models"
log = logging.getLogger("litserve.specs")

# status -> (type, code) as OpenAI's API reports them
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", "invalid_value"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "timeout"),
}


def error_document(status: int, detail: Any, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object for an HTTP status and a detail (str, dict or pydantic errors)."""
    if isinstance(detail, dict) and isinstance(detail.get("error"), dict):
        return detail  # already in OpenAI's shape
    default = ("invalid_request_error", None) if status < 500 else ("server_error", None)
    kind, code = _ERROR_KINDS.get(status, default)
    message, found = _message(detail)
    return {"error": {"message": message, "type": kind, "param": param or found, "code": code}}


def _message(detail: Any) -> tuple[str, str | None]:
    if isinstance(detail, str):
        return detail, None
    if isinstance(detail, dict):
        return str(detail.get("message", orjson.dumps(detail, default=str).decode())), None
    if isinstance(detail, list) and detail and all(isinstance(e, dict) for e in detail):
        return _validation_message(detail)
    return str(detail), None


def _validation_message(errors: list[dict[str, Any]], limit: int = 3) -> tuple[str, str | None]:
    """``'messages.0.content: Field required; ...'`` and the first field's path."""
    paths = [".".join(str(p) for p in e.get("loc", ())) for e in errors]
    parts = [f"{p}: {e.get('msg', '')}" if p else str(e.get("msg", ""))
             for p, e in zip(paths, errors, strict=True)]
    more = f" (and {len(parts) - limit} more)" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more, paths[0] or None


def immediate_error(status: int, detail: Any, param: str | None = None) -> Immediate:
    return Immediate(status, jsonx.dumps(error_document(status, detail, param), default=str))


def hook_status(exc: Exception, where: str) -> tuple[int, Any]:
    """(status, detail) for an exception raised by user code (``where``) in the front: an
    HTTPException's as given; any other is logged with a request id, which is all the
    client gets besides ``Internal Server Error``."""
    if isinstance(exc, HTTPException):
        return exc.status_code, exc.detail
    request_id = uuid.uuid4().hex
    log.error("request %s failed in %s: %s: %s", request_id, where, type(exc).__name__, exc,
              exc_info=exc)
    return 500, f"Internal Server Error (request id: {request_id})"


def is_generator_function(fn: Any) -> bool:
    return inspect.isgeneratorfunction(inspect.unwrap(fn))


class OpenAIBase(LitSpec):
    """Front logic of an OpenAI endpoint; subclasses add the worker side."""

    path: ClassVar[str]
    request_model: ClassVar[type[BaseModel]]
    body_field: ClassVar[str]  # the field handed to predict; all others go to context

    def __init__(self, model_name: str | None = None) -> None:
        if model_name is not None and (not isinstance(model_name, str) or not model_name):
            raise ConfigError(f"model_name={model_name!r} is not valid; use a non-empty string "
                              "such as model_name='my-llm' (listed by GET /v1/models)")
        self.model_name = model_name
        self._peers: list[OpenAIBase] = [self]

    # -- start-up (main process) ------------------------------------------------------------
    def check_api(self, api: Any) -> None:
        if getattr(self, "model_name", None) is None:
            given = getattr(api, "model_name", None)
            self.model_name = given if isinstance(given, str) and given else type(api).__name__

    def served_name(self) -> str:
        # getattr: a subclass may define __init__ without calling ours
        return getattr(self, "model_name", None) or type(self).__name__

    # -- front --------------------------------------------------------------------------------
    def bind(self, specs: list[Any]) -> None:
        """Share ``/v1/models`` with the other OpenAI specs of the same server."""
        self._peers = [s for s in specs if isinstance(s, OpenAIBase)] or [self]

    def endpoints(self) -> list[Endpoint]:
        get = ("GET",)
        models = [Endpoint(f"{MODELS_PATH}/{name}", get) for name in self._names()]
        return [Endpoint(self.path), Endpoint(MODELS_PATH, get), *models]

    def front(self, path: str, method: str, body: bytes, headers: dict[str, str]
              ) -> Forward | Immediate:
        if method == "GET":
            return self._models(path)
        try:
            request = self.request_model.model_validate_json(body)
        except ValidationError as exc:
            return _invalid(exc)
        refused = self.refuse(request)
        if refused is not None:
            return refused
        context = request.model_dump(exclude={self.body_field})
        try:
            self.populate_context(context, request)
        except Exception as exc:  # user code: answer in OpenAI's shape, keep serving
            return immediate_error(*hook_status(exc, f"{type(self).__name__}.populate_context"))
        return Forward(body, bool(getattr(request, "stream", False)), context)

    def refuse(self, request: Any) -> Immediate | None:
        """An error for a valid request this spec cannot serve, else None."""
        return None

    def error_body(self, status: int, detail: Any) -> bytes:
        return jsonx.dumps(error_document(status, detail), default=str)

    def _names(self) -> list[str]:
        peers = getattr(self, "_peers", None) or [self]
        return list(dict.fromkeys(peer.served_name() for peer in peers))

    def _models(self, path: str) -> Immediate:
        cards = [{"id": name, "object": "model", "created": int(time.time()),
                  "owned_by": "litserve"} for name in self._names()]
        if path == MODELS_PATH:
            return Immediate(200, orjson.dumps({"object": "list", "data": cards}))
        name = path[len(MODELS_PATH) + 1:]
        card = next(c for c in cards if c["id"] == name)
        return Immediate(200, orjson.dumps(card))

    # -- worker -------------------------------------------------------------------------------
    def parse(self, payload: bytes) -> Any:
        return self.request_model.model_validate_json(payload)

    def error_chunk(self, state: Any, status: int, detail: Any) -> bytes:
        return b"data: " + self.error_body(status, detail) + b"\n\n"


def _invalid(exc: ValidationError) -> Immediate:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    if errors and errors[0]["type"] == "json_invalid":
        return immediate_error(400, f"request body is not valid JSON: {errors[0]['msg']}")
    return immediate_error(422, errors)
