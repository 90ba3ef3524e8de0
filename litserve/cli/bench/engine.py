"""The load generator inside one bench process.

An asyncio loop (uvloop when installed) drives keep-alive connections entirely from
protocol callbacks: a response's last byte arrives in ``data_received``, is recorded,
and the next request is written from the same callback -- no task, future or timer
per request.  Requests are pre-encoded bytes.  A sized response is parsed by a few
``bytes.find`` calls; chunked, streamed or close-delimited ones go through the
client's sans-IO parser.

Closed loop: every connection sends its next request as soon as the previous answer
is complete.  Open loop: arrivals follow a Poisson process of the given rate and take
an idle connection; when none is idle they wait in a backlog, and their latency counts
from their arrival (so a slow server cannot hide queueing, as in wrk2); arrivals
still waiting when the run ends are reported as dropped, never sent.

A request is *measured* when it is sent inside the measured window (after the warmup);
the window closes after ``duration`` or once ``requests`` were sent, and the run ends
when every request in flight has ended (answer, error or timeout).  Nothing is retried:
a failed request is counted as an error and the next one is a new request.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from litserve.cli.bench.payloads import Payload
from litserve.cli.bench.stats import Stats
from litserve.client._http1 import END, Data, Head, Parser
from litserve.client.errors import ClientError

now_ns = time.monotonic_ns
SPLIT_BODY = 256 * 1024  # bodies at least this big are written apart from the head
SWEEP_S = 0.05
MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class EngineConfig:
    host: str
    port: int
    payload: Payload
    connections: int
    rate: float | None  # None: closed loop
    warmup_s: float
    duration_s: float | None
    requests: int | None  # measured requests this process sends at most
    timeout_s: float
    seed: int = 0
    tls: bool = False  # https
    cafile: str | None = None  # trust this CA (PEM) instead of the system's
    insecure: bool = False  # do not check the server's certificate


class Conn(asyncio.Protocol):
    """One connection, and the request on it (if any)."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self.t: Any = None
        self.busy = False
        self.dead = False
        self.t0 = 0  # when the request's latency starts (send, or arrival in open loop)
        self.sent_ns = 0
        self.measured = False
        self.buf = b""
        self.need = -1  # body bytes still to come; -1 while reading the head
        self.status = 0
        self.close_after = False
        self.rx = 0
        self.parts: list[bytes] | None = None
        self.ctype = ""
        self.headers: dict[str, str] = {}
        # streams always go through the parser, which sees chunk boundaries
        self.parser: Parser | None = Parser() if engine.payload.stream else None
        self.last_chunk = 0

    # -- asyncio callbacks -----------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            return self.e.fail(self, "protocol", "bytes arrived with no request in flight")
        self.rx += len(data)
        if self.parser is not None:
            return self._general(data)
        if self.need >= 0:
            self.need -= len(data)
            if self.parts is not None:
                self.parts.append(data)
            if self.need <= 0:
                self._sized_done()
            return
        buf = self.buf + data if self.buf else data
        i = buf.find(b"\r\n\r\n")
        if i < 0:
            self.buf = buf
            if len(buf) > MAX_HEAD:
                self.e.fail(self, "protocol", "response head too long")
            return
        head = buf[:i].lower()
        j = head.find(b"\r\ncontent-length:")
        if j < 0 or b"\r\ntransfer-encoding:" in head or not buf.startswith(b"HTTP/1."):
            return self._switch_to_parser(buf)
        k = head.find(b"\r\n", j + 17)
        try:
            self.status = int(buf[9:12])
            self.need = int(head[j + 17 : k if k > 0 else len(head)]) - (len(buf) - i - 4)
        except ValueError:
            return self.e.fail(self, "protocol", "bad status line or Content-Length")
        self.close_after = b"\r\nconnection: close" in head or buf[7:8] == b"0"
        if self.e.check is not None:
            self.ctype, self.headers = _ctype_headers(buf[:i])
            self.parts = [buf[i + 4 :]]
        if self.need <= 0:
            self._sized_done()

    def eof_received(self) -> bool:
        if self.parser is not None and self.busy:
            self.parser.feed_eof()
            self._general(b"")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.dead = True
        if self.busy:
            self.e.fail(self, "closed", "the server closed the connection mid-request")
        self.e.lost(self)

    # -- requests --------------------------------------------------------------------

    def send(self, t0: int) -> None:
        e = self.e
        self.sent_ns = now = now_ns()
        self.t0 = t0 or now
        self.measured = self.t0 >= e.measure_from
        self.busy = True
        self.buf, self.need, self.rx, self.parts, self.last_chunk = b"", -1, 0, None, 0
        if self.parser is not None:
            self.parser.start()
        e.inflight += 1
        e.stats.sent += 1
        if e.req is not None:
            self.t.write(e.req)
        else:
            self.t.write(e.payload.head)
            self.t.write(e.payload.body)

    def _sized_done(self) -> None:
        if self.need < 0:
            return self.e.fail(self, "protocol", "more bytes than the Content-Length")
        body = b"".join(self.parts) if self.parts is not None else b""
        self.e.complete(self, self.status, body)

    def _switch_to_parser(self, buf: bytes) -> None:
        self.parser = Parser()
        self.parser.start()
        self._general(buf)

    def _general(self, data: bytes) -> None:
        p = self.parser
        assert p is not None
        try:
            p.feed(data)
            while (ev := p.next_event()) is not None:
                if ev is END:
                    return self.e.complete(self, self.status, b"".join(self.parts or ()))
                if isinstance(ev, Head):
                    self._head(ev)
                elif isinstance(ev, Data):
                    self._chunk(ev.data, ev.chunk_end)
        except ClientError as exc:
            self.e.fail(self, "protocol", str(exc))

    def _head(self, head: Head) -> None:
        self.status, self.close_after = head.status, not head.keep_alive
        self.ctype, self.headers = head.content_type, head.headers
        self.parts = [] if self.e.check is not None else None

    def _chunk(self, data: bytes, chunk_end: bool) -> None:
        if self.parts is not None:
            self.parts.append(data)
        kind = self.e.payload.stream
        if kind is None or not self.measured or self.status >= 400:
            return
        n = int(chunk_end) if kind == "chunks" else data.count(b"data:") - data.count(b"[DONE]")
        if n <= 0:
            return
        st, now = self.e.stats, now_ns()
        st.chunks += n
        if not self.last_chunk:
            st.ttfc.add((now - self.t0) // 1000)
        elif now != self.last_chunk:
            st.gaps.add((now - self.last_chunk) // 1000)
        self.last_chunk = now


def _ctype_headers(head: bytes) -> tuple[str, dict[str, str]]:
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers.get("content-type", "").split(";")[0].strip().lower(), headers


class Engine:
    def __init__(self, cfg: EngineConfig, progress: Any = None, slot: int = 0) -> None:
        self.cfg = cfg
        self.payload = cfg.payload
        self.check = cfg.payload.expect
        self.req = cfg.payload.head + cfg.payload.body if len(
            cfg.payload.body) < SPLIT_BODY else None
        self.size = cfg.payload.size
        self.stats = Stats()
        self.conns: list[Conn] = []
        self.idle: list[Conn] = []
        self.backlog: deque[int] = deque()
        self.inflight = 0
        self.pending_connects = 0
        self.issuing = False
        self.left = cfg.requests
        self.measure_from = 0
        self.stop_at: int | None = None
        self.progress, self.slot = progress, slot
        self.rng = random.Random(cfg.seed)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.finished: asyncio.Future[None] | None = None
        self.stop_requested = False
        self.started = False
        self.tasks: set[asyncio.Task[None]] = set()
        self._tls: Any = None

    # -- set-up ----------------------------------------------------------------------

    async def connect_all(self) -> str | None:
        """Open the connections; an error message when none could be opened."""
        self.loop = asyncio.get_running_loop()
        self.finished = self.loop.create_future()
        results = await asyncio.gather(*(self._open() for _ in range(self.cfg.connections)),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        self.idle = [c for c in self.conns if not c.dead]
        if not self.idle:
            err = errors[0] if errors else None
            return f"cannot connect to {self.cfg.host}:{self.cfg.port}: {err}"
        return None

    def _tls_context(self) -> Any:
        if not self.cfg.tls:
            return None
        if self._tls is None:
            import ssl

            self._tls = ssl.create_default_context(cafile=self.cfg.cafile)
            if self.cfg.insecure:
                self._tls.check_hostname = False
                self._tls.verify_mode = ssl.CERT_NONE
        return self._tls

    async def _open(self) -> Conn:
        assert self.loop is not None
        _, conn = await asyncio.wait_for(
            self.loop.create_connection(lambda: Conn(self), self.cfg.host, self.cfg.port,
                                        ssl=self._tls_context()), self.cfg.timeout_s)
        self.conns.append(conn)
        return conn

    async def run(self, start_ns: int) -> Stats:
        """Warm up from ``start_ns``, measure, drain; return the counts."""
        assert self.loop is not None and self.finished is not None
        self.measure_from = start_ns + int(self.cfg.warmup_s * 1e9)
        if self.cfg.duration_s is not None:
            self.stop_at = self.measure_from + int(self.cfg.duration_s * 1e9)
        self.stats.first_ns = self.measure_from
        self.loop.call_later(max(0.0, (start_ns - now_ns()) / 1e9), self._begin)
        self.loop.call_later(SWEEP_S, self._sweep)
        await self.finished
        return self.stats

    def _begin(self) -> None:
        if not self.cfg.warmup_s:  # timers may fire a little early: measure from here
            self.measure_from = self.stats.first_ns = now_ns()
            if self.cfg.duration_s is not None:
                self.stop_at = self.measure_from + int(self.cfg.duration_s * 1e9)
        self.issuing = self.started = True
        if self.cfg.rate is None:
            idle, self.idle = self.idle, []
            for conn in idle:
                self._next(conn)
        else:
            self.next_arrival = now_ns()
            self._arrivals()
        self._maybe_finish()

    # -- issuing ---------------------------------------------------------------------

    def may_issue(self, t: int) -> bool:
        if not self.issuing:
            return False
        if (self.stop_at is not None and t >= self.stop_at) or self.stop_requested:
            self.stop_issuing()
            return False
        if t >= self.measure_from and self.left is not None:
            if self.left <= 0:
                self.stop_issuing()
                return False
            self.left -= 1
        return True

    def stop_issuing(self) -> None:
        self.issuing = False
        self.stats.dropped += len(self.backlog)
        self.backlog.clear()
        self._maybe_finish()

    def _next(self, conn: Conn) -> None:
        """A connection is free: give it the next request, or park it."""
        if conn.dead:
            return
        if self.cfg.rate is None:
            if self.may_issue(now_ns()):
                conn.send(0)
            else:
                self.idle.append(conn)
        elif self.backlog:
            conn.send(self.backlog.popleft())
        else:
            self.idle.append(conn)

    def _arrivals(self) -> None:
        assert self.loop is not None and self.cfg.rate
        now = now_ns()
        while self.next_arrival <= now and self.issuing:
            if self.may_issue(self.next_arrival):
                if self.idle:
                    self.idle.pop().send(now)
                else:
                    self.backlog.append(now)
            self.next_arrival += int(self.rng.expovariate(self.cfg.rate) * 1e9)
        if self.issuing:
            self.loop.call_later(max(0.0, (self.next_arrival - now_ns()) / 1e9), self._arrivals)

    # -- outcomes --------------------------------------------------------------------

    def complete(self, conn: Conn, status: int, body: bytes) -> None:
        conn.busy = False
        self.inflight -= 1
        now = now_ns()
        st = self.stats
        if conn.measured:
            st.requests += 1
            st.statuses[status] += 1
            st.latency.add((now - conn.t0) // 1000)
            st.bytes_out += self.size
            st.bytes_in += conn.rx
            st.last_ns = now
            if status < 400:
                self._judge(conn, body)
        else:
            st.warmup += 1
        if conn.close_after:
            conn.t.close()  # connection_lost reconnects
        else:
            self._next(conn)
        if not self.issuing:
            self._maybe_finish()

    def _judge(self, conn: Conn, body: bytes) -> None:
        if self.check is None:
            self.stats.ok += 1
            return
        wrong = self.check.check(conn.ctype, conn.headers, body)
        if wrong is None:
            self.stats.ok += 1
        else:
            self.stats.kinds["wrong answer"] += 1
            self.stats.wrong_example = self.stats.wrong_example or wrong

    def fail(self, conn: Conn, kind: str, why: str = "") -> None:
        """The request on ``conn`` ended without an answer; the connection is dropped."""
        if not conn.busy:
            conn.dead = True
            if conn.t is not None:
                conn.t.abort()
            return
        conn.busy = False
        self.inflight -= 1
        st = self.stats
        if conn.measured:
            st.requests += 1
            st.kinds[kind] += 1
            st.last_ns = now_ns()
            st.first_error = st.first_error or (f"{kind}: {why}" if why else kind)
        else:
            st.warmup += 1
        conn.dead = True
        conn.t.abort()
        self._maybe_finish()

    def lost(self, conn: Conn) -> None:
        """A connection closed: replace it while requests are still being issued."""
        if conn in self.idle:
            self.idle.remove(conn)
        if self.issuing and not self.stop_requested:
            self.pending_connects += 1
            self._spawn_reconnect()
        self._maybe_finish()

    def _spawn_reconnect(self) -> None:
        assert self.loop is not None
        task = self.loop.create_task(self._reconnect())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _reconnect(self) -> None:
        try:
            conn = await self._open()
        except (OSError, asyncio.TimeoutError) as exc:
            await self._connect_failed(f"{type(exc).__name__}: {exc}")
            return
        self.pending_connects -= 1
        self._next(conn)
        self._maybe_finish()

    async def _connect_failed(self, why: str) -> None:
        """A failed connect counts as a failed request; the next attempt is a new one."""
        now = now_ns()
        if self.may_issue(now):
            if now >= self.measure_from:
                self.stats.requests += 1
                self.stats.kinds["connect"] += 1
                self.stats.last_ns = now
                self.stats.first_error = self.stats.first_error or f"connect: {why}"
            else:
                self.stats.warmup += 1
            await asyncio.sleep(0.05)
        if self.issuing and not self.stop_requested:
            self._spawn_reconnect()
        else:
            self.pending_connects -= 1
            self._maybe_finish()

    def _sweep(self) -> None:
        """Every SWEEP_S: time out stuck requests, publish progress, stop when asked."""
        assert self.loop is not None
        now = now_ns()
        limit = int(self.cfg.timeout_s * 1e9)
        for conn in self.conns:
            if conn.busy and now - conn.sent_ns > limit:
                self.fail(conn, "timeout", f"no answer within {self.cfg.timeout_s:g} s")
        self.conns = [c for c in self.conns if not c.dead]
        if self.progress is not None:
            self._publish()
            if self.progress[-1] and not self.stop_requested:
                self.stop_requested = True
                self.stop_issuing()
        if self.stop_at is not None and now >= self.stop_at and self.issuing:
            self.stop_issuing()
        if self.finished is not None and not self.finished.done():
            self.loop.call_later(SWEEP_S, self._sweep)

    def _publish(self) -> None:
        st, base = self.stats, self.slot * 4
        self.progress[base : base + 4] = [st.requests, st.errors, st.warmup, st.sent]

    def _maybe_finish(self) -> None:
        if self.issuing or self.inflight or not self.started or self.finished is None:
            return
        if self.finished.done():
            return
        if self.pending_connects and not self.stop_requested:
            return
        for conn in self.conns:
            if not conn.dead:
                conn.t.close()
        if self.progress is not None:
            self._publish()
        self.finished.set_result(None)
