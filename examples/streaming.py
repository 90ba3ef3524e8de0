"""Streaming: predict yields words one by one and the client receives each as it is made.

With ``stream=True``, ``predict`` and ``encode_response`` are generators; every encoded
chunk is sent to the client as soon as it is yielded (here one JSON object per chunk).

    python examples/streaming.py
    curl -sN localhost:8000/predict -H 'content-type: application/json' \\
        -d '{"input": "streams arrive one word at a time"}'

or from Python, printing each chunk as it arrives:

    import httpx
    with httpx.stream("POST", "http://127.0.0.1:8000/predict",
                      json={"input": "streams arrive one word at a time"}) as r:
        for chunk in r.iter_text():
            print(chunk, flush=True)
"""

import time

import litserve as ls


class WordStreamAPI(ls.LitAPI):
    def setup(self, device):
        self.delay = 0.2  # stands in for the time a model takes per token

    def decode_request(self, request):
        return str(request["input"])

    def predict(self, text):
        for word in text.split():
            time.sleep(self.delay)
            yield word

    def encode_response(self, output):
        for word in output:
            yield {"output": word}


if __name__ == "__main__":
    server = ls.LitServer(WordStreamAPI(), accelerator="cpu", stream=True)
    server.run(port=8000)
