"""Upstream's per-request loops without streaming; each means ``loop="auto"`` here."""

from __future__ import annotations

from .base import DefaultLoop


class SingleLoop(DefaultLoop):
    """One request per ``predict`` (the built-in path with ``max_batch_size=1``)."""


class BatchedLoop(DefaultLoop):
    """Batches of requests per ``predict`` (the built-in path with ``max_batch_size>1``)."""
