"""A real litserve server for client and bench tests: ``python litserver_app.py PORT``.

  POST /predict   {"input": x} -> {"output": x**2}; {"count": true} -> {"count": requests
                  predicted before (count requests excluded), "flaky_failures": n};
                  {"fail": true} -> 500; {"flaky": true} -> 500 on every 3rd such request;
                  {"bad": true} -> 422; anything else (arrays, dicts of arrays) echoed
  POST /stream    {"n": k} -> k chunks {"i": i}
  POST /v1/chat/completions   OpenAI spec: echoes the last user message word by word
"""

from __future__ import annotations

import sys
from typing import Any

from starlette.exceptions import HTTPException

import litserve as ls


class EchoAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.calls = 0
        self.flaky = 0
        self.flaky_failures = 0

    def decode_request(self, request: Any) -> Any:
        if isinstance(request, dict) and request.get("bad"):
            raise HTTPException(422, "bad request on purpose")
        return request

    def predict(self, x: Any) -> Any:
        if isinstance(x, dict) and x.get("count"):
            return {"count": self.calls, "flaky_failures": self.flaky_failures}
        self.calls += 1
        if isinstance(x, dict):
            if x.get("fail"):
                raise RuntimeError("failed on purpose")
            if x.get("flaky"):
                self.flaky += 1
                if self.flaky % 3 == 0:
                    self.flaky_failures += 1
                    raise RuntimeError("flaky failure")
            if isinstance(x.get("input"), (int, float)):
                return {"output": x["input"] ** 2}
        return x

    def encode_response(self, output: Any) -> Any:
        return output


class CountStreamAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        pass

    def decode_request(self, request: Any) -> int:
        return int(request.get("n", 3))

    def predict(self, n: int) -> Any:
        for i in range(n):
            yield {"i": i}

    def encode_response(self, output: Any) -> Any:
        yield from output


class ChatAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        pass

    def predict(self, messages: Any) -> Any:
        text = messages[-1]["content"] if isinstance(messages[-1], dict) else messages[-1].content
        for word in str(text).split():
            yield word + " "


def main() -> None:
    port = int(sys.argv[1])
    apis = [EchoAPI(api_path="/predict"), CountStreamAPI(api_path="/stream", stream=True)]
    if hasattr(ls, "OpenAISpec") and "--no-openai" not in sys.argv:
        apis.append(ChatAPI(spec=ls.OpenAISpec(), stream=True))
    ls.LitServer(apis, accelerator="cpu").run(host="127.0.0.1", port=port, log_level="warning",
                                              generate_client_file=False)


if __name__ == "__main__":
    main()
