"""The front's ASGI application: routes, auth, and the life of a request from its
body to its response.

A raw ASGI callable rather than a framework router, because every microsecond of the
hot path counts; Starlette is used only for its exception and form types.  Where a
body's bytes go is ``http/body.py``'s; what a request holds is ``http/intake.py``'s;
the checks of headers and bodies are ``http/checks.py``'s.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import os
import pickle
import time
from dataclasses import dataclass
from typing import Any

import orjson

from .. import protocol as P
from ..api import LitAPI, request_model
from ..callbacks.base import CallbackRunner, EventTypes
from ..config import Plan, Shipped
from .auth import Authorizer, Gate, authorizer, key_matches
from .body import PRIVATE_MAX, Body, DirectTicket, await_direct, place, read_body, read_private
from .checks import accept_flags, content_length, kind_and_meta, looks_like_json, validate
from .direct import SCOPE_KEY, Direct
from .dispatch import DIED, WORKER_DIED, Dispatcher, Pending
from .guard import Guard
from .intake import Hold, Intake
from .mounts import Mounts, collect
from .own import own_routes
from .replies import Busy, Refused, Reply, json_error

log = logging.getLogger("litserve.front")

Scope = dict[str, Any]
WATCH_AFTER = 0.05  # start watching for a client disconnect after this many seconds
DISCONNECTED = Reply(P.ERROR, 499, P.CT_JSON, b"", b"")
ON_REQUEST, ON_RESPONSE = EventTypes.ON_REQUEST.value, EventTypes.ON_RESPONSE.value


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return dict(scope["headers"])


@dataclass(slots=True)
class Clock:
    """A request's times: its deadline (0.0: none) and how long it may wait for room."""

    deadline: float
    wait_until: float

    @classmethod
    def start(cls, plan: Plan) -> Clock:
        now = time.monotonic()
        deadline = now + plan.timeout if plan.timeout else 0.0
        wait_until = now + plan.queue_wait
        return cls(deadline, min(wait_until, deadline) if deadline else wait_until)


@dataclass(slots=True)
class Ready:
    """A request whose body is placed, ready to post."""

    kind: int
    hold: Hold
    data_len: int
    meta_len: int
    inline: bytes


class Route:
    """One LitAPI served at its api_path (or at its spec's endpoints)."""

    def __init__(self, index: int, api: LitAPI, plan: Plan, spec: Any = None) -> None:
        self.index = index
        self.api = api
        self.opts = plan.routes[index]
        self.model = request_model(api)
        self.flags = P.STREAM if self.opts.stream else 0
        self.spec = spec
        self.auth = authorizer(api)

    def error(self, status: int, detail: Any, headers: bytes = b"") -> Reply:
        if self.spec is None:
            return json_error(status, detail, headers)
        return Reply(P.ERROR, status, P.CT_JSON, headers, self.spec.error_body(status, detail))

    def stream_error(self, status: int, detail: Any) -> Reply:
        """The last chunk of a stream that failed after it started, in this route's shape
        (as a worker ends a stream whose hook raised)."""
        body = (orjson.dumps({"detail": detail}) + b"\n" if self.spec is None
                else self.spec.error_chunk(None, status, detail))
        return Reply(P.ERROR, status, P.CT_OTHER, b"", body)

    def refusal(self, exc: Refused) -> Reply:
        """The answer to a refused request, in this route's error shape."""
        return self.error(exc.status, exc.detail, exc.headers)


class Front:
    def __init__(self, plan: Plan, index: int, apis: list[LitAPI], specs: list[Any],
                 gen: int = 0, shipped: Shipped | None = None, parent: int | None = None
                 ) -> None:
        self.plan, self.index, self.gen = plan, index, gen
        shipped = shipped or Shipped(apis, specs, [], [], None)
        # (before any shared memory is made: a bad mount or route fails here, leaving none)
        self.own = own_routes(plan, shipped, os.getppid() if parent is None else parent)
        self.mounts = Mounts(collect(shipped, plan))
        self.board = P.Board(P.ServerNames.of(plan.name).board)
        self.intake = Intake(plan, index, gen, self.board)
        self.dispatch = Dispatcher(plan, index, self.intake, gen)
        self.guard = Guard(plan.header_timeout, plan.body_timeout)
        self.intake.on_short = self.guard.evict_stalled
        self.routes: dict[str, Route] = {}
        self.spec_routes: dict[str, tuple[Route, Any]] = {}
        self.routes_by_index: list[Route] = []
        guards: dict[str, Authorizer] = {}
        served = [spec for spec in specs if spec is not None]
        for spec in served:  # lets specs share endpoints, e.g. one /v1/models for all
            getattr(spec, "bind", lambda specs: None)(served)
        for i, (api, spec) in enumerate(zip(apis, specs, strict=True)):
            route = Route(i, api, plan, spec)
            self.routes_by_index.append(route)
            if spec is None:
                self.routes[plan.routes[i].api_path] = route
            else:
                for ep in spec.endpoints():
                    self.spec_routes[ep.path] = (route, ep)
            if route.auth is not None:
                paths = [plan.routes[i].api_path] if spec is None else [
                    ep.path for ep in spec.endpoints()]
                guards.update(dict.fromkeys(paths, route.auth))
        if len(apis) == 1 and self.routes_by_index[0].auth is not None:
            # one LitAPI: its authorize guards the server's routes too (as LitServe's)
            guards[plan.healthcheck_path] = guards[plan.info_path] = self.routes_by_index[0].auth
        self.api_key = plan.api_key.encode() if plan.api_key else None
        exempt = frozenset([plan.shutdown_path] if plan.enable_shutdown_api else [])
        self.gate = Gate(self.api_key, guards, exempt) if self.api_key or guards else None
        # The protocol reads bodies straight into the arena only where nothing has to see
        # the request first: no middleware (it may read or change the body), no authorize.
        self.direct_routes = {} if shipped.middlewares else {
            path: route for path, route in self.routes.items() if route.auth is None}
        runner = CallbackRunner(shipped.callbacks)
        self.callbacks = runner if runner else None
        self.server = shipped.server
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
                self.guard.start(self.loop)
                try:
                    await self.mounts.startup()
                except Exception as exc:
                    log.error("litserve: front %d cannot start: %s", self.index, exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                gc.freeze()  # start-up's objects are never scanned by the collector again
                self.board.set_front(self.index, self.gen, P.READY)
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                self.guard.stop()
                await self.mounts.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        path, method = scope["path"], scope["method"]
        headers = _headers(scope)
        if self.gate is not None:  # an API key or an authorize: check before anything
            try:
                await self.gate.check(path, scope, headers)
            except Refused as exc:
                spec_route = self.spec_routes.get(path)
                reply = spec_route[0].refusal(exc) if spec_route else json_error(
                    exc.status, exc.detail, exc.headers)
                return await _send(send, reply)
        route = self.routes.get(path)
        if route is not None:
            if method != "POST":
                return await _send(send, json_error(405, f"{path} accepts POST, not {method}"))
            return await self._predict(route, scope, headers, receive, send)
        spec_route = self.spec_routes.get(path)
        if spec_route is not None:
            route, ep = spec_route
            if method not in ep.methods:
                allowed = ", ".join(ep.methods)
                return await _send(send, route.error(405, f"{path} accepts {allowed}"))
            return await self._spec(route, path, method, headers, receive, send)
        if path == self.plan.healthcheck_path and method in ("GET", "HEAD"):
            ready = self._can_serve() and await self._apis_healthy()
            body = b"ok" if ready else b"not ready"
            return await _send(send, Reply(P.RESULT, 200 if ready else 503, P.CT_TEXT, b"", body))
        await self._other(path, method, scope, headers, receive, send)

    async def _other(self, path: str, method: str, scope: Scope, headers: dict[bytes, bytes],
                     receive: Any, send: Any) -> None:
        """The server's own routes, then the mounted apps; else 404."""
        own = self.own.get(path)
        if own is not None:
            if method not in own.methods:
                allowed = ", ".join(own.methods)
                return await _send(send, json_error(405, f"{path} accepts {allowed}"))
            reply = own.answer(headers)
            await _send(send, reply)
            if own.after is not None and reply.status == 200:
                own.after()
            return
        mount = self.mounts.find(path) if self.mounts else None
        if mount is not None:
            return await self.mounts.serve(mount, scope, receive, send)
        return await _send(send, json_error(404, "Not Found"))

    def _can_serve(self) -> bool:
        """Every worker finished setup once, and one of them can take a request now
        (set up, beating, not stuck past predict_timeout); this front is serving."""
        board, limit = self.board, self.plan.predict_timeout
        return (board.started() and board.front(self.index)[1] == P.READY
                and any(board.serving(j, limit) for j in range(board.workers)))

    async def _apis_healthy(self) -> bool:
        """Every LitAPI's own ``health()`` (sync or async) says True.  It runs here, in
        the front, as upstream runs it in its API server (not where ``setup`` ran)."""
        for route in self.routes_by_index:
            try:
                result = route.api.health()
                if inspect.isawaitable(result):
                    result = await result
            except Exception:
                log.exception("%s.health() raised; /health answers 503",
                              type(route.api).__name__)
                return False
            if not result:
                return False
        return True

    def active_requests(self) -> int | None:
        """Requests in flight in every front (those holding a request slot), with
        ``track_requests``; None without it (as LitServe's ``active_requests``)."""
        if not self.plan.track_requests:
            return None
        board = self.board
        return sum(board.front_usage(i)[0] for i in range(board.fronts))

    def _on_request(self) -> None:
        assert self.callbacks is not None
        self.callbacks.trigger_event(ON_REQUEST, active_requests=self.active_requests(),
                                     litserver=self.server)

    def _on_response(self) -> None:
        assert self.callbacks is not None
        self.callbacks.trigger_event(ON_RESPONSE, litserver=self.server)

    # -- spec endpoints ------------------------------------------------------------------
    async def _spec(self, route: Route, path: str, method: str, headers: dict[bytes, bytes],
                    receive: Any, send: Any) -> None:
        clock = Clock.start(self.plan)
        try:
            length = content_length(headers)
            if length is not None:
                self.intake.check(0, length)
            data = await read_private(receive, self.intake.limit, length)
        except Refused as exc:
            return await _send(send, route.refusal(exc), close=True)
        if data is None:
            return
        text_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers.items()}
        decision = route.spec.front(path, method, data, text_headers)
        if not hasattr(decision, "payload"):  # Immediate
            return await _send(send, Reply(P.RESULT, decision.status, P.CT_OTHER,
                                           b"content-type: " + decision.content_type + b"\r\n",
                                           decision.body))
        meta = {"context": decision.context} if decision.context else {}
        meta_bytes = pickle.dumps(meta, protocol=5) if meta else b""
        flags = P.STREAM if decision.stream else 0
        try:
            hold, inline = await place(self.intake, meta_bytes, Body(decision.payload),
                                       clock.wait_until)
        except Refused as exc:
            return await _send(send, route.refusal(exc))
        ready = Ready(P.SPEC, hold, len(decision.payload), len(meta_bytes), inline)
        await self._submit(route, ready, flags, clock, receive, send)

    # -- the predict path ----------------------------------------------------------------
    async def _predict(self, route: Route, scope: Scope, headers: dict[bytes, bytes],
                       receive: Any, send: Any) -> None:
        clock = Clock.start(self.plan)
        flags = route.flags | accept_flags(headers.get(b"accept", b""))
        try:
            got = await self._read(scope, headers, receive, clock)
        except Refused as exc:  # the body may be unread: close the connection
            return await _send(send, route.refusal(exc), close=True)
        if got is None:  # the client went away while sending
            return
        kind, meta, meta_bytes, body = got
        try:
            ready = await self._prepare(route, kind, meta, meta_bytes, body, clock)
        except Refused as exc:
            return await _send(send, route.refusal(exc))
        await self._submit(route, ready, flags, clock, receive, send)

    async def _read(self, scope: Scope, headers: dict[bytes, bytes], receive: Any,
                    clock: Clock) -> tuple[int, dict[str, Any], bytes, Body] | None:
        """The request's kind, meta and complete body (None: the client went away)."""
        direct = scope.get(SCOPE_KEY)
        if direct is not None:  # the protocol is reading the body straight into our arena
            ticket: DirectTicket = direct.ticket
            body = await await_direct(receive, self.intake, ticket)
            return None if body is None else (ticket.kind, ticket.meta, ticket.meta_bytes, body)
        kind, meta = kind_and_meta(headers)
        meta_bytes = pickle.dumps(meta, protocol=5) if meta else b""
        length = content_length(headers)
        body = await read_body(receive, self.intake, meta_bytes, length, clock.wait_until)
        return None if body is None else (kind, meta, meta_bytes, body)

    async def _prepare(self, route: Route, kind: int, meta: dict[str, Any], meta_bytes: bytes,
                       body: Body, clock: Clock) -> Ready:
        """Check a complete body and give it a hold; gives back what it held on a refusal."""
        try:
            if kind == P.FORM and looks_like_json(meta, body.data):
                kind, meta = P.JSON, {}  # `curl -d '{...}'` without a Content-Type
                if body.hold is None:
                    meta_bytes = b""  # (in a block, the meta stays where the body follows it)
            validate(kind, body.data, meta, route.model)
            hold, inline = await place(self.intake, meta_bytes, body, clock.wait_until)
        except BaseException:
            if body.hold is not None:
                self.intake.give_back(body.hold)
            raise
        return Ready(kind, hold, len(body.data), len(meta_bytes), inline)

    def place_direct(self, scope: Scope, length: int) -> Direct | None:
        """Called by the protocol when headers are parsed: reserve the arena block a large
        body will be read into, or None to let it take the ordinary path."""
        route = self.direct_routes.get(scope["path"])
        if route is None or length <= PRIVATE_MAX:
            return None
        headers = _headers(scope)
        if self.api_key is not None and not key_matches(headers, self.api_key):
            return None
        try:
            kind, meta = kind_and_meta(headers)
            meta_bytes = pickle.dumps(meta, protocol=5) if meta else b""
            hold = self.intake.try_reserve(meta_bytes, length)
        except Refused:
            return None  # the ordinary path answers with the error
        if hold is None:
            return None  # no room now: the ordinary path waits for it
        return Direct(self.intake.view(hold, length), DirectTicket(hold, kind, meta, meta_bytes))

    # -- posting and answering -----------------------------------------------------------
    async def _submit(self, route: Route, ready: Ready, flags: int, clock: Clock, receive: Any,
                      send: Any) -> None:
        """Post the request (503 when the queue stays full), then send its answer."""
        hold = ready.hold
        block = P.NO_BLOCK if hold.block is None else hold.block
        rec = P.RequestRecord(self.index, route.index, ready.kind, self.gen, flags, hold.slot,
                              hold.seq, block, ready.data_len, ready.meta_len, clock.deadline,
                              ready.inline)
        if self.callbacks is not None:
            self._on_request()
        try:
            pending = await self.dispatch.post(hold, rec, clock.wait_until)
        except Busy as exc:
            return await _send(send, route.refusal(exc))
        await self._respond(pending, clock.deadline, receive, send, route)

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
        # LitServe's on_response: a whole answer once it succeeded; a stream when it ends,
        # however it ends (the spec routes have none)
        callbacks = None if route.spec is not None else self.callbacks
        try:
            while True:
                reply = await pending.next(loop)
                if reply is DISCONNECTED:
                    return
                if reply is WORKER_DIED:
                    reply = route.stream_error(500, DIED) if started else route.error(500, DIED)
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
                    if callbacks is not None and reply.kind != P.ERROR and not route.opts.stream:
                        self._on_response()
                    return await _send(send, reply)
                await send({"type": "http.response.body", "body": reply.body})
                return
        finally:
            watch_timer.cancel()
            for task in watch:
                task.cancel()
            if callbacks is not None and route.opts.stream:
                self._on_response()

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
        self.guard.stop()
        self.dispatch.close()
        self.intake.close()
        self.board.close()


# -- helpers --------------------------------------------------------------------------
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


async def _send(send: Any, reply: Reply, close: bool = False) -> None:
    """Send a whole answer; ``close``: end the connection after it (the request's body
    may not have been read, so the connection cannot carry another request)."""
    headers = _response_headers(reply)
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
