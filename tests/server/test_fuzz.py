"""A fuzz campaign against a real server over raw sockets (issue 8 item 6: "a fuzz run
with zero 500s").

One server, started through ``run()`` like every server test: ``Echo`` at /predict and
the pydantic-typed ``Typed`` at /typed, ``max_payload_size`` 1 MiB so that the size
edges are reachable, and an API key that most requests send (others send a wrong one, a
``Bearer`` one or none).  Hypothesis builds raw HTTP/1.1 requests from parts
(``fuzz_requests``: methods, targets, headers, bodies, framings) and ``rawhttp`` sends
the bytes as they are.

What must hold for every request (the oracle, ``check``):

* no 5xx, ever: a 4xx or a closed connection is the answer to malformed input;
* no hang: a request whose bytes are all sent is answered or closed within ANSWER_S, and
  a well-formed one is answered (a response, not a silent close);
* a well-formed body over ``max_payload_size`` to a LitAPI route is never accepted nor
  waited for: a 4xx (a 413 names the configured limit) or a closed connection;
* on a connection still open after a well-formed exchange, the next request is served;
* afterwards a good request on a fresh connection is served, and the front gives back
  every slot and arena byte it took (its counts on the control board come back).

A failure says which of these broke and shows the request's raw bytes.  ``FOUND`` holds
the minimised inputs that failed when the campaign was written, ``ONCE_ESCAPED`` the wire
inputs that were 500s before litserve.wire refused them; both run every time.
CI runs a fixed, derandomized set of examples; ``LITSERVE_FUZZ_EXAMPLES=20000`` runs
that many random ones and shrinks what fails (docs/testing.md).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from litserve import wire

from .fuzz_requests import ARENA, KEY, LIMIT, Req, requests
from .harness import Server, front_usage, serve, wait_idle
from .rawhttp import CLOSED, SILENT, TRUNCATED, Conn, Response

ANSWER_S = 5.0  # a request whose bytes are all sent is answered or closed within this
EARLY_S = 0.25  # how long to wait for an early answer to a request still missing bytes
IDLE_S = 3.0  # the front gives back what a request held within this
K = KEY.encode()
GOOD = (b"POST /predict HTTP/1.1\r\nHost: fuzz\r\nX-API-Key: " + K
        + b"\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"input\": 1}")
GOOD_ANSWER = b'{"kind":"dict","value":{"input":1}}'


LONG_RUN = int(os.environ.get("LITSERVE_FUZZ_EXAMPLES", "0"))


def _settings(ci_examples: int) -> settings:
    """CI: a fixed, derandomized set, reported unshrunk (shrinking a hang costs ANSWER_S
    a step).  $LITSERVE_FUZZ_EXAMPLES=N: N random examples, failures shrunk."""
    phases = list(Phase) if LONG_RUN else [Phase.explicit, Phase.generate]
    return settings(max_examples=LONG_RUN or ci_examples, derandomize=not LONG_RUN,
                    deadline=None, database=None, print_blob=True, phases=phases,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


# -- the server and the oracle -------------------------------------------------------
class Target:
    """The server under fuzz, and what its front holds when idle (``baseline``).

    The front publishes its usage when a request opens or ends, so the counts are read
    after a good request: a slot taken and never given back shows up there even if no
    publish followed its leak.  The server is restarted when it stopped serving or
    leaked arena bytes (which would fill the 2 MiB arena); leaked slots (4096 of them)
    are reported but need no restart."""

    def __init__(self) -> None:
        self._cm: Any = None
        self.server: Server | None = None
        self.dirty = True
        self.baseline = (0, 0)

    def start(self) -> None:
        self._cm = serve('basic:Echo;basic:Typed({"api_path": "/typed"})',
                         max_payload_size=LIMIT, env={"LIT_SERVER_API_KEY": KEY})
        self.server = self._cm.__enter__()
        self.addr = ("127.0.0.1", int(self.server.url.rsplit(":", 1)[1]))
        got = self.good()
        assert isinstance(got, Response) and got.status == 200, f"a fresh server: {got}"
        self.baseline, self.dirty = front_usage(self.server), False

    def stop(self) -> None:
        if self._cm is not None:
            cm, self._cm = self._cm, None
            cm.__exit__(None, None, None)

    def fresh(self) -> Server:
        if self.dirty:
            self.stop()
            self.start()
        assert self.server is not None
        return self.server

    def conn(self) -> Conn:
        return Conn(*self.addr)

    def good(self) -> Response | str:
        """A good request on a fresh connection."""
        conn = self.conn()
        try:
            return _serves_a_good_request(conn)
        finally:
            conn.close()


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    t = Target()
    try:
        t.fresh()
        yield t
    finally:
        t.stop()


def _answer(conn: Conn, req: Req) -> Response | str:
    """Send the request and read the first answer, waiting as long as the oracle allows."""
    wait = ANSWER_S if req.complete or _over_limit(req) else EARLY_S
    return conn.request(req.wire, ANSWER_S, wait, head=req.method == b"HEAD")


def _serves_a_good_request(conn: Conn) -> Response | str:
    return conn.request(GOOD, ANSWER_S, ANSWER_S)


def _served(got: Response | str) -> bool:
    return isinstance(got, Response) and got.status == 200 and got.body == GOOD_ANSWER


def _over_limit(req: Req) -> bool:
    return req.routed and req.body_len is not None and req.body_len > LIMIT


def _exchange(target: Target, req: Req) -> tuple[Response | str, Response | str | None]:
    """The answer to ``req``, and to a good request sent next on the same connection
    when that connection should still work (None when it need not)."""
    conn = target.conn()
    try:
        got = _answer(conn, req)
        reusable = isinstance(got, Response) and got.status < 500 and got.keeps_alive
        if reusable and conn.sent_all and _leaves_the_connection_clean(req):
            return got, _serves_a_good_request(conn)
        return got, None
    finally:
        conn.close()


def _leaves_the_connection_clean(req: Req) -> bool:
    """A well-formed HTTP/1.1 message, all of it sent, nothing after it."""
    http11 = req.head.split(b"\r\n", 1)[0].endswith(b" HTTP/1.1")
    return req.well_formed and req.whole and not req.trailing and http11


def check(target: Target, req: Req) -> Response | str:
    """Send ``req`` and hold the server to the promises in this module's docstring;
    the answer."""
    server = target.fresh()
    before = target.baseline
    got, next_on_conn = _exchange(target, req)
    after = target.good()
    held = _usage_back_to(server, before)
    target.baseline = held
    target.dirty = not _served(after) or held[1] > before[1]
    status = got.status if isinstance(got, Response) else got
    assert not (isinstance(got, Response) and got.status >= 500), f"5xx: {req!r} -> {got}"
    assert not (req.complete and got == SILENT), f"no answer within {ANSWER_S} s: {req!r}"
    # a server may close after refusing a body it will not read (an unread body turns the
    # close into a reset, which can eat the answer), or after a broken next request
    must_answer = req.well_formed and req.complete and not req.trailing and not _over_limit(req)
    assert not (must_answer and got in (CLOSED, TRUNCATED)), (
        f"a well-formed request was not answered ({status}): {req!r}")
    if _over_limit(req):
        assert got != SILENT, f"a body over max_payload_size={LIMIT} was waited for: {req!r}"
        assert not isinstance(got, Response) or 400 <= got.status < 500, (
            f"a body over max_payload_size={LIMIT} was not refused: {req!r} -> {got}")
        assert not isinstance(got, Response) or got.status != 413 or (
            b"max_payload_size" in got.body and str(LIMIT).encode() in got.body), (
            f"a 413 that does not name the limit max_payload_size={LIMIT}: {req!r} -> {got}")
    assert next_on_conn in (None, CLOSED) or _served(next_on_conn), (
        f"the next request on the same connection got {next_on_conn} after {req!r} -> {got}")
    assert _served(after), f"a good request after {req!r} -> {got} got {after}"
    assert held == before, (f"the front holds (slots, arena bytes) {held}, not {before}, "
                            f"{IDLE_S} s after {req!r} -> {got}")
    return got


def _usage_back_to(server: Server, before: tuple[int, int]) -> tuple[int, int]:
    deadline = time.monotonic() + IDLE_S
    while (now := front_usage(server)) != before and time.monotonic() < deadline:
        time.sleep(0.01)
    return now


# -- the campaign ----------------------------------------------------------------------
def test_the_oracle_sees_a_good_request_as_good(target: Target) -> None:
    """The oracle's own check: a plain good request passes and is answered 200."""
    req = Req(GOOD.split(b"\r\n\r\n")[0] + b"\r\n\r\n", b'{"input": 1}', "JSON", b"POST",
              complete=True, whole=True, well_formed=True, trailing=False, body_len=12,
              routed=True)
    check(target, req)
    assert target.baseline == (0, 0)


def _known(wire: bytes, **flags: Any) -> Req:
    """A hand-written request for the oracle: well-formed, complete and routed unless
    ``flags`` say otherwise."""
    head, _, body = wire.partition(b"\r\n\r\n")
    fields: dict[str, Any] = dict(complete=True, whole=True, well_formed=True, trailing=False,
                                  body_len=len(body), routed=True)
    fields.update(flags)
    return Req(head + b"\r\n\r\n", body, "as written", wire.split(b" ", 1)[0], **fields)


def _post(target: bytes, lines: list[bytes], body: bytes, chunked: bool = False) -> bytes:
    framing = (b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % len(body))
    if chunked:
        body = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    return b"\r\n".join([b"POST " + target + b" HTTP/1.1", b"Host: fuzz", b"X-API-Key: " + K,
                          *lines, framing, b"", body])


def _json_of(size: int) -> bytes:
    return b'{"input": "' + b"a" * (size - 13) + b'"}'


FORM_LONG_BOUNDARY = b"Content-Type: multipart/form-data; boundary=" + b"b" * 100
OCTET_32_DIMS = [b"Content-Type: application/octet-stream", b"X-Tensor-Dtype: uint8",
                 b"X-Tensor-Shape: " + b"1," * 31 + b"%d" % (ARENA - 64)]
WEBSOCKET = [b"Connection: Upgrade", b"Upgrade: websocket"]
H2C = [b"Connection: Upgrade, HTTP2-Settings", b"Upgrade: h2c", b"HTTP2-Settings: AAMAAABkAAQA"]
# Minimised inputs the campaign found, each failing today (see docs/testing.md); they
# run on every CI run so that a fix is seen to hold.
FOUND = [
    pytest.param(_known(_post(b"/predict", [b"Content-Type: application/json"],
                              _json_of(LIMIT + 1))), id="json-over-max_payload_size-accepted"),
    pytest.param(_known(b"POST /predict HTTP/1.1\r\nHost: fuzz\r\nX-API-Key: " + K
                        + b"\r\nContent-Type: application/json\r\nContent-Length: 1000000000"
                        b"\r\n\r\n", whole=False, body_len=10**9),
                 id="413-names-the-arena-not-max_payload_size"),
    pytest.param(_known(_post(b"/predict", [FORM_LONG_BOUNDARY], b"\x07" * (ARENA - 64),
                              chunked=True), body_len=ARENA - 64),
                 id="chunked-form-near-arena-size-500-and-slot-leak"),
    pytest.param(_known(_post(b"/predict", [FORM_LONG_BOUNDARY], b"\x07" * (ARENA - 64))),
                 id="form-near-arena-size-400-invalid-http-and-2-slots-leak"),
    pytest.param(_known(_post(b"/predict", OCTET_32_DIMS, b"\x07" * (ARENA - 64))),
                 id="octet-32-dims-near-arena-size-400-invalid-http-and-2-slots-leak"),
    pytest.param(_known(_post(b"/typed", [b"Content-Type: application/x-npy"],
                              wire.npy_header(np.zeros(2, np.float32)) + bytes(8))),
                 id="typed-route-takes-npy-then-500"),
    pytest.param(_known(_post(b"/typed", [b"Content-Type: application/x-www-form-urlencoded"],
                              b"a=1")), id="typed-route-takes-form-then-500"),
    pytest.param(_known(b"GET /predict HTTP/1.1\r\nHost: fuzz\r\n" + b"\r\n".join(WEBSOCKET)
                        + b"\r\nSec-WebSocket-Version: 13\r\n"
                        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", routed=False),
                 id="websocket-handshake-500"),
    pytest.param(_known(b"GET /health HTTP/1.1\r\nHost: fuzz\r\n" + b"\r\n".join(WEBSOCKET)
                        + b"\r\nContent-Length: 1\r\n\r\nx", routed=False),
                 id="websocket-upgrade-with-a-body-never-answered"),
    pytest.param(_known(_post(b"/predict", [b"Content-Type: application/json", *H2C],
                              _json_of(300_000))), id="h2c-upgrade-loses-the-body-and-desyncs"),
]


@pytest.mark.parametrize("req", FOUND)
def test_found_inputs(target: Target, req: Req) -> None:
    check(target, req)


def _npy(header: bytes, data: bytes = b"") -> bytes:
    return wire.NPY_MAGIC + b"\x01\x00" + len(header).to_bytes(2, "little") + header + data


def _bundle(entry: dict[str, Any]) -> bytes:
    """One entry, its data right after the header (padded to 248 bytes), 64 data bytes."""
    text = json.dumps({"tensors": [{**entry, "offset": 256}]}, separators=(",", ":"))
    header = text.encode().ljust(248)
    return wire.BUNDLE_MAGIC + len(header).to_bytes(4, "little") + header + bytes(64)


OCTET = [b"Content-Type: application/octet-stream", b"X-Tensor-Dtype: uint8"]
NPY_TYPE = [b"Content-Type: application/x-npy"]
BUNDLE_TYPE = [b"Content-Type: application/x-litserve-tensors"]
ONE_ENTRY = {"name": "x", "dtype": "<f4", "shape": [2], "nbytes": 8}
# Wire inputs that once escaped litserve.wire as other exceptions (500s that leaked the
# request's arena block and slot): now the front's 400 (tests/test_wire.py has the rest).
ONCE_ESCAPED = [
    pytest.param([*OCTET, b"X-Tensor-Shape: 18446744073709551616"], b"\0" * 8, id="shape-2**64"),
    pytest.param([*OCTET, b"X-Tensor-Shape: 274177,67280421310721"], b"\0", id="shape-wraps-to-1"),
    pytest.param([b"Content-Type: application/octet-stream", b"X-Tensor-Dtype: 01"], b"\0",
                 id="dtype-01"),
    pytest.param(NPY_TYPE, _npy(b"{'descr': '<f4', 'fortran_order': False, 'shape': ("
                                + b"+".join([b"1"] * 3000) + b",), }"), id="npy-deep-shape"),
    pytest.param(NPY_TYPE, _npy(b"{'descr': '<f4', 'fortran_order': False, 'shape': (-1, -2), }",
                                bytes(8)), id="npy-negative-dims"),
    pytest.param(NPY_TYPE, b"\x93NUMPY\x02\x00\x05\x00", id="npy-truncated-preamble"),
    pytest.param(BUNDLE_TYPE, _bundle({**ONE_ENTRY, "dtype": 5}), id="bundle-dtype-5"),
    pytest.param(BUNDLE_TYPE, _bundle({**ONE_ENTRY, "shape": [1] * 65, "nbytes": 4}),
                 id="bundle-65-dims"),
]


@pytest.mark.parametrize(("lines", "body"), ONCE_ESCAPED)
def test_wire_inputs_that_once_escaped_are_400(target: Target, lines: list[bytes],
                                                body: bytes) -> None:
    got = check(target, _known(_post(b"/predict", lines, body)))
    assert isinstance(got, Response) and got.status == 400, got


@pytest.mark.timeout(0 if LONG_RUN else 120)
@_settings(1500)
@given(req=requests())
def test_no_request_gets_a_5xx_hangs_or_leaks(target: Target, req: Req) -> None:
    check(target, req)


def test_the_server_is_idle_and_serving_after_the_campaign(target: Target) -> None:
    assert target.server is not None
    got = target.good()
    assert _served(got), f"a good request after the campaign got {got}"
    wait_idle(target.server)
