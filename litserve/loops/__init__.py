"""``LitAPI(loop=...)``: upstream LitServe's loop classes (see ``base`` for what each one
means on litserve's shared-memory workers)."""

from __future__ import annotations

from .base import DefaultLoop, LitAPIStatus, LitLoop, _BaseLoop
from .continuous_batching_loop import (
    ContinuousBatchingLoop,
    DefaultContinuousBatchingLoop,
    Output,
)
from .loops import check_loop, check_options, get_default_loop, inference_worker
from .simple_loops import BatchedLoop, SingleLoop
from .streaming_loops import BatchedStreamingLoop, StreamingLoop

__all__ = [
    "_BaseLoop",
    "LitLoop",
    "DefaultLoop",
    "get_default_loop",
    "inference_worker",
    "check_loop",
    "check_options",
    "Output",
    "LitAPIStatus",
    "SingleLoop",
    "BatchedLoop",
    "StreamingLoop",
    "BatchedStreamingLoop",
    "ContinuousBatchingLoop",
    "DefaultContinuousBatchingLoop",
]
