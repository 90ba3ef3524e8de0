"""Upstream's per-request streaming loops; each means ``loop="auto"`` here."""

from __future__ import annotations

from .base import DefaultLoop


class StreamingLoop(DefaultLoop):
    """One streamed request per ``predict`` (the built-in path with ``stream=True``)."""


class BatchedStreamingLoop(DefaultLoop):
    """A batch streamed together (the built-in path with ``stream=True`` and
    ``max_batch_size>1``)."""
