"""Shared-memory IPC: segments, semaphores, rings, arenas and slot states.

Knows nothing of HTTP, LitAPI or models, and imports nothing else of litserve.
"""

from .arena import Arena
from .errors import (
    ArenaFull,
    InvalidFree,
    IPCError,
    LitServeError,
    PayloadTooLarge,
    RingEmpty,
    RingFull,
    SegmentExists,
    SegmentNotFound,
)
from .ring import Ring
from .segment import Segment
from .semaphore import Semaphore
from .slots import SlotTable

__all__ = [
    "Arena",
    "ArenaFull",
    "IPCError",
    "InvalidFree",
    "LitServeError",
    "PayloadTooLarge",
    "Ring",
    "RingEmpty",
    "RingFull",
    "Segment",
    "SegmentExists",
    "SegmentNotFound",
    "Semaphore",
    "SlotTable",
]
