"""The same three models as bench/servers/{hello,tensor,batched}.py, written as a plain
FastAPI app (one uvicorn process, the model in the request handler, no batching): the
baseline a user would write without a model server.

    python bench/servers/fastapi_plain.py --port 8000
"""

import argparse

import numpy as np
import uvicorn
from fastapi import FastAPI, Request

app = FastAPI()
WEIGHT = np.random.default_rng(0).standard_normal((512, 4), dtype=np.float32)


@app.get("/health")
async def health() -> str:
    return "ok"


@app.post("/predict")
async def predict(request: Request) -> dict:
    if request.headers.get("content-type") == "application/octet-stream":
        x = np.frombuffer(await request.body(), np.float32)  # as bench/servers/tensor.py
        return {"mean": float(x.mean(dtype=np.float64)), "size": int(x.size)}
    body = await request.json()
    x = body["input"]
    if isinstance(x, list):  # the batched scenario's 512-float vector, one at a time
        return {"output": (np.asarray(x, np.float32) @ WEIGHT).tolist()}
    return {"output": x * x}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
