"""Continuous batching: streams join and leave one running batch between model steps.

A route whose LitAPI has ``loop=ContinuousBatchingLoop()`` (or a subclass) gets an
``Engine``.  While any engine has sequences, the runner's claim loop never blocks: each
turn it claims the requests already on the ring (while every engine can take one more),
then runs one step of each engine.  One step:

    loop.step(previous outputs)           -> [Output(uid, output, status), ...]
    OK                                    -> encode_response(output), one CHUNK to uid
    FINISH_STREAMING                      -> END to uid; it leaves
    ERROR                                 -> ERROR to uid; it leaves
    client gone / deadline passed (_gone) -> END (nobody reads it; frees the arena block)
    step raised                           -> ERROR to every running sequence
    then: waiting requests join while loop.has_capacity() says yes

Every sequence that leaves is ``mark_completed`` first, so the loop drops its inputs
before the final record lets the front reuse their bytes (Runner._let_go).  The loop's
hooks are ``async`` (upstream's signatures); they run on one event loop per engine.
A request of another route claimed during a turn runs at once, the batch waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException

from .. import protocol as P
from ..loops.base import LitAPIStatus
from ..loops.continuous_batching_loop import ContinuousBatchingLoop, Output
from ..loops.loops import check_options, continuous
from . import inputs
from .forms import FormError

if TYPE_CHECKING:
    from .runner import Api, Job, Runner

log = logging.getLogger("litserve.worker")


class Engine:
    """The running batch of one continuous-batching route."""

    def __init__(self, runner: Runner, api: Api, loop: ContinuousBatchingLoop) -> None:
        self.runner, self.api, self.loop = runner, api, loop
        loop.max_batch_size = api.opts.max_batch_size
        _upstream_attributes(api.api, api.opts)
        check_options(api.api, api.opts.stream, api.spec)
        self.events = asyncio.new_event_loop()
        self.running: dict[str, Job] = {}  # uid -> its job, in the loop's batch
        self.waiting: deque[Job] = deque()  # claimed, waiting for room
        self.previous: list[Output] | None = None

    @property
    def live(self) -> bool:
        return bool(self.running or self.waiting)

    @property
    def hungry(self) -> bool:
        """Should the runner claim another request for us? (At most one waits.)"""
        return not self.waiting

    # -- joining -------------------------------------------------------------------------
    def add(self, jobs: list[Job]) -> None:
        """Claimed requests of this route: each joins now if there is room, else waits."""
        self.waiting.extend(job for job in jobs if self._open(job))
        self._admit()

    def _open(self, job: Job) -> bool:
        """Read the job's body into job.raw (what add_request receives); False: failed."""
        try:
            arena = job.link.arena if job.rec.block != P.NO_BLOCK else None
            meta, body, job.loan = inputs.payload(job.rec, arena)
            job.context.update(meta.get("context", {}))
            try:
                job.raw = inputs.request_object(job.rec, meta, body, self.api.model)
            except FormError as exc:
                raise HTTPException(400, str(exc)) from None
            return True
        except Exception as exc:
            self.runner._fail([job], exc, self.api, hook="decode_request")
            return False

    def _admit(self) -> None:
        """Waiting requests join while the loop has room (an empty batch takes one)."""
        while self.waiting:
            job = self.waiting[0]
            if self.runner._gone(job):
                self._end(self.waiting.popleft())
                continue
            try:
                if self.running and not self.loop.has_capacity(self.api.api):
                    return
            except Exception as exc:
                self.runner._fail([self.waiting.popleft()], exc, self.api, hook="has_capacity")
                continue
            self._join(self.waiting.popleft())

    def _join(self, job: Job) -> None:
        uid = uuid.uuid4().hex
        try:
            self.loop.add_request(uid, job.raw, self.api.api, None)
        except Exception as exc:
            self._forget(uid)
            self.runner._fail([job], exc, self.api, hook="add_request")
            return
        self.running[uid] = job

    # -- stepping ------------------------------------------------------------------------
    def step(self) -> None:
        """One step of the running batch; then whoever left makes room for the waiting."""
        if self.running:
            try:
                outs = self.events.run_until_complete(
                    self.loop.step(self.previous, self.api.api, None))
                _check(outs)
            except Exception as exc:
                self._fail_all(exc)
                return
            self.previous = outs
            for out in outs:
                self._deliver(out)
            for uid in [u for u, job in self.running.items() if self.runner._gone(job)]:
                self._leave(uid)
        self._admit()

    def _deliver(self, out: Output) -> None:
        job = self.running.get(out.uid)
        if job is None:
            return  # it left already (its client went away) or was never ours
        if out.status == LitAPIStatus.FINISH_STREAMING:
            self._leave(out.uid)
        elif out.status == LitAPIStatus.ERROR:
            error = out.output if isinstance(out.output, Exception) else \
                RuntimeError(f"step() reported an error for {out.uid}: {out.output!r}")
            self._leave(out.uid, error)
        else:
            try:
                self.runner._chunk(job, self.api.call("encode_response", out.output,
                                                      job.context))
            except Exception as exc:
                self._leave(out.uid, exc, hook="encode_response")

    def drain(self) -> None:
        """Step until every running and waiting sequence has ended (at STOP)."""
        while self.live:
            self.step()

    # -- leaving -------------------------------------------------------------------------
    def _leave(self, uid: str, error: Exception | None = None, hook: str = "step") -> None:
        job = self.running.pop(uid)
        self._forget(uid)
        if error is None:
            self._end(job)
        else:
            self.runner._fail([job], error, self.api, hook=hook)

    def _end(self, job: Job) -> None:
        self.runner._post(job, P.END, 200, P.CT_NDJSON, b"", [])
        job.done = True

    def _forget(self, uid: str) -> None:
        try:
            self.loop.mark_completed(uid)
        except Exception:
            log.exception("%s.mark_completed(%r) raised", type(self.loop).__name__, uid)

    def _fail_all(self, exc: Exception) -> None:
        jobs = list(self.running.values())
        for uid in list(self.running):
            self._forget(uid)
        self.running.clear()
        self.previous = None
        self.runner._fail(jobs, exc, self.api, hook="step")

    def close(self) -> None:
        self.events.close()


def engines(runner: Runner) -> list[Engine]:
    """Give each of ``runner``'s routes whose loop batches continuously its Engine."""
    found = []
    for api in runner.apis:
        loop = continuous(getattr(api.api, "loop", "auto"))
        if loop is not None:
            api.continuous = Engine(runner, api, loop)
            found.append(api.continuous)
    return found


def live(found: list[Engine]) -> bool:
    return any(engine.live for engine in found)


def turn(runner: Runner, found: list[Engine]) -> bool:
    """Claim what is ready, then one step of every engine.  True when a STOP came (the
    running sequences have ended by then)."""
    stop = _claim_ready(runner, found)
    runner._busy(time.monotonic_ns())
    try:
        for engine in found:
            if stop:
                engine.drain()
            else:
                engine.step()
    finally:
        runner._busy(0)
    return stop


def _claim_ready(runner: Runner, found: list[Engine]) -> bool:
    """Claim the requests already on the ring while every engine can take one more; never
    wait.  True on a STOP record."""
    while all(engine.hungry for engine in found):
        body = runner.requests.try_get()
        if body is None:
            return False
        job = runner._claim(body)
        if job is None:
            continue
        if job.rec.kind == P.STOP:
            return True
        runner._forget_dead_fronts(busy=job.link)
        runner._run(runner.apis[job.rec.api], [job])
    return False


def close(found: list[Engine]) -> None:
    for engine in found:
        engine.close()


def _check(outs: list[Any]) -> None:
    bad = next((out for out in outs if not isinstance(out, Output)), None)
    if bad is not None:
        raise TypeError(f"step() returned a {type(bad).__name__} item; return a list of "
                        "litserve.loops.Output(uid, output, status)")


def _upstream_attributes(lit_api: Any, opts: Any) -> None:
    """Upstream's LitAPI has max_batch_size / batch_timeout / stream attributes, which
    continuous-batching hooks often read (has_capacity); give them the route's values."""
    for name in ("max_batch_size", "batch_timeout", "stream"):
        if not hasattr(lit_api, name):
            setattr(lit_api, name, getattr(opts, name))
