"""The OpenAI features LitServe 0.2.19's end-to-end suite uses, against apps of the same
shapes (``servers/compat.py``), through the official ``openai`` client."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from .harness import SpecServer

GENERATED = "This is a generated output"
EVENT = '{"name": "Science Fair", "date": "Friday", "participants": ["Alice", "Bob"]}'


def _start(mode: str) -> Iterator[SpecServer]:
    server = SpecServer("compat.py", mode)
    try:
        server.wait_ready()
        yield server
        code = server.stop()
        assert code == 0, f"server exited with {code}:\n{server.output}"
    finally:
        server.kill_group()


@pytest.fixture(scope="module")
def chat() -> Iterator[SpecServer]:
    yield from _start("chat")


@pytest.fixture(scope="module")
def batched() -> Iterator[SpecServer]:
    yield from _start("batched")


def client(server: SpecServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="lit", max_retries=0, timeout=30)


def both(server: SpecServer, **request: Any) -> tuple[str | None, list[Any]]:
    """The plain reply's content and the streamed chunks of the same request."""
    api = client(server)
    plain = api.chat.completions.create(model="lit", **request)
    chunks = list(api.chat.completions.create(model="lit", stream=True, **request))
    return plain.choices[0].message.content, chunks


def deltas(chunks: list[Any]) -> list[str | None]:
    return [c.choices[0].delta.content for c in chunks]


# -- content parts -----------------------------------------------------------------------------
def test_text_messages(chat: SpecServer) -> None:
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "How are you?"}]
    content, chunks = both(chat, messages=messages)
    assert content == GENERATED
    assert deltas(chunks) == [GENERATED, None]


def test_image_part_reaches_decode_request_as_image_content(chat: SpecServer) -> None:
    url = "https://upload.example/boardwalk.jpg"
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "What's in this image?"},
        {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
        {"type": "image_url", "image_url": "data:image/png;base64,iVBORw0KGgo="}]}]
    expected = (f"text:What's in this image? image:low:{url} "
                "image:-:data:image/png;base64,iVBORw0KGgo=")
    content, chunks = both(chat, messages=messages)
    assert content == expected
    assert deltas(chunks) == [expected, None]


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_audio_part_reaches_decode_request_as_audio_content(chat: SpecServer, fmt: str) -> None:
    data = base64.b64encode(bytes(range(1, 11))).decode()
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "What is in this recording?"},
        {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}]}]
    content, chunks = both(chat, messages=messages)
    assert content == f"text:What is in this recording? audio:{fmt}:{data}"
    assert deltas(chunks)[-1] is None


def test_unsupported_audio_format_is_a_422_naming_it(chat: SpecServer) -> None:
    messages = [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAEC", "format": "flac"}}]}]
    with pytest.raises(openai.UnprocessableEntityError) as err:
        client(chat).chat.completions.create(model="lit", messages=messages)  # type: ignore[arg-type]
    error = err.value.body
    assert isinstance(error, dict)
    assert "'wav' or 'mp3'" in error["message"] and "input_audio.format" in error["message"]
    assert error["param"].startswith("messages.0.content")


# -- response_format ---------------------------------------------------------------------------
SCHEMA = {"type": "json_schema", "json_schema": {
    "name": "calendar_event",
    "schema": {"type": "object",
               "properties": {"name": {"type": "string"}, "date": {"type": "string"},
                              "participants": {"type": "array", "items": {"type": "string"}}},
               "required": ["name", "date", "participants"],
               "additionalProperties": "false"},
    "strict": "true"}}  # strings, as upstream's e2e test sends them


def test_response_format_json_schema(chat: SpecServer) -> None:
    messages = [{"role": "system", "content": "Extract the event information."},
                {"role": "user", "content": "Alice and Bob are going to a science fair on Friday."}]
    content, chunks = both(chat, messages=messages, response_format=SCHEMA)
    assert content == EVENT
    assert deltas(chunks) == [EVENT, None]
    assert json.loads(content)["participants"] == ["Alice", "Bob"]


@pytest.mark.parametrize(("fmt", "model"), [
    ({"type": "text"}, "ResponseFormatText"),
    ({"type": "json_object"}, "ResponseFormatJSONObject"),
])
def test_response_format_text_and_json_object(chat: SpecServer, fmt: dict[str, str],
                                              model: str) -> None:
    out = client(chat).chat.completions.create(
        model="lit", messages=[{"role": "user", "content": "hi"}],
        response_format=fmt)  # type: ignore[arg-type]
    assert out.choices[0].message.content == f"{model}|{fmt}"


def test_unknown_response_format_is_a_422(chat: SpecServer) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "yaml"}}
    resp = httpx.post(chat.url + "/v1/chat/completions", json=body, timeout=30)
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["param"] == "response_format" and "yaml" in error["message"]


# -- tools ---------------------------------------------------------------------------------------
TOOLS = [{"type": "function", "function": {
    "name": "get_current_weather",
    "description": "Get the current weather in a given location",
    "parameters": {"type": "object",
                   "properties": {"location": {"type": "string"},
                                  "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["location"]}}}]


def test_tool_calls_from_encode_response(chat: SpecServer) -> None:
    messages = [{"role": "user", "content": "What's the weather like in Boston today?"}]
    out = client(chat).chat.completions.create(model="lit", messages=messages,
                                               tools=TOOLS)  # type: ignore[arg-type]
    message = out.choices[0].message
    assert message.content == ""  # as the model said it (upstream keeps the empty string)
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert (call.id, call.function.name) == ("call_abc123", "get_current_weather")
    assert json.loads(call.function.arguments) == {"location": "Boston, MA"}
    assert out.choices[0].finish_reason == "tool_calls"


def test_tool_calls_streamed_in_deltas(chat: SpecServer) -> None:
    messages = [{"role": "user", "content": "What's the weather like in Boston today?"}]
    chunks = list(client(chat).chat.completions.create(
        model="lit", messages=messages, tools=TOOLS, stream=True))  # type: ignore[arg-type]
    assert deltas(chunks) == ["", None]
    calls = chunks[0].choices[0].delta.tool_calls
    assert calls is not None and calls[0].index == 0
    assert calls[0].function is not None and calls[0].function.name == "get_current_weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


# -- batching ------------------------------------------------------------------------------------
def test_batched_predict_gets_lists_of_inputs_and_contexts(batched: SpecServer) -> None:
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "How are you?"}]

    def ask(_: int) -> str:
        out = client(batched).chat.completions.create(model="lit", messages=messages)  # type: ignore[arg-type]
        return out.choices[0].message.content or ""

    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(ask, range(4)))
    text = ("Hi! It's nice to meet you. Is there something I can help you with or would you "
            "like to chat? ")
    sizes = set()
    for reply in replies:
        assert reply.startswith(text), reply
        sizes.add(int(reply.removeprefix(text + "[batch=").removesuffix("]")))
    assert sizes <= {1, 2} and 2 in sizes, f"max_batch_size=2, yet batches of {sizes}"


def test_batched_stream(batched: SpecServer) -> None:
    chunks = list(client(batched).chat.completions.create(
        model="lit", messages=[{"role": "user", "content": "x"}], stream=True))
    assert deltas(chunks)[:2] == ["Hi! ", "It's "] and deltas(chunks)[-1] is None


# -- embeddings ----------------------------------------------------------------------------------
def test_embeddings_batched_by_the_litapi_with_only_setup_and_predict(chat: SpecServer) -> None:
    model = "text-embedding-3-large"
    api = client(chat)
    texts = ["This is the first request", "This is the second request"] * 2
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda t: api.embeddings.create(
            model=model, input=[t], encoding_format="float"), texts))
    sizes = set()
    for response in responses:
        assert response.model == model
        assert len(response.data) == 1 and len(response.data[0].embedding) == 768
        sizes.add(response.data[0].embedding[0])
    assert max(sizes) > 1, f"no request was batched with another: {sizes}"


@pytest.mark.parametrize("value", ["one text", ["a", "b", "c"], [1, 2, 3], [[1, 2], [3]]])
def test_embedding_inputs(chat: SpecServer, value: Any) -> None:
    response = client(chat).embeddings.create(model="lit", input=value, encoding_format="float")
    count = 1 if isinstance(value, str) or isinstance(value[0], int) else len(value)
    assert response.model == "lit"
    assert [d.index for d in response.data] == list(range(count))
    assert all(len(d.embedding) == 768 and isinstance(d.embedding[1], float)
               for d in response.data)


def test_embeddings_base64(chat: SpecServer) -> None:
    body = {"model": "lit", "input": ["a", "b"], "encoding_format": "base64"}
    resp = httpx.post(chat.url + "/v1/embeddings", json=body, timeout=30)
    assert resp.status_code == 200
    data = resp.json()["data"]
    assert [len(base64.b64decode(d["embedding"])) for d in data] == [768 * 4] * 2
    # the client's default asks for base64 and decodes it into floats
    response = client(chat).embeddings.create(model="m", input="x")
    assert len(response.data[0].embedding) == 768 and response.model == "m"
