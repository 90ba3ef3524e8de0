"""``ls.Callback`` and the runner that calls every registered one.

The hooks and their names are LitServe's, so callbacks written for it run here.  Where
each hook runs (the same processes LitServe uses):

=========================================  ==============================================
hook                                       process, keyword arguments
=========================================  ==============================================
on_before_setup / on_after_setup           each worker, ``lit_api=``
on_before/after_decode_request,            each worker, per batch or request,
on_before/after_predict,                   ``lit_api=``
on_before/after_encode_response
on_request                                 the HTTP front answering it, ``active_requests=``
                                           (with ``track_requests``, else None) and
                                           ``litserver=``
on_response                                the same front, ``litserver=``
on_server_start / on_server_end            the process that called ``LitServer.run``,
                                           ``litserver=``
=========================================  ==============================================

A callback that raises is logged and the others still run: a broken metrics callback
never fails a request.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any

from ..config import instances_of

log = logging.getLogger("litserve.callbacks")


class EventTypes(Enum):
    BEFORE_SETUP = "on_before_setup"
    AFTER_SETUP = "on_after_setup"
    BEFORE_DECODE_REQUEST = "on_before_decode_request"
    AFTER_DECODE_REQUEST = "on_after_decode_request"
    BEFORE_ENCODE_RESPONSE = "on_before_encode_response"
    AFTER_ENCODE_RESPONSE = "on_after_encode_response"
    BEFORE_PREDICT = "on_before_predict"
    AFTER_PREDICT = "on_after_predict"
    ON_SERVER_START = "on_server_start"
    ON_SERVER_END = "on_server_end"
    ON_REQUEST = "on_request"
    ON_RESPONSE = "on_response"


class Callback:
    """Subclass and override the hooks you need; each takes keyword arguments only
    (see the table in this module's docstring)."""

    def on_before_setup(self, *args: Any, **kwargs: Any) -> None:
        """A worker is about to run ``LitAPI.setup``."""

    def on_after_setup(self, *args: Any, **kwargs: Any) -> None:
        """A worker's ``LitAPI.setup`` returned."""

    def on_before_decode_request(self, *args: Any, **kwargs: Any) -> None:
        """``decode_request`` is about to run."""

    def on_after_decode_request(self, *args: Any, **kwargs: Any) -> None:
        """``decode_request`` returned."""

    def on_before_encode_response(self, *args: Any, **kwargs: Any) -> None:
        """``encode_response`` is about to run."""

    def on_after_encode_response(self, *args: Any, **kwargs: Any) -> None:
        """``encode_response`` returned (a stream: its last chunk was encoded)."""

    def on_before_predict(self, *args: Any, **kwargs: Any) -> None:
        """``predict`` is about to run."""

    def on_after_predict(self, *args: Any, **kwargs: Any) -> None:
        """``predict`` returned (a stream: its generator was exhausted)."""

    def on_server_start(self, *args: Any, **kwargs: Any) -> None:
        """The server is about to start its processes."""

    def on_server_end(self, *args: Any, **kwargs: Any) -> None:
        """The server stopped."""

    def on_request(self, *args: Any, **kwargs: Any) -> None:
        """A front accepted a request and is about to queue it."""

    def on_response(self, *args: Any, **kwargs: Any) -> None:
        """A front has a request's answer and is about to send it."""


class NoopCallback(Callback):
    """Does nothing (a placeholder)."""


def as_callbacks(value: Any) -> list[Callback]:
    """``LitServer(callbacks=...)``: None, one Callback or a list of them."""
    return instances_of(value, Callback, "callbacks",
                        "subclass litserve.Callback and pass instances: "
                        "LitServer(api, callbacks=[MyCallback()])")


class CallbackRunner:
    """Calls one hook on every callback, in order.  ``bool(runner)`` is False when there
    are none, so the hot path can skip the call entirely."""

    __slots__ = ("callbacks",)

    def __init__(self, callbacks: Any = None) -> None:
        self.callbacks = as_callbacks(callbacks)

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def trigger_event(self, event_name: str, *args: Any, **kwargs: Any) -> None:
        for callback in self.callbacks:
            try:
                getattr(callback, event_name)(*args, **kwargs)
            except Exception:
                log.exception("callback %s raised in %s; the request goes on",
                              type(callback).__name__, event_name)

    trigger = trigger_event
