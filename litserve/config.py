"""Validation of serving arguments, and the plan that every process receives.

The plan is a plain picklable dataclass: the supervisor computes it once and ships
it to every front and worker.  The user's LitAPI objects travel inside it as one
cloudpickle blob (they may be defined in ``__main__``).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .ipc import names

ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")
MiB = 1 << 20


def _torch() -> Any:
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch


def _cuda_count() -> int:
    torch = _torch()
    return torch.cuda.device_count() if torch is not None and torch.cuda.is_available() else 0


def _mps_available() -> bool:
    torch = _torch()
    return bool(torch is not None and torch.backends.mps.is_available())


def resolve_accelerator(accelerator: Any) -> str:
    """'cpu', 'cuda' or 'mps'; a missing device fails with one clear line."""
    if accelerator not in ACCELERATORS:
        choices = ", ".join(repr(a) for a in ACCELERATORS)
        raise ConfigError(f"accelerator={accelerator!r} is not supported; use one of {choices}")
    if accelerator == "auto":
        return "cuda" if _cuda_count() else "mps" if _mps_available() else "cpu"
    if accelerator in ("cuda", "gpu"):
        if _cuda_count():
            return "cuda"
        if accelerator == "gpu" and _mps_available():
            return "mps"
        raise ConfigError(
            f"accelerator={accelerator!r} was requested but no CUDA GPU is visible "
            "(torch.cuda.is_available() is False); use accelerator='cpu' or 'auto'"
        )
    if accelerator == "mps" and not _mps_available():
        raise ConfigError(
            "accelerator='mps' was requested but MPS is not available on this machine; "
            "use accelerator='cpu' or 'auto'"
        )
    return str(accelerator)


def resolve_devices(devices: Any, accelerator: str) -> list[str]:
    """Device strings, one per worker set."""
    available = _cuda_count() if accelerator == "cuda" else 1
    if devices == "auto":
        ids = list(range(available))
    elif isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1:
        if accelerator == "cuda" and devices > available:
            raise ConfigError(f"devices={devices} but only {available} CUDA device(s) are visible")
        ids = list(range(devices))
    elif isinstance(devices, list | tuple) and devices and all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in devices
    ):
        bad = [d for d in devices if accelerator == "cuda" and d >= available]
        if bad:
            raise ConfigError(
                f"devices={list(devices)} names CUDA device(s) {bad} but only ids "
                f"0..{available - 1} exist"
            )
        ids = list(devices)
    else:
        raise ConfigError(
            f"devices={devices!r} is not valid; use 'auto', a positive int, or a list of "
            "device ids such as [0, 1]"
        )
    if accelerator == "cuda":
        return [f"cuda:{i}" for i in ids]
    return [accelerator] * len(ids)


def instances_of(value: Any, cls: type, name: str, hint: str) -> list[Any]:
    """``LitServer(<name>=...)`` given None, one ``cls`` or a list of them: the list;
    anything else is a ConfigError naming the item, with ``hint`` on what to pass."""
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    for item in items:
        if not isinstance(item, cls):
            raise ConfigError(f"{name}: {item!r} is not an ls.{cls.__name__}; {hint}")
    return list(items)


def positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name}={value!r} is not valid; use an int >= 1")
    return value


def timeout_seconds(value: Any) -> float | None:
    """The request timeout in seconds, None when disabled (False or -1)."""
    if value is False or value == -1 or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(
            f"timeout={value!r} is not valid; use a number of seconds > 0, or False / -1 "
            "to disable"
        )
    return float(value)


def batch_timeout_seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"batch_timeout={value!r} is not valid; use a number of seconds >= 0")
    return float(value)


def seconds(name: str, value: Any) -> float:
    """A positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name}={value!r} is not valid; use a number of seconds > 0")
    return float(value)


def api_path(value: Any, name: str = "api_path", example: str = "'/predict'") -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigError(f"{name}={value!r} is not valid; use a path starting with '/', "
                          f"e.g. {example}")
    return value


def json_metadata(value: Any) -> Any:
    """``model_metadata``: anything ``json.dumps`` accepts (it is served at /info)."""
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model_metadata={value!r} is not JSON-serializable ({exc}); use "
                          "a dict of strings, numbers, lists and dicts") from None
    return value


def workers_per_api(value: Any, paths: list[str]) -> dict[str, int]:
    """``workers_per_device`` as LitServe takes it: one int, a list with one int per
    LitAPI (in order), or a dict ``{api_path: int}`` (missing paths get 1)."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(paths))
        if unknown:
            raise ConfigError(f"workers_per_device={value!r} names api_path(s) {unknown} that "
                              f"no LitAPI serves; the api_paths are {paths}")
        return {p: positive_int(f"workers_per_device[{p!r}]", value.get(p, 1)) for p in paths}
    if isinstance(value, list | tuple):
        if len(value) != len(paths):
            raise ConfigError(f"workers_per_device={list(value)!r} has {len(value)} entries "
                              f"but the server has {len(paths)} LitAPI(s); give one int per "
                              "LitAPI, or one int for all")
        return {p: positive_int(f"workers_per_device[{i}]", w)
                for i, (p, w) in enumerate(zip(paths, value, strict=True))}
    if isinstance(value, int) and not isinstance(value, bool):
        return dict.fromkeys(paths, positive_int("workers_per_device", value))
    raise ConfigError(f"workers_per_device={value!r} is not valid; use an int >= 1, a list "
                      "with one int per LitAPI, or a dict {api_path: int}")


def shutdown_key() -> tuple[str, bool]:
    """The shutdown route's Bearer token: $LIT_SHUTDOWN_API_KEY, else a new random one;
    and whether it was generated."""
    import secrets

    given = os.environ.get("LIT_SHUTDOWN_API_KEY")
    return (given, False) if given else (secrets.token_urlsafe(32), True)


@dataclass
class RouteOptions:
    """Serving options of one LitAPI after merging its own and the server's."""

    api_path: str
    max_batch_size: int
    batch_timeout: float
    stream: bool
    spec: Any = None


@dataclass
class Shipped:
    """What every process unpickles from ``Plan.apis_blob``: the user's objects.

    ``server`` is the ``LitServer`` itself (callbacks get it as ``litserver=``); its
    ``apis`` are the same objects as ``apis`` (one pickle keeps them one)."""

    apis: list[Any]
    specs: list[Any]
    callbacks: list[Any]
    middlewares: list[Any]
    server: Any


DRAIN_S = 30.0  # the graceful-shutdown bound for requests without a timeout


@dataclass
class Plan:
    """Everything a front or worker needs to know, decided once by the supervisor."""

    apis_blob: bytes
    routes: list[RouteOptions]
    devices: list[str]  # one entry per worker slot
    fronts: int
    timeout: float | None
    host: str = "0.0.0.0"
    port: int = 8000
    log_level: str = "info"
    api_key: str | None = None
    healthcheck_path: str = "/health"
    reuse_port: bool = False  # each front binds its own SO_REUSEPORT socket
    token: str = field(default_factory=names.new_token)  # in every name (see ipc/names.py)
    name_key: str = field(default_factory=names.new_key, repr=False)  # secret: names' macs
    max_payload_bytes: int = 256 * MiB  # the largest request body (413 beyond)
    request_arena_bytes: int = 257 * MiB  # max_payload_bytes + META_ROOM
    response_arena_bytes: int = 256 * MiB
    slots_per_front: int = 4096
    request_ring_cells: int = 4096
    completion_ring_cells: int = 8192
    release_ring_cells: int = 16384
    queue_wait: float = 5.0  # bounded wait for ring / arena space before 503
    header_timeout: float = 10.0  # seconds a client may take to send request headers
    body_timeout: float = 10.0  # seconds a request body may go without a byte arriving
    predict_timeout: float | None = None  # a worker longer in one batch is replaced
    info_path: str = "/info"
    shutdown_path: str = "/shutdown"
    enable_shutdown_api: bool = False
    track_requests: bool = False
    disable_openapi_url: bool = False
    restart_workers: bool | None = None  # None: restart (ours); False: stop on a death
    loggers: int = 0  # how many ls.Logger the server has (0: no log ring, no logger process)
    shutdown_api_key: str | None = None  # Bearer token of the shutdown route when enabled
    info: dict[str, Any] = field(default_factory=dict)  # the document served at info_path
    uvicorn_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def drain_s(self) -> float:
        """How long a stopping front lets its requests in flight finish: the request
        timeout, or DRAIN_S when requests have none."""
        return self.timeout if self.timeout else DRAIN_S

    def unpack(self) -> Shipped:
        """The user's objects, as ``LitServer.plan`` shipped them (a fresh copy per call)."""
        import cloudpickle

        shipped = cloudpickle.loads(self.apis_blob)
        assert isinstance(shipped, Shipped)
        return shipped

    def name(self, role: str) -> str:
        return names.make(self.token, role, self.name_key)

    @property
    def workers(self) -> int:
        return len(self.devices)


def read_api_key() -> str | None:
    return os.environ.get("LIT_SERVER_API_KEY") or None


SHM_SHARE = 0.8  # of the free space in /dev/shm a server plans to use at most


def shm_free(path: str = "/dev/shm") -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fit_shared_memory(plan: Plan, free: int, explicit: bool) -> str | None:
    """Make the plan's arenas fit in ``free`` bytes of /dev/shm.

    Sizes the user chose (``explicit``) that do not fit are a ``ConfigError``; default
    sizes are scaled down, and the returned sentence says to what (None: they fit).
    Every segment is backed in full when it is made (``ipc/segment.py``: a /dev/shm
    without room is a start-up error, never a SIGBUS mid-request), so the plan must fit
    up front; the share left over is room for a replacement's arenas while the dead
    process's pages are still being let go.
    """
    from .ipc.ring import segment_size
    from .protocol import CELL_SIZE, RELEASE_CELL

    fixed = (segment_size(plan.request_ring_cells, CELL_SIZE)
             + plan.fronts * (segment_size(plan.completion_ring_cells, CELL_SIZE)
                              + 64 + 8 * plan.slots_per_front)
             + plan.workers * segment_size(plan.release_ring_cells, RELEASE_CELL))
    arenas = plan.fronts * plan.request_arena_bytes + plan.workers * plan.response_arena_bytes
    budget = int(free * SHM_SHARE) - fixed
    if arenas <= budget:
        return None
    need, have = (arenas + fixed) // MiB, free // MiB
    fix = ("give the machine more shared memory (in Docker: --shm-size=2g) or lower "
           "max_payload_size / response_buffer_size")
    if explicit:
        raise ConfigError(f"this server needs {need} MiB of shared memory (/dev/shm) but only "
                          f"{have} MiB are free; {fix}")
    scale = max(0.0, budget / arenas)
    request = int(plan.request_arena_bytes * scale) // MiB * MiB
    response = int(plan.response_arena_bytes * scale) // MiB * MiB
    if min(request, response) < 2 * MiB:
        raise ConfigError(f"only {have} MiB of shared memory (/dev/shm) are free, too little "
                          f"to serve; {fix}")
    plan.request_arena_bytes, plan.response_arena_bytes = request, response
    plan.max_payload_bytes = min(plan.max_payload_bytes, request - MiB)
    return (f"only {have} MiB of shared memory (/dev/shm) are free: request bodies are limited "
            f"to {request // MiB - 1} MiB and responses to {response // MiB} MiB; {fix}")
