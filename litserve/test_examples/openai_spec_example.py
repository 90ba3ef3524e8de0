"""LitAPIs for ``ls.OpenAISpec``: each answers with a fixed reply, so that a test can
check what reaches the client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from ..api import LitAPI
from ..specs.openai import ChatMessage

GENERATED = "This is a generated output"
EVENT = '{"name": "Science Fair", "date": "Friday", "participants": ["Alice", "Bob"]}'
GREETING = ["Hi!", "It's", "nice", "to", "meet", "you.", "Is", "there", "something", "I",
            "can", "help", "you", "with", "or", "would", "you", "like", "to", "chat?"]
USAGE = {"prompt_tokens": 25, "completion_tokens": 10, "total_tokens": 35}
SUM_TOKENS = ["10", " +", " ", "6", " is", " equal", " to", " ", "16", "."]


class TestAPI(LitAPI):
    """Streams one message: "This is a generated output"."""

    __test__ = False  # not a pytest class

    def setup(self, device: str) -> None:
        self.model = None

    def predict(self, x: Any) -> Iterator[str]:
        yield GENERATED


class TestAPIWithCustomEncode(TestAPI):
    """Its encode_response ignores predict and yields a ChatMessage of its own."""

    def encode_response(self, output: Any) -> Iterator[ChatMessage]:
        yield ChatMessage(role="assistant", content="This is a custom encoded output")


class TestAPIWithToolCalls(TestAPI):
    """Answers with an empty content and one call of ``function_1``."""

    def encode_response(self, output: Any) -> Iterator[ChatMessage]:
        call: Any = {"id": "call_1", "type": "function",
                "function": {"name": "function_1", "arguments": '{"arg_1": "arg_1_value"}'}}
        yield ChatMessage(role="assistant", content="", tool_calls=[call])


class TestAPIWithStructuredOutput(TestAPI):
    """Answers with one JSON object (for ``response_format`` tests)."""

    def encode_response(self, output: Any) -> Iterator[ChatMessage]:
        yield ChatMessage(role="assistant", content=EVENT)


class OpenAIBatchContext(LitAPI):
    """Batched and streamed: every request of the batch gets the same greeting, one
    word (and a space) per chunk; ``context`` is a list with one dict per request."""

    def setup(self, device: str) -> None:
        self.model = None

    def batch(self, inputs: list[Any]) -> list[Any]:
        return inputs

    def predict(self, inputs: list[Any], context: list[dict[str, Any]]) -> Iterator[list[str]]:
        if not isinstance(context, list):
            raise TypeError(f"batched predict got context={context!r}; expected a list")
        for ctx in context:
            ctx["temperature"] = 1.0
        for word in GREETING:
            time.sleep(0.01)
            yield [word + " "] * len(inputs)

    def unbatch(self, output: Any) -> Any:
        return output

    def encode_response(self, output_stream: Any,
                        context: list[dict[str, Any]]) -> Iterator[list[dict[str, str]]]:
        for outputs in output_stream:
            yield [{"role": "assistant", "content": out} for out in outputs]
        for ctx in context:
            if ctx.get("temperature") != 1.0:
                raise ValueError(f"context {ctx} lost the temperature predict set")


class OpenAIWithUsage(LitAPI):
    """One message with token counts: 25 prompt, 10 completion, 35 in all."""

    def setup(self, device: str) -> None:
        self.model = None

    def predict(self, x: Any) -> Iterator[Any]:
        yield {"role": "assistant", "content": "10 + 6 is equal to 16.", **USAGE}


class OpenAIWithUsageEncodeResponse(LitAPI):
    """Streams "10 + 6 is equal to 16." token by token, then an empty message with
    the token counts."""

    def setup(self, device: str) -> None:
        self.model = None

    def predict(self, x: Any) -> Iterator[str]:
        yield from SUM_TOKENS

    def encode_response(self, output: Any) -> Iterator[dict[str, Any]]:
        for token in output:
            yield {"role": "assistant", "content": token}
        yield {"role": "assistant", "content": "", **USAGE}


class OpenAIBatchingWithUsage(OpenAIWithUsage):
    """The batched form of OpenAIWithUsage."""

    def batch(self, inputs: list[Any]) -> list[Any]:
        return inputs

    def predict(self, x: Any) -> Iterator[list[str]]:
        yield ["10 + 6 is equal to 16."] * len(x)

    def encode_response(self, output_stream_batch: Any,
                        context: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        for outputs in output_stream_batch:
            yield [{"role": "assistant", "content": out} for out in outputs]
        yield [{"role": "assistant", "content": "", **USAGE} for _ in context]

    def unbatch(self, output: Any) -> Any:
        return output


__all__ = [
    "OpenAIBatchContext",
    "OpenAIBatchingWithUsage",
    "OpenAIWithUsage",
    "OpenAIWithUsageEncodeResponse",
    "TestAPI",
    "TestAPIWithCustomEncode",
    "TestAPIWithStructuredOutput",
    "TestAPIWithToolCalls",
]
