"""LitAPIs whose hooks try to make the server leak: secrets in exception texts, header
lines smuggled into response headers, JSON numbers that orjson alone would bend.

Every secret below contains SECRET, which must never reach a client (only the log).
"""

import math

from pydantic import BaseModel, field_serializer
from starlette.exceptions import HTTPException
from starlette.responses import Response

import litserve as ls

SECRET = "secret-token-7f3a9c"


class Opaque(BaseModel):
    """A pydantic output whose serialisation fails with the secret in the message."""

    value: int

    @field_serializer("value")
    def _value(self, value: int) -> int:
        raise ValueError(f"cannot write value, {SECRET}")


class Leaky(ls.LitAPI):
    """{"where": "decode" | "predict" | "encode" | "http" | "nowhere"}: raise there."""

    def setup(self, device):
        pass

    def decode_request(self, request):
        if request["where"] == "decode":
            raise ValueError(f"bad request field, {SECRET}")
        return request

    def predict(self, x):
        if x["where"] == "predict":
            raise RuntimeError(f"model exploded, {SECRET}")
        if x["where"] == "http":
            raise HTTPException(status_code=409, detail={"reason": "conflict"},
                                headers={"Retry-After": "3"})
        return x

    def encode_response(self, output):
        if output["where"] == "encode":
            return Opaque(value=1)
        return {"ok": True}


class LeakyBatch(ls.LitAPI):
    """predict raises with the secret for every batch."""

    def setup(self, device):
        pass

    def predict(self, xs):
        raise RuntimeError(f"batch of {len(xs)} exploded, {SECRET}")


class LeakyStream(ls.LitAPI):
    """Yields two chunks, then raises with the secret."""

    def setup(self, device):
        pass

    def predict(self, x):
        yield {"i": 0}
        yield {"i": 1}
        raise RuntimeError(f"generator broke, {SECRET}")

    def encode_response(self, outputs):
        yield from outputs


# {"how": name} -> (headers of the Response / HTTPException, what they smuggle)
BAD_HEADERS = {
    "crlf": {"X-Note": "ok\r\nSet-Cookie: session=stolen"},
    "lf": {"X-Note": "ok\nSet-Cookie: session=stolen"},
    "nul": {"X-Note": "ok\x00tail"},
    "name": {"Set-Cookie: session=stolen\r\nX-Note": "ok"},
    "space": {"X Note": "ok"},
}


class Headers(ls.LitAPI):
    """{"how": key of BAD_HEADERS or "good", "via": "response" | "http"}."""

    def setup(self, device):
        pass

    def predict(self, x):
        if x["via"] == "http":
            headers = BAD_HEADERS.get(x["how"], {"X-Note": "fine"})
            raise HTTPException(status_code=409, detail="conflict", headers=headers)
        return x

    def encode_response(self, output):
        headers = BAD_HEADERS.get(output["how"], {"X-Note": "fine\tand good"})
        return Response(content=b"body", headers=headers, media_type="text/plain")


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


# -- OpenAISpec --------------------------------------------------------------------------------
class LeakySpec(ls.OpenAISpec):
    def populate_context(self, context, request):
        if request.messages[-1].content == "populate":
            raise RuntimeError(f"populate_context exploded, {SECRET}")


class LeakyChat(ls.LitAPI):
    """Chat: the last user text says where to fail ("start", "mid", "object")."""

    def __init__(self):
        super().__init__(spec=LeakySpec())

    def setup(self, device):
        pass

    def predict(self, messages):
        text = messages[-1]["content"]
        if text == "start":
            raise RuntimeError(f"model crashed before the first token, {SECRET}")
        yield "one"
        if text == "mid":
            raise RuntimeError(f"model failed in the middle, {SECRET}")
        if text == "object":
            yield {SECRET}  # a set, not a str / dict / ChatMessage: our TypeError shows its repr
        yield " two"
