"""Pydantic models of OpenAI's chat completions API (requests, responses, chunks).

The request models accept what the official ``openai`` clients send: content as a
string or as a list of parts (``text``, ``image_url`` with the URL as an object or a
bare string, ``input_audio``, ``file``), tools and tool choices, response formats, and
any newer or vendor-specific field (kept, and passed on in ``context``).

The response models describe what the server sends.  The worker builds those bytes
with orjson (``jsonx``) on the hot path; ``tests/specs`` checks they validate against these models.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import jsonx


class _Open(BaseModel):
    """Keeps fields we do not model, so newer clients are not refused."""

    model_config = ConfigDict(extra="allow")


# -- message content ----------------------------------------------------------------------
class TextContent(_Open):
    type: Literal["text"] = "text"
    text: str


class ImageContentURL(_Open):
    url: str
    detail: Literal["auto", "low", "high"] = "auto"


class ImageContent(_Open):
    type: Literal["image_url"] = "image_url"
    image_url: str | ImageContentURL


class InputAudio(_Open):
    data: str  # base64
    format: Literal["wav", "mp3"]  # what OpenAI's chat API accepts


class AudioContent(_Open):
    type: Literal["input_audio"] = "input_audio"
    input_audio: InputAudio


class FileContent(_Open):
    type: Literal["file"] = "file"
    file: dict[str, Any]


class RefusalContent(_Open):
    type: Literal["refusal"] = "refusal"
    refusal: str


ContentPart = Annotated[
    TextContent | ImageContent | AudioContent | FileContent | RefusalContent,
    Field(discriminator="type"),
]


# -- tools --------------------------------------------------------------------------------
class Function(_Open):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Open):
    type: Literal["function"] = "function"
    function: Function


class ToolChoiceFunction(_Open):
    name: str


class ToolChoiceObject(_Open):
    type: Literal["function"] = "function"
    function: ToolChoiceFunction


ToolChoice = Literal["auto", "none", "required", "any"] | ToolChoiceObject


class FunctionCall(_Open):
    name: str
    arguments: str = ""

    @field_validator("arguments", mode="before")
    @classmethod
    def _arguments_as_json(cls, value: Any) -> Any:
        """Arguments are a JSON string on the wire; a dict is encoded for you."""
        if isinstance(value, dict | list):
            return jsonx.dumps(value).decode()
        return value


class ToolCall(_Open):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall
    index: int | None = None  # position in a streamed delta


# -- messages -----------------------------------------------------------------------------
class ChatMessage(_Open):
    """One message of the conversation, or one output of the model."""

    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class ChatMessageWithUsage(ChatMessage):
    """A model output that also reports token counts (they go to ``usage``)."""

    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0
    total_tokens: int | None = 0


# -- the request --------------------------------------------------------------------------
class StreamOptions(_Open):
    include_usage: bool = False


class ResponseFormatText(_Open):
    type: Literal["text"] = "text"


class ResponseFormatJSONObject(_Open):
    type: Literal["json_object"] = "json_object"


class JSONSchema(_Open):
    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormatJSONSchema(_Open):
    type: Literal["json_schema"] = "json_schema"
    json_schema: JSONSchema


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema,
    Field(discriminator="type"),
]


class ChatCompletionRequest(_Open):
    """POST /v1/chat/completions.  Defaults follow LitServe's (temperature 0.7)."""

    model: str = ""
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = 0.7
    top_p: float | None = 1.0
    n: int | None = 1
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = 0.0
    frequency_penalty: float | None = 0.0
    seed: int | None = None
    user: str | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = "auto"
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    metadata: dict[str, str] | None = None


# -- responses ----------------------------------------------------------------------------
def _completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def _now() -> int:
    return int(time.time())


class UsageInfo(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class ChatCompletionResponseChoice(BaseModel):
    index: int = 0
    message: ChatMessage
    finish_reason: FinishReason | None = "stop"
    logprobs: dict[str, Any] | None = None


class ChatCompletionResponse(BaseModel):
    id: str = Field(default_factory=_completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=_now)
    model: str
    choices: list[ChatCompletionResponseChoice]
    usage: UsageInfo = Field(default_factory=UsageInfo)
    system_fingerprint: str | None = None


class ChoiceDelta(BaseModel):
    role: str | None = None
    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChatCompletionStreamingChoice(BaseModel):
    index: int = 0
    delta: ChoiceDelta
    finish_reason: FinishReason | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(BaseModel):
    id: str = Field(default_factory=_completion_id)
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=_now)
    model: str
    choices: list[ChatCompletionStreamingChoice]
    usage: UsageInfo | None = None
    system_fingerprint: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=_now)
    owned_by: str = "litserve"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo
