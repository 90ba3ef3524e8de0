"""LitAPIs whose hooks try to make the server leak: JSON numbers that orjson alone would
bend.
"""

import math

from pydantic import BaseModel

import litserve as ls


class Exact(ls.LitAPI):
    """Reports what decode_request got for the numbers a JSON body held."""

    def setup(self, device):
        pass

    def predict(self, x):
        return {key: _describe(value) for key, value in x.items()}


class Big(ls.LitAPI):
    """Returns integers beyond 64 bits (and around its edges)."""

    def setup(self, device):
        pass

    def predict(self, x):
        return {"big": 2**100, "neg": -(2**80), "edges": [2**63 - 1, 2**64 - 1, -(2**63)],
                "nested": [{"id": 10**30 + 7}], "x": x}


class Record(BaseModel):
    id: int
    score: float


class TypedExact(ls.LitAPI):
    """A pydantic-annotated request: pydantic's own JSON rules decide."""

    def setup(self, device):
        pass

    def decode_request(self, request: Record):
        return request

    def predict(self, x):
        return {"id": x.id, "score": _describe(x.score)}


def _describe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return f"float {value}"
    return value
