"""Every exception litserve raises on purpose, under one root."""

from __future__ import annotations

from .ipc.errors import (
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


class ConfigError(LitServeError, ValueError):
    """An argument to LitAPI / LitServer / run() has a value we cannot serve with."""


class StartupError(LitServeError, RuntimeError):
    """A worker or front failed to start (for example ``setup`` raised)."""


__all__ = [
    "ArenaFull",
    "ConfigError",
    "IPCError",
    "InvalidFree",
    "LeaseNotFound",
    "LitServeError",
    "PayloadTooLarge",
    "RingEmpty",
    "RingFull",
    "SegmentExists",
    "SegmentNotFound",
    "SharedMemoryFull",
    "StartupError",
]
