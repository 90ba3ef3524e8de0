"""The front's ASGI application: routes, auth, body reading, responses.

A raw ASGI callable rather than a framework router, because every microsecond of
the hot path counts; Starlette is used only for its exception and form types.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import pickle
import time
from typing import Any

import orjson

from .. import jsonx, wire
from .. import protocol as P
from ..api import LitAPI, request_model
from ..config import Plan
from .direct import SCOPE_KEY, Direct
from .dispatch import Busy, Dispatcher, Pending, Reply

log = logging.getLogger("litserve.front")

Scope = dict[str, Any]
DIRECT_MIN = 64 * 1024  # bodies at least this large are read straight into the arena
WATCH_AFTER = 0.05  # start watching for a client disconnect after this many seconds
DISCONNECTED = Reply(P.ERROR, 499, P.CT_JSON, b"", b"")


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return dict(scope["headers"])


def _json(status: int, detail: Any) -> Reply:
    return Reply(P.ERROR, status, P.CT_JSON, b"", orjson.dumps({"detail": detail}))


class Route:
    """One LitAPI served at its api_path (or at its spec's endpoints)."""

    def __init__(self, index: int, api: LitAPI, plan: Plan, spec: Any = None) -> None:
        self.index = index
        self.opts = plan.routes[index]
        self.model = request_model(api)
        self.flags = P.STREAM if self.opts.stream else 0
        self.spec = spec

    def error(self, status: int, detail: Any) -> Reply:
        if self.spec is None:
            return _json(status, detail)
        return Reply(P.ERROR, status, P.CT_JSON, b"", self.spec.error_body(status, detail))


class Front:
    def __init__(self, plan: Plan, index: int, apis: list[LitAPI], specs: list[Any],
                 gen: int = 0) -> None:
        self.plan, self.index, self.gen = plan, index, gen
        self.dispatch = Dispatcher(plan, index, gen)
        self.board = P.Board(plan.name(P.board_role()))
        self.routes: dict[str, Route] = {}
        self.spec_routes: dict[str, tuple[Route, Any]] = {}
        served = [spec for spec in specs if spec is not None]
        for spec in served:  # lets specs share endpoints, e.g. one /v1/models for all
            getattr(spec, "bind", lambda specs: None)(served)
        for i, (api, spec) in enumerate(zip(apis, specs, strict=True)):
            route = Route(i, api, plan, spec)
            if spec is None:
                self.routes[plan.routes[i].api_path] = route
            else:
                for ep in spec.endpoints():
                    self.spec_routes[ep.path] = (route, ep)
        self.api_key = plan.api_key.encode() if plan.api_key else None
        self.limit = self.dispatch.arena.size - 64
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- ASGI entry ----------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                self.loop = asyncio.get_running_loop()
                self.dispatch.start(self.loop)
                self.board.set_front(self.index, self.gen, P.READY)
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        path, method = scope["path"], scope["method"]
        headers = _headers(scope)
        if self.api_key is not None and not self._authorized(headers):
            spec_route = self.spec_routes.get(path)
            reply = (spec_route[0].error if spec_route else _json)(
                401, "Invalid or missing API key: send the X-API-Key header "
                "(or Authorization: Bearer <key>)")
            return await _send(send, reply)
        route = self.routes.get(path)
        if route is not None:
            if method != "POST":
                return await _send(send, _json(405, f"{path} accepts POST, not {method}"))
            return await self._predict(route, scope, headers, receive, send)
        spec_route = self.spec_routes.get(path)
        if spec_route is not None:
            route, ep = spec_route
            if method not in ep.methods:
                allowed = ", ".join(ep.methods)
                return await _send(send, route.error(405, f"{path} accepts {allowed}"))
            return await self._spec(route, path, method, headers, receive, send)
        if path == self.plan.healthcheck_path and method in ("GET", "HEAD"):
            ready = self.board.all_ready()
            body = b"ok" if ready else b"not ready"
            return await _send(send, Reply(P.RESULT, 200 if ready else 503, P.CT_TEXT, b"", body))
        return await _send(send, _json(404, "Not Found"))

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        assert self.api_key is not None
        given = headers.get(b"x-api-key")
        if given is None:
            auth = headers.get(b"authorization", b"")
            given = auth[7:] if auth[:7].lower() == b"bearer " else b""
        return hmac.compare_digest(given, self.api_key)

    # -- spec endpoints ------------------------------------------------------------------
    async def _spec(self, route: Route, path: str, method: str, headers: dict[bytes, bytes],
                    receive: Any, send: Any) -> None:
        arrival = time.monotonic()
        deadline = arrival + self.plan.timeout if self.plan.timeout else 0.0
        wait_until = min(arrival + self.plan.queue_wait, deadline or float("inf"))
        try:
            body = await _read_all(receive, self.limit)
        except _Refused as exc:
            return await _send(send, route.error(exc.reply.status, _detail(exc.reply)))
        if body is None:
            return
        text_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers.items()}
        decision = route.spec.front(path, method, body, text_headers)
        if not hasattr(decision, "payload"):  # Immediate
            return await _send(send, Reply(P.RESULT, decision.status, P.CT_OTHER,
                                           b"content-type: " + decision.content_type + b"\r\n",
                                           decision.body))
        meta = {"context": decision.context} if decision.context else {}
        meta_bytes = pickle.dumps(meta, protocol=5) if meta else b""
        flags = P.STREAM if decision.stream else 0
        try:
            pending, inline, _ = await self._place(decision.payload, meta_bytes, wait_until)
            rec = self._record(route, P.SPEC, flags, pending, len(decision.payload),
                               len(meta_bytes), deadline, inline)
            await self.dispatch.post(pending, rec, wait_until)
        except Busy as exc:
            return await _send(send, route.error(503, str(exc)))
        await self._respond(pending, deadline, receive, send, route)

    async def _place(self, data: bytes, meta: bytes, wait_until: float
                     ) -> tuple[Pending, bytes, Any]:
        """A slot for a body already in memory: inline when small, else copied to the arena.

        Returns (pending, inline bytes, body buffer)."""
        if len(meta) + len(data) <= P.INLINE_MAX:
            return await self.dispatch.open(0, wait_until), meta + data, data
        pending = await self.dispatch.open(P.align64(len(meta)) + len(data), wait_until)
        start = self._write_meta(pending, meta)
        body = self.dispatch.arena.buf[start : start + len(data)]
        body[:] = data
        return pending, b"", body

    def _write_meta(self, pending: Pending, meta: bytes) -> int:
        """Put ``meta`` at the start of the request's arena block; where its body goes."""
        assert pending.block is not None
        self.dispatch.arena.buf[pending.block : pending.block + len(meta)] = meta
        return pending.block + P.align64(len(meta))

    def _record(self, route: Route, kind: int, flags: int, pending: Pending, data_len: int,
                meta_len: int, deadline: float, inline: bytes) -> P.RequestRecord:
        block = P.NO_BLOCK if pending.block is None else pending.block
        return P.RequestRecord(self.index, route.index, kind, self.gen, flags, pending.slot,
                               pending.seq, block, data_len, meta_len, deadline, inline)

    # -- the predict path ----------------------------------------------------------------
    async def _predict(self, route: Route, scope: Scope, headers: dict[bytes, bytes],
                       receive: Any, send: Any) -> None:
        arrival = time.monotonic()
        timeout = self.plan.timeout
        deadline = arrival + timeout if timeout else 0.0
        wait_until = arrival + self.plan.queue_wait
        if deadline:
            wait_until = min(wait_until, deadline)
        flags = route.flags | _accept_flags(headers.get(b"accept", b""))
        direct = scope.get(SCOPE_KEY)
        got: tuple[Pending | None, bytes, Any] | None
        try:
            if direct is not None:  # the body is being read straight into our arena
                got = await _await_direct(direct, receive)
                kind, meta, meta_bytes = direct.ticket[1:]
            else:
                kind, meta = _kind_and_meta(headers)
                meta_bytes = pickle.dumps(meta, protocol=5) if meta else b""
                length = _length(headers, self.limit)
                got = await self._read(receive, length, meta_bytes, wait_until)
        except _Refused as exc:
            return await _send(send, exc.reply)
        if got is None:  # the client went away while sending
            if direct is not None:
                self.dispatch.discard(direct.ticket[0])
            return
        pending, inline, body = got
        if kind == P.FORM and _looks_like_json(meta, body):
            kind, meta = P.JSON, {}  # `curl -d '{...}'` without a Content-Type
            if pending is None:
                inline, meta_bytes = bytes(body), b""
        try:
            _validate(kind, body, meta, route.model)
        except _Refused as exc:
            if pending is not None:
                self.dispatch.discard(pending)
            return await _send(send, exc.reply)
        if pending is None:
            try:
                pending = await self.dispatch.open(0, wait_until)
            except Busy as exc:
                return await _send(send, _json(503, str(exc)))
        rec = self._record(route, kind, flags, pending, len(body), len(meta_bytes), deadline,
                           inline)
        try:
            await self.dispatch.post(pending, rec, wait_until)
        except Busy as exc:
            return await _send(send, _json(503, str(exc)))
        await self._respond(pending, deadline, receive, send, route)

    def place_direct(self, scope: Scope, length: int) -> Direct | None:
        """Called by the protocol when headers are parsed: reserve the arena block a large
        body will be read into, or None to let it take the ordinary path."""
        route = self.routes.get(scope["path"])
        if route is None or not DIRECT_MIN <= length <= self.limit:
            return None
        headers = _headers(scope)
        if self.api_key is not None and not self._authorized(headers):
            return None
        try:
            kind, meta = _kind_and_meta(headers)
        except _Refused:
            return None  # the ordinary path answers with the error
        meta_bytes = pickle.dumps(meta, protocol=5) if meta else b""
        pending = self.dispatch.try_open(P.align64(len(meta_bytes)) + length)
        if pending is None or pending.block is None:
            return None
        start = self._write_meta(pending, meta_bytes)
        view = self.dispatch.arena.buf[start : start + length]
        return Direct(view, (pending, kind, meta, meta_bytes))

    async def _read(self, receive: Any, length: int | None, meta: bytes,
                    wait_until: float) -> tuple[Pending | None, bytes, Any] | None:
        """Read the body: small ones inline, others into the arena (a known length
        chunk by chunk as it arrives).

        Returns (pending or None, inline bytes, body buffer), None on disconnect."""
        if length is None or len(meta) + length <= P.INLINE_MAX:
            data = await _read_all(receive, self.limit)
            if data is None:
                return None
            if len(meta) + len(data) <= P.INLINE_MAX:
                return None, meta + data, data
            try:
                return await self._place(data, meta, wait_until)
            except Busy as exc:
                raise _Refused(_json(503, str(exc))) from None
        try:
            pending = await self.dispatch.open(P.align64(len(meta)) + length, wait_until)
        except Busy as exc:
            raise _Refused(_json(503, str(exc))) from None
        buf = self.dispatch.arena.buf
        start = pos = self._write_meta(pending, meta)
        end = start + length
        more = True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                self.dispatch.discard(pending)
                return None
            chunk = msg.get("body", b"")
            if pos + len(chunk) > end:
                self.dispatch.discard(pending)
                raise _Refused(_json(400, "request body is longer than its Content-Length"))
            buf[pos : pos + len(chunk)] = chunk
            pos += len(chunk)
            more = msg.get("more_body", False)
        if pos != end:
            self.dispatch.discard(pending)
            raise _Refused(_json(400, "request body is shorter than its Content-Length"))
        return pending, b"", buf[start:end]

    async def _respond(self, pending: Pending, deadline: float, receive: Any, send: Any,
                       route: Route) -> None:
        loop = self.loop
        assert loop is not None
        if deadline:
            pending.timer = loop.call_later(deadline - time.monotonic(), self._expire, pending,
                                            route)
        watch: list[Any] = []
        watch_timer = loop.call_later(WATCH_AFTER, self._watch, pending, receive, watch)
        started = False
        try:
            while True:
                reply = await pending.next(loop)
                if reply is DISCONNECTED:
                    return
                if reply.kind == P.CHUNK:
                    if not started:
                        if pending.timer is not None:
                            pending.timer.cancel()  # the deadline covers the first chunk
                        await send({"type": "http.response.start", "status": reply.status,
                                    "headers": _stream_headers(reply)})
                        started = True
                    await send({"type": "http.response.body", "body": reply.body,
                                "more_body": True})
                    continue
                if not started:
                    return await _send(send, reply)
                await send({"type": "http.response.body", "body": reply.body})
                return
        finally:
            watch_timer.cancel()
            for task in watch:
                task.cancel()

    def _expire(self, pending: Pending, route: Route) -> None:
        self.dispatch.cancel(pending)
        pending.push(route.error(504, f"request timed out after {self.plan.timeout:g} s "
                                      "(LitServer(timeout=...))"))

    def _watch(self, pending: Pending, receive: Any, watch: list[Any]) -> None:
        async def wait_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            self.dispatch.cancel(pending)
            pending.push(DISCONNECTED)

        watch.append(asyncio.ensure_future(wait_disconnect()))

    def close(self) -> None:
        self.dispatch.close()
        self.board.close()


# -- helpers --------------------------------------------------------------------------
class _Refused(Exception):
    def __init__(self, reply: Reply) -> None:
        self.reply = reply


_FORM_TYPES = (b"multipart/form-data", b"application/x-www-form-urlencoded")


def _detail(reply: Reply) -> Any:
    return orjson.loads(reply.body).get("detail", "")


def _kind_and_meta(headers: dict[bytes, bytes]) -> tuple[int, dict[str, Any]]:
    ctype = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
    if ctype == b"application/octet-stream":
        dtype = headers.get(b"x-tensor-dtype")
        shape = headers.get(b"x-tensor-shape")
        if dtype is None:
            raise _Refused(_json(400, "an application/octet-stream body needs an X-Tensor-Dtype "
                                      "header, for example 'float32'"))
        try:
            dt = wire.parse_dtype(dtype.decode("latin-1"))
            dims = None if shape is None else wire.parse_shape(shape.decode("latin-1"))
        except wire.WireError as exc:
            raise _Refused(_json(400, str(exc))) from None
        return P.OCTET, {"dtype": dt.str, "shape": dims}
    if ctype == b"application/x-npy":
        return P.NPY, {}
    if ctype == b"application/x-litserve-tensors":
        return P.BUNDLE, {}
    if ctype in _FORM_TYPES:
        return P.FORM, {"content_type": headers[b"content-type"].decode("latin-1")}
    return P.JSON, {}


def _looks_like_json(meta: dict[str, Any], body: Any) -> bool:
    urlencoded = meta["content_type"].startswith("application/x-www-form-urlencoded")
    return urlencoded and bytes(body[:1]) in (b"{", b"[")


def _length(headers: dict[bytes, bytes], limit: int) -> int | None:
    raw = headers.get(b"content-length")
    if raw is None:
        return None
    try:
        length = int(raw)
    except ValueError:
        raise _Refused(_json(400, f"Content-Length {raw!r} is not a number")) from None
    if length > limit:
        raise _Refused(_json(413, f"request body of {length} bytes exceeds this server's limit "
                                  f"of {limit} bytes (LitServer(max_payload_size=...))"))
    return length


async def _await_direct(direct: Direct, receive: Any) -> tuple[Pending, bytes, Any] | None:
    """Wait until the protocol has read the whole body into the arena."""
    pending = direct.ticket[0]
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        if not msg.get("more_body", False):
            return pending, b"", direct.view


async def _read_all(receive: Any, limit: int) -> bytes | None:
    parts = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _Refused(_json(413, f"request body exceeds this server's limit of {limit} "
                                      "bytes (LitServer(max_payload_size=...))"))
        parts.append(chunk)
        if not msg.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


def _validate(kind: int, body: Any, meta: dict[str, Any], model: Any) -> None:
    """The wire checks done in the front, so workers only see well-formed requests."""
    try:
        if kind == P.JSON:
            if model is not None:
                model.model_validate_json(bytes(body))
            elif len(body):
                jsonx.loads(body)
        elif kind == P.OCTET:
            shape = None if meta["shape"] is None else wire.format_shape(meta["shape"])
            wire.octet_meta(meta["dtype"], shape, len(body))
        elif kind == P.NPY:
            wire.npy_meta(body[:65536], len(body))
        elif kind == P.BUNDLE:
            wire.bundle_meta(body[:65536], len(body))
    except orjson.JSONDecodeError as exc:
        raise _Refused(_json(400, f"request body is not valid JSON: {exc}")) from None
    except wire.WireError as exc:
        raise _Refused(_json(400, str(exc))) from None
    except ValueError as exc:  # pydantic.ValidationError
        errors = exc.errors(include_url=False) if hasattr(exc, "errors") else str(exc)
        raise _Refused(Reply(P.ERROR, 422, P.CT_JSON, b"", orjson.dumps(
            {"detail": errors}, default=str))) from None


def _accept_flags(accept: bytes) -> int:
    if not accept or accept == b"*/*":
        return 0
    flags = 0
    if b"application/octet-stream" in accept:
        flags |= P.ACCEPT_OCTET
    if b"application/x-npy" in accept:
        flags |= P.ACCEPT_NPY
    if b"application/x-litserve-tensors" in accept:
        flags |= P.ACCEPT_BUNDLE
    return flags


def _parse_header_lines(raw: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for line in raw.split(b"\r\n"):
        if line:
            k, _, v = line.partition(b":")
            out.append((k.strip().lower(), v.strip()))
    return out


def _response_headers(reply: Reply) -> list[tuple[bytes, bytes]]:
    headers = _parse_header_lines(reply.headers) if reply.headers else []
    if reply.ctype != P.CT_OTHER:
        headers.append((b"content-type", P.CONTENT_TYPES[reply.ctype]))
    headers.append((b"content-length", b"%d" % len(reply.body)))
    return headers


def _stream_headers(reply: Reply) -> list[tuple[bytes, bytes]]:
    headers = _parse_header_lines(reply.headers) if reply.headers else []
    if reply.ctype != P.CT_OTHER:
        headers.append((b"content-type", P.CONTENT_TYPES[reply.ctype]))
    headers.append((b"cache-control", b"no-cache"))
    return headers


async def _send(send: Any, reply: Reply) -> None:
    await send({"type": "http.response.start", "status": reply.status,
                "headers": _response_headers(reply)})
    await send({"type": "http.response.body", "body": reply.body})
