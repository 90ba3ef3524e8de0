"""``LitServer``: validate the configuration, then hand it to the supervisor."""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from . import config, pickling
from .api import LitAPI, check_async_route, validate_api
from .callbacks.base import CallbackRunner, EventTypes, as_callbacks
from .config import (
    MiB,
    Plan,
    RouteOptions,
    Shipped,
    api_path,
    batch_timeout_seconds,
    fit_shared_memory,
    json_metadata,
    positive_int,
    read_api_key,
    resolve_accelerator,
    resolve_devices,
    seconds,
    shm_free,
    shutdown_key,
    timeout_seconds,
    workers_per_api,
)
from .errors import ConfigError
from .http.auth import check_authorize
from .http.middleware import check_middlewares
from .ipc.slots import MAX_WORKERS
from .loggers import as_loggers, shippable
from .protocol import META_ROOM
from .sockets import bind

log = logging.getLogger("litserve")
REUSE_PORT_DEFAULT = True  # see bench/RESULTS.md, "Spreading connections over fronts"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
__all__ = ["LitServer", "Request", "Response"]  # Request, Response: as LitServe re-exports


class LitServer:
    """Serve one LitAPI (or several, each on its own ``api_path``).

    ``restart_workers``: what happens when a worker process dies.  None (the default)
    and True: its requests fail with 500 and a new worker replaces it (at most
    $LITSERVE_MAX_RESTARTS deaths a minute).  False, given explicitly: the server stops,
    as LitServe 0.2.19 does by default, and ``run`` exits with status 1.

    ``loggers``: ``ls.Logger`` instances; what the hooks log with ``self.log(key, value)``
    reaches their ``process`` in a logger process of the server (``litserve.loggers``).

    ``enable_shutdown_api``: ``POST shutdown_path`` with ``Authorization: Bearer KEY``
    stops the server; KEY is $LIT_SHUTDOWN_API_KEY, else one generated and logged at
    ``run``.
    """

    def __init__(
        self,
        api: LitAPI | list[LitAPI],
        accelerator: str = "auto",
        devices: int | str | list[int] = "auto",
        workers_per_device: int = 1,
        timeout: float | bool = 30,
        max_batch_size: int = 1,
        batch_timeout: float = 0.0,
        stream: bool = False,
        spec: Any = None,
        api_path: str = "/predict",
        healthcheck_path: str = "/health",
        max_payload_size: int | None = None,
        response_buffer_size: int = 256 * MiB,
        max_queue_size: int = 4096,
        queue_timeout: float = 5.0,
        header_timeout: float = 10.0,
        body_timeout: float = 10.0,
        predict_timeout: float | None = None,
        info_path: str = "/info",
        shutdown_path: str = "/shutdown",
        enable_shutdown_api: bool = False,
        model_metadata: dict[str, Any] | None = None,
        track_requests: bool = False,
        callbacks: Any = None,
        middlewares: list[Any] | None = None,
        loggers: Any = None,
        disable_openapi_url: bool = False,
        restart_workers: bool | None = None,
        **upstream_only: Any,
    ) -> None:
        _check_upstream_only(upstream_only)
        # LitServe's optional parts; each is validated and served by its own module.
        self.healthcheck_path = config.api_path(healthcheck_path, "healthcheck_path", "'/health'")
        self.info_path = config.api_path(info_path, "info_path", "'/info'")
        self.shutdown_path = (config.api_path(shutdown_path, "shutdown_path", "'/shutdown'")
                              if enable_shutdown_api else shutdown_path)
        self.enable_shutdown_api = enable_shutdown_api
        key, self._key_generated = shutdown_key() if enable_shutdown_api else (None, False)
        self.shutdown_api_key: str | None = key
        self.model_metadata = json_metadata(model_metadata)
        self.track_requests = track_requests
        self.callbacks = as_callbacks(callbacks)
        self.middlewares = check_middlewares(middlewares)
        self.loggers = as_loggers(loggers)
        self.disable_openapi_url = disable_openapi_url
        self.restart_workers = restart_workers
        apis = list(api) if isinstance(api, list | tuple) else [api]
        if not apis:
            raise ConfigError("LitServer needs at least one LitAPI")
        self.apis = [validate_api(a) for a in apis]
        check_authorize(self.apis)
        self.accelerator = resolve_accelerator(accelerator)
        self.devices = resolve_devices(devices, self.accelerator)
        self.timeout = timeout_seconds(timeout)
        defaults = dict(max_batch_size=max_batch_size, batch_timeout=batch_timeout,
                        stream=stream, api_path=api_path, spec=spec)
        self.routes = [_route(a, defaults, self.timeout) for a in self.apis]
        for a, r in zip(self.apis, self.routes, strict=True):
            check_async_route(a, r)  # enable_async hooks vs stream / spec (litserve.api)
        _check_paths(self.routes, self._own_paths())
        self.workers_per_device = _one_worker_count(workers_per_device, self.routes)
        workers = len(self.devices) * self.workers_per_device
        if workers > MAX_WORKERS:
            raise ConfigError(f"{len(self.devices)} device(s) x workers_per_device="
                              f"{workers_per_device} make {workers} workers; at most "
                              f"{MAX_WORKERS} are supported")
        self._info = self._info_document(timeout, workers_per_device, max_payload_size)
        self._sizes_given = max_payload_size is not None or response_buffer_size != 256 * MiB
        self.max_payload_size = (
            256 * MiB if max_payload_size is None
            else positive_int("max_payload_size", max_payload_size)
        )
        self.response_buffer_size = positive_int("response_buffer_size", response_buffer_size)
        self.max_queue_size = positive_int("max_queue_size", max_queue_size)
        if isinstance(queue_timeout, bool) or not isinstance(queue_timeout, int | float) \
                or queue_timeout < 0:
            raise ConfigError(f"queue_timeout={queue_timeout!r} is not valid; use seconds >= 0")
        self.queue_timeout = float(queue_timeout)
        self.header_timeout = seconds("header_timeout", header_timeout)
        self.body_timeout = seconds("body_timeout", body_timeout)
        # Opt-in: a worker that spends longer than this in one batch without progress
        # (a stream's chunk counts as progress) is killed and replaced; /health says 503
        # meanwhile if no other worker can serve.
        self.predict_timeout = (None if predict_timeout is None
                                else seconds("predict_timeout", predict_timeout))

    def plan(self, host: str = "0.0.0.0", port: int = 8000, num_api_servers: int | None = None,
             log_level: str = "info", **uvicorn_kwargs: Any) -> Plan:
        """Everything the processes need; ``run`` uses this, tests may inspect it."""
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ConfigError(f"port={port!r} is not valid; use an int from 0 to 65535")
        fronts = 1 if num_api_servers is None else positive_int("num_api_servers", num_api_servers)
        if log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level={log_level!r} is not valid; use one of "
                              + ", ".join(repr(x) for x in LOG_LEVELS))
        specs = [r.spec for r in self.routes]
        routes = [RouteOptions(r.api_path, r.max_batch_size, r.batch_timeout, r.stream)
                  for r in self.routes]
        return Plan(
            apis_blob=_pickled(self.apis, specs, self),
            routes=routes,
            devices=[d for d in self.devices for _ in range(self.workers_per_device)],
            fronts=fronts,
            timeout=self.timeout,
            host=host,
            port=port,
            log_level=log_level,
            api_key=read_api_key(),
            healthcheck_path=self.healthcheck_path,
            max_payload_bytes=self.max_payload_size,
            request_arena_bytes=self.max_payload_size + META_ROOM,
            response_arena_bytes=self.response_buffer_size,
            request_ring_cells=max(2, 1 << (self.max_queue_size - 1).bit_length()),
            queue_wait=self.queue_timeout,
            header_timeout=self.header_timeout,
            body_timeout=self.body_timeout,
            predict_timeout=self.predict_timeout,
            info_path=self.info_path,
            shutdown_path=self.shutdown_path,
            enable_shutdown_api=self.enable_shutdown_api,
            track_requests=self.track_requests,
            disable_openapi_url=self.disable_openapi_url,
            restart_workers=self.restart_workers,
            loggers=len(self.loggers),
            shutdown_api_key=self.shutdown_api_key,
            info=self._info,
            uvicorn_kwargs=uvicorn_kwargs,
        )

    def _own_paths(self) -> dict[str, str]:
        """The server's own routes (no LitAPI may take them), path -> what it is."""
        own = {self.healthcheck_path: "the health check", self.info_path: "the info route"}
        if self.enable_shutdown_api:
            own[self.shutdown_path] = "the shutdown route"
        return own

    def _info_document(self, timeout: Any, workers_per_device: Any,
                       max_payload_size: Any) -> dict[str, Any]:
        """What ``info_path`` serves, in LitServe 0.2.19's forms: ``devices`` is
        ``["cpu"]`` on CPU, else one list per device (``[["cuda:0"], ["cuda:1"]]``); the
        other values as they were given; ``stream`` maps each API's path to whether it
        streams."""
        if self.accelerator == "cpu":
            devices: list[Any] = ["cpu"]
        else:
            devices = [[d if ":" in d else f"{d}:{i}"] for i, d in enumerate(self.devices)]
        return {"model": self.model_metadata, "server": {
            "devices": devices,
            "workers_per_device": workers_per_device,
            "timeout": timeout,
            "stream": {_paths(r)[0]: _streams(r) for r in self.routes},
            "max_payload_size": max_payload_size,
            "track_requests": self.track_requests,
        }}

    def __getstate__(self) -> dict[str, Any]:
        """As shipped to the other processes: loggers that cannot be pickled travel as
        their class (``litserve.loggers.shippable``)."""
        state = self.__dict__.copy()
        state["loggers"] = shippable(self.loggers)
        return state

    def run(self, host: str = "0.0.0.0", port: int = 8000, num_api_servers: int | None = None,
            log_level: str = "info", generate_client_file: bool = True,
            reuse_port: bool | None = None, **uvicorn_kwargs: Any) -> None:
        """Start fronts and workers and serve until Ctrl+C / SIGTERM.

        With several fronts (``num_api_servers``), ``reuse_port`` makes each front bind
        its own SO_REUSEPORT socket so the kernel spreads connections evenly; otherwise
        they accept from one shared socket.
        """
        from .supervisor import Supervisor

        if getattr(multiprocessing.current_process(), "_inheriting", False):
            raise RuntimeError(
                "LitServer.run() was called while a worker process was importing your server "
                "file. Start the server under a main guard:\n\n"
                "    if __name__ == '__main__':\n        server.run(port=8000)\n")
        for key in ("api_server_worker_type", "pretty_logs"):
            uvicorn_kwargs.pop(key, None)  # upstream options with no meaning here
        logging.basicConfig(level=log_level.upper() if log_level != "trace" else "DEBUG",
                            format="%(levelname)s:     %(message)s")
        plan = self.plan(host, port, num_api_servers, log_level, **uvicorn_kwargs)
        plan.reuse_port = bool(reuse_port) if reuse_port is not None else REUSE_PORT_DEFAULT
        try:
            shrunk = fit_shared_memory(plan, shm_free(), explicit=self._sizes_given)
            sock = bind(host, port, reuse_port=plan.reuse_port)
        except ConfigError as exc:
            print(f"litserve: {exc}", file=sys.stderr)
            sys.exit(1)
        if shrunk:
            log.warning("litserve: %s", shrunk)
        plan.port = sock.getsockname()[1]
        if generate_client_file:
            write_client_file(plan)
        self._announce_shutdown_key(plan)
        callbacks = CallbackRunner(self.callbacks)
        callbacks.trigger_event(EventTypes.ON_SERVER_START.value, litserver=self)
        try:
            code = Supervisor(plan, sock).run()
        finally:
            sock.close()
            callbacks.trigger_event(EventTypes.ON_SERVER_END.value, litserver=self)
        if code:
            sys.exit(code)

    def _announce_shutdown_key(self, plan: Plan) -> None:
        if not self.enable_shutdown_api:
            return
        if self._key_generated:
            log.warning("litserve: the shutdown API is enabled but $LIT_SHUTDOWN_API_KEY is "
                        "not set; generated shutdown API key: %s", self.shutdown_api_key)
        log.info("litserve: to stop the server: curl -X POST http://127.0.0.1:%d%s "
                 "-H 'Authorization: Bearer %s'", plan.port, self.shutdown_path,
                 self.shutdown_api_key)


# LitServe options that have no meaning here: accepted (so LitServe code runs unchanged)
# with a warning that says why.
UPSTREAM_ONLY = {
    "fast_queue": "requests always travel through shared memory here",
}


def _check_upstream_only(kwargs: dict[str, Any]) -> None:
    import inspect

    for key in kwargs:
        if key not in UPSTREAM_ONLY:
            accepted = [p for p in inspect.signature(LitServer.__init__).parameters
                        if p not in ("self", "api", "upstream_only")]
            raise ConfigError(f"LitServer got an unknown argument {key!r}; accepted: "
                              + ", ".join(accepted))
        log.warning("litserve: LitServer(%s=...) is ignored: %s", key, UPSTREAM_ONLY[key])


def _pickled(apis: list[LitAPI], specs: list[Any], server: LitServer) -> bytes:
    """The LitAPIs, specs and the server's user objects (callbacks, middlewares) as
    shipped to every process (``config.Shipped``), or a clear error."""
    try:
        return pickling.dumps(Shipped(apis, specs, server.callbacks, server.middlewares,
                                      server))
    except Exception as exc:
        names = ", ".join(type(a).__name__ for a in apis)
        raise ConfigError(
            f"{names} cannot be sent to the worker processes ({type(exc).__name__}: {exc}). "
            "Load models and open files, locks or connections in setup(), which runs in "
            "each worker, not in __init__") from exc


def _route(api: LitAPI, defaults: dict[str, Any], timeout: float | None) -> RouteOptions:
    merged = {**defaults, **api.options}
    batch_timeout = batch_timeout_seconds(merged["batch_timeout"])
    if timeout is not None and batch_timeout > timeout:
        raise ConfigError(f"batch_timeout={merged['batch_timeout']!r} is longer than "
                          f"timeout={timeout:g}; a batch must be able to close before its "
                          "requests time out: use a batch_timeout below the timeout")
    stream = merged["stream"]
    if not isinstance(stream, bool):
        raise ConfigError(f"stream={stream!r} is not valid; use True or False")
    spec = merged["spec"]
    if spec is not None:
        if not hasattr(spec, "endpoints") or not hasattr(spec, "front"):
            raise ConfigError(f"spec={spec!r} is not a litserve spec; use ls.OpenAISpec() or "
                              "ls.OpenAIEmbeddingSpec() (or a subclass)")
        spec.check_api(api)
    return RouteOptions(
        api_path=api_path(merged["api_path"]),
        max_batch_size=positive_int("max_batch_size", merged["max_batch_size"]),
        batch_timeout=batch_timeout,
        stream=stream,
        spec=merged["spec"],
    )


def _check_paths(routes: list[RouteOptions], own: dict[str, str]) -> None:
    seen: dict[str, int] = {}
    for i, r in enumerate(routes):
        for path in _paths(r):
            if path in seen or path in own:
                other = f"LitAPI #{seen[path]}" if path in seen else own[path]
                raise ConfigError(
                    f"LitAPI #{i} and {other} both use api_path={path!r}; give each LitAPI "
                    "its own path, e.g. LitAPI(api_path='/v1/other'), and each spec its own "
                    "LitAPI")
            seen[path] = i


def _paths(route: RouteOptions) -> list[str]:
    """The paths a route serves: its api_path, or its spec's POST endpoints."""
    if route.spec is None:
        return [route.api_path]
    return [ep.path for ep in route.spec.endpoints() if "POST" in ep.methods]


def _streams(route: RouteOptions) -> bool:
    """Whether a route streams, as LitServe reports it (its chat spec always does)."""
    from .specs.openai import OpenAISpec

    return True if isinstance(route.spec, OpenAISpec) else route.stream


def _one_worker_count(value: Any, routes: list[RouteOptions]) -> int:
    """``workers_per_device`` as one count: every worker here serves every LitAPI, so the
    per-API forms (list, dict) are accepted when they give every API the same count."""
    counts = workers_per_api(value, [_paths(r)[0] for r in routes])
    if len(set(counts.values())) > 1:
        raise ConfigError(f"workers_per_device={value!r} gives the LitAPIs different worker "
                          "counts; here every worker serves every LitAPI, so give one count "
                          f"for all, e.g. workers_per_device={max(counts.values())}")
    return next(iter(counts.values()))


CLIENT_TEMPLATE = '''# Written by litserve's LitServer.run (generate_client_file=False skips it).

import requests

response = requests.post("http://127.0.0.1:{port}{path}", json={{"input": 4.0}})
print(f"Status: {{response.status_code}}\\nResponse:\\n {{response.text}}")
'''


def write_client_file(plan: Plan) -> None:
    """``client.py`` in the current working directory (as LitServe does), unless there
    is one."""
    target = Path(os.getcwd()) / "client.py"
    if target.exists():
        return
    try:
        target.write_text(CLIENT_TEMPLATE.format(port=plan.port, path=_paths(plan.routes[0])[0]))
    except OSError as exc:
        log.warning("litserve: could not write %s: %s", target, exc)
