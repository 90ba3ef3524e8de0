"""``OpenAISpec``: serve a LitAPI as OpenAI's ``POST /v1/chat/completions``.

    class ChatAPI(ls.LitAPI):
        def predict(self, messages):          # a list of plain message dicts
            yield from self.model.generate(messages)

    ls.LitServer(ChatAPI(), spec=ls.OpenAISpec()).run(port=8000)

``predict`` must be a generator; each item it yields (after ``encode_response``)
becomes one ``chat.completion.chunk`` of a streamed response, or a part of the
message of a plain one.  An item may be a ``str``, a dict with ``content`` (and
``role``, ``tool_calls``, ``finish_reason``, ``prompt_tokens``, ``completion_tokens``),
a ``ChatMessage``, or a list of those (a list of strings is joined; otherwise its
last message counts, as in a returned conversation).  Token counts go to ``usage``:
the largest ``prompt_tokens`` reported, and the sum of ``completion_tokens``
(report them once at the end, or as increments per item).

A request with ``n`` > 1 (up to 128) runs ``predict`` once per choice, in batches of
at most ``max_batch_size`` when batching; each choice is framed with its own index.

Where things run: the front validates the ``ChatCompletionRequest`` (422 / 400 in
OpenAI's shape), copies every field but ``messages`` into ``context`` and calls
``populate_context(context, request)``; the worker parses the request again, hands
``decode_request`` the model (the default one returns the message list as dicts),
and frames each output here (``start`` / ``chunk`` / ``finish``) with ``jsonx``
(orjson, exact for integers beyond 64 bits).
"""

from __future__ import annotations

import inspect
import time
import uuid
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel

from .. import jsonx
from ..api import LitAPI
from ..errors import ConfigError
from .base import Immediate
from .openai_base import OpenAIBase, immediate_error, is_generator_function
from .openai_types import (
    AudioContent,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseChoice,
    ChatCompletionStreamingChoice,
    ChatMessage,
    ChatMessageWithUsage,
    ChoiceDelta,
    ContentPart,
    ErrorResponse,
    FileContent,
    Function,
    FunctionCall,
    ImageContent,
    ImageContentURL,
    JSONSchema,
    ModelCard,
    ModelList,
    ResponseFormat,
    ResponseFormatJSONObject,
    ResponseFormatJSONSchema,
    ResponseFormatText,
    StreamOptions,
    TextContent,
    Tool,
    ToolCall,
    ToolChoice,
    UsageInfo,
)

__all__ = [
    "AudioContent", "ChatCompletionChunk", "ChatCompletionRequest", "ChatCompletionResponse",
    "ChatCompletionResponseChoice", "ChatCompletionStreamingChoice", "ChatMessage",
    "ChatMessageWithUsage", "ChoiceDelta", "ContentPart", "ErrorResponse", "FileContent",
    "Function", "FunctionCall", "ImageContent", "ImageContentURL", "JSONSchema", "ModelCard",
    "ModelList", "OpenAISpec", "ResponseFormat", "ResponseFormatJSONObject",
    "ResponseFormatJSONSchema", "ResponseFormatText", "StreamOptions", "TextContent", "Tool",
    "ToolCall", "ToolChoice", "UsageInfo",
]

_EXAMPLE = """
With OpenAISpec, predict (and encode_response, if you define one) must be generators:

    class ChatAPI(ls.LitAPI):
        def predict(self, messages):
            yield "Hello"          # one chunk per yield
            yield ", world"

        def encode_response(self, outputs):           # optional
            for text in outputs:
                yield {"role": "assistant", "content": text}
"""

_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
MAX_CHOICES = 128  # what OpenAI accepts for n


class OpenAISpec(OpenAIBase):
    """OpenAI chat completions, plain and streamed (SSE), with tools, images and usage.

    ``model_name`` is what ``GET /v1/models`` lists (default: the LitAPI's
    ``model_name`` attribute, else its class name) and what responses report when a
    request names no model.
    """

    path: ClassVar[str] = "/v1/chat/completions"
    request_model = ChatCompletionRequest
    body_field = "messages"

    # -- start-up -----------------------------------------------------------------------------
    def check_api(self, api: Any) -> None:
        super().check_api(api)
        if getattr(api, "enable_async", False):
            return  # async hooks: litserve.api.check_async_route (LitServe's rules)
        name = type(api).__name__
        predict = type(api).predict
        if inspect.isasyncgenfunction(predict) or inspect.iscoroutinefunction(predict):
            raise ConfigError(f"{name}.predict is async; litserve runs hooks in worker "
                              "processes, so define it as a plain generator (def + yield)"
                              + _EXAMPLE)
        if not is_generator_function(predict):
            raise ConfigError(f"{name}.predict must be a generator (use yield, not return) "
                              "to serve it with OpenAISpec" + _EXAMPLE)
        encode = type(api).encode_response
        if encode is not LitAPI.encode_response and not is_generator_function(encode):
            raise ConfigError(f"{name}.encode_response must be a generator (use yield) to "
                              "serve it with OpenAISpec; it receives predict's generator"
                              + _EXAMPLE)

    # -- front --------------------------------------------------------------------------------
    def refuse(self, request: Any) -> Immediate | None:
        n = 1 if request.n is None else request.n
        if not 1 <= n <= MAX_CHOICES:
            return immediate_error(400, f"n={n} is out of range: ask for 1 to {MAX_CHOICES} "
                                        "choices", param="n")
        return None

    # -- worker -------------------------------------------------------------------------------
    def decode_request(self, request: ChatCompletionRequest, context: dict[str, Any]) -> Any:
        """The default: the conversation as plain dicts (always with role and content)."""
        return [_plain(m) for m in request.messages]

    def encode_response(self, output: Any, context: dict[str, Any]) -> Any:
        return output  # ``chunk`` understands every shape predict may yield

    def start(self, request: Any, context: dict[str, Any], stream: bool) -> Completion:
        model = getattr(request, "model", "") or self.served_name()
        options = getattr(request, "stream_options", None)
        n = getattr(request, "n", None) or 1
        return Completion(model, stream, bool(options and options.include_usage), n)

    def choices(self, state: Completion) -> int:
        return len(state.choices)

    def chunk(self, state: Completion, output: Any, choice: int = 0) -> bytes:
        message = as_message(output)
        return b"" if message is None else state.add(message, choice)

    def finish(self, state: Completion) -> bytes:
        return state.finish()

    def content_type(self, stream: bool) -> bytes:
        return b"text/event-stream" if stream else b"application/json"


class Choice:
    """One answer of a completion (OpenAI's ``n`` asks for several)."""

    __slots__ = ("role", "content", "tool_calls", "finish_reason")

    def __init__(self) -> None:
        self.role: str | None = None  # set once the first delta (which carries it) is made
        self.content: list[str] = []
        self.tool_calls: list[dict[str, Any]] = []
        self.finish_reason = "stop"


class Completion:
    """The framing state of one response: what was sent, what is still to come."""

    __slots__ = ("stream", "model", "include_usage", "head", "choices", "prompt_tokens",
                 "completion_tokens", "total_tokens", "id", "created")

    def __init__(self, model: str, stream: bool, include_usage: bool, n: int = 1) -> None:
        self.stream, self.model, self.include_usage = stream, model, include_usage
        self.id = "chatcmpl-" + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.head = (b'data: {"id":"' + self.id.encode() + b'","object":"chat.completion.chunk",'
                     b'"created":%d,"model":%s,"choices":[' % (self.created, orjson.dumps(model)))
        self.choices = [Choice() for _ in range(n)]
        self.prompt_tokens = self.completion_tokens = self.total_tokens = 0

    def add(self, message: dict[str, Any], index: int = 0) -> bytes:
        """Take one output of choice ``index``; in a stream, return its chunk (b"" when it
        says nothing)."""
        self._count(message)
        choice = self.choices[index]
        delta: dict[str, Any] = {}
        if choice.role is None:
            choice.role = delta["role"] = message.get("role") or "assistant"
        content = message.get("content")
        if content is not None:
            delta["content"] = _text(content)
            choice.content.append(delta["content"])
        calls = message.get("tool_calls")
        if calls:
            delta["tool_calls"] = [_tool_call(c, len(choice.tool_calls) + i, self.stream)
                                   for i, c in enumerate(calls)]
            choice.tool_calls.extend(delta["tool_calls"])
            choice.finish_reason = "tool_calls"
        if message.get("finish_reason"):
            choice.finish_reason = message["finish_reason"]
        if not self.stream or not delta:
            return b""
        return self.head + _choice(index, delta, None) + b"]}\n\n"

    def _count(self, message: dict[str, Any]) -> None:
        prompt, completion, total = (message.get(k) or 0 for k in _USAGE_KEYS)
        self.prompt_tokens = max(self.prompt_tokens, prompt)
        self.completion_tokens += completion
        self.total_tokens = max(self.total_tokens, total)

    def usage(self) -> dict[str, int]:
        total = max(self.total_tokens, self.prompt_tokens + self.completion_tokens)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": total}

    def finish(self) -> bytes:
        if not self.stream:
            return jsonx.dumps(self.response())
        tail = b""
        for index, choice in enumerate(self.choices):
            delta = {} if choice.role is not None else {"role": "assistant", "content": ""}
            tail += self.head + _choice(index, delta, choice.finish_reason) + b"]}\n\n"
        if self.include_usage:
            tail += self.head + b'],"usage":' + jsonx.dumps(self.usage()) + b"}\n\n"
        return tail + b"data: [DONE]\n\n"

    def response(self) -> dict[str, Any]:
        choices = []
        for index, choice in enumerate(self.choices):
            message: dict[str, Any] = {"role": choice.role or "assistant",
                                       "content": "".join(choice.content)}
            if choice.tool_calls:
                message["tool_calls"] = choice.tool_calls
                if not choice.content:  # the model sent no content at all (not even "")
                    message["content"] = None
            choices.append({"index": index, "message": message,
                            "finish_reason": choice.finish_reason, "logprobs": None})
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model, "choices": choices, "usage": self.usage()}


def _choice(index: int, delta: dict[str, Any], finish_reason: str | None) -> bytes:
    return (b'{"index":%d,"delta":' % index + jsonx.dumps(delta) + b',"finish_reason":'
            + orjson.dumps(finish_reason) + b',"logprobs":null}')


def _plain(message: ChatMessage) -> dict[str, Any]:
    out = message.model_dump(exclude_none=True)
    out.setdefault("content", None)
    return out


def as_message(output: Any) -> dict[str, Any] | None:
    """One output of predict / encode_response as a message dict (None: nothing to send)."""
    if isinstance(output, str):
        return {"content": output}
    if isinstance(output, dict):
        return output
    if isinstance(output, BaseModel):
        return output.model_dump(exclude_none=True)
    if output is None:
        return None
    if isinstance(output, list | tuple):
        if all(isinstance(x, str) for x in output):
            return {"content": "".join(output)} if output else None
        return as_message(output[-1])
    raise TypeError(f"predict / encode_response produced {type(output).__name__} {output!r:.80}; "
                    "with OpenAISpec each item must be a str, a dict with 'content' (and "
                    "optionally 'role', 'tool_calls'), a ChatMessage, or a list of those")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "".join(p.get("text", "") if isinstance(p, dict) else getattr(p, "text", "")
                       for p in content)
    return str(content)


def _tool_call(call: Any, index: int, stream: bool) -> dict[str, Any]:
    """A tool call as OpenAI sends it: id, type, function {name, arguments as JSON}."""
    tc = ToolCall.model_validate(call).model_dump(exclude_none=True)
    tc.setdefault("id", "call_" + uuid.uuid4().hex[:24])
    if stream:
        tc["index"] = index
    else:
        tc.pop("index", None)
    return tc
