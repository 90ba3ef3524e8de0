"""LitAPIs used by the server tests."""

import os
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel
from starlette.exceptions import HTTPException

import litserve as ls


def _note(text: str) -> None:
    """Append a line to the file named by $LITSERVE_TEST_LOG (what the worker saw)."""
    path = os.environ.get("LITSERVE_TEST_LOG")
    if path:
        with open(path, "a") as f:
            f.write(text + "\n")


def _wait_file(path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


class Square(ls.LitAPI):
    def setup(self, device):
        self.device_seen = device

    def decode_request(self, request):
        return request["input"]

    def predict(self, x):
        return x * x

    def encode_response(self, output):
        return {"output": output}


class Echo(ls.LitAPI):
    """Reports what decode_request received, to check the wire decoding."""

    def setup(self, device):
        pass

    def decode_request(self, request):
        return request

    def predict(self, x):
        _note(f"predict {type(x).__name__}")
        if isinstance(x, np.ndarray):
            base = x.base
            owner = base.obj if isinstance(base, memoryview) else base
            shm = type(owner).__name__ == "mmap"  # a view of a shared-memory mapping
            return {"kind": "array", "dtype": x.dtype.str, "shape": list(x.shape),
                    "sum": float(x.astype(np.float64).sum()) if x.size else 0.0, "shm": shm,
                    "first": x.reshape(-1)[:4].tolist()}
        if isinstance(x, dict) and x and all(isinstance(v, np.ndarray) for v in x.values()):
            return {"kind": "arrays", "items": {k: [v.dtype.str, list(v.shape), v.tolist()]
                                                for k, v in x.items()}}
        if hasattr(x, "getlist"):  # form
            out = {}
            for k, v in x.multi_items():
                out[k] = v if isinstance(v, str) else {"filename": v.filename,
                                                       "size": len(v.file.read())}
            return {"kind": "form", "items": out}
        return {"kind": type(x).__name__, "value": x}


class TensorOut(ls.LitAPI):
    """Returns an array (x * 2) so binary responses can be checked."""

    def setup(self, device):
        pass

    def predict(self, x):
        if isinstance(x, dict):
            if "bundle" in x:
                return {"a": np.arange(6, dtype=np.int16).reshape(2, 3), "b": np.ones(2)}
            return np.asarray(x["input"], dtype=np.float32) * 2
        return x * 2


class GatedTensorOut(TensorOut):
    """TensorOut whose predict first waits for the file $LITSERVE_TEST_GATE."""

    def predict(self, x):
        _note(f"predict pid={os.getpid()}")
        _wait_file(os.environ["LITSERVE_TEST_GATE"])
        return super().predict(x)


class Item(BaseModel):
    name: str
    count: int


class Typed(ls.LitAPI):
    """decode_request annotated with a pydantic model: validation happens in the front."""

    def setup(self, device):
        pass

    def decode_request(self, request: Item):
        _note(f"decode {type(request).__name__}")
        return request

    def predict(self, item):
        return Item(name=item.name.upper(), count=item.count + 1)


class Kinds(ls.LitAPI):
    """encode_response returns many JSON-able kinds."""

    def setup(self, device):
        import torch

        self.torch = torch

    def predict(self, x):
        t = self.torch
        return {"np_scalar": np.float32(1.5), "np_int": np.int64(7), "np_array": np.arange(3),
                "torch_scalar": t.tensor(2.5), "torch_array": t.ones(2, dtype=t.int32),
                "tuple": (1, 2), "none": None, "text": "héllo"}


class Raises(ls.LitAPI):
    def setup(self, device):
        pass

    def decode_request(self, request):
        if request.get("where") == "decode":
            raise HTTPException(status_code=418, detail="I am a teapot")
        return request

    def predict(self, x):
        if x.get("where") == "predict":
            raise RuntimeError("model exploded")
        if x.get("where") == "http":
            raise HTTPException(status_code=409, detail={"reason": "conflict"})
        return x

    def encode_response(self, output):
        if output.get("where") == "encode":
            return object()
        return {"ok": True}


class Contextual(ls.LitAPI):
    def setup(self, device):
        pass

    def decode_request(self, request, context):
        context["seen"] = request["input"]
        return request["input"]

    def predict(self, x, context):
        if isinstance(context, list):
            for c in context:
                c["batch"] = len(context)
        else:
            context["batch"] = 0
        return x

    def encode_response(self, output, context):
        return {"output": output, "context": context}


class Batched(ls.LitAPI):
    """Reports the batch size predict saw."""

    def setup(self, device):
        pass

    def decode_request(self, request):
        return np.asarray(request["input"], dtype=np.float64)

    def predict(self, x):
        _note(f"batch {len(x)}")
        return [{"n": len(x), "value": row.tolist()} for row in x * 2]

    def encode_response(self, output):
        return output


class CustomBatch(ls.LitAPI):
    def setup(self, device):
        pass

    def decode_request(self, request):
        return request["input"]

    def batch(self, inputs):
        return {"joined": list(inputs)}

    def predict(self, x):
        return [v * 10 for v in x["joined"]]

    def unbatch(self, output):
        return [{"out": o} for o in output]

    def encode_response(self, output):
        return output


class BadUnbatch(ls.LitAPI):
    def setup(self, device):
        pass

    def decode_request(self, request):
        return request["input"]

    def batch(self, inputs):
        return inputs

    def predict(self, x):
        return x + [0]  # one output too many

    def encode_response(self, output):
        return {"output": output}


class Streamer(ls.LitAPI):
    """Yields n chunks; with "gate", waits for that file after the first chunk."""

    def setup(self, device):
        pass

    def decode_request(self, request):
        return request

    def predict(self, x):
        for i in range(x["n"]):
            if x.get("fail_at") == i:
                raise RuntimeError("generator broke")
            yield i
            time.sleep(x.get("delay", 0))
            if i == 0 and x.get("gate"):
                _wait_file(x["gate"])

    def encode_response(self, outputs):
        for o in outputs:
            yield {"i": o}


class Slow(ls.LitAPI):
    """predict sleeps request["sleep"] seconds, or waits for request["gate"] to exist."""

    def setup(self, device):
        pass

    def decode_request(self, request):
        return request

    def predict(self, x):
        _note(f"predict {x.get('tag', '')} pid={os.getpid()}")
        if "gate" in x:
            _wait_file(x["gate"])
        time.sleep(x.get("sleep", 0))
        return {"tag": x.get("tag"), "pid": os.getpid()}


class Crash(ls.LitAPI):
    """predict kills its own worker process."""

    def setup(self, device):
        pass

    def predict(self, x):
        os._exit(7)


class SlowSetup(ls.LitAPI):
    """setup waits for $LITSERVE_TEST_GATE to exist."""

    def setup(self, device):
        _wait_file(os.environ["LITSERVE_TEST_GATE"], timeout=60)

    def predict(self, x):
        return x


class BrokenSetup(ls.LitAPI):
    def setup(self, device):
        raise RuntimeError("cannot load weights from /nowhere")

    def predict(self, x):
        return x


class Options(ls.LitAPI):
    """Newer upstream style: options given to the LitAPI constructor."""

    def setup(self, device):
        pass

    def decode_request(self, request):
        return request["input"]

    def predict(self, x):
        return [{"n": len(x), "v": v} for v in x] if isinstance(x, list) else {"v": x}

    def unbatch(self, output):
        return output

    def encode_response(self, output):
        return output


class BatchStreamer(ls.LitAPI):
    """Batched streaming: each step yields one value per request in the batch."""

    def setup(self, device):
        pass

    def decode_request(self, request):
        return request["n"]

    def predict(self, ns):
        for i in range(3):
            yield [i for _ in ns]

    def encode_response(self, steps):
        for step in steps:
            yield [{"i": v} for v in step]


class EndlessBatch(ls.LitAPI):
    """Batched: streams up to 2000 steps slowly, noting each one."""

    def setup(self, device):
        pass

    def predict(self, xs):
        for i in range(2000):
            _note(f"step {i}")
            time.sleep(0.005)
            yield [i for _ in xs]

    def encode_response(self, steps):
        for step in steps:
            yield [{"i": v} for v in step]


class Endless(ls.LitAPI):
    """Streams up to 2000 chunks slowly, noting each one; stops if the client leaves."""

    def setup(self, device):
        pass

    def predict(self, x):
        for i in range(2000):
            _note(f"chunk {i}")
            time.sleep(0.005)
            yield i

    def encode_response(self, outputs):
        for o in outputs:
            yield {"i": o}


class Unhealthy(ls.LitAPI):
    """health() is False while the file $LITSERVE_TEST_SICK exists, and raises while
    $LITSERVE_TEST_SICK + ".raise" does; health_async makes it a coroutine."""

    def __init__(self, health_async=False, **kwargs):
        super().__init__(**kwargs)
        self.health_async = health_async

    def setup(self, device):
        pass

    def predict(self, x):
        return x

    def _check(self):
        sick = os.environ["LITSERVE_TEST_SICK"]
        if os.path.exists(sick + ".raise"):
            raise RuntimeError("the model store is unreachable")
        return not os.path.exists(sick)

    def health(self):
        if not self.health_async:
            return self._check()

        async def check():
            return self._check()

        return check()
