"""Batched JSON: {"input": [512 floats]} -> {"output": [4 floats]} through a 512x4 linear map.

Dynamic batching (default max_batch_size 16, batch_timeout 5 ms); predict runs on the
stacked (B, 512) array. Runs on ours and on upstream LitServe 0.2.19. When the environment
variable BENCH_BATCH_LOG names a file, every batch appends its size to it (one line each),
so bench/compare_upstream.py can report the mean batch size.

    python bench/servers/batched.py --port 8000
    python -c 'import json; print(json.dumps({"input": [0.5] * 512}))' > /tmp/b.json
    curl -s localhost:8000/predict -H 'content-type: application/json' -d @/tmp/b.json
"""

import argparse
import os

import numpy as np

import litserve as ls

FEATURES = 512


class LinearAPI(ls.LitAPI):
    def setup(self, device):
        self.weight = np.random.default_rng(0).standard_normal((FEATURES, 4), dtype=np.float32)
        path = os.environ.get("BENCH_BATCH_LOG")
        self.log_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT) if path else None

    def decode_request(self, request):
        return np.asarray(request["input"], dtype=np.float32)

    def predict(self, x):
        if self.log_fd is not None:
            os.write(self.log_fd, b"%d\n" % len(x))
        return x @ self.weight

    def encode_response(self, output):
        return {"output": output.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="workers_per_device")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--batch-timeout", type=float, default=0.005)
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    parser.add_argument("--fast-queue", action="store_true", help="upstream only: ZeroMQ queue")
    args = parser.parse_args()
    extra = {"fast_queue": True} if args.fast_queue else {}
    server = ls.LitServer(
        LinearAPI(),
        accelerator="cpu",
        workers_per_device=args.workers,
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout,
        **extra,
    )
    server.run(
        host="127.0.0.1", port=args.port, log_level=args.log_level, generate_client_file=False
    )


if __name__ == "__main__":
    main()
