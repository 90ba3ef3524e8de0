"""A small reference server speaking litserve's wire conventions, for client and bench
tests (run as a real process: ``python refserver.py``; prints ``PORT <n>`` once it
listens on a free loopback port).

Routes:
  GET  /health                 200 "ok"
  GET  /stats                  {"counts": {path: n}, "statuses": {"path status": n}}
  POST /predict                JSON {"input": x} -> {"output": x**2}; other JSON echoed as
                               {"output": body}; tensor bodies (octet/npy/bundle) echoed,
                               binary when Accept asks for it, else JSON lists
  POST /echo                   the body back, byte for byte, with the same tensor headers
  POST /stream                 {"n": k, "text": bool, "delay": s}: k NDJSON lines {"i": i},
                               or k raw text chunks "tok<i> " when text is true
  POST /v1/chat/completions    OpenAI-style; "stream": true gives SSE chunks + [DONE]
  POST /fail                   500 {"detail": "refserver failed on purpose"}
  POST /flaky                  every 3rd request -> 500, else like /predict
  POST /slow?delay=S           answers {"slept": S} after S seconds
  POST /close                  answers with "Connection: close"
  POST /predict/               307 to /predict (Starlette's trailing-slash redirect)
  GET  /conn                   {"client": [host, port]}: which connection carried the request
  GET  /headers                the request headers
With env LIT_SERVER_API_KEY set, every route needs header X-API-Key.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections import Counter
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from litserve import wire

COUNTS: Counter[str] = Counter()
STATUSES: Counter[str] = Counter()


class Counting:
    """ASGI middleware: API key check and per-path request/status counters."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.key = os.environ.get("LIT_SERVER_API_KEY")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        COUNTS[path] += 1
        status = [0]

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                STATUSES[f"{path} {status[0]}"] += 1
            await send(message)

        if self.key and dict(scope["headers"]).get(b"x-api-key", b"").decode() != self.key:
            response = JSONResponse({"detail": "invalid or missing X-API-Key"}, 401)
            return await response(scope, receive, counting_send)
        await self.app(scope, receive, counting_send)


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def stats(request: Request) -> Response:
    return JSONResponse({"counts": dict(COUNTS), "statuses": dict(STATUSES)})


def _accepts(request: Request, media: str) -> bool:
    return media in request.headers.get("accept", "")


def _tensors(ctype: str, request: Request, body: bytes) -> Any:
    if ctype == wire.OCTET:
        meta = wire.octet_meta(request.headers.get(wire.DTYPE_HEADER),
                               request.headers.get(wire.SHAPE_HEADER), len(body))
        return wire.view(body, meta)
    if ctype == wire.NPY:
        return wire.view(body, wire.npy_meta(body[:65536], len(body)))
    return wire.decode_bundle(body)


def _tensor_response(request: Request, value: Any) -> Response:
    if isinstance(value, dict):
        if _accepts(request, wire.BUNDLE):
            return Response(wire.encode_bundle(value), media_type=wire.BUNDLE)
        return JSONResponse({"output": {k: v.tolist() for k, v in value.items()}})
    if _accepts(request, wire.OCTET):
        arr = np.array(value, order="C")
        headers = {"X-Tensor-Dtype": arr.dtype.str, "X-Tensor-Shape": wire.format_shape(arr.shape)}
        return Response(arr.tobytes(), media_type=wire.OCTET, headers=headers)
    if _accepts(request, wire.NPY):
        arr = np.array(value, order="C")
        return Response(wire.npy_header(arr) + arr.tobytes(), media_type=wire.NPY)
    return JSONResponse({"output": value.tolist()})


async def predict(request: Request) -> Response:
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    body = await request.body()
    if ctype in wire.TENSOR_TYPES:
        try:
            return _tensor_response(request, _tensors(ctype, request, body))
        except wire.WireError as exc:
            return JSONResponse({"detail": str(exc)}, 400)
    data = json.loads(body)
    if isinstance(data, dict) and isinstance(data.get("input"), (int, float)):
        return JSONResponse({"output": data["input"] ** 2})
    return JSONResponse({"output": data})


async def echo(request: Request) -> Response:
    body = await request.body()
    keep = ("content-type", wire.DTYPE_HEADER, wire.SHAPE_HEADER)
    return Response(body, headers={k: v for k, v in request.headers.items() if k in keep})


async def stream(request: Request) -> Response:
    spec = json.loads(await request.body() or b"{}")
    n, text, delay = int(spec.get("n", 3)), bool(spec.get("text")), float(spec.get("delay", 0))

    async def chunks() -> Any:
        for i in range(n):
            if delay:
                await asyncio.sleep(delay)
            yield f"tok{i} " if text else json.dumps({"i": i}) + "\n"

    return StreamingResponse(chunks(), media_type="application/x-ndjson")


def _chat_chunk(content: str | None, finish: str | None = None) -> str:
    delta = {"role": "assistant", "content": content} if content is not None else {}
    chunk = {"id": "chatcmpl-ref", "object": "chat.completion.chunk", "created": 0,
             "model": "ref", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(chunk)}\n\n"


async def chat(request: Request) -> Response:
    req = json.loads(await request.body())
    prompt = req["messages"][-1]["content"]
    words = [w + " " for w in str(prompt).split()] or ["(empty)"]
    if not req.get("stream"):
        message = {"role": "assistant", "content": "".join(words)}
        return JSONResponse({"id": "chatcmpl-ref", "object": "chat.completion", "created": 0,
                             "model": "ref", "choices": [{"index": 0, "message": message,
                                                          "finish_reason": "stop"}]})

    async def events() -> Any:
        for w in words:
            yield _chat_chunk(w)
        yield _chat_chunk(None, "stop")
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def fail(request: Request) -> Response:
    await request.body()
    return JSONResponse({"detail": "refserver failed on purpose"}, 500)


async def flaky(request: Request) -> Response:
    if COUNTS["/flaky"] % 3 == 0:
        return await fail(request)
    return await predict(request)


async def slow(request: Request) -> Response:
    delay = float(request.query_params.get("delay", "1"))
    await request.body()
    await asyncio.sleep(delay)
    return JSONResponse({"slept": delay})


async def close(request: Request) -> Response:
    await request.body()
    return JSONResponse({"closed": True}, headers={"Connection": "close"})


async def conn(request: Request) -> Response:
    return JSONResponse({"client": list(request.client or ())})


async def headers(request: Request) -> Response:
    return JSONResponse(dict(request.headers))


ROUTES = [
    Route("/conn", conn, methods=["GET", "POST"]),
    Route("/headers", headers, methods=["GET", "POST"]),
    Route("/health", health), Route("/stats", stats),
    Route("/predict", predict, methods=["POST"]), Route("/echo", echo, methods=["POST"]),
    Route("/stream", stream, methods=["POST"]),
    Route("/v1/chat/completions", chat, methods=["POST"]),
    Route("/fail", fail, methods=["POST"]), Route("/flaky", flaky, methods=["POST"]),
    Route("/slow", slow, methods=["POST"]), Route("/close", close, methods=["POST"]),
]
app = Counting(Starlette(routes=ROUTES))


def main() -> None:
    """``refserver.py [CERTFILE KEYFILE]``: with a certificate and key, serve https."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    tls = dict(zip(("ssl_certfile", "ssl_keyfile"), sys.argv[1:3], strict=False))
    config = uvicorn.Config(app, log_level="warning", timeout_keep_alive=30,
                            timeout_graceful_shutdown=1, **tls)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
