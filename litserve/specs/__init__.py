"""API specs: extra endpoints with their own request/response shapes (OpenAI, ...)."""

from __future__ import annotations

from .base import Endpoint, Forward, Immediate, LitSpec

__all__ = ["Endpoint", "Forward", "Immediate", "LitSpec"]
