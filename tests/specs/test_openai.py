"""OpenAISpec against real servers, through the official ``openai`` client (sync and async)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest

from .conftest import API_KEY
from .harness import SpecServer


def client(server: SpecServer, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=30)


def aclient(server: SpecServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0,
                              timeout=30)


def user(content: Any) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": content}]


def collect(stream: Any) -> tuple[list[Any], str]:
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return chunks, text


# -- plain and streamed ------------------------------------------------------------------------
def test_plain_completion(chat: SpecServer) -> None:
    out = client(chat).chat.completions.create(model="m", messages=user("hello big world"))
    assert out.object == "chat.completion" and out.id.startswith("chatcmpl-")
    assert out.model == "m"
    assert out.choices[0].message.role == "assistant"
    assert out.choices[0].message.content == "hello big world"
    assert out.choices[0].finish_reason == "stop"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) \
        == (len("be brief") + len("hello big world"), 3, 26)


def test_streamed_one_chunk_per_yield(chat: SpecServer) -> None:
    stream = client(chat).chat.completions.create(model="m", messages=user("a b c"),
                                                   stream=True)
    chunks, text = collect(stream)
    assert text == "a b c"
    # three words and the usage item, then the chunk with finish_reason
    assert [c.choices[0].delta.content for c in chunks] == ["a", " b", " c", "", None]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks] == [None] * 4 + ["stop"]
    assert {c.id for c in chunks} == {chunks[0].id}
    assert all(c.object == "chat.completion.chunk" and c.usage is None for c in chunks)


def test_stream_usage_with_stream_options(chat: SpecServer) -> None:
    stream = client(chat).chat.completions.create(
        model="m", messages=user("one two"), stream=True,
        stream_options={"include_usage": True})
    chunks, text = collect(stream)
    assert text == "one two"
    last = chunks[-1]
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) \
        == (15, 2, 17)
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_model_name_defaults_to_served_name(chat: SpecServer) -> None:
    import httpx

    body = {"messages": user("x")}
    assert httpx.post(chat.url + "/v1/chat/completions", json=body).json()["model"] == "tiny-echo"


def test_async_client_concurrent_plain_and_streamed(chat: SpecServer) -> None:
    async def one(api: openai.AsyncOpenAI, i: int) -> tuple[str, str]:
        words = f"req{i} " + " ".join(f"w{i}.{k}" for k in range(i % 5 + 1))
        if i % 2:
            out = await api.chat.completions.create(model="m", messages=user(words))
            return words, out.choices[0].message.content or ""
        stream = await api.chat.completions.create(model="m", messages=user(words),
                                                   stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        return words, text

    async def main() -> list[tuple[str, str]]:
        async with aclient(chat) as api:
            return await asyncio.gather(*(one(api, i) for i in range(16)))

    for sent, got in asyncio.run(main()):
        assert got == sent


# -- what predict may yield ---------------------------------------------------------------------
def test_output_shapes(chat: SpecServer) -> None:
    api = client(chat)
    out = api.chat.completions.create(model="m", messages=user("types"))
    assert out.choices[0].message.content == "abcdef"
    _, text = collect(api.chat.completions.create(model="m", messages=user("types"),
                                                  stream=True))
    assert text == "abcdef"


def test_finish_reason_from_output(chat: SpecServer) -> None:
    out = client(chat).chat.completions.create(model="m", messages=user("length"))
    assert out.choices[0].finish_reason == "length"


# -- images, tools, context --------------------------------------------------------------------
def test_image_parts_as_object_and_bare_string(chat: SpecServer) -> None:
    content = [
        {"type": "text", "text": "images"},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}},
        {"type": "image_url", "image_url": "data:image/png;base64,iVBORw0KGgo="},
    ]
    out = client(chat).chat.completions.create(model="m", messages=user(content))
    assert json.loads(out.choices[0].message.content or "") == [
        "https://x.test/a.png", "data:image/png;base64,iVBORw0KGgo="]


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


def test_tool_calls_plain(chat: SpecServer) -> None:
    out = client(chat).chat.completions.create(model="m", messages=user("tool"), tools=TOOLS,
                                               tool_choice="auto")
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    assert (call.id, call.type, call.function.name) == ("call_1", "function", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_tool_calls_streamed(chat: SpecServer) -> None:
    chunks = list(client(chat).chat.completions.create(
        model="m", messages=user("tool"), tools=TOOLS, stream=True))
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].function.name == "get_weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_result_messages_are_accepted(chat: SpecServer) -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": "thanks"},
    ]
    out = client(chat).chat.completions.create(model="m", messages=messages, tools=TOOLS)
    assert out.choices[0].message.content == "thanks"


def test_request_fields_reach_context(chat: SpecServer) -> None:
    out = client(chat).chat.completions.create(
        model="tiny", messages=user("context"), temperature=0.2, top_p=0.9, max_tokens=17,
        max_completion_tokens=18, stop=["\n"], user="ada", metadata={"k": "v"}, seed=7,
        tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}},
        response_format={"type": "json_schema", "json_schema": {
            "name": "w", "schema": {"type": "object"}}},
        extra_body={"vendor_field": [1, 2]})
    got = json.loads(out.choices[0].message.content or "")
    assert got == {
        "model": "tiny", "temperature": 0.2, "top_p": 0.9, "max_tokens": 17,
        "max_completion_tokens": 18, "stop": ["\n"], "stream": False, "user": "ada",
        "metadata": {"k": "v"}, "seed": 7,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "tools": ["get_weather"],
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "w", "description": None, "schema_": {"type": "object"}, "strict": None}},
        "extra": [1, 2]}


# -- models -------------------------------------------------------------------------------------
def test_models_list_and_retrieve(chat: SpecServer) -> None:
    api = client(chat)
    assert [m.id for m in api.models.list()] == ["tiny-echo"]
    card = api.models.retrieve("tiny-echo")
    assert (card.id, card.object, card.owned_by) == ("tiny-echo", "model", "litserve")


# -- errors through the client --------------------------------------------------------------------
def test_exception_mid_stream_ends_with_error_event(chat: SpecServer) -> None:
    stream = client(chat).chat.completions.create(model="m", messages=user("fail-mid a b c"),
                                                   stream=True)
    got = []
    with pytest.raises(openai.APIError, match=r"^Internal Server Error \(request id: \w{32}\)$"):
        for chunk in stream:
            got.append(chunk.choices[0].delta.content)
    assert got == ["fail-mid", " a"]


@pytest.mark.parametrize("stream", [False, True])
def test_http_exception_before_first_token(chat: SpecServer, stream: bool) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(chat).chat.completions.create(model="m", messages=user("fail-start"),
                                             stream=stream)
    assert info.value.status_code == 400
    assert info.value.body["message"] == "the model refuses 'fail-start'"


def test_crash_before_first_token_is_a_500(chat: SpecServer) -> None:
    with pytest.raises(openai.InternalServerError, match=r"Internal Server Error \(request id"
                       ) as info:
        client(chat).chat.completions.create(model="m", messages=user("crash-start"),
                                             stream=True)
    assert "crashed" not in str(info.value)  # the exception's text is in the server log only
    # and the server keeps serving
    out = client(chat).chat.completions.create(model="m", messages=user("still here"))
    assert out.choices[0].message.content == "still here"


def test_invalid_request_is_an_unprocessable_entity(chat: SpecServer) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client(chat).chat.completions.create(model="m", messages=user("x"),
                                             temperature="hot")  # type: ignore[arg-type]
    assert info.value.body["param"] == "temperature"


# -- the custom-hooks server ----------------------------------------------------------------------
def test_custom_decode_encode_and_populate_context(servers: Any) -> None:
    server = servers("chat_custom")
    out = client(server).chat.completions.create(model="m", messages=user("hi"), user="ada",
                                                 temperature=0.3)
    text = out.choices[0].message.content or ""
    assert text.startswith("ChatCompletionRequest from ADA front=")
    front, worker = (int(part.split("=")[1]) for part in text.split()[3:5])
    assert front != worker  # populate_context ran in the front, predict in the worker
    assert text.endswith(" temperature=0.3")
    assert [m.id for m in client(server).models.list()] == ["custom-model"]


def test_custom_encode_response_tool_calls(servers: Any) -> None:
    server = servers("chat_custom")
    api = client(server)
    out = api.chat.completions.create(model="m", messages=user("call tools"), tools=TOOLS)
    calls = out.choices[0].message.tool_calls
    assert out.choices[0].finish_reason == "tool_calls"
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("call_lookup", "lookup", {"q": "lookup"}), ("call_translate", "translate",
                                                     {"q": "translate"})]
    chunks = list(api.chat.completions.create(model="m", messages=user("call tools"),
                                              tools=TOOLS, stream=True))
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(d.index, d.function.name) for d in deltas] == [(0, "lookup"), (1, "translate")]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_stream_stops_generating_when_the_client_leaves(chat: SpecServer) -> None:
    from server.harness import all_free, slot_table, wait_for

    body = {"model": "m", "messages": user("count 2000"), "stream": True, "n": 2}
    with httpx.stream("POST", chat.url + "/v1/chat/completions", json=body, timeout=30) as r:
        lines = (line for line in r.iter_lines() if line.startswith("data: "))
        assert [json.loads(next(lines)[6:])["choices"][0]["delta"]["content"]
                for _ in range(3)] == ["0 ", "1 ", "2 "]
    slots = slot_table(chat)
    try:  # 2 x 2000 tokens would take 20 s; the worker stops at the next token instead
        wait_for(lambda: all_free(slots), 6, "the abandoned stream ending")
    finally:
        slots.close()
    assert client(chat).chat.completions.create(
        model="m", messages=user("still here")).choices[0].message.content == "still here"


def test_batched_stream_stops_when_every_client_left(servers: Any) -> None:
    from server.harness import all_free, slot_table, wait_for

    server = servers("chat_batched")
    body = {"model": "m", "messages": user("count 2000"), "stream": True, "n": 2}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=30) as r:
        lines = (line for line in r.iter_lines() if line.startswith("data: "))
        assert json.loads(next(lines)[6:])["choices"][0]["delta"]["content"] == "0 "
    slots = slot_table(server)
    try:  # 2000 steps would take 10 s
        wait_for(lambda: all_free(slots), 6, "the abandoned batch ending")
    finally:
        slots.close()


# -- several choices (n) ---------------------------------------------------------------------------
def test_n_choices_plain_run_predict_once_each(chat: SpecServer) -> None:
    out = client(chat).chat.completions.create(model="m", messages=user("one two"), n=3)
    assert [c.index for c in out.choices] == [0, 1, 2]
    assert [c.message.content for c in out.choices] == ["one two"] * 3
    assert {c.finish_reason for c in out.choices} == {"stop"}
    assert out.usage.completion_tokens == 3 * 2  # three predicts of two words each


def test_n_choices_streamed(chat: SpecServer) -> None:
    stream = client(chat).chat.completions.create(model="m", messages=user("x y"), n=2,
                                                   stream=True)
    text: dict[int, str] = {0: "", 1: ""}
    finish: dict[int, str | None] = {}
    for chunk in stream:
        for c in chunk.choices:
            text[c.index] += c.delta.content or ""
            if c.finish_reason:
                finish[c.index] = c.finish_reason
    assert text == {0: "x y", 1: "x y"} and finish == {0: "stop", 1: "stop"}


def test_n_choices_share_batches_of_at_most_max_batch_size(servers: Any) -> None:
    api = client(servers("chat_batched"))
    out = api.chat.completions.create(model="m", messages=user("p q"), n=2)
    assert [c.message.content for c in out.choices] == ["[batch=2] p q"] * 2
    out = api.chat.completions.create(model="m", messages=user("r"), n=6)  # batches of 4
    assert [c.message.content for c in out.choices] == ["[batch=4] r"] * 4 + ["[batch=2] r"] * 2


# -- batching -------------------------------------------------------------------------------------
def test_batched_streams_each_get_their_own_tokens(servers: Any) -> None:
    server = servers("chat_batched")

    async def one(api: openai.AsyncOpenAI, words: str) -> tuple[str, list[str]]:
        stream = await api.chat.completions.create(model="m", messages=user(words),
                                                   stream=True)
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        return words, [p for p in parts if p]

    async def main() -> list[tuple[str, list[str]]]:
        async with aclient(server) as api:
            sentences = ["a", "b c", "d e f", "g h i j"]
            return await asyncio.gather(*(one(api, s) for s in sentences))

    sizes = []
    for words, parts in asyncio.run(main()):
        assert parts[0].startswith("[batch=")
        sizes.append(int(parts[0][len("[batch="):-1]))
        assert "".join(parts[1:]) == "".join(" " + w for w in words.split())
    assert max(sizes) > 1, f"no request was batched with another: {sizes}"


# -- API key -------------------------------------------------------------------------------------
def test_api_key_as_bearer_token(servers: Any) -> None:
    server = servers("multi")
    out = client(server, key=API_KEY).chat.completions.create(model="m", messages=user("ok"))
    assert out.choices[0].message.content == "ok"
    with pytest.raises(openai.AuthenticationError) as info:
        client(server, key="wrong").chat.completions.create(model="m", messages=user("x"))
    assert info.value.body["code"] == "invalid_api_key"


def test_models_lists_every_served_model(servers: Any) -> None:
    api = client(servers("multi"), key=API_KEY)
    assert sorted(m.id for m in api.models.list()) == ["tiny-echo", "tiny-embed"]
