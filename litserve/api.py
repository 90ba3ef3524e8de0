"""``LitAPI``: the user's hooks, and the defaults for batch / unbatch."""

from __future__ import annotations

import inspect
from typing import Any

from .errors import ConfigError

_UNSET: Any = object()


class LitAPI:
    """Subclass this and implement ``setup`` and ``predict`` (the rest is optional).

    Serving options may be given here (newer LitServe style) or to ``LitServer``;
    a value given here wins over the server's.
    """

    device: str = "cpu"

    def __init__(
        self,
        max_batch_size: int = _UNSET,
        batch_timeout: float = _UNSET,
        stream: bool = _UNSET,
        api_path: str = _UNSET,
        spec: Any = _UNSET,
        loop: Any = "auto",
        mcp: Any = None,
        enable_async: bool = False,
    ) -> None:
        given = dict(max_batch_size=max_batch_size, batch_timeout=batch_timeout,
                     stream=stream, api_path=api_path, spec=spec)
        self._options = {k: v for k, v in given.items() if v is not _UNSET}
        if not isinstance(enable_async, bool):
            raise ConfigError(f"enable_async={enable_async!r} is not valid; use True or False")
        self.enable_async = enable_async
        self.loop = checked_loop(loop)  # "auto" or a litserve.loops loop
        self.mcp = mcp  # a litserve.mcp.MCP: this API is also an MCP tool

    # -- hooks ----------------------------------------------------------------------
    def setup(self, device: str) -> None:
        """Load the model; runs once in every worker process."""

    # The hooks take (*args, **kwargs) so that an override with any signature --
    # decode_request(self, request) or decode_request(self, request, context) -- type-checks.
    def decode_request(self, *args: Any, **kwargs: Any) -> Any:
        """Default: the request as the front parsed it."""
        return args[0] if args else kwargs["request"]

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} must implement predict(self, x); it is the only "
            "required hook of a LitAPI"
        )

    def encode_response(self, *args: Any, **kwargs: Any) -> Any:
        """Default: the output as predict returned it."""
        return args[0] if args else kwargs["output"]

    def health(self) -> Any:
        """Extra health of this API for ``/health`` (True: healthy); may be ``async``.

        It runs in the HTTP fronts, which hold an unpickled copy of this object but never
        ran ``setup`` (as upstream LitServe runs it in its API server): check what the
        fronts can see (a file, a URL, an environment variable), not the model.  False,
        or an exception (logged), makes ``/health`` answer 503."""
        return True

    def batch(self, inputs: list[Any]) -> Any:
        """Default: stack equal-shape NumPy arrays / torch tensors, else the list.

        The worker replaces this default with a zero-copy-aware version that stacks
        straight into a reused (pinned, on CUDA) buffer; see ``litserve.worker.batching``.
        """
        from .batching import stack

        return stack(inputs)

    def unbatch(self, output: Any) -> list[Any]:
        return list(output)

    # -- options ----------------------------------------------------------------------
    @property
    def options(self) -> dict[str, Any]:
        """Serving options given to this LitAPI's constructor."""
        return dict(getattr(self, "_options", {}))

    def hook_takes_context(self, name: str) -> bool:
        """Whether the hook ``name`` declares a parameter called ``context``."""
        try:
            return "context" in inspect.signature(getattr(self, name)).parameters
        except (TypeError, ValueError):
            return False

    # -- logging ----------------------------------------------------------------------
    _log_sink: Any = None  # set in every process by litserve.loggers.attach

    def log(self, key: str, value: Any) -> None:
        """Send ``(key, value)`` to the server's loggers (``LitServer(loggers=...)``),
        which process it in a process of their own; never waits (an entry that finds
        their queue full is dropped, and counted).  Without loggers: does nothing."""
        if self._log_sink is not None:
            self._log_sink.put(key, value)


def validate_api(api: Any) -> LitAPI:
    if not isinstance(api, LitAPI):
        raise ConfigError(
            f"LitServer needs LitAPI instances, got {type(api).__name__}; "
            "subclass litserve.LitAPI and pass an instance: ls.LitServer(MyAPI())"
        )
    if type(api).predict is LitAPI.predict and not steps_itself(api):
        raise ConfigError(
            f"{type(api).__name__} does not implement predict(self, x); it is required"
        )
    return api


def request_model(api: LitAPI) -> Any:
    """The pydantic model ``decode_request``'s first parameter is annotated with, if any."""
    import typing

    try:
        from pydantic import BaseModel

        hints = typing.get_type_hints(type(api).decode_request)
        params = list(inspect.signature(type(api).decode_request).parameters)
    except Exception:  # unresolvable annotations: treat as unannotated
        return None
    if len(params) < 2:
        return None
    ann = hints.get(params[1])
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def checked_loop(loop: Any) -> Any:
    """``LitAPI(loop=...)``: "auto" or a loop of ``litserve.loops``; ConfigError otherwise."""
    from .loops import check_loop

    return check_loop(loop)


def steps_itself(api: Any) -> bool:
    """Does ``api`` make its outputs in ``step`` (a ContinuousBatchingLoop), not ``predict``?"""
    from .loops import ContinuousBatchingLoop, DefaultContinuousBatchingLoop

    loop = getattr(api, "loop", "auto")
    return isinstance(loop, ContinuousBatchingLoop) and \
        not isinstance(loop, DefaultContinuousBatchingLoop)
