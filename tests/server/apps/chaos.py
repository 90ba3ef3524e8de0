"""LitAPIs for the chaos and soak runs (bench/reliability.py, tests/server/test_chaos.py).

Every answer is derived from the request's own random input, so the client can check
it byte for byte and tell its own answer from another request's.  The ``expect_*``
functions compute what the client must receive; the server side and the client side
share them, so the two can never disagree about the rule.

    /json    {"id", "x": [ints], "s": str}  -> {"id", "sum", "digest", "rev", "pid"}
    /tensor  float32 (512, 512) octet body   -> octet body of x[::-1] * 2
    /stream  {"id", "n", "seed"}             -> n NDJSON lines {"id", "i", "v"}
    /batch   {"id", "x": [ints]}             -> {"id", "sum", "n", "pid"}  (batched: n = batch)

"pid" (the worker that answered) and "n" (the batch size it saw) describe how the answer
was made, not what it is; the client leaves them out of the comparison.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

import numpy as np

import litserve as ls

TENSOR_SHAPE = (512, 512)  # 1 MiB of float32
VOLATILE = ("pid", "n")  # fields that describe the serving, not the answer


def digest(*parts: Any) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32]


def expect_json(req: dict[str, Any]) -> dict[str, Any]:
    return {"id": req["id"], "sum": sum(req["x"]), "digest": digest(req["id"], req["s"]),
            "rev": req["s"][::-1]}


def expect_tensor(x: np.ndarray) -> np.ndarray:
    return x[::-1] * np.float32(2)


def expect_chunk(req: dict[str, Any], i: int) -> dict[str, Any]:
    return {"id": req["id"], "i": i, "v": digest(req["seed"], i)}


def expect_batch(req: dict[str, Any]) -> dict[str, Any]:
    return {"id": req["id"], "sum": sum(req["x"]) * 3}


class Json(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.pid = os.getpid()

    def predict(self, x: dict[str, Any]) -> dict[str, Any]:
        return {**expect_json(x), "pid": self.pid}


class Tensor(ls.LitAPI):
    def setup(self, device: str) -> None:
        pass

    def predict(self, x: np.ndarray) -> np.ndarray:
        return expect_tensor(x)


class Stream(ls.LitAPI):
    def setup(self, device: str) -> None:
        pass

    def predict(self, x: dict[str, Any]) -> Any:
        for i in range(x["n"]):
            time.sleep(0.001)  # long enough for a fault to land mid-stream now and then
            yield expect_chunk(x, i)

    def encode_response(self, outputs: Any) -> Any:
        yield from outputs


class Batch(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.pid = os.getpid()

    def predict(self, xs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**expect_batch(x), "n": len(xs), "pid": self.pid} for x in xs]


def spec(batch_timeout: float = 0.005) -> str:
    """The apps as ``launch.py`` takes them: each LitAPI on its own api_path."""
    return ";".join([
        'chaos:Json({"api_path": "/json"})',
        'chaos:Tensor({"api_path": "/tensor"})',
        'chaos:Stream({"api_path": "/stream", "stream": true})',
        'chaos:Batch({"api_path": "/batch", "max_batch_size": 8, '
        f'"batch_timeout": {batch_timeout}}})',
    ])
