"""The request a bench sends, built once and sent as pre-encoded bytes, and the check
of each answer against ``--expect``.

``PAYLOADS`` is the registry of payload kinds; the CLI's choices and help come from it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from litserve.client import _body
from litserve.client._common import USER_AGENT, Endpoint
from litserve.client._http1 import request_head
from litserve.client._stream import StreamDecoder, parse_item

PAYLOADS: Final = {
    "json": "a JSON body (--data / --data-file; default {\"input\": 4.0})",
    "tensor": "binary tensors (--tensor 1080x1920x3:float32, FILE.npy, or NAME=SPEC)",
    "openai": "a streamed OpenAI chat completion (--openai, --prompt)",
}
DEFAULT_PATHS: Final = {"openai": "/v1/chat/completions"}
MAX_BODY: Final = 2 << 30


@dataclass(frozen=True)
class Payload:
    kind: str
    head: bytes
    body: bytes
    stream: str | None  # None, "chunks" (HTTP chunks) or "sse" (data: events)
    expect: Expect | None

    @property
    def size(self) -> int:
        return len(self.head) + len(self.body)


class Expect:
    """Checks one answer; ``check`` returns None when right, else what was wrong."""

    def __init__(self, spec: str, payload_body: bytes, stream: str | None) -> None:
        self.stream = stream
        self.echo = spec == "echo"
        self.want = payload_body if self.echo else _load_expected(spec)
        self._last_ok: bytes | None = None

    def check(self, ctype: str, headers: dict[str, str], body: bytes) -> str | None:
        if self.echo and not self.stream:
            return None if body == self.want else _differ(body, self.want)
        if body == self._last_ok:
            return None
        got = self._value(ctype, headers, body)
        if not _equal(got, self.want):
            return _differ(got, self.want)
        self._last_ok = body
        return None

    def _value(self, ctype: str, headers: dict[str, str], body: bytes) -> Any:
        if self.stream:
            dec = StreamDecoder(ctype, chunked=False)
            items = dec.feed(body, True) + dec.finish()
            if self.stream == "sse":
                return "".join(_delta_text(i) for i in items)
            return items
        try:
            return _body.decode(ctype, headers, body)
        except ValueError as exc:
            return f"<undecodable {ctype} body: {exc}>"


def _delta_text(item: Any) -> str:
    try:
        return item["choices"][0]["delta"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""


def _load_expected(spec: str) -> Any:
    if spec.startswith("@"):
        path = Path(spec[1:])
        if path.suffix == ".npy":
            import numpy as np

            return np.load(path)
        return json.loads(path.read_text())
    return parse_item(spec)


def _equal(got: Any, want: Any) -> bool:
    if _body.is_array(got) or _body.is_array(want):
        import numpy as np

        try:
            return bool(np.array_equal(np.asarray(got), np.asarray(want)))
        except (TypeError, ValueError):
            return False
    return bool(got == want)


def _differ(got: Any, want: Any) -> str:
    def short(v: Any) -> str:
        text = repr(v)
        return text if len(text) <= 120 else text[:117] + "..."

    return f"got {short(got)}, expected {short(want)}"


# -- building the request ------------------------------------------------------------

def parse_tensor_spec(spec: str, seed: int = 0) -> Any:
    """``1080x1920x3:float32`` (random values), ``224x224x3`` (float32) or ``FILE.npy``."""
    import numpy as np

    if spec.endswith(".npy") or Path(spec).is_file():
        return np.load(spec)
    m = re.fullmatch(r"\s*(\d+(?:\s*[x,]\s*\d+)*)?\s*(?::\s*([<>=|]?\w+))?\s*", spec)
    if not m:
        raise ValueError(f"--tensor {spec!r} is not valid; use SHAPE[:DTYPE] such as "
                         "'1080x1920x3:uint8', '16x3x224x224:float16', ':float32' (0-d), "
                         "or a .npy file")
    shape = tuple(int(d) for d in re.split(r"\s*[x,]\s*", m[1])) if m[1] else ()
    try:
        dtype = np.dtype(m[2] or "float32")
    except TypeError:
        raise ValueError(f"--tensor {spec!r}: {m[2]!r} is not a NumPy dtype") from None
    return random_array(shape, dtype, seed)


def random_array(shape: tuple[int, ...], dtype: Any, seed: int = 0) -> Any:
    import numpy as np

    rng = np.random.default_rng(seed)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind in "iu":
        return rng.integers(0, 100, shape).astype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    raise ValueError(f"--tensor dtype {dtype} is not supported; use a numeric or bool dtype")


def build(kind: str, endpoint: Endpoint, *, data: bytes | None = None,
          tensors: dict[str, Any] | None = None, tensor_format: str = "octet",
          prompt: str = "Hello", model: str = "litserve", max_tokens: int | None = None,
          headers: list[tuple[str, str]] | None = None, accept: str | None = None,
          expect: str | None = None, stream: bool = False) -> Payload:
    """Pre-encode the request of a bench run.  ``stream``: the answers are streams
    whose HTTP chunks are counted (always true for ``openai``, whose SSE events are)."""
    mode = "sse" if kind == "openai" else "chunks" if stream else None
    if kind == "tensor":
        if not tensors:
            raise ValueError("a tensor payload needs at least one --tensor")
        x = tensors[""] if list(tensors) == [""] else tensors
        body = _body.encode(x, tensor_format)
        default_accept = _body.ACCEPT_BINARY
    elif kind == "openai":
        req: dict[str, Any] = {"model": model, "stream": True,
                               "messages": [{"role": "user", "content": prompt}]}
        if max_tokens is not None:
            req["max_tokens"] = max_tokens
        body = _body.Body(_body.JSON, [_body.dumps(req)])
        default_accept = "text/event-stream"
    else:
        body = _body.Body(_body.JSON, [data if data is not None else b'{"input": 4.0}'])
        default_accept = _body.JSON
    if mode == "chunks":
        default_accept = "application/x-ndjson, text/event-stream, */*;q=0.5"
    raw = b"".join(bytes(p) for p in body.pieces)
    if len(raw) > MAX_BODY:
        raise ValueError(f"the request body is {len(raw)} bytes; the bench sends at most "
                         f"{MAX_BODY} bytes per request")
    all_headers = [("User-Agent", USER_AGENT.replace("client", "bench")),
                   ("Content-Type", body.content_type), ("Content-Length", str(len(raw))),
                   *body.headers, ("Accept", accept or default_accept), *(headers or [])]
    head = request_head("POST", endpoint.path, endpoint.host_header, all_headers)
    check = Expect(expect, raw, mode) if expect is not None else None
    return Payload(kind, head, raw, mode, check)
