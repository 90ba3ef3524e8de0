"""OpenAIEmbeddingSpec against real servers, through the official ``openai`` client."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from litserve.specs.openai_embedding import OpenAIEmbeddingSpec, as_rows

from .harness import SpecServer


def client(server: SpecServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0,
                         timeout=30)


@pytest.fixture(scope="module")
def embed(servers: Any) -> SpecServer:
    return servers("embeddings")


def vec(item: Any, batch: int = 1) -> list[float]:
    first = ord(item[0]) if isinstance(item, str) else item[0]
    return [len(item), first, batch, -1.25]


@pytest.mark.parametrize("fmt", ["float", "base64", None])
def test_one_string(embed: SpecServer, fmt: str | None) -> None:
    # fmt None: the official client asks for base64 and decodes it itself; asked for
    # base64 explicitly, it hands the string over as it came
    extra = {} if fmt is None else {"encoding_format": fmt}
    out = client(embed).embeddings.create(input="hello", model="e", **extra)
    assert out.object == "list" and out.model == "e"
    assert [(d.index, d.object) for d in out.data] == [(0, "embedding")]
    got = out.data[0].embedding
    if fmt == "base64":
        assert isinstance(got, str)
        got = np.frombuffer(base64.b64decode(got), "<f4").tolist()
    assert got == vec("hello")
    assert (out.usage.prompt_tokens, out.usage.total_tokens) == (5, 5)


def test_list_of_strings(embed: SpecServer) -> None:
    texts = ["a", "bb", "ccc"]
    out = client(embed).embeddings.create(input=texts, model="e", encoding_format="float")
    assert [d.index for d in out.data] == [0, 1, 2]
    assert [d.embedding for d in out.data] == [vec(t) for t in texts]


@pytest.mark.parametrize("tokens", [[5, 6, 7], [[5, 6, 7], [9]]])
def test_token_ids(embed: SpecServer, tokens: Any) -> None:
    out = client(embed).embeddings.create(input=tokens, model="e", encoding_format="float")
    rows = [tokens] if isinstance(tokens[0], int) else tokens
    assert [d.embedding for d in out.data] == [vec(r) for r in rows]


def test_base64_is_little_endian_float32(embed: SpecServer) -> None:
    body = {"input": ["hi", "there"], "model": "e", "encoding_format": "base64"}
    got = httpx.post(embed.url + "/v1/embeddings", json=body).json()
    for item, text in zip(got["data"], body["input"], strict=True):
        raw = base64.b64decode(item["embedding"], validate=True)
        assert len(raw) == 4 * 4
        assert np.frombuffer(raw, "<f4").tolist() == vec(text)


def test_torch_output(embed: SpecServer) -> None:
    out = client(embed).embeddings.create(input=["torch", "xy"], model="e",
                                          encoding_format="float")
    assert [d.embedding for d in out.data] == [vec("torch"), vec("xy")]
    assert out.usage.prompt_tokens == 0  # this output reported none


def test_async_client(embed: SpecServer) -> None:
    async def main() -> list[Any]:
        async with openai.AsyncOpenAI(base_url=embed.url + "/v1", api_key="unused",
                                      max_retries=0) as api:
            return await asyncio.gather(*(api.embeddings.create(input=f"t{i}", model="e")
                                          for i in range(8)))

    for i, out in enumerate(asyncio.run(main())):
        assert out.data[0].embedding == vec(f"t{i}")


def test_batching_flattens_inputs_across_requests(servers: Any) -> None:
    server = servers("embeddings_batched")
    inputs: list[Any] = ["one", ["two", "three"], [4, 5], "six", [[7], [8, 9]]]

    async def main() -> list[Any]:
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused",
                                      max_retries=0) as api:
            return await asyncio.gather(*(api.embeddings.create(
                input=x, model="e", encoding_format="float") for x in inputs))

    batches = set()
    for x, out in zip(inputs, asyncio.run(main()), strict=True):
        rows = [x] if isinstance(x, str) or isinstance(x[0], int) else x
        got = [d.embedding for d in out.data]
        assert [g[:2] for g in got] == [vec(r)[:2] for r in rows]
        batches.update(g[2] for g in got)
    assert max(batches) > 1, f"no request was batched with another: {batches}"


# -- in process ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [
    [1.0, 2.0], [[1.0, 2.0]], np.array([1.0, 2.0], np.float16), [np.array([1.0, 2.0])],
])
def test_rows_from_lists_and_arrays(value: Any) -> None:
    rows = as_rows(value)
    assert rows.shape == (1, 2) and rows.dtype in (np.float32, np.float64)
    assert rows.tolist() == [[1.0, 2.0]]


def test_rows_from_torch() -> None:
    torch = pytest.importorskip("torch")
    rows = as_rows(torch.ones(2, 3, dtype=torch.bfloat16))
    assert rows.shape == (2, 3) and rows.dtype == np.float32
    assert as_rows([torch.zeros(3), torch.ones(3)]).tolist() == [[0.0] * 3, [1.0] * 3]


def test_rows_refuse_other_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        as_rows(np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="dtype"):
        as_rows(["a", "b"])


def test_batch_flattens_and_unbatch_splits() -> None:
    spec = OpenAIEmbeddingSpec()
    flat = spec.batch(["a", ["b", "c"], [1, 2], [[3], [4, 5]]])
    assert flat == ["a", "b", "c", [1, 2], [3], [4, 5]]
    parts = spec.unbatch(np.arange(12.0).reshape(6, 2))
    assert [p.shape[0] for p in parts] == [1, 2, 1, 2]
    assert spec.batch([{"custom": 1}]) == [{"custom": 1}]  # not an input: left alone
    assert spec.unbatch([1, 2]) == [1, 2]
