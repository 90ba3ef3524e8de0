"""API specs: extra endpoints with their own request/response shapes (OpenAI, ...)."""

from __future__ import annotations

from .base import Endpoint, Forward, Immediate, LitSpec
from .openai import ChatCompletionRequest, ChatMessage, OpenAISpec
from .openai_embedding import EmbeddingRequest, EmbeddingResponse, OpenAIEmbeddingSpec

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "Endpoint",
    "Forward",
    "Immediate",
    "LitSpec",
    "OpenAIEmbeddingSpec",
    "OpenAISpec",
]
