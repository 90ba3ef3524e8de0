"""Small ready-made LitAPIs, for trying the server and for tests.

Reachable as ``ls.examples.SimpleLitAPI`` and ``from litserve.examples import ...``, and
under LitServe's names: ``ls.test_examples.SimpleLitAPI``,
``litserve.test_examples.simple_example`` (the same classes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .api import LitAPI


class SimpleLitAPI(LitAPI):
    """``{"input": x}`` -> ``{"output": x**2}``."""

    def setup(self, device: str) -> None:
        self.model: Any = lambda x: x**2

    def decode_request(self, request: Any) -> Any:
        return request["input"]

    def predict(self, x: Any) -> Any:
        return self.model(x)

    def encode_response(self, output: Any) -> dict[str, Any]:
        return {"output": output}


class SimpleBatchedAPI(LitAPI):
    """Batched x**2: requests are stacked into one NumPy array for predict."""

    def setup(self, device: str) -> None:
        self.model: Any = lambda x: x**2

    def decode_request(self, request: Any) -> np.ndarray:
        return np.asarray(request["input"])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(x))

    def encode_response(self, output: Any) -> dict[str, Any]:
        return {"output": output}


class SimpleTorchAPI(LitAPI):
    """A ``torch.nn.Linear(1, 1)`` with weight 2 and bias 1: ``{"input": 4}`` -> 9."""

    def setup(self, device: str) -> None:
        import torch

        self.torch = torch
        self.model = torch.nn.Linear(1, 1).to(device)
        with torch.no_grad():
            self.model.weight.fill_(2.0)
            self.model.bias.fill_(1.0)
        self.model.eval()

    def decode_request(self, request: Any) -> Any:
        return self.torch.tensor([[float(request["input"])]], device=self.device)

    def predict(self, x: Any) -> Any:
        with self.torch.no_grad():
            return self.model(x)

    def encode_response(self, output: Any) -> dict[str, float]:
        return {"output": float(output.reshape(-1)[0])}


class SimpleStreamAPI(LitAPI):
    """Streams ``{"output": f"{i}: {input}"}`` for i in 0..2 (use with ``stream=True``)."""

    def setup(self, device: str) -> None:
        self.model: Any = lambda i, x: f"{i}: {x}"

    def decode_request(self, request: Any) -> Any:
        return request["input"]

    def predict(self, x: Any) -> Any:
        for i in range(3):
            yield self.model(i, x)

    def encode_response(self, output_stream: Any) -> Any:
        for out in output_stream:
            yield {"output": out}


__all__ = ["SimpleBatchedAPI", "SimpleLitAPI", "SimpleStreamAPI", "SimpleTorchAPI"]
