"""A deterministic chat "model" served with OpenAISpec; behaviour keyed on the last user text.

    python chat.py '{"timeout": 2}'      # JSON: extra LitServer keyword arguments
"""

import json
import sys
import time

from starlette.exceptions import HTTPException

import litserve as ls
from litserve.specs.openai import ChatMessage


def last_user_text(messages):
    content = [m for m in messages if m["role"] == "user"][-1]["content"]
    if isinstance(content, str):
        return content
    return " ".join(p["text"] for p in content if p["type"] == "text")


class ChatAPI(ls.LitAPI):
    model_name = "tiny-echo"

    def setup(self, device):
        self.replies = {
            "types": ["a", {"content": "b"}, {"role": "assistant", "content": "c"}, ["d", "e"],
                      ChatMessage(role="assistant", content="f")],
        }

    def predict(self, messages, context):
        text = last_user_text(messages)
        command = text.split()[0] if text else ""
        if command == "fail-start":
            raise HTTPException(status_code=400, detail="the model refuses 'fail-start'")
        if command == "crash-start":
            raise RuntimeError("the model crashed before the first token")
        if command == "slow":
            time.sleep(float(text.split()[1]))
        if command == "types":
            yield from self.replies["types"]
            return
        if command == "context":
            keys = ("model", "temperature", "top_p", "max_tokens", "max_completion_tokens",
                    "stop", "stream", "user", "metadata", "seed", "tool_choice")
            yield json.dumps({k: context.get(k) for k in keys}
                             | {"tools": [t["function"]["name"] for t in context["tools"] or []],
                                "response_format": context.get("response_format"),
                                "extra": context.get("vendor_field")})
            return
        if command == "images":
            parts = [p for m in messages if isinstance(m["content"], list) for p in m["content"]]
            urls = [p["image_url"] if isinstance(p["image_url"], str) else p["image_url"]["url"]
                    for p in parts if p["type"] == "image_url"]
            yield json.dumps(urls)
            return
        if command == "tool":
            yield {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}
            return
        if command == "count":  # count N: N tokens, 5 ms apart
            for i in range(int(text.split()[1])):
                time.sleep(0.005)
                yield f"{i} "
            return
        if command == "length":
            yield {"content": "cut", "finish_reason": "length"}
            return
        words = text.split() or ["(empty)"]
        for i, word in enumerate(words):
            if command == "fail-mid" and i == 2:
                raise RuntimeError("the model failed in the middle of the stream")
            yield word if i == 0 else " " + word
        yield {"content": "", "prompt_tokens": sum(len(m["content"]) for m in messages
                                                   if isinstance(m["content"], str)),
               "completion_tokens": len(words)}


if __name__ == "__main__":
    kwargs = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    server = ls.LitServer(ChatAPI(), spec=ls.OpenAISpec(), **kwargs)
    server.run(host="127.0.0.1", port=0, generate_client_file=False)
