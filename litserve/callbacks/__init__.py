"""Callbacks: user code run at fixed points of a request's and the server's life."""

from .base import Callback, CallbackRunner, EventTypes, NoopCallback

__all__ = ["Callback", "CallbackRunner", "EventTypes", "NoopCallback"]
