"""LitAPIs for the async, worker-callback and Response tests.

Also a launcher that passes callbacks (launch.py takes JSON only):

    python aio.py 'CLASS(JSON kwargs)[;CLASS(...)]' '{"server": "kwargs"}'

serves the classes of this module with ``callbacks=[Recorder()]``.
"""

import asyncio
import json
import os
import sys
import time

import numpy as np
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

import litserve as ls
from litserve.callbacks import Callback


def note(text: str) -> None:
    """Append a line to the file named by $LITSERVE_TEST_LOG (what the worker saw)."""
    path = os.environ.get("LITSERVE_TEST_LOG")
    if path:
        with open(path, "a") as f:
            f.write(text + "\n")


# -- async ----------------------------------------------------------------------------
class AsyncAPI(ls.LitAPI):
    """LitServe's e2e tests/e2e/default_async_streaming.py, as it is."""

    def setup(self, device) -> None:
        self.model = lambda x: x

    async def decode_request(self, request):
        return request["input"]

    async def predict(self, x):
        for i in range(10):
            yield self.model(i)

    async def encode_response(self, output):
        async for out in output:
            yield {"output": out}


class Sleepy(ls.LitAPI):
    """``await asyncio.sleep(seconds)``, then x squared; notes when it was cancelled."""

    def __init__(self, seconds=0.5, **kwargs):
        super().__init__(enable_async=True, **kwargs)
        self.seconds = seconds

    def setup(self, device):
        pass

    async def decode_request(self, request):
        if request.get("fail") == "decode":
            raise HTTPException(status_code=501, detail="decode request is bad")
        return request

    async def predict(self, x):
        try:
            await asyncio.sleep(x.get("sleep", self.seconds))
        except asyncio.CancelledError:
            note(f"cancelled {x.get('tag')}")
            raise
        if x.get("fail") == "predict":
            raise ValueError("secret detail")
        return x["input"] ** 2

    async def encode_response(self, output):
        return {"output": output}


class Minimal(ls.LitAPI):
    """LitServe's integration test: only predict is async."""

    def setup(self, device):
        pass

    async def predict(self, x):
        return {"output": x["input"] ** 2}


class PlainHooks(ls.LitAPI):
    """Async predict, plain decode / encode (LitServe warns and runs them in a thread)."""

    def setup(self, device):
        pass

    def decode_request(self, request):
        time.sleep(0.2)  # blocking: in a thread, the loop goes on
        return request["input"]

    async def predict(self, x):
        await asyncio.sleep(0.2)
        return x + 1

    def encode_response(self, output):
        return {"output": output}


class SlowStream(ls.LitAPI):
    """Yields ``n`` tokens ``every`` seconds apart; notes when its generator closed."""

    def __init__(self, **kwargs):
        super().__init__(enable_async=True, stream=True, **kwargs)

    def setup(self, device):
        pass

    async def decode_request(self, request):
        return request

    async def predict(self, x):
        tag = x.get("tag", "")
        try:
            for i in range(x.get("n", 5)):
                await asyncio.sleep(x.get("every", 0.1))
                yield i
                if x.get("fail") == i:
                    raise RuntimeError("stream broke")
        finally:
            note(f"closed {tag}")

    async def encode_response(self, outputs):
        async for out in outputs:
            yield {"output": out}


class AsyncBatch(ls.LitAPI):
    """Batched (max_batch_size 4): one awaited predict per batch; notes each batch size."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_batch_size", 4)
        kwargs.setdefault("batch_timeout", 0.2)
        super().__init__(enable_async=True, **kwargs)

    def setup(self, device):
        pass

    async def decode_request(self, request):
        return np.asarray(request["input"], dtype=np.float64)

    async def predict(self, x):
        note(f"batch {len(x)}")
        await asyncio.sleep(0.3)
        return x * 2

    async def encode_response(self, output):
        return {"output": output.tolist()}


class AsyncBatchStream(ls.LitAPI):
    """Batched and streamed: each step yields one value per request."""

    def __init__(self, **kwargs):
        super().__init__(enable_async=True, stream=True, max_batch_size=4, batch_timeout=0.2,
                         **kwargs)

    def setup(self, device):
        pass

    async def decode_request(self, request):
        return request["input"]

    async def predict(self, xs):
        note(f"stream-batch {len(xs)}")
        for i in range(3):
            await asyncio.sleep(0.05)
            yield [x * 10 + i for x in xs]

    async def encode_response(self, steps):
        async for step in steps:
            yield [{"output": y} for y in step]


class AsyncChat(ls.LitAPI):
    """OpenAISpec with an async generator predict."""

    def __init__(self, **kwargs):
        super().__init__(enable_async=True, spec=ls.OpenAISpec(), **kwargs)

    def setup(self, device):
        pass

    async def predict(self, messages):
        for word in ("async", " hello", " world"):
            await asyncio.sleep(0.05)
            yield word


class AsyncChatEncode(AsyncChat):
    async def encode_response(self, outputs):
        async for out in outputs:
            yield {"role": "assistant", "content": out.upper()}


class AsyncEmbed(ls.LitAPI):
    """OpenAIEmbeddingSpec, batched, with an awaiting predict: row i of text t is
    [len(t), i]."""

    def __init__(self, **kwargs):
        super().__init__(enable_async=True, spec=ls.OpenAIEmbeddingSpec(), max_batch_size=4,
                         batch_timeout=0.1, **kwargs)

    def setup(self, device):
        pass

    async def predict(self, items):
        await asyncio.sleep(0.2)
        return np.array([[len(t), i] for i, t in enumerate(items)], dtype=np.float32)


class PlainSquare(ls.LitAPI):
    """A plain LitAPI served by the async worker of another route."""

    def setup(self, device):
        pass

    def decode_request(self, request):
        return request["input"]

    def predict(self, x):
        note(f"plain predict {x}")
        return x * x

    def encode_response(self, output):
        return {"output": output}


class PlainStream(ls.LitAPI):
    def setup(self, device):
        pass

    def decode_request(self, request):
        return request["input"]

    def predict(self, x):
        yield from range(x)

    def encode_response(self, outputs):
        for out in outputs:
            yield {"output": out}


# -- Response from encode_response ------------------------------------------------------
class Responses(ls.LitAPI):
    """{"kind": ...}: encode_response returns that kind of starlette Response."""

    def __init__(self, **kwargs):
        self.aio = kwargs.pop("aio", False)
        super().__init__(enable_async=self.aio, **kwargs)

    def setup(self, device):
        pass

    def predict(self, x):
        return x

    def encode_response(self, output):
        kind = output["kind"]
        if kind == "csv":
            return Response(content="a,b\n1,2\n", status_code=201,
                            headers={"X-Rows": "1", "Set-Cookie": "k=v"},
                            media_type="text/csv")
        if kind == "json":
            return JSONResponse({"made": "here"}, status_code=202, headers={"X-Json": "yes"})
        if kind == "text":
            return PlainTextResponse("plain words", status_code=418)
        if kind == "bytes":
            return Response(content=bytes(range(256)) * 1024, media_type="image/png")
        if kind == "empty":
            return Response(status_code=204)
        if kind == "stream":
            return StreamingResponse(iter([b"a", b"b"]), media_type="text/plain")
        if kind == "bad-header":
            return Response(content=b"x", headers={"X-Bad": "a\r\nInjected: 1"})
        return output


class AsyncResponses(Responses):
    def __init__(self, **kwargs):
        super().__init__(aio=True, **kwargs)

    async def predict(self, x):
        await asyncio.sleep(0)
        return x

    async def encode_response(self, output):
        return Responses.encode_response(self, output)


# -- callbacks ------------------------------------------------------------------------
class Recorder(Callback):
    """Notes every worker-side event with the pid and the LitAPI's class."""

    def _rec(self, event, **kwargs):
        api = kwargs.get("lit_api")
        note(f"{os.getpid()} {event} {type(api).__name__}")

    def on_before_setup(self, *args, **kwargs):
        self._rec("on_before_setup", **kwargs)

    def on_after_setup(self, *args, **kwargs):
        self._rec("on_after_setup", **kwargs)

    def on_before_decode_request(self, *args, **kwargs):
        self._rec("on_before_decode_request", **kwargs)

    def on_after_decode_request(self, *args, **kwargs):
        self._rec("on_after_decode_request", **kwargs)

    def on_before_predict(self, *args, **kwargs):
        self._rec("on_before_predict", **kwargs)

    def on_after_predict(self, *args, **kwargs):
        self._rec("on_after_predict", **kwargs)

    def on_before_encode_response(self, *args, **kwargs):
        self._rec("on_before_encode_response", **kwargs)

    def on_after_encode_response(self, *args, **kwargs):
        self._rec("on_after_encode_response", **kwargs)


class Broken(Recorder):
    """Raises in every event: the requests still succeed."""

    def _rec(self, event, **kwargs):
        raise RuntimeError(f"callback broke in {event}")


class Square(ls.LitAPI):
    def setup(self, device):
        note(f"{os.getpid()} setup Square")

    def decode_request(self, request):
        return request["input"]

    def predict(self, x):
        if isinstance(x, list):  # a batch
            return [v * v for v in x]
        if x == "fail":
            raise ValueError("no")
        return x * x

    def encode_response(self, output):
        return {"output": output}


class Counting(ls.LitAPI):
    def setup(self, device):
        pass

    def decode_request(self, request):
        return request["input"]

    def predict(self, x):
        yield from range(x)

    def encode_response(self, outputs):
        for out in outputs:
            yield {"output": out}


class Chat(ls.LitAPI):
    def setup(self, device):
        pass

    def predict(self, messages):
        yield "hi"
        yield " there"


def build(spec: str):
    apis = []
    for item in spec.split(";"):
        name, _, args = item.partition("(")
        kwargs = json.loads(args[:-1]) if args else {}
        if kwargs.pop("openai", False):
            kwargs["spec"] = ls.OpenAISpec()
        apis.append(globals()[name](**kwargs))
    return apis if len(apis) > 1 else apis[0]


if __name__ == "__main__":
    server_kwargs = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    callbacks = [Broken()] if server_kwargs.pop("broken_callbacks", False) else [Recorder()]
    ls.LitServer(build(sys.argv[1]), callbacks=callbacks, **server_kwargs).run(
        host="127.0.0.1", port=0, generate_client_file=False)
