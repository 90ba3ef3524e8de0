"""How a spec (OpenAI chat, embeddings, ...) plugs into the pipeline.

A spec gives a LitAPI extra endpoints with their own request and response shapes.
Its methods run in two places:

* in the HTTP **front** (``bind``, ``endpoints``, ``front``, ``error_body``): parse and validate
  the HTTP request, decide whether it streams, fill the ``context`` dict, or answer
  right away (``/v1/models``, a 400).  The front never loads the model.
* in the **worker** (``parse`` ... ``finish``): turn the forwarded payload into the
  object ``decode_request`` receives, provide default ``decode_request`` /
  ``encode_response`` hooks, and frame each encoded output for the wire (SSE chunks,
  or one JSON body accumulated over all outputs).  A spec may also define
  ``batch(inputs)`` / ``unbatch(output)``: they replace the LitAPI's defaults when the
  LitAPI overrides neither (the embeddings spec flattens the inputs of all requests).

Everything a spec receives and returns is plain bytes / dicts / its own models, so a
spec is testable without a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import jsonx


@dataclass(frozen=True)
class Endpoint:
    path: str
    methods: tuple[str, ...] = ("POST",)


@dataclass
class Forward:
    """Send this request to a worker."""

    payload: bytes  # what the worker's ``parse`` receives
    stream: bool = False
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class Immediate:
    """Answer from the front without a worker."""

    status: int
    body: bytes
    content_type: bytes = b"application/json"


class LitSpec:
    """Base class of specs; see the module doc for where each method runs."""

    # -- front ------------------------------------------------------------------------------
    def bind(self, specs: list[LitSpec]) -> None:
        """Called once in each front with every spec the server serves (self included)."""

    def endpoints(self) -> list[Endpoint]:
        return []

    def front(self, path: str, method: str, body: bytes, headers: dict[str, str]
              ) -> Forward | Immediate:
        """Validate one HTTP request for ``path``; raise nothing, return Immediate on errors."""
        return Forward(body)

    def populate_context(self, context: dict[str, Any], request: Any) -> None:
        """Override to add request-derived values to ``context`` (runs in the front)."""

    def error_body(self, status: int, detail: Any) -> bytes:
        """The body of an error response in this spec's shape (JSON).  For an unexpected
        exception ``detail`` is ``"Internal Server Error (request id: ...)"``: the
        exception itself is only in the server's log."""
        return jsonx.dumps({"detail": detail}, default=str)

    # -- worker -----------------------------------------------------------------------------
    def parse(self, payload: bytes) -> Any:
        """The object handed to ``decode_request`` (the spec's request model)."""
        return payload

    def decode_request(self, request: Any, context: dict[str, Any]) -> Any:
        """Default ``decode_request`` for APIs that do not define one."""
        return request

    def encode_response(self, output: Any, context: dict[str, Any]) -> Any:
        """Default ``encode_response`` for APIs that do not define one."""
        return output

    def check_api(self, api: Any) -> None:
        """Raise ``ConfigError`` at start-up when ``api`` cannot serve this spec."""

    def start(self, request: Any, context: dict[str, Any], stream: bool) -> Any:
        """Per-request framing state, created before the first output."""
        return {"stream": stream, "outputs": []}

    def choices(self, state: Any) -> int:
        """How many answers the request asked for: ``predict`` runs once for each (in
        one batch when batching), and each output says which answer it belongs to."""
        return 1

    def chunk(self, state: Any, output: Any, choice: int = 0) -> bytes:
        """Bytes to send now for one encoded output of answer ``choice`` (b"" to send
        nothing yet)."""
        state["outputs"].append(output)
        return b""

    def finish(self, state: Any) -> bytes:
        """Final bytes: the end of a stream, or the whole body of a unary response."""
        return jsonx.dumps(state["outputs"], default=str)

    def error_chunk(self, state: Any, status: int, detail: Any) -> bytes:
        """Bytes that end a stream that failed after it started."""
        return self.error_body(status, detail) + b"\n"

    def content_type(self, stream: bool) -> bytes:
        return b"text/event-stream" if stream else b"application/json"
