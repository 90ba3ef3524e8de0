"""Which loop serves a LitAPI: upstream's ``get_default_loop``, and our check of a
user's ``loop=``."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .base import QUEUE_METHODS, DefaultLoop, _BaseLoop
from .continuous_batching_loop import ContinuousBatchingLoop
from .simple_loops import BatchedLoop, SingleLoop
from .streaming_loops import BatchedStreamingLoop, StreamingLoop


def get_default_loop(stream: bool, max_batch_size: int, enable_async: bool = False
                     ) -> _BaseLoop:
    """The per-request loop upstream picks for these options (here: a name for the
    built-in path)."""
    if stream:
        return BatchedStreamingLoop() if max_batch_size > 1 else StreamingLoop()
    return BatchedLoop() if max_batch_size > 1 else SingleLoop()


def inference_worker(*args: Any, **kwargs: Any) -> None:
    """Upstream's worker entry point; ours is ``litserve.worker.main``."""
    raise NotImplementedError(
        "litserve's workers are started by LitServer.run() and exchange requests through "
        "shared memory; upstream's inference_worker (queues) does not exist here")


def check_loop(loop: Any) -> Any:
    """``loop`` as LitAPI stores it: ``"auto"`` or a loop we can serve; ConfigError,
    naming what works, for anything else."""
    if loop is None or (isinstance(loop, str) and loop == "auto"):
        return "auto"
    if not isinstance(loop, _BaseLoop):
        raise ConfigError(
            f"loop={loop!r} is not valid; use 'auto' or a loop from litserve.loops, such as "
            "ContinuousBatchingLoop() or DefaultContinuousBatchingLoop()")
    custom = [m for m in QUEUE_METHODS if getattr(type(loop), m) is not getattr(_BaseLoop, m)]
    if custom:
        raise ConfigError(
            f"loop={type(loop).__name__}() overrides {', '.join(custom)}, which in upstream "
            "LitServe reads and answers its request queues; litserve's workers exchange "
            "requests through shared memory and never call them. " + _WORKS)
    if not isinstance(loop, DefaultLoop | ContinuousBatchingLoop):
        raise ConfigError(f"loop={type(loop).__name__}() is not a loop litserve can run. "
                          + _WORKS)
    return loop


def check_options(api: Any, stream: bool, spec: Any) -> None:
    """ConfigError when ``api``'s loop cannot serve with these route options (the worker
    checks at start-up; LitServer may call it earlier)."""
    loop = continuous(getattr(api, "loop", "auto"))
    if loop is None:
        return
    name, kind = type(api).__name__, type(loop).__name__
    if not stream:
        raise ConfigError(f"{name} uses {kind}, which streams every response; set "
                          "stream=True (LitAPI(stream=True) or LitServer(..., stream=True))")
    if spec is not None:
        raise ConfigError(f"{name} uses {kind} with spec={type(spec).__name__}(); continuous "
                          "batching serves plain streams only (as upstream LitServe), use "
                          "spec=None")
    loop.pre_setup(api, spec)


def continuous(loop: Any) -> ContinuousBatchingLoop | None:
    """The continuous-batching loop a LitAPI's ``loop`` names, or None."""
    return loop if isinstance(loop, ContinuousBatchingLoop) else None


_WORKS = ("Use loop='auto' (or SingleLoop/BatchedLoop/StreamingLoop/BatchedStreamingLoop, "
          "which mean the same), or continuous batching: DefaultContinuousBatchingLoop() with "
          "predict(inputs, generated_sequence) and has_finished(uid, token, "
          "max_sequence_length), or a ContinuousBatchingLoop subclass overriding "
          "add_request / has_capacity / step / mark_completed")
