"""An OpenAI-compatible chat server with a tiny deterministic "model".

    python examples/openai_chat.py

    # any OpenAI client works against it:
    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    reply = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hello there"}])
    print(reply.choices[0].message.content)
    for chunk in client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hello there"}], stream=True):
        print(chunk.choices[0].delta.content or "", end="", flush=True)

    # or curl:
    curl -N localhost:8000/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model": "echo", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
"""

import litserve as ls


class EchoModel:
    """Answers with the last user message, reversed word by word."""

    def generate(self, messages, max_tokens):
        content = messages[-1]["content"]
        if isinstance(content, list):  # text and image parts
            content = " ".join(p["text"] for p in content if p["type"] == "text")
        yield from reversed(content.split()[:max_tokens])


class ChatAPI(ls.LitAPI):
    model_name = "echo"  # what GET /v1/models lists

    def setup(self, device):
        self.model = EchoModel()

    def predict(self, messages, context):
        # messages: the conversation as plain dicts; context: the other request fields
        max_tokens = context.get("max_tokens") or 256
        completion = 0
        for word in self.model.generate(messages, max_tokens):
            completion += 1
            yield word + " "  # one chat.completion.chunk per yield when streaming
        prompt = sum(len(str(m["content"]).split()) for m in messages)
        yield {"content": "", "prompt_tokens": prompt, "completion_tokens": completion}


if __name__ == "__main__":
    ls.LitServer(ChatAPI(), spec=ls.OpenAISpec()).run(port=8000)
