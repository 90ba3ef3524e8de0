"""``LitAPI``: the user's hooks, and the defaults for batch / unbatch."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

from .errors import ConfigError

_UNSET: Any = object()


class LitAPI:
    """Subclass this and implement ``setup`` and ``predict`` (the rest is optional).

    Serving options may be given here (newer LitServe style) or to ``LitServer``;
    a value given here wins over the server's.
    """

    device: str = "cpu"
    enable_async: bool = False  # (a subclass whose __init__ skips LitAPI's has it too)

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
        self._validate_async_methods()
        self.loop = checked_loop(loop)  # "auto" or a litserve.loops loop
        self.mcp = mcp  # a litserve.mcp.MCP: this API is also an MCP tool

    def _validate_async_methods(self) -> None:
        """LitServe's check of ``enable_async=True`` (its messages): ``predict`` must be
        ``async def`` (a coroutine or an async generator), else ConfigError; a plain
        ``decode_request`` / ``encode_response`` of yours is warned about and run in a
        thread.  What also depends on ``stream`` and the spec is checked when
        ``LitServer`` is built (``check_async_route``)."""
        if not self.enable_async:
            return
        check_async_hooks(self)
        for name in ("decode_request", "encode_response"):
            if _overrides(self, name) and not _is_async(getattr(self, name)):
                warnings.warn(f"{type(self).__name__}.{name} is a plain function under "
                              "enable_async=True; it will run in a thread. Make it async "
                              "def to run it on the worker's event loop.",
                              UserWarning, stacklevel=3)

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


ASYNC_HOOKS = ("decode_request", "predict", "encode_response")


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


def _overrides(api: LitAPI, name: str) -> bool:
    return getattr(type(api), name) is not getattr(LitAPI, name)


def check_async_hooks(api: LitAPI) -> None:
    """``async def`` hooks need ``enable_async=True``, and ``enable_async=True`` needs an
    ``async def predict`` (LitServe's rules and messages); ConfigError otherwise."""
    if not api.enable_async:
        for name in ASYNC_HOOKS:
            if _is_async(getattr(api, name)):
                raise ConfigError(
                    f"{type(api).__name__}.{name} is async, but enable_async is "
                    "not set: pass LitAPI(enable_async=True), or make the hooks plain "
                    "(non-async) functions")
        return
    if not _is_async(api.predict):
        raise ConfigError(f"{type(api).__name__}.predict is a plain function, but "
                          "enable_async=True needs an async one: async def predict (return, "
                          "or yield to stream)")


_STREAM_EXAMPLE = """

    async def predict(self, x):
        for i in range(10):
            await asyncio.sleep(0.01)  # some async work
            yield i

    async def encode_response(self, outputs):
        async for output in outputs:
            yield {"output": output}"""


def check_async_route(api: LitAPI, route: Any) -> None:
    """The kinds of an ``enable_async`` API's hooks for its route (``RouteOptions``: its
    stream flag and spec), as LitServe requires them; ConfigError otherwise.

    * not streamed: ``predict`` and ``encode_response`` must not yield;
    * ``stream=True``: ``predict`` must be an async generator, and ``encode_response``
      (if yours) one too: it receives predict's async generator;
    * ``OpenAISpec``: ``predict`` must be an async generator, ``encode_response`` (if
      yours) one too; ``OpenAIEmbeddingSpec``: as not streamed.

    (LitServe also accepts a plain generator ``encode_response`` here, then fails every
    request when it iterates the async generator; it is refused here.)  Unlike LitServe,
    batching (``max_batch_size > 1``) is served with async hooks too."""
    if not api.enable_async:
        return
    from .specs.openai import OpenAISpec
    from .specs.openai_embedding import OpenAIEmbeddingSpec

    name = type(api).__name__
    spec = route.spec
    if spec is not None and not isinstance(spec, OpenAISpec | OpenAIEmbeddingSpec):
        return  # another spec: its check_api decides
    streamed = isinstance(spec, OpenAISpec) if spec is not None else route.stream
    predict, encode = api.predict, api.encode_response
    yields = [inspect.isasyncgenfunction(predict) or inspect.isgeneratorfunction(predict),
              inspect.isasyncgenfunction(encode) or inspect.isgeneratorfunction(encode)]
    if not streamed:
        if any(yields):
            raise ConfigError(
                f"{name}: when `stream=False`, `lit_api.predict`, `lit_api.encode_response` "
                "must not be generator or async generator functions; return the output "
                "(async def predict(self, x): ... return {\"output\": output}), or serve it "
                "with stream=True")
        return
    if spec is not None:  # OpenAISpec: LitServe's messages
        if not inspect.isasyncgenfunction(predict):
            raise ConfigError(f"{name}: predict must be an async generator (async def with "
                              "yield) to serve it with OpenAISpec and enable_async=True"
                              + _STREAM_EXAMPLE)
        if _overrides(api, "encode_response") and not inspect.isasyncgenfunction(encode):
            what = ("a plain generator: make it an async generator (async def, async for, "
                    "yield), it receives predict's async generator" if yields[1] else
                    "neither a generator nor an async generator")
            raise ConfigError(f"{name}: encode_response is {what}" + _STREAM_EXAMPLE)
        return
    rule = ("When `stream=True` both `lit_api.predict` and `lit_api.encode_response` must "
            "generate values using `yield` (with enable_async=True: async generators, async "
            "def with yield)")
    if not inspect.isasyncgenfunction(predict):
        raise ConfigError(f"{name}: {rule}; predict is not an async generator"
                          + _STREAM_EXAMPLE)
    if _overrides(api, "encode_response") and not inspect.isasyncgenfunction(encode):
        what = ("a plain generator (it receives predict's async generator: async for)"
                if yields[1] else "not a generator")
        raise ConfigError(f"{name}: {rule}; encode_response is {what}" + _STREAM_EXAMPLE)


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
    check_async_hooks(api)
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
