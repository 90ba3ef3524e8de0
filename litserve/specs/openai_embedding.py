"""``OpenAIEmbeddingSpec``: serve a LitAPI as OpenAI's ``POST /v1/embeddings``.

    class EmbedAPI(ls.LitAPI):
        def predict(self, texts):             # str, list[str], or token ids
            return self.model.encode(texts)    # NumPy / torch / lists, one row per input

    ls.LitServer(EmbedAPI(), spec=ls.OpenAIEmbeddingSpec()).run(port=8000)

``predict`` gets the request's ``input`` as sent: a string, a list of strings, a list
of token ids, or a list of those lists.  It returns one vector per input (a 1-D output
counts as one row), as a NumPy array, a torch tensor or nested lists, or a dict
``{"embeddings": ..., "prompt_tokens": n}`` to report usage.  With
``max_batch_size > 1`` the inputs of several requests are flattened into one list
(``predict`` gets ``list[str]`` or a list of token-id lists) and the rows are split
back per request.

``encoding_format="base64"`` (the official Python client's default) is the
little-endian float32 bytes of each vector, base64-encoded.
"""

from __future__ import annotations

import base64
import inspect
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from .. import jsonx
from ..api import LitAPI
from ..errors import ConfigError
from .openai_base import OpenAIBase, is_generator_function
from .openai_types import _Open

__all__ = ["Embedding", "EmbeddingRequest", "EmbeddingResponse", "EmbeddingUsage",
           "OpenAIEmbeddingSpec"]

EmbeddingInput = str | list[str] | list[int] | list[list[int]]


class EmbeddingRequest(_Open):
    """POST /v1/embeddings."""

    input: EmbeddingInput
    model: str = ""
    dimensions: int | None = None
    encoding_format: Literal["float", "base64"] | None = "float"
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, list) and (not value or value[0] == []):
            raise ValueError("input must not be empty")
        return value

    def ensure_list(self) -> list[Any]:
        """The inputs, one per embedding to return."""
        return items_of(self.input)

    def get_num_items(self) -> int:
        return len(self.ensure_list())


class Embedding(_Open):
    index: int
    embedding: list[float] | str
    object: Literal["embedding"] = "embedding"


class EmbeddingUsage(_Open):
    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingResponse(_Open):
    data: list[Embedding]
    model: str
    object: Literal["list"] = "list"
    usage: EmbeddingUsage = Field(default_factory=EmbeddingUsage)


def items_of(value: Any) -> list[Any]:
    """The inputs of one request: a string or a token-id list is one input."""
    if isinstance(value, str) or (isinstance(value, list) and value
                                  and isinstance(value[0], int)):
        return [value]
    return list(value)


def _is_input(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and bool(value) and all(
        isinstance(x, str | int) or (isinstance(x, list) and all(isinstance(t, int) for t in x))
        for x in value))


_EXAMPLE = """
With OpenAIEmbeddingSpec, predict returns (not yields) one vector per input:

    class EmbedAPI(ls.LitAPI):
        def predict(self, texts):
            return self.model.encode(texts)   # shape (n, dim) or (dim,)
"""


class OpenAIEmbeddingSpec(OpenAIBase):
    """OpenAI embeddings: float or base64 vectors, usage, batching across requests."""

    path: ClassVar[str] = "/v1/embeddings"
    request_model = EmbeddingRequest
    body_field = "input"

    def __init__(self, model_name: str | None = None) -> None:
        super().__init__(model_name)
        self._sizes: list[int] | None = None  # per request, of the batch being predicted

    def check_api(self, api: Any) -> None:
        super().check_api(api)
        name = type(api).__name__
        predict = type(api).predict
        if is_generator_function(predict) or inspect.isasyncgenfunction(predict):
            raise ConfigError(f"{name}.predict yields, but embeddings are not streamed; "
                              "return the vectors instead" + _EXAMPLE)
        encode = type(api).encode_response
        if encode is not LitAPI.encode_response and is_generator_function(encode):
            raise ConfigError(f"{name}.encode_response yields, but embeddings are not "
                              "streamed; return the vectors instead" + _EXAMPLE)

    # -- worker -------------------------------------------------------------------------------
    def decode_request(self, request: EmbeddingRequest, context: dict[str, Any]) -> Any:
        return request.input

    def encode_response(self, output: Any, context: dict[str, Any]) -> Any:
        return output

    def batch(self, inputs: list[Any]) -> Any:
        """Flatten the inputs of every request into one list (see the module doc)."""
        if not all(_is_input(x) for x in inputs):
            self._sizes = None  # a custom decode_request made something else: keep the list
            return inputs
        per_request = [items_of(x) for x in inputs]
        self._sizes = [len(x) for x in per_request]
        return [item for items in per_request for item in items]

    def unbatch(self, output: Any) -> list[Any]:
        sizes, self._sizes = getattr(self, "_sizes", None), None
        if sizes is None:
            return list(output)
        rows = as_rows(output["embeddings"] if isinstance(output, dict) else output)
        if len(rows) != sum(sizes):
            raise ValueError(f"predict returned {len(rows)} embeddings for a batch of "
                             f"{sum(sizes)} inputs; return one row per input")
        bounds = np.cumsum([0, *sizes])
        return [rows[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def start(self, request: Any, context: dict[str, Any], stream: bool) -> dict[str, Any]:
        tokens = 0 if isinstance(request.input, str) else sum(
            len(x) if isinstance(x, list) else 1 for x in request.input
            if not isinstance(x, str))
        return {"model": request.model or self.served_name(), "output": None,
                "base64": request.encoding_format == "base64",
                "count": len(items_of(request.input)), "tokens": tokens}

    def chunk(self, state: dict[str, Any], output: Any, choice: int = 0) -> bytes:
        state["output"] = output
        return b""

    def finish(self, state: dict[str, Any]) -> bytes:
        output = state["output"]
        usage = output if isinstance(output, dict) else {}
        rows = as_rows(output["embeddings"] if isinstance(output, dict) else output)
        if len(rows) != state["count"]:
            raise ValueError(f"predict returned {len(rows)} embeddings for {state['count']} "
                             "inputs; return one row per input" + _EXAMPLE)
        data = [{"object": "embedding", "index": i,
                 "embedding": _b64(row) if state["base64"] else row}
                for i, row in enumerate(rows)]
        prompt = int(usage.get("prompt_tokens") or state["tokens"])
        total = int(usage.get("total_tokens") or prompt)
        return jsonx.dumps({"object": "list", "data": data, "model": state["model"],
                            "usage": {"prompt_tokens": prompt, "total_tokens": total}})


def as_rows(embeddings: Any) -> np.ndarray:
    """A 2-D float array (one row per input) from NumPy, torch or nested lists."""
    if type(embeddings).__module__.startswith("torch"):
        embeddings = embeddings.detach().float().cpu().numpy()
    elif isinstance(embeddings, list | tuple) and embeddings and not isinstance(
            embeddings[0], int | float):
        embeddings = [_vector(row) for row in embeddings]
    arr = np.asarray(embeddings)
    if arr.dtype.kind not in "fiu" or arr.ndim not in (1, 2):
        raise ValueError(f"embeddings must be numbers of shape (n, dim) or (dim,), got "
                         f"dtype {arr.dtype} and shape {arr.shape}")
    if arr.ndim == 1:
        arr = arr[np.newaxis]
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32 if arr.dtype == np.float16 else np.float64)
    return np.ascontiguousarray(arr, arr.dtype.newbyteorder("="))


def _vector(row: Any) -> Any:
    if type(row).__module__.startswith("torch"):
        return row.detach().float().cpu().numpy()
    return row


def _b64(row: np.ndarray) -> str:
    return base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
