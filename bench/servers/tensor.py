"""A large float32 tensor in, its mean out. Runs on ours and on upstream LitServe 0.2.19.

Each implementation gets the tensor through its fastest binary route:

* ours: a raw body, handed to decode_request as a zero-copy NumPy array::

    curl -s localhost:8000/predict -H 'content-type: application/octet-stream' \\
        -H 'x-tensor-dtype: float32' -H 'x-tensor-shape: 1080,1920,3' --data-binary @t.bin

* upstream: a multipart upload (field ``file``; its bytes are read as float32)::

    curl -s localhost:8000/predict -F file=@t.bin

    python bench/servers/tensor.py --port 8000
"""

import argparse

import numpy as np

import litserve as ls


def _as_array(request) -> np.ndarray:
    if isinstance(request, np.ndarray):
        return request
    upload = request["file"]
    data = upload.file.read() if hasattr(upload, "file") else upload
    return np.frombuffer(data, dtype=np.float32)


class TensorMeanAPI(ls.LitAPI):
    def setup(self, device):
        pass

    def decode_request(self, request):
        return _as_array(request)

    def predict(self, x):
        return {"mean": float(x.mean(dtype=np.float64)), "size": int(x.size)}

    def encode_response(self, output):
        return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="workers_per_device")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    parser.add_argument("--fast-queue", action="store_true", help="upstream only: ZeroMQ queue")
    args = parser.parse_args()
    extra = {"fast_queue": True} if args.fast_queue else {}
    server = ls.LitServer(
        TensorMeanAPI(), accelerator="cpu", workers_per_device=args.workers, **extra
    )
    server.run(
        host="127.0.0.1", port=args.port, log_level=args.log_level, generate_client_file=False
    )


if __name__ == "__main__":
    main()
