"""In-process checks of the chat spec: what it accepts, what it frames, what it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

import litserve as ls
from litserve.errors import ConfigError
from litserve.specs.openai import Completion, OpenAISpec, as_message
from litserve.specs.openai_embedding import OpenAIEmbeddingSpec
from litserve.specs.openai_types import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    ImageContent,
    ToolCall,
)


def events(data: bytes) -> list[Any]:
    out = []
    for event in data.decode().split("\n\n"):
        if event:
            assert event.startswith("data: ")
            payload = event[len("data: "):]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


# -- requests ---------------------------------------------------------------------------------
def test_request_accepts_client_shapes() -> None:
    request = ChatCompletionRequest.model_validate({
        "model": "m",
        "messages": [
            {"role": "developer", "content": "rules"},
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": "https://x/a.png"},
                {"type": "image_url", "image_url": {"url": "https://x/b.png"}},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                {"type": "file", "file": {"file_id": "f1"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "42"}],
        "max_completion_tokens": 5, "stop": "x", "stream": True,
        "stream_options": {"include_usage": True}, "tool_choice": "required",
        "response_format": {"type": "json_object"}, "new_param": {"a": 1}})
    parts = request.messages[1].content
    assert isinstance(parts, list) and isinstance(parts[1], ImageContent)
    assert parts[1].image_url == "https://x/a.png"
    assert request.model_extra == {"new_param": {"a": 1}}


def test_tool_call_arguments_given_as_dict_are_encoded() -> None:
    call = ToolCall.model_validate({"function": {"name": "f", "arguments": {"x": [1]}}})
    assert call.function.arguments == '{"x":[1]}'


# -- framing ----------------------------------------------------------------------------------
def frame(outputs: list[Any], stream: bool, include_usage: bool = False) -> bytes:
    state = Completion("m", stream, include_usage)
    body = b"".join(state.add(m) for o in outputs if (m := as_message(o)) is not None)
    return body + state.finish()


def test_streamed_chunks_match_the_chunk_model() -> None:
    got = events(frame(["a", {"content": "b", "completion_tokens": 2}, None], True, True))
    assert got[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(e) for e in got[:-1]]
    assert [c.choices[0].delta.content for c in chunks[:3]] == ["a", "b", None]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[2].choices[0].finish_reason == "stop"
    assert chunks[3].choices == [] and chunks[3].usage is not None
    assert chunks[3].usage.completion_tokens == 2


def test_stream_without_outputs_still_says_who_speaks() -> None:
    got = events(frame([], True))
    first = ChatCompletionChunk.model_validate(got[0])
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].finish_reason == "stop" and got[1] == "[DONE]"


def test_plain_response_matches_the_response_model() -> None:
    call = {"function": {"name": "f", "arguments": "{}"}}
    out = json.loads(frame([["x", "y"], ChatMessage(role="assistant", content="z"),
                            {"tool_calls": [call]}], False))
    response = ChatCompletionResponse.model_validate(out)
    message = response.choices[0].message
    assert message.content == "xyz" and response.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls and message.tool_calls[0].id
    assert "index" not in out["choices"][0]["message"]["tool_calls"][0]


def test_several_choices_are_framed_each_with_its_index() -> None:
    state = Completion("m", True, False, n=2)
    body = state.add({"content": "a"}, 1) + state.add({"content": "b"}, 0)
    body += state.add({"content": "c", "finish_reason": "length"}, 1) + state.finish()
    got = events(body)
    assert got[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(e) for e in got[:-1]]
    assert [(c.choices[0].index, c.choices[0].delta.content) for c in chunks[:3]] == [
        (1, "a"), (0, "b"), (1, "c")]
    assert [(c.choices[0].index, c.choices[0].finish_reason) for c in chunks[3:]] == [
        (0, "stop"), (1, "length")]
    plain = Completion("m", False, False, n=2)
    plain.add({"content": "x", "completion_tokens": 1}, 0)
    plain.add({"content": "y", "completion_tokens": 1}, 1)
    response = ChatCompletionResponse.model_validate(json.loads(plain.finish()))
    assert [(c.index, c.message.content) for c in response.choices] == [(0, "x"), (1, "y")]
    assert response.usage.completion_tokens == 2


def test_usage_largest_prompt_and_summed_completion() -> None:
    outputs = [{"content": "a", "prompt_tokens": 4, "completion_tokens": 1},
               {"content": "b", "prompt_tokens": 4, "completion_tokens": 1}]
    assert json.loads(frame(outputs, False))["usage"] == {
        "prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}


@pytest.mark.parametrize(("output", "message"), [
    ("t", {"content": "t"}),
    ({"role": "assistant", "content": "t"}, {"role": "assistant", "content": "t"}),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
     {"role": "assistant", "content": "a"}),
    (["a", "b"], {"content": "ab"}),
    ([], None),
    (None, None),
])
def test_output_shapes(output: Any, message: Any) -> None:
    assert as_message(output) == message


def test_unknown_output_shape_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="must be a str, a dict with 'content'"):
        as_message(42)


# -- start-up checks --------------------------------------------------------------------------
class Returns(ls.LitAPI):
    def predict(self, x):
        return "not streamed"


class AsyncYields(ls.LitAPI):
    async def predict(self, x):
        yield "a"


class EncodeReturns(ls.LitAPI):
    def predict(self, x):
        yield "a"

    def encode_response(self, output):
        return output


class Yields(ls.LitAPI):
    def predict(self, x):
        yield "a"


@pytest.mark.parametrize(("api", "match"), [
    (Returns(), "Returns.predict must be a generator"),
    (AsyncYields(), "AsyncYields.predict is async"),
    (EncodeReturns(), "EncodeReturns.encode_response must be a generator"),
])
def test_chat_spec_needs_generators(api: ls.LitAPI, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ls.LitServer(api, spec=ls.OpenAISpec())


def test_embedding_spec_refuses_generators() -> None:
    with pytest.raises(ConfigError, match="Yields.predict yields"):
        ls.LitServer(Yields(), spec=ls.OpenAIEmbeddingSpec())


def test_one_path_per_spec() -> None:
    with pytest.raises(ConfigError, match="'/v1/chat/completions'"):
        ls.LitServer([Yields(spec=OpenAISpec()), Yields(spec=OpenAISpec())])
    ls.LitServer([Yields(spec=OpenAISpec()), Returns(spec=OpenAIEmbeddingSpec())])


def test_model_name() -> None:
    spec = OpenAISpec()
    ls.LitServer(Yields(), spec=spec)
    assert spec.served_name() == "Yields"
    with pytest.raises(ConfigError, match="model_name=''"):
        OpenAISpec(model_name="")


def test_reachable_names() -> None:
    from litserve.specs import openai as openai_module

    assert ls.OpenAISpec is ls.specs.OpenAISpec is openai_module.OpenAISpec
    assert ls.OpenAIEmbeddingSpec is ls.specs.OpenAIEmbeddingSpec
    assert openai_module.ChatCompletionRequest is ls.specs.ChatCompletionRequest


def test_subclass_with_its_own_init() -> None:
    class Spec(OpenAISpec):
        def __init__(self) -> None:  # forgets super().__init__()
            self.extra = 1

    spec = Spec()
    ls.LitServer(Yields(), spec=spec)
    assert spec.served_name() == "Yields"
    assert [e.path for e in spec.endpoints()] == [
        "/v1/chat/completions", "/v1/models", "/v1/models/Yields"]
