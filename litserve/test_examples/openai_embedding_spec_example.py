"""LitAPIs for ``ls.OpenAIEmbeddingSpec``: random 768-dimensional embeddings, and the
ways of getting the hooks wrong that the spec must report."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..api import LitAPI

DIMENSIONS = 768


class TestEmbedAPI(LitAPI):
    """One random embedding per input text (a string counts as one)."""

    __test__ = False  # not a pytest class

    def setup(self, device: str) -> None:
        self.model = None

    def predict(self, x: Any) -> Any:
        count = len(x) if isinstance(x, list) else 1
        return np.random.rand(count, DIMENSIONS).tolist()

    def encode_response(self, output: Any) -> Any:
        return {"embeddings": output}


class TestEmbedBatchedAPI(TestEmbedAPI):
    """Batched: one list of embeddings per request of the batch."""

    def predict(self, batch: Any) -> Any:
        return [np.random.rand(len(x), DIMENSIONS).tolist() for x in batch]


class TestEmbedAPIWithUsage(TestEmbedAPI):
    """Also reports token counts (10 prompt, 10 in all)."""

    def encode_response(self, output: Any) -> Any:
        return {"embeddings": output, "prompt_tokens": 10, "total_tokens": 10}


class TestEmbedAPIWithYieldPredict(TestEmbedAPI):
    """Wrong: predict yields (the spec does not stream)."""

    def predict(self, x: Any) -> Iterator[float]:
        yield from np.random.rand(DIMENSIONS).tolist()


class TestEmbedAPIWithYieldEncodeResponse(TestEmbedAPI):
    """Wrong: encode_response yields."""

    def encode_response(self, output: Any) -> Iterator[dict[str, Any]]:
        yield {"embeddings": output}


class TestEmbedAPIWithNonDictOutput(TestEmbedAPI):
    """Wrong: encode_response returns the bare list."""

    def encode_response(self, output: Any) -> Any:
        return output


class TestEmbedAPIWithMissingEmbeddings(TestEmbedAPI):
    """Wrong: the dict has no "embeddings" key."""

    def encode_response(self, output: Any) -> Any:
        return {"output": output}


__all__ = [
    "TestEmbedAPI",
    "TestEmbedAPIWithMissingEmbeddings",
    "TestEmbedAPIWithNonDictOutput",
    "TestEmbedAPIWithUsage",
    "TestEmbedAPIWithYieldEncodeResponse",
    "TestEmbedAPIWithYieldPredict",
    "TestEmbedBatchedAPI",
]
