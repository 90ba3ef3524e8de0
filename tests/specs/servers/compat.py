"""Apps shaped like LitServe 0.2.19's end-to-end servers (its ``tests/e2e`` and
``litserve.test_examples``), written anew.

    python compat.py chat      # content parts, response_format, tools (custom hooks),
                               # plus embeddings batched by the LitAPI (setup + predict only)
    python compat.py batched   # OpenAISpec with max_batch_size=2: lists of inputs and contexts
"""

import sys
import time

import numpy as np

import litserve as ls
from litserve.specs.openai import (
    AudioContent,
    ChatCompletionRequest,
    ChatMessage,
    ImageContent,
    TextContent,
)

GENERATED = "This is a generated output"
EVENT = '{"name": "Science Fair", "date": "Friday", "participants": ["Alice", "Bob"]}'


def describe(part):
    """What decode_request saw of one content part (its pydantic type and fields)."""
    if isinstance(part, TextContent):
        return f"text:{part.text}"
    if isinstance(part, ImageContent):
        url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
        detail = "-" if isinstance(part.image_url, str) else part.image_url.detail
        return f"image:{detail}:{url}"
    if isinstance(part, AudioContent):
        return f"audio:{part.input_audio.format}:{part.input_audio.data}"
    return f"other:{type(part).__name__}"


class CompatChatAPI(ls.LitAPI):
    """decode_request gets the ChatCompletionRequest; encode_response yields ChatMessages."""

    def setup(self, device):
        self.model = None

    def decode_request(self, request):
        assert isinstance(request, ChatCompletionRequest), type(request)
        return request

    def predict(self, request, context):
        if request.tools:
            yield ("tool", request.tools[0].function.name)
        elif request.response_format is not None:
            fmt = request.response_format
            schema = getattr(fmt, "json_schema", None)
            if schema is not None and schema.name == "calendar_event" and schema.schema_ \
                    and schema.strict is True:
                yield ("text", EVENT)  # the e2e reply, only for the request it expects
                return
            yield ("text", f"{type(fmt).__name__}|{context['response_format']}")
        elif isinstance(request.messages[-1].content, list):
            yield ("parts", " ".join(describe(p) for p in request.messages[-1].content))
        else:
            yield ("text", GENERATED)

    def encode_response(self, outputs):
        for kind, value in outputs:
            if kind == "tool":
                yield ChatMessage(role="assistant", content="", tool_calls=[{
                    "id": "call_abc123", "type": "function",
                    "function": {"name": value, "arguments": '{\n"location": "Boston, MA"\n}'}}])
            else:
                yield ChatMessage(role="assistant", content=value)


class EmbeddingsAPI(ls.LitAPI):
    """Only setup and predict: the spec's defaults decode and encode.  Column 0 of each
    row is the size of the batch predict got (the rest is random)."""

    def setup(self, device):
        def model(x):
            rows = np.random.rand(len(x), 768)
            rows[:, 0] = len(x)
            return rows

        self.model = model

    def predict(self, inputs):
        return self.model(inputs)


REPLY = ("Hi! It's nice to meet you. Is there something I can help you with or would you "
         "like to chat?")


class BatchContextAPI(ls.LitAPI):
    """predict gets a list of inputs and a list of contexts and yields a list per step."""

    def setup(self, device):
        self.model = None

    def batch(self, inputs):
        return inputs

    def predict(self, inputs, context):
        assert isinstance(context, list) and len(context) == len(inputs)
        for ctx in context:
            ctx["temperature"] = 1.0
        for word in REPLY.split(" "):
            time.sleep(0.01)
            yield [f"{word} " for _ in inputs]
        yield [f"[batch={len(inputs)}]" for _ in inputs]

    def unbatch(self, output):
        return output

    def encode_response(self, output_stream, context):
        for outputs in output_stream:
            yield [{"role": "assistant", "content": out} for out in outputs]
        for ctx in context:  # predict's changes to the contexts are seen here
            assert ctx["temperature"] == 1.0, ctx


if __name__ == "__main__":
    if sys.argv[1] == "chat":
        apis = [CompatChatAPI(spec=ls.OpenAISpec()),
                EmbeddingsAPI(max_batch_size=10, batch_timeout=2,
                              spec=ls.OpenAIEmbeddingSpec())]
    else:
        apis = [BatchContextAPI(max_batch_size=2, batch_timeout=0.5, spec=ls.OpenAISpec())]
    ls.LitServer(apis).run(host="127.0.0.1", port=0, generate_client_file=False)
