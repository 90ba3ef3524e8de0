"""The worker loop: claim requests, batch them, run the user's hooks, post results."""

from __future__ import annotations

import inspect
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException

from .. import protocol as P
from ..api import LitAPI, request_model
from ..batching import BatchBuffers, stack
from ..callbacks.base import CallbackRunner
from ..config import Plan, RouteOptions
from ..ipc import PayloadTooLarge, Ring, RingEmpty
from ..ipc.errors import IPCError
from ..ipc.segment import Loan
from . import continuous, inputs, outputs
from .forms import FormError
from .links import FrontLink, OutArena

log = logging.getLogger("litserve.worker")


@dataclass
class Job:
    """One claimed request on its way through the hooks."""

    rec: P.RequestRecord
    link: FrontLink
    context: dict[str, Any]
    request: Any = None
    raw: Any = None  # what decode_request received (the spec's request model)
    output: Any = None  # predict's output for this request, then encode_response's
    loan: Loan | None = None  # the body's own mapping, until let go (inputs.payload)
    state: Any = None  # the spec's framing state
    started: bool = field(default=False)  # stream: first chunk sent
    done: bool = field(default=False)


# what _claim returns for a STOP record
STOP = Job(P.RequestRecord(0, 0, P.STOP, 0, 0, 0, 0, P.NO_BLOCK, 0, 0, 0.0),
           None, {})  # type: ignore[arg-type]


# the records that end a request: the front frees its arena block when it sees one
FINAL = frozenset({P.RESULT, P.END, P.ERROR})

# The worker's callback events (ls.Callback), fired with lit_api=<the LitAPI>, in
# LitServe's order: per request, or per batch when batching.  A stream's
# on_after_predict / on_after_encode_response fire when it ended (its generators were
# exhausted, or closed because every client left); a hook that raises skips the
# "after" events that would follow it, as in LitServe.
BEFORE_DECODE, AFTER_DECODE = "on_before_decode_request", "on_after_decode_request"
BEFORE_PREDICT, AFTER_PREDICT = "on_before_predict", "on_after_predict"
BEFORE_ENCODE, AFTER_ENCODE = "on_before_encode_response", "on_after_encode_response"


class HookError(Exception):
    """An error to send to the client: status, detail, headers."""

    def __init__(self, status: int, detail: Any, headers: list[tuple[str, str]] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or []


class InputsNotPrivate(BaseException):
    """A request's inputs, still held by the user, could not be given a private copy
    (the kernel refused the memory).  Going on would let the front reuse bytes they
    show, so the worker exits (not an Exception: no hook handler may swallow it); the
    supervisor restarts it and the fronts answer its requests with a 500."""


class Api:
    """One LitAPI with its options and what we precomputed about its hooks."""

    def __init__(self, api: LitAPI, opts: RouteOptions, spec: Any = None) -> None:
        self.api, self.opts, self.spec = api, opts, spec
        self.model = request_model(api)
        hooks = ("decode_request", "predict", "encode_response")
        self.ctx = {h: api.hook_takes_context(h) for h in hooks}
        self.own = {h: getattr(type(api), h) is not getattr(LitAPI, h) for h in hooks}
        self.default_batch = type(api).batch is LitAPI.batch
        # a spec may bring its own batch/unbatch (embeddings flatten the inputs of all
        # requests); used only when the LitAPI overrides neither
        self.spec_batch = (spec is not None and hasattr(spec, "batch") and self.default_batch
                           and type(api).unbatch is LitAPI.unbatch)
        self.buffers = BatchBuffers()
        self.continuous: continuous.Engine | None = None  # set by continuous.engines

    def call(self, hook: str, arg: Any, context: Any) -> Any:
        if self.spec is not None and not self.own[hook]:
            return getattr(self.spec, hook)(arg, context)
        fn = getattr(self.api, hook)
        return fn(arg, context=context) if self.ctx[hook] else fn(arg)

    def batch(self, xs: list[Any]) -> Any:
        if self.spec_batch:
            return self.spec.batch(xs)
        return stack(xs, self.buffers) if self.default_batch else self.api.batch(xs)

    def unbatch(self, y: Any, n: int) -> list[Any]:
        """One output per request of a batch of ``n``; a different count is a 500."""
        ys = self.spec.unbatch(y) if self.spec_batch else self.api.unbatch(y)
        if len(ys) != n:
            raise HookError(500, f"unbatch returned {len(ys)} outputs for a batch of "
                                 f"{n} requests; they must match")
        return ys


class Runner:
    def __init__(self, plan: Plan, j: int, gen: int, apis: list[LitAPI], specs: list[Any],
                 callbacks: CallbackRunner | None = None) -> None:
        self.plan, self.j, self.gen = plan, j, gen
        # None without callbacks: each event site costs one `is not None` test
        self.cb = callbacks if callbacks else None
        self.apis = [Api(a, o, s) for a, o, s in zip(apis, plan.routes, specs, strict=True)]
        server = P.ServerNames.of(plan.name)
        self.board = P.Board(server.board)
        self.requests = Ring(server.requests)
        self.out = OutArena(plan, j, gen)
        self.fronts: dict[tuple[int, int], FrontLink] = {}
        self._busy = self.board.busy_writer(j)
        self.engines = continuous.engines(self)  # routes with a ContinuousBatchingLoop

    # -- claiming ---------------------------------------------------------------------
    def serve(self) -> None:
        """Run until a STOP record arrives."""
        while True:
            if continuous.live(self.engines):  # sequences run: claim without waiting, step
                if continuous.turn(self, self.engines):
                    return  # a STOP came; the running sequences ended first
                continue
            first = self._claim(self.requests.get(None))
            if first is STOP:
                return
            if first is None:
                continue
            self._forget_dead_fronts(busy=first.link)
            self._busy(time.monotonic_ns())
            try:
                for api_index, jobs in self._collect(first).items():
                    api = self.apis[api_index]
                    # the window was the first route's: another route's requests come in
                    # batches of that route's own size (of one, without batching)
                    size = api.opts.max_batch_size
                    for k in range(0, len(jobs), size):
                        self._run(api, jobs[k : k + size])
            finally:
                self._busy(0)

    def _claim(self, body: bytes) -> Job | None:
        """A claimed Job, None when the request was cancelled or its front died, STOP to
        exit."""
        rec = P.RequestRecord.unpack(body)
        if rec.kind == P.STOP:
            return STOP
        if rec.kind == P.IGNORE:
            return None
        gen = self.board.front(rec.front)[0]  # the descriptor has its low byte only
        if gen & 0xFF != rec.fgen:
            return None  # its front died: the client is gone, nobody to answer
        key = (rec.front, gen)
        link = self.fronts.get(key)
        if link is None:
            try:
                link = self.fronts[key] = FrontLink(self.plan, *key)
            except IPCError:
                return None  # the front died (and was swept) since we looked
        if not link.slots.claim(rec.slot, rec.seq, self.j, self.gen):
            return None  # cancelled (client gone / deadline) before we got to it
        return Job(rec, link, {})

    def _front_alive(self, key: tuple[int, int]) -> bool:
        """Is generation key[1] of front key[0] the one the supervisor runs now?"""
        return self.board.front(key[0])[0] == key[1]

    def _dead_tags(self) -> list[tuple[int, int]]:
        return [link.tag for key, link in self.fronts.items() if not self._front_alive(key)]

    def _forget_dead_fronts(self, busy: FrontLink) -> None:
        """Free the response blocks lent to fronts that died, and their mappings (but
        not ``busy``'s, which a claimed job still reads; a later call closes it)."""
        for key in [k for k in self.fronts if not self._front_alive(k)]:
            link = self.fronts[key]
            freed = self.out.drop(link.tag)
            if link is not busy:
                self.fronts.pop(key).close()
            if freed:
                log.warning("freed %d response block(s) held by dead front %d", freed, key[0])

    def _collect(self, first: Job) -> dict[int, list[Job]]:
        """The batch window: up to max_batch_size jobs within batch_timeout of the first."""
        groups = {first.rec.api: [first]}
        opts = self.apis[first.rec.api].opts
        if opts.max_batch_size == 1:
            return groups
        deadline = time.monotonic() + opts.batch_timeout
        while len(groups[first.rec.api]) < opts.max_batch_size:
            left = deadline - time.monotonic()
            try:
                body = self.requests.get(left) if left > 0 else self.requests.try_get()
            except RingEmpty:
                break
            if body is None:
                break
            job = self._claim(body)
            if job is STOP:
                self.requests.put(body)  # let the STOP reach us after this batch
                break
            if job is not None:
                groups.setdefault(job.rec.api, []).append(job)
        return groups

    # -- running hooks -------------------------------------------------------------------
    def _run(self, api: Api, jobs: list[Job]) -> None:
        if api.continuous is not None:
            return api.continuous.add(jobs)  # they join its running batch
        if self.cb is not None:
            self._event(BEFORE_DECODE, api)
        jobs = [job for job in jobs if self._decode(api, job)]
        if not jobs:
            return
        if self.cb is not None:
            self._event(AFTER_DECODE, api)
        try:
            if api.spec is not None:
                self._spec(api, jobs)
            elif api.opts.stream:
                self._stream(api, jobs)
            else:
                self._unary(api, jobs)
        except Exception as exc:  # a hook raised: every unfinished job gets the error
            self._fail(jobs, exc, api)

    @staticmethod
    def _wire_input(api: Api, job: Job) -> Any:
        """What decode_request gets for ``job``: its body as parsed (or lent) from the
        arena; the request's meta context goes into job.context, a spec's state into
        job.state."""
        arena = job.link.arena if job.rec.block != P.NO_BLOCK else None
        meta, body, job.loan = inputs.payload(job.rec, arena)
        job.context.update(meta.get("context", {}))
        if job.rec.kind == P.SPEC:
            raw = api.spec.parse(bytes(body))
            job.state = api.spec.start(raw, job.context, bool(job.rec.flags & P.STREAM))
            return raw
        return _wire_object(job.rec, meta, body, api.model)

    def _decode(self, api: Api, job: Job) -> bool:
        try:
            job.raw = raw = self._wire_input(api, job)
            job.request = api.call("decode_request", raw, job.context)
            return True
        except Exception as exc:
            self._fail([job], exc, api, hook="decode_request")
            return False

    # What the hooks return is kept on the Job (job.output), never in a local of these
    # methods, and the batch lives only in _predict_batch: when a request's RESULT is
    # posted, nothing of the worker's still refers to its inputs, so their loan ends
    # without a copy unless the user kept them (see _let_go).
    def _unary(self, api: Api, jobs: list[Job]) -> None:
        cb = self.cb
        if api.opts.max_batch_size == 1:
            job = jobs[0]
            if cb is None:
                job.output = api.call("predict", job.request, job.context)
                job.output = api.call("encode_response", job.output, job.context)
            else:
                self._event(BEFORE_PREDICT, api)
                job.output = api.call("predict", job.request, job.context)
                self._event(AFTER_PREDICT, api)
                self._event(BEFORE_ENCODE, api)
                job.output = api.call("encode_response", job.output, job.context)
                self._event(AFTER_ENCODE, api)
            self._finish(job)
            return
        if cb is not None:
            self._event(BEFORE_PREDICT, api)
        self._predict_batch(api, jobs)
        if cb is not None:
            self._event(AFTER_PREDICT, api)
            self._event(BEFORE_ENCODE, api)
        for job in jobs:
            try:
                job.output = api.call("encode_response", job.output, job.context)
                self._finish(job)
            except Exception as exc:
                self._fail([job], exc, api, hook="encode_response")
        if cb is not None:
            self._event(AFTER_ENCODE, api)

    def _predict_batch(self, api: Api, jobs: list[Job]) -> None:
        """predict on the batch of ``jobs``; each job.output is its share of the result."""
        x = api.batch([job.request for job in jobs])
        y = api.call("predict", x, [job.context for job in jobs])
        for job, out in zip(jobs, api.unbatch(y, len(jobs)), strict=True):
            job.output = out

    def _finish(self, job: Job) -> None:
        """Post job.output (what encode_response returned) as the job's RESULT."""
        enc = outputs.encode(job.output, job.rec.flags)
        job.output = None
        self._post(job, P.RESULT, enc.status, enc.ctype, enc.meta, enc.parts)
        job.done = True

    def _stream(self, api: Api, jobs: list[Job]) -> None:
        if self.cb is not None:
            self._event(BEFORE_PREDICT, api)
        if api.opts.max_batch_size == 1:
            self._stream_one(api, jobs[0])
        else:
            self._stream_batch(api, jobs)
        if self.cb is not None:
            self._event(AFTER_PREDICT, api)
            self._event(AFTER_ENCODE, api)
        # the generators, the batch and the last chunk went with the calls above
        for job in jobs:
            self._post(job, P.END, 200, P.CT_NDJSON, b"", [])
            job.done = True

    def _stream_one(self, api: Api, job: Job) -> None:
        gen = api.call("predict", job.request, job.context)
        if self.cb is not None:
            self._event(BEFORE_ENCODE, api)
        chunks = api.call("encode_response", gen, job.context)
        for chunk in chunks:
            self._chunk(job, chunk)
            if self._gone(job):
                _close(chunks, gen)  # the client left: stop generating
                break

    def _stream_batch(self, api: Api, jobs: list[Job]) -> None:
        x = api.batch([job.request for job in jobs])
        gen = api.call("predict", x, [job.context for job in jobs])
        if self.cb is not None:
            self._event(BEFORE_ENCODE, api)
        steps = api.call("encode_response", gen, [job.context for job in jobs])
        for step in steps:
            for job, chunk in zip(jobs, step, strict=False):
                self._chunk(job, chunk)
            if all(self._gone(job) for job in jobs):
                _close(steps, gen)  # every client of the batch left
                break

    # -- specs: the spec frames every encoded output --------------------------------------
    def _spec(self, api: Api, jobs: list[Job]) -> None:
        # One lane per answer asked for (OpenAI's n): predict runs once for each, in
        # batches of at most max_batch_size lanes.
        lanes = [(job, k) for job in jobs for k in range(api.spec.choices(job.state))]
        size = api.opts.max_batch_size
        for part in (lanes[i : i + size] for i in range(0, len(lanes), size)):
            if size == 1:
                [(job, k)] = part
                if k and self._gone(job):
                    continue  # nobody waits for the remaining choices
                if self.cb is not None:
                    self._event(BEFORE_PREDICT, api)
                y = api.call("predict", job.request, job.context)
                streamed = inspect.isgenerator(y)
                if self.cb is not None:
                    self._predicted(api, streamed)
                self._spec_outputs(api, job, y, streamed, k)
            else:
                streamed = self._spec_batch(api, part)
            if self.cb is not None:
                self._encoded(api, streamed)
        for job in jobs:
            self._spec_finish(api, job)

    def _predicted(self, api: Api, streamed: bool) -> None:
        """The events once predict returned: a generator's predict ends with its last
        output (see _encoded)."""
        if not streamed:
            self._event(AFTER_PREDICT, api)
        self._event(BEFORE_ENCODE, api)

    def _encoded(self, api: Api, streamed: bool) -> None:
        """The events once every output was encoded."""
        if streamed:
            self._event(AFTER_PREDICT, api)
        self._event(AFTER_ENCODE, api)

    def _spec_batch(self, api: Api, lanes: list[tuple[Job, int]]) -> bool:
        """Whether predict was a generator."""
        if self.cb is not None:
            self._event(BEFORE_PREDICT, api)
        x = api.batch([job.request for job, _ in lanes])
        y = api.call("predict", x, [job.context for job, _ in lanes])
        streamed = inspect.isgenerator(y)
        if self.cb is not None:
            self._predicted(api, streamed)
        if streamed and api.own["encode_response"]:
            self._spec_batch_encoded(api, lanes, y)
        elif streamed:
            for step in y:
                outs: list[Any] = list(step)
                for (job, k), out in zip(lanes, outs, strict=False):
                    self._spec_outputs(api, job, iter([out]), True, k)
                if all(self._gone(job) for job, _ in lanes):
                    y.close()  # every client of the batch left
                    break
        else:
            for (job, k), out in zip(lanes, api.unbatch(y, len(lanes)), strict=True):
                self._spec_outputs(api, job, out, False, k)
        return streamed

    def _spec_batch_encoded(self, api: Api, lanes: list[tuple[Job, int]], y: Any) -> None:
        """LitServe's shape of a streamed batch with the LitAPI's own encode_response: it
        gets the batch's stream (through the LitAPI's unbatch, if it has one) and the list
        of contexts, and yields, per step, one encoded output per lane (None: nothing)."""
        contexts = [job.context for job, _ in lanes]
        own_unbatch = type(api.api).unbatch is not LitAPI.unbatch
        steps = api.call("encode_response", api.api.unbatch(y) if own_unbatch else y, contexts)
        for step in steps:
            for (job, k), out in zip(lanes, step, strict=False):
                if out is not None:
                    self._spec_send(api, job, [out], None, k)
            if all(self._gone(job) for job, _ in lanes):
                _close(steps, y)  # every client of the batch left
                break

    def _spec_outputs(self, api: Api, job: Job, y: Any, streamed: bool, choice: int) -> None:
        encoded = api.call("encode_response", y, job.context)
        items = encoded if streamed and _iterable(encoded) else [encoded]
        self._spec_send(api, job, items, y, choice)

    def _spec_send(self, api: Api, job: Job, items: Any, y: Any, choice: int) -> None:
        """Frame encoded outputs of one answer with the spec and send (or keep) them."""
        stream = bool(job.rec.flags & P.STREAM)
        for item in items:
            data = api.spec.chunk(job.state, item, choice)
            if not data:
                continue
            if stream:
                self._post(job, P.CHUNK, 200, P.CT_SSE, b"", [data])
                self._started(job)
                if self._gone(job):
                    _close(items, y)  # the client left: stop generating
                    return
            else:
                job.state.setdefault("_body", []).append(data)

    def _spec_finish(self, api: Api, job: Job) -> None:
        if job.done:
            return
        tail = api.spec.finish(job.state)
        if job.rec.flags & P.STREAM:
            self._post(job, P.END, 200, P.CT_SSE, b"", [tail])
        else:
            body = b"".join(job.state.get("_body", [])) + tail if isinstance(job.state, dict) \
                else tail
            self._post(job, P.RESULT, 200, P.CT_JSON, b"", [body])
        job.done = True

    def _event(self, name: str, api: Api) -> None:
        assert self.cb is not None
        self.cb.trigger_event(name, lit_api=api.api)

    def _chunk(self, job: Job, chunk: Any) -> None:
        ctype, data = outputs.encode_chunk(chunk)
        self._post(job, P.CHUNK, 200, ctype, b"", [data])
        self._started(job)

    @staticmethod
    def _started(job: Job) -> None:
        if not job.started:
            job.started = True
            # Offer the CPU to the front right after a stream's first chunk: on a busy
            # machine it otherwise waits for our time slice to end (time to first token).
            os.sched_yield()

    def _fail(self, jobs: list[Job], exc: Exception, api: Api, hook: str = "") -> None:
        """Answer every unfinished job with the error ``exc`` stands for.  An unexpected
        exception is logged with its traceback and one request id per job; the client gets
        ``Internal Server Error`` and its id, never the exception's text."""
        failure = _describe(exc, hook)
        pending = [job for job in jobs if not job.done]
        ids = [uuid.uuid4().hex if failure.hidden else "" for _ in pending]
        if failure.hidden or failure.status >= 500:
            _log_failure(exc, api, hook, failure, ids)
        for job, request_id in zip(pending, ids, strict=True):
            self._post(job, P.ERROR, *_error_reply(api.spec, job, failure, request_id))
            job.done = True

    def _gone(self, job: Job) -> bool:
        """Nobody waits for this job's output any more (client left, or its front died)."""
        return (job.link.slots.abandoned(job.rec.slot, job.rec.seq)
                or not self._front_alive(job.link.key))

    def _post(self, job: Job, kind: int, status: int, ctype: int, meta: bytes,
              parts: list[Any]) -> None:
        """Post one record of the job's output.  ``parts`` is consumed: emptied once its
        bytes are written.  Before a FINAL record the job's inputs are let go."""
        if not self._front_alive(job.link.key):
            self._written(job, kind, parts)
            return None  # its front died: the output has nowhere to go
        if kind == P.CHUNK:
            self._busy(time.monotonic_ns())  # a stream making progress is not stuck
        size = sum(memoryview(p).nbytes for p in parts)
        rec = job.rec
        if len(meta) + size <= P.INLINE_MAX:
            inline = meta + b"".join(bytes(p) for p in parts)
            block = P.NO_BLOCK
        else:
            try:
                block, size = self.out.write(meta, parts, self._dead_tags)
            except PayloadTooLarge as exc:
                parts.clear()
                enc = outputs.error(500, str(exc))
                return self._post(job, P.ERROR, 500, enc.ctype, b"", enc.parts)
            inline = b""
            self.out.lend(block, job.link.tag)
        self._written(job, kind, parts)
        done = P.Completion(self.j, self.gen, kind, status, rec.slot, rec.seq, block, size,
                            len(meta), ctype, inline)
        job.link.done.put(done.pack(), timeout=self.plan.queue_wait * 6)
        return None

    def _written(self, job: Job, kind: int, parts: list[Any]) -> None:
        """The record's bytes are out of ``parts``: drop them, and before a FINAL record
        let the job's inputs go (the front may reuse the request's block once it sees it)."""
        parts.clear()
        if kind in FINAL:
            self._let_go(job)

    @staticmethod
    def _let_go(job: Job) -> None:
        """Drop the worker's references to the job's inputs and settle their loan: the
        mapping is gone if nothing else holds it, else a private copy for whoever does."""
        job.request = job.raw = job.output = None
        loan, job.loan = job.loan, None
        if loan is None:
            return
        try:
            if not loan.settle():
                log.debug("request %d kept its inputs: %d bytes copied", job.rec.seq,
                          loan.nbytes)
        except OSError as exc:
            log.critical("cannot give kept inputs a private copy (%s); the worker exits "
                         "so that the front's reused arena block cannot show through", exc)
            raise InputsNotPrivate(str(exc)) from exc

    def close(self) -> None:
        continuous.close(self.engines)
        for link in self.fronts.values():
            link.close()
        self.out.close()
        self.requests.close()
        self.board.close()


def _wire_object(rec: P.RequestRecord, meta: dict[str, Any], body: Any, model: Any) -> Any:
    """The parsed body; a body the front could not check (a form) that is malformed -> 400."""
    try:
        return inputs.request_object(rec, meta, body, model)
    except FormError as exc:
        raise HookError(400, str(exc)) from None


def _close(*generators: Any) -> None:
    for g in generators:
        if hasattr(g, "close"):
            g.close()


def _iterable(x: Any) -> bool:
    return hasattr(x, "__iter__") and hasattr(x, "__next__")


@dataclass(frozen=True)
class Failure:
    """What a client is told about an exception raised while serving its request."""

    status: int
    detail: Any = None
    headers: list[tuple[str, str]] = field(default_factory=list)  # checked header lines
    hidden: str = ""  # why, for the log only: the client gets Internal Server Error


def _describe(exc: Exception, hook: str = "") -> Failure:
    """The Failure sent for an exception raised by a hook (or by our code around it).

    Only details the raiser meant for the client are sent: an HTTPException's (starlette's
    or FastAPI's, with its status and headers), ours (HookError), and the errors of a
    pydantic model validated in ``decode_request`` (422, without the input values).  Any
    other exception may carry anything (a token, a path, a repr of the model's output):
    it is hidden."""
    if isinstance(exc, HookError):
        return _checked(exc.status, exc.detail, exc.headers, exc)
    if isinstance(exc, HTTPException):
        return _checked(exc.status_code, exc.detail, list((exc.headers or {}).items()), exc)
    if hook == "decode_request" and isinstance(exc, ValidationError):
        return Failure(422, _validation_errors(exc))
    return Failure(500, hidden=f"{type(exc).__name__}: {exc}")


def _checked(status: int, detail: Any, headers: list[tuple[str, str]], exc: Exception
             ) -> Failure:
    """A Failure sent as given, unless a header of it cannot be sent (then a hidden 500)."""
    try:
        outputs.header_lines(headers)
    except outputs.InvalidHeader as bad:
        return Failure(500, hidden=f"{type(exc).__name__}({status}) with {bad}")
    return Failure(status, detail, headers)


def _log_failure(exc: Exception, api: Api, hook: str, failure: Failure, ids: list[str]
                 ) -> None:
    hook = hook or _hook_of(exc)
    where = f"{type(api.api).__name__}.{hook}" if hook else type(api.api).__name__
    if failure.hidden:
        log.error("request %s failed in %s: %s", ", ".join(ids) or "(none waiting)", where,
                  failure.hidden, exc_info=exc)
    else:
        log.error("request failed in %s: %s", where, exc, exc_info=exc)


# the code of the methods that call a user hook, with the hook's name in a local "hook"
HOOK_CODES = {Api.call.__code__}


def _hook_of(exc: Exception) -> str:
    """The user hook ``exc`` was raised in (the innermost ``Api.call`` it passed), or ""."""
    hook, tb = "", exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code in HOOK_CODES:
            hook = tb.tb_frame.f_locals.get("hook", hook)
        tb = tb.tb_next
    return hook


def _error_reply(spec: Any, job: Job, failure: Failure, request_id: str
                 ) -> tuple[int, int, bytes, list[Any]]:
    """(status, content-type code, header lines, body parts) of the error sent to ``job``:
    a response, or the last line of a stream that already started."""
    if spec is not None:
        return _spec_error_reply(spec, job, failure, request_id)
    if job.started:
        body = (outputs.error_json(outputs.INTERNAL, request_id) if failure.hidden
                else outputs.error_json(failure.detail))
        return failure.status, P.CT_OTHER, b"", [body + b"\n"]
    enc = (outputs.internal_error(request_id) if failure.hidden
           else outputs.error(failure.status, failure.detail, failure.headers))
    return enc.status, enc.ctype, enc.meta, enc.parts


def _spec_error_reply(spec: Any, job: Job, failure: Failure, request_id: str
                      ) -> tuple[int, int, bytes, list[Any]]:
    """The same in the spec's error shape; a hidden one says its request id in the message."""
    status, detail, headers = failure.status, failure.detail, failure.headers
    if failure.hidden:
        detail = f"{outputs.INTERNAL} (request id: {request_id})"
        headers = [("x-request-id", request_id)]
    if job.started:
        return status, P.CT_OTHER, b"", [spec.error_chunk(job.state, status, detail)]
    return status, P.CT_JSON, outputs.header_lines(headers), [spec.error_body(status, detail)]


def _validation_errors(exc: ValidationError) -> Any:
    return exc.errors(include_url=False, include_context=False, include_input=False)
