"""The loop classes of LitServe's ``LitAPI(loop=...)``, and which of them we can serve.

Upstream LitServe runs a loop object in each worker: its ``run`` reads requests from
multiprocessing queues and writes responses to others.  Our workers exchange requests
through shared memory instead (``litserve.worker``), so a loop is a *description* here:

| loop given                                   | what the worker does                        |
|----------------------------------------------|---------------------------------------------|
| ``"auto"``, ``None``, ``SingleLoop()``,       | the built-in per-request path, chosen from  |
| ``BatchedLoop()``, ``StreamingLoop()``,       | ``stream`` and ``max_batch_size`` (the      |
| ``BatchedStreamingLoop()``, ``DefaultLoop()`` | class itself is not consulted)              |
| ``ContinuousBatchingLoop()`` and subclasses   | continuous batching (worker/continuous.py): |
|                                              | the loop's add_request / has_capacity /     |
|                                              | step / mark_completed hooks are called      |
| a subclass overriding ``run``, ``prefill``,   | refused (ConfigError): those read upstream's|
| ``schedule_task`` or ``__call__``             | queues, which do not exist here             |
"""

from __future__ import annotations

from typing import Any


class LitAPIStatus:
    """The status of one step's output (the values upstream's ``litserve.utils`` uses)."""

    START = "START"
    OK = "OK"
    ERROR = "ERROR"
    FINISH_STREAMING = "FINISH_STREAMING"


# the methods of upstream's loops that talk to its queues: a loop overriding one of them
# expects a worker we do not have
QUEUE_METHODS = ("run", "prefill", "schedule_task", "__call__")


class _BaseLoop:
    """The root of every loop; see the module's table for what each one means here."""

    def pre_setup(self, lit_api: Any, spec: Any = None) -> None:
        """Checks before ``setup``; the worker calls it once per process."""

    def run(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "litserve's workers never call a loop's run(): requests travel through shared "
            "memory, not upstream LitServe's queues (see litserve.loops.base)")

    async def prefill(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("litserve's workers admit requests themselves")

    async def schedule_task(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("litserve's workers admit requests themselves")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("litserve's workers never call a loop object")


class LitLoop(_BaseLoop):
    """Upstream's base for custom loops.  Here only its continuous-batching subclasses
    change how a worker runs; see the module's table."""

    def __init__(self) -> None:
        self._context: dict[str, Any] = {}


class DefaultLoop(LitLoop):
    """Upstream's base of the per-request loops: means ``loop="auto"`` here."""
