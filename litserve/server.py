"""``LitServer``: validate the configuration, then hand it to the supervisor."""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any

import cloudpickle

from .api import LitAPI, check_async_route, validate_api
from .callbacks.base import as_callbacks
from .config import (
    MiB,
    Plan,
    RouteOptions,
    Shipped,
    api_path,
    batch_timeout_seconds,
    fit_shared_memory,
    positive_int,
    read_api_key,
    resolve_accelerator,
    resolve_devices,
    seconds,
    shm_free,
    timeout_seconds,
)
from .errors import ConfigError
from .ipc.slots import MAX_WORKERS
from .protocol import META_ROOM
from .sockets import bind

log = logging.getLogger("litserve")
REUSE_PORT_DEFAULT = True  # see bench/RESULTS.md, "Spreading connections over fronts"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class LitServer:
    """Serve one LitAPI (or several, each on its own ``api_path``)."""

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
        self.info_path = info_path
        self.shutdown_path = shutdown_path
        self.enable_shutdown_api = enable_shutdown_api
        self.model_metadata = model_metadata
        self.track_requests = track_requests
        self.callbacks = as_callbacks(callbacks)
        self.middlewares = [] if middlewares is None else middlewares
        self.loggers = loggers
        self.disable_openapi_url = disable_openapi_url
        self.restart_workers = restart_workers
        apis = list(api) if isinstance(api, list | tuple) else [api]
        if not apis:
            raise ConfigError("LitServer needs at least one LitAPI")
        self.apis = [validate_api(a) for a in apis]
        self.accelerator = resolve_accelerator(accelerator)
        self.devices = resolve_devices(devices, self.accelerator)
        self.workers_per_device = positive_int("workers_per_device", workers_per_device)
        workers = len(self.devices) * self.workers_per_device
        if workers > MAX_WORKERS:
            raise ConfigError(f"{len(self.devices)} device(s) x workers_per_device="
                              f"{workers_per_device} make {workers} workers; at most "
                              f"{MAX_WORKERS} are supported")
        self.timeout = timeout_seconds(timeout)
        defaults = dict(max_batch_size=max_batch_size, batch_timeout=batch_timeout,
                        stream=stream, api_path=api_path, spec=spec)
        self.routes = [_route(a, defaults) for a in self.apis]
        for a, r in zip(self.apis, self.routes, strict=True):
            check_async_route(a, r)  # enable_async hooks vs stream / spec (litserve.api)
        _check_paths(self.routes, healthcheck_path)
        self.healthcheck_path = healthcheck_path
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
            uvicorn_kwargs=uvicorn_kwargs,
        )

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
        plan = self.plan(host, port, num_api_servers, log_level, **uvicorn_kwargs)
        plan.reuse_port = bool(reuse_port) if reuse_port is not None else REUSE_PORT_DEFAULT
        logging.basicConfig(level=log_level.upper() if log_level != "trace" else "DEBUG",
                            format="%(levelname)s:     %(message)s")
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
        code = Supervisor(plan, sock).run()
        sock.close()
        if code:
            sys.exit(code)


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
        return bytes(cloudpickle.dumps(Shipped(apis, specs, server.callbacks,
                                               server.middlewares, server)))
    except Exception as exc:
        names = ", ".join(type(a).__name__ for a in apis)
        raise ConfigError(
            f"{names} cannot be sent to the worker processes ({type(exc).__name__}: {exc}). "
            "Load models and open files, locks or connections in setup(), which runs in "
            "each worker, not in __init__") from exc


def _route(api: LitAPI, defaults: dict[str, Any]) -> RouteOptions:
    merged = {**defaults, **api.options}
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
        batch_timeout=batch_timeout_seconds(merged["batch_timeout"]),
        stream=stream,
        spec=merged["spec"],
    )


def _check_paths(routes: list[RouteOptions], health: str) -> None:
    seen: dict[str, int] = {}
    for i, r in enumerate(routes):
        for path in _paths(r):
            if path in seen or path == health:
                other = f"LitAPI #{seen[path]}" if path in seen else "the health check"
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


CLIENT_TEMPLATE = '''"""A client for the litserve server (written by LitServer.run)."""

import requests

response = requests.post("http://127.0.0.1:{port}{path}", json={{"input": 4.0}})
print(f"Status: {{response.status_code}}\\nResponse:\\n {{response.text}}")
'''


def write_client_file(plan: Plan) -> None:
    main = sys.modules.get("__main__")
    where = Path(getattr(main, "__file__", "") or os.getcwd())
    target = (where.parent if where.is_file() else where) / "client.py"
    if target.exists():
        return
    try:
        target.write_text(CLIENT_TEMPLATE.format(port=plan.port, path=plan.routes[0].api_path))
    except OSError as exc:
        log.warning("litserve: could not write %s: %s", target, exc)
