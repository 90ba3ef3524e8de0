"""OpenAISpec with the user's own hooks: decode_request annotated ChatCompletionRequest,
encode_response yielding ChatMessages (with tool calls), a spec subclass that adds to
``context`` in the front, and the spec given to the LitAPI (newer LitServe style)."""

import os

import litserve as ls
from litserve.specs.openai import ChatCompletionRequest, ChatMessage, FunctionCall, ToolCall


class TenantSpec(ls.OpenAISpec):
    def populate_context(self, context, request):
        context["front_pid"] = os.getpid()
        context["tenant"] = (request.user or "anonymous").upper()


class CustomAPI(ls.LitAPI):
    def decode_request(self, request: ChatCompletionRequest):
        assert isinstance(request, ChatCompletionRequest), type(request)
        return request

    def predict(self, request, context):
        text = request.messages[-1].content
        if text == "call tools":
            yield ("tool", "lookup")
            yield ("tool", "translate")
            return
        yield ("text", f"{type(request).__name__} from {context['tenant']}")
        yield ("text", f" front={context['front_pid']} worker={os.getpid()}")
        yield ("text", f" temperature={context['temperature']}")

    def encode_response(self, outputs):
        for kind, value in outputs:
            if kind == "text":
                yield ChatMessage(role="assistant", content=value)
            else:
                call = ToolCall(id=f"call_{value}", function=FunctionCall(
                    name=value, arguments={"q": value}))
                yield ChatMessage(role="assistant", content=None, tool_calls=[call])


if __name__ == "__main__":
    api = CustomAPI(spec=TenantSpec(model_name="custom-model"))
    ls.LitServer(api).run(host="127.0.0.1", port=0, generate_client_file=False)
