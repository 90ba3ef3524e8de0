"""Shared-memory IPC: segments, semaphores, rings, arenas and slot states.

Knows nothing of HTTP, LitAPI or models, and imports nothing else of litserve.
The classes are imported on first use, so that ``litserve.ipc.errors`` (the root of
litserve's exception tree) can be imported without posix_ipc or the C extension.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    ArenaFull,
    InvalidFree,
    IPCError,
    LeaseNotFound,
    LitServeError,
    PayloadTooLarge,
    RingEmpty,
    RingFull,
    SegmentExists,
    SegmentNotFound,
    SharedMemoryFull,
)

if TYPE_CHECKING:
    from .arena import Arena
    from .janitor import Janitor
    from .lease import Lease
    from .ring import Ring
    from .segment import Segment
    from .semaphore import Semaphore
    from .slots import SlotTable

_LAZY = {"Arena": "arena", "Janitor": "janitor", "Lease": "lease", "Ring": "ring",
         "Segment": "segment", "Semaphore": "semaphore", "SlotTable": "slots"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'litserve.ipc' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)

__all__ = [
    "Arena",
    "ArenaFull",
    "IPCError",
    "InvalidFree",
    "Janitor",
    "Lease",
    "LeaseNotFound",
    "LitServeError",
    "PayloadTooLarge",
    "Ring",
    "RingEmpty",
    "RingFull",
    "Segment",
    "SegmentExists",
    "SegmentNotFound",
    "Semaphore",
    "SharedMemoryFull",
    "SlotTable",
]
