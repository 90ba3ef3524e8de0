"""LitAPIs for the chaos and soak runs (bench/reliability.py, tests/server/test_chaos.py).

Every answer is derived from the request's own random input, so the client can check
it byte for byte and tell its own answer from another request's.  The ``expect_*``
functions compute what the client must receive; the LitAPIs below and the client side
(``make_call``: a random request and the check of its answer) share them, so the two
can never disagree about the rule.

    /json    {"id", "x": [ints], "s": str}  -> {"id", "sum", "digest", "rev", "pid"}
    /tensor  float32 (512, 512) octet body   -> octet body of x[::-1] * 2
    /stream  {"id", "n", "seed"}             -> n NDJSON lines {"id", "i", "v"}
    /batch   {"id", "x": [ints]}             -> {"id", "sum", "n", "pid"}  (batched: n = batch)

"pid" (the worker that answered) and "n" (the batch size it saw) describe how the answer
was made, not what it is; the client leaves them out of the comparison.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import litserve as ls

TENSOR_SHAPE = (512, 512)  # 1 MiB of float32
VOLATILE = ("pid", "n")  # fields that describe the serving, not the answer
OCTET = {"content-type": "application/octet-stream", "x-tensor-dtype": "float32",
         "x-tensor-shape": ",".join(map(str, TENSOR_SHAPE)),
         "accept": "application/octet-stream"}
LETTERS = "abcdefghijklmnopqrstuvwxyzé✓"


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


# -- the client side: random requests and the checks of their answers --------------------
@dataclass(frozen=True)
class Verdict:
    kind: str  # "ok", "wrong_answer", or "stream_cut" (a stream ended by an error line)
    detail: str = ""
    other: str | None = None  # the key of the request this answer seems to belong to


OK = Verdict("ok")


class Call:
    """One request: its route, the httpx.post arguments, and the check of its answer.
    ``key`` finds the request from its answer (its id; for tensors, the answer's digest)."""

    def __init__(self, route: str, rid: str, send: dict[str, Any], key: str = "") -> None:
        self.route, self.rid, self.send, self.key = route, rid, send, key or rid

    def check(self, r: Any) -> Verdict:
        """The verdict on a 200 response ``r`` (an httpx.Response)."""
        raise NotImplementedError


class JsonCall(Call):
    def __init__(self, rng: random.Random, rid: str, route: str = "json") -> None:
        size = 20000 if rng.random() < 0.1 else rng.randint(0, 200)  # some through arenas
        self.req = {"id": rid, "x": [rng.randint(-999, 999) for _ in range(rng.randint(0, 64))],
                    "s": "".join(rng.choices(LETTERS, k=size))}
        if route == "batch":
            self.req.pop("s")
        super().__init__(route, rid, {"json": self.req})

    def expected(self) -> dict[str, Any]:
        return expect_json(self.req)

    def check(self, r: Any) -> Verdict:
        try:
            got = {k: v for k, v in r.json().items() if k not in VOLATILE}
        except (ValueError, AttributeError):
            return Verdict("wrong_answer", f"not a JSON object: {r.content[:80]!r}")
        if got == self.expected():
            return OK
        return Verdict("wrong_answer", f"got {short(got)}", str(got.get("id")))


class BatchCall(JsonCall):
    def __init__(self, rng: random.Random, rid: str) -> None:
        super().__init__(rng, rid, "batch")

    def expected(self) -> dict[str, Any]:
        return expect_batch(self.req)


class StreamCall(Call):
    def __init__(self, rng: random.Random, rid: str) -> None:
        self.req = {"id": rid, "n": rng.randint(1, 20), "seed": rng.getrandbits(48)}
        super().__init__("stream", rid, {"json": self.req})

    def check(self, r: Any) -> Verdict:
        """Every chunk its own, in order, each ending in a newline.  A stream that broke
        off (its worker died) may end with one {"detail": ...} line instead of the rest."""
        n = self.req["n"]
        lines = r.content.split(b"\n")
        complete = lines[-1] == b""
        lines = lines[:-1] if complete else lines
        for i, line in enumerate(lines):
            got = _json_or_bytes(line)
            if i < n and got == expect_chunk(self.req, i):
                continue
            if i == len(lines) - 1 and isinstance(got, dict) and set(got) == {"detail"}:
                return Verdict("stream_cut", f"a 200 stream of {n} chunks ended after {i} "
                                             f"with {r.content[-90:]!r}")
            other = str(got.get("id")) if isinstance(got, dict) else None
            return Verdict("wrong_answer", f"chunk {i} of {n}: {short(got)}", other)
        if len(lines) != n or not complete:
            return Verdict("wrong_answer", f"a 200 stream of {len(lines)} chunks, not {n}: "
                                           f"{r.content[-80:]!r}")
        return OK


class TensorCall(Call):
    def __init__(self, rid: str, nprng: np.random.Generator) -> None:
        x = nprng.random(TENSOR_SHAPE, dtype=np.float32)
        self.want = expect_tensor(x).tobytes()
        super().__init__("tensor", rid, {"content": x.tobytes(), "headers": OCTET},
                         hashlib.sha1(self.want).hexdigest())

    def check(self, r: Any) -> Verdict:
        if r.content == self.want and r.headers.get("x-tensor-shape") == OCTET[
                "x-tensor-shape"] and r.headers.get("x-tensor-dtype") == "<f4":
            return OK
        return Verdict("wrong_answer", f"{len(r.content)} bytes, headers {dict(r.headers)}",
                       hashlib.sha1(r.content).hexdigest())


def make_call(route: str, rng: random.Random, nprng: np.random.Generator) -> Call:
    """A request for ``route`` ("json", "tensor", "stream", "batch") with random input."""
    rid = f"{rng.getrandbits(64):016x}"
    if route == "tensor":
        return TensorCall(rid, nprng)
    return {"json": JsonCall, "stream": StreamCall, "batch": BatchCall}[route](rng, rid)


def _json_or_bytes(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return line[:80]


def short(obj: Any, n: int = 120) -> str:
    text = repr(obj) if isinstance(obj, bytes) else json.dumps(obj, ensure_ascii=False)
    return text if len(text) <= n else text[:n] + "..."
