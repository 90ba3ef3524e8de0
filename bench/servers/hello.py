"""Hello JSON: {"input": x} -> {"output": x**2}. Runs on ours and on upstream LitServe 0.2.19.

python bench/servers/hello.py --port 8000
curl -s localhost:8000/predict -H 'content-type: application/json' -d '{"input": 4}'
"""

import argparse
import os

import litserve as ls

# read in the worker too (it imports this file without running main)
OBSERVE = os.environ.get("BENCH_OBSERVE") == "1"


class CountCallback(ls.Callback):
    """--observe: one callback on the request path and on predict (counts only)."""

    def __init__(self):
        self.requests = self.predicts = 0

    def on_request(self, *args, **kwargs):
        self.requests += 1

    def on_after_predict(self, *args, **kwargs):
        self.predicts += 1


class DropLogger(ls.Logger):
    """--observe: one logger; every predict logs a value to it (it keeps the last)."""

    def process(self, key, value):
        self.last = (key, value)


class SquareAPI(ls.LitAPI):
    def setup(self, device):
        self.model = lambda x: x**2

    def decode_request(self, request):
        return request["input"]

    def predict(self, x):
        if OBSERVE:
            self.log("input", x)
        return self.model(x)

    def encode_response(self, output):
        return {"output": output}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="workers_per_device")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    parser.add_argument("--observe", action="store_true",
                        help="one callback and one logger, self.log in every predict")
    parser.add_argument("--fast-queue", action="store_true", help="upstream only: ZeroMQ queue")
    args = parser.parse_args()
    if args.observe:
        os.environ["BENCH_OBSERVE"] = "1"
        global OBSERVE
        OBSERVE = True
    extra = {"fast_queue": True} if args.fast_queue else {}
    if args.observe:
        extra.update(callbacks=[CountCallback()], loggers=[DropLogger()])
    server = ls.LitServer(SquareAPI(), accelerator="cpu", workers_per_device=args.workers, **extra)
    server.run(
        host="127.0.0.1", port=args.port, log_level=args.log_level, generate_client_file=False
    )


if __name__ == "__main__":
    main()
