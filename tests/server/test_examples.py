"""Every example server in examples/ starts unchanged and answers as its docstring says."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from .harness import PYTHON, Server

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Runs the example file as __main__, with run() pointed at a free loopback port.
WRAPPER = (
    "import runpy, sys, litserve.server as s; run = s.LitServer.run; "
    "s.LitServer.run = lambda self, *a, **k: run(self, *a, **{**k, 'host': '127.0.0.1', "
    "'port': 0, 'generate_client_file': False}); "
    "sys.argv = [sys.argv[1]]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def _start(name: str) -> Server:
    return Server("", argv=[PYTHON, "-c", WRAPPER, str(EXAMPLES / name)]).wait_ready()


CASES = {
    "hello.py": lambda url: httpx.post(url, json={"input": 4}).json() == {"output": 16},
    "batched_numpy.py": lambda url: httpx.post(url, json={"input": [3, 4]}).json()
    == {"output": 5.0},
    "torch_model.py": lambda url: httpx.post(url, json={"input": 4.0}).json() == {"output": 9.0},
    "image_tensor.py": lambda url: httpx.post(
        url, content=np.full((224, 224, 3), [10, 20, 30], np.uint8).tobytes(),
        headers={"content-type": "application/octet-stream", "x-tensor-dtype": "uint8",
                 "x-tensor-shape": "224,224,3"}).json()
    == {"mean": [10.0, 20.0, 30.0], "shape": [224, 224, 3]},
    "streaming.py": lambda url: len([json.loads(line) for line in httpx.post(
        url, json={"input": "one two three"}, timeout=30).text.splitlines()]) >= 3,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_serves(name):
    server = _start(name)
    try:
        assert CASES[name](server.url + "/predict"), server.output
        assert server.stop() == 0
    finally:
        server.kill_group()
