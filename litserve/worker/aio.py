"""The async worker loop: one asyncio event loop serves many requests at once.

``litserve.worker.main`` picks this runner for a worker when any of its LitAPIs has
``enable_async=True``; without one the plain ``Runner`` serves, unchanged.

* A claim thread takes request records off the request ring (the blocking
  ``Ring.get``) and hands them to the event loop in one ``call_soon_threadsafe`` per
  wake-up.  It holds at most ``MAX_IN_FLIGHT`` requests at once: a permit is taken per
  record and given back when the request ended.
* On the loop thread each request is claimed (``Runner._claim``) and runs as a task:
  decode_request, predict, encode_response, each awaited.  Every shared-memory write of
  a job (claim, records, letting its inputs go) happens on the loop thread.  With
  ``max_batch_size > 1`` a batch window gathers a route's jobs (up to the size, within
  ``batch_timeout`` of the first); then one task awaits ``predict`` on the batch.
  Several batches may be in flight at once.
* How a hook is called: ``async def`` is awaited, an async generator is iterated, a
  plain ``def`` hook of an ``enable_async`` API runs in a thread (``asyncio.to_thread``,
  as LitServe "asyncifies" it).  A LitAPI without ``enable_async`` served by the same
  worker (another route) keeps its one-call-at-a-time semantics: its hooks, and the
  ``next()`` of its generators, run in one thread of its own, never on the loop.
  The defaults (LitAPI's, a spec's) run inline.
* A client that leaves, or a request past its deadline (the front marks both the same
  way), cancels its task: a watcher looks every ``WATCH_S``, a stream also after every
  chunk.  The generators are closed (``aclose``), and every way out of a task posts the
  request's final record and lets go of its inputs, as the plain runner does.
* ``busy`` on the board (``predict_timeout``) is the last time any task made progress
  (a hook returned, a chunk was posted), and 0 when no task runs: a worker whose loop
  is blocked, or whose every request waits, for longer than ``predict_timeout`` is
  replaced, as a plain worker stuck in one batch is.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .. import protocol as P
from ..api import LitAPI
from ..batching import BatchBuffers, stack
from ..callbacks.base import CallbackRunner
from ..config import Plan
from . import outputs
from .runner import (
    AFTER_DECODE,
    AFTER_ENCODE,
    AFTER_PREDICT,
    BEFORE_DECODE,
    BEFORE_ENCODE,
    BEFORE_PREDICT,
    HOOK_CODES,
    STOP,
    Api,
    InputsNotPrivate,
    Job,
    Runner,
    _iterable,
)

log = logging.getLogger("litserve.worker")

MAX_IN_FLIGHT = 1024  # requests one async worker holds at once (claimed, not yet ended)
HANDOFF = 64  # most records the claim thread hands to the loop per wake-up
WATCH_S = 0.1  # how often the requests in flight are checked for clients that left
STOP_WAIT_S = 2.0  # at STOP (the fronts are gone): how long cancelled tasks may take
POOL = 8  # batch buffers kept per route for reuse
CANCELLED = "the request was cancelled: its client left or its deadline passed"

# how the async runner calls a hook
INLINE, CORO, AGEN, THREAD = range(4)
_END = object()


class Hooks:
    """How the async runner calls one route's hooks (worked out once)."""

    def __init__(self, api: Api, progress: Any) -> None:
        self.api = api
        self.progress = progress  # says that a task made progress (board: busy)
        self.async_api = bool(getattr(api.api, "enable_async", False))
        self.kind = {h: _kind(api, h) for h in ("decode_request", "predict", "encode_response")}
        # a plain LitAPI's hooks run one at a time, as in a plain worker, off the loop
        self.executor = None if self.async_api else ThreadPoolExecutor(
            1, thread_name_prefix=f"litserve-{type(api.api).__name__}")
        self.pool: list[BatchBuffers] = []
        # a spec's own batch/unbatch keep state between them (the embeddings' sizes)
        self.lock = asyncio.Lock() if api.spec_batch else None

    async def call(self, hook: str, arg: Any, context: Any) -> Any:
        kind = self.kind[hook]
        if kind == INLINE:
            return self.api.call(hook, arg, context)
        fn = getattr(self.api.api, hook)
        kwargs = {"context": context} if self.api.ctx[hook] else {}
        if kind == AGEN:
            return fn(arg, **kwargs)
        if kind == CORO:
            out = await fn(arg, **kwargs)
        else:
            if self.executor is None:
                out = await asyncio.to_thread(fn, arg, **kwargs)
            else:
                out = await asyncio.get_running_loop().run_in_executor(
                    self.executor, functools.partial(fn, arg, **kwargs))
            if inspect.isawaitable(out):  # a plain def that returned a coroutine
                out = await out
        self.progress()
        return out

    def iterate(self, items: Any) -> Any:
        """``items`` as an async iterable: an async one as it is, a generator advanced
        in this route's thread(s), anything else (a list) as it is."""
        if hasattr(items, "__aiter__"):
            return items
        if hasattr(items, "__next__"):
            return _threaded(items, self.executor)
        return _listed(items)

    def one(self, item: Any) -> Any:
        """A stream of the one output ``item``, of the kind this route's hooks iterate."""
        return _listed([item]) if self.async_api else iter([item])

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)


HOOK_CODES.add(Hooks.call.__code__)


def _kind(api: Api, hook: str) -> int:
    if not api.own[hook]:
        return INLINE  # LitAPI's default or the spec's: ours, quick
    fn = getattr(api.api, hook)
    if inspect.isasyncgenfunction(fn):
        return AGEN
    if inspect.iscoroutinefunction(fn):
        return CORO
    return THREAD


async def _threaded(gen: Any, executor: ThreadPoolExecutor | None) -> AsyncIterator[Any]:
    loop = asyncio.get_running_loop()
    try:
        while (item := await loop.run_in_executor(executor, next, gen, _END)) is not _END:
            yield item
    finally:
        _close_sync(gen)


async def _listed(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def _close_sync(gen: Any) -> None:
    close = getattr(gen, "close", None)
    if close is not None:
        with contextlib.suppress(ValueError):  # still running in its thread (cancelled)
            close()


async def _aclose(*gens: Any) -> None:
    """Close the generators among ``gens`` (their ``finally`` runs now); an exhausted
    one is left as it is, and so is anything else (an output with a close method)."""
    for gen in gens:
        if inspect.isasyncgen(gen):
            with contextlib.suppress(RuntimeError):  # "already running": closed elsewhere
                await gen.aclose()
        elif inspect.isgenerator(gen):
            _close_sync(gen)


def _streams(y: Any) -> bool:
    return inspect.isgenerator(y) or inspect.isasyncgen(y)


@dataclass
class Flight:
    """One task: its jobs (one, a batch, or spec lanes' requests)."""

    jobs: list[Job]
    hooks: Hooks
    buffers: BatchBuffers | None = None  # the batch's reused buffer, held to its end
    cancelled: bool = False


@dataclass
class Window:
    """A route's batch window: the jobs so far, and the timer that closes it."""

    jobs: list[Job]
    timer: asyncio.TimerHandle | None = field(default=None)


class AsyncRunner(Runner):
    def __init__(self, plan: Plan, j: int, gen: int, apis: list[LitAPI], specs: list[Any],
                 callbacks: CallbackRunner | None = None) -> None:
        super().__init__(plan, j, gen, apis, specs, callbacks)
        self.hooks = [Hooks(api, self._progress) for api in self.apis]
        self.tasks: dict[asyncio.Task[None], Flight] = {}
        self.windows: dict[int, Window] = {}
        self.users: dict[tuple[int, int], int] = {}  # front key -> its jobs in flight
        self.permits = threading.Semaphore(MAX_IN_FLIGHT)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Future[None] | None = None
        self.taker: threading.Thread | None = None

    # -- the loop ---------------------------------------------------------------------
    def serve(self) -> None:
        """Run until a STOP record arrives."""
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        finally:
            for hooks in self.hooks:
                hooks.close()
            asyncio.set_event_loop(None)
            loop.close()

    async def _serve(self) -> None:
        loop = self.loop = asyncio.get_running_loop()
        self.stopping = loop.create_future()
        self.taker = threading.Thread(target=self._take, name="litserve-claim", daemon=True)
        self.taker.start()
        watcher = loop.create_task(self._watch())
        try:
            await self.stopping  # raises what made the worker fail, if anything
        finally:
            watcher.cancel()
            # STOP comes once the fronts are gone: nobody waits for these any more
            for window in list(self.windows.values()):
                self._unwindow(window)
            for task, flight in self.tasks.items():
                flight.cancelled = True
                task.cancel()
            if self.tasks:
                await asyncio.wait(list(self.tasks), timeout=STOP_WAIT_S)

    def close(self) -> None:
        if self.taker is not None and self.taker.is_alive():
            # it waits in Ring.get (the worker failed before STOP): its mapping stays
            # until the process exits
            for link in self.fronts.values():
                link.close()
            self.out.close()
            self.board.close()
            return
        super().close()

    def _take(self) -> None:
        """The claim thread: request records to the loop, at most MAX_IN_FLIGHT held."""
        loop, permits = self.loop, self.permits
        assert loop is not None
        get, try_get = self.requests.get, self.requests.try_get
        try:
            while True:
                permits.acquire()
                bodies = [get(None)]
                stop = bodies[0][4] == P.STOP
                while not stop and len(bodies) < HANDOFF and permits.acquire(blocking=False):
                    body = try_get()
                    if body is None:
                        permits.release()
                        break
                    bodies.append(body)
                    stop = body[4] == P.STOP
                loop.call_soon_threadsafe(self._arrive, bodies)
                if stop:
                    return
        except BaseException as exc:
            with contextlib.suppress(RuntimeError):  # the loop is closed: exiting anyway
                loop.call_soon_threadsafe(self._die, exc)

    def _die(self, exc: BaseException) -> None:
        if self.stopping is not None and not self.stopping.done():
            self.stopping.set_exception(exc)
        else:
            log.error("worker %d: error while stopping", self.j, exc_info=exc)

    def _arrive(self, bodies: list[bytes]) -> None:
        try:
            for body in bodies:
                job = self._claim(body)
                if job is None or job is STOP:
                    self.permits.release()
                    if job is STOP and self.stopping is not None and not self.stopping.done():
                        self.stopping.set_result(None)
                    continue
                key = job.link.key
                self.users[key] = self.users.get(key, 0) + 1
                self._admit(job)
            self._sweep()
        except BaseException as exc:
            self._die(exc)

    def _sweep(self) -> None:
        """Free the response blocks lent to fronts that died, and close their mappings
        once none of their jobs is in flight."""
        for key in [k for k in self.fronts if not self._front_alive(k)]:
            link = self.fronts[key]
            freed = self.out.drop(link.tag)
            if not self.users.get(key):
                self.fronts.pop(key).close()
            if freed:
                log.warning("freed %d response block(s) held by dead front %d", freed, key[0])

    def _admit(self, job: Job) -> None:
        index = job.rec.api
        opts = self.apis[index].opts
        if opts.max_batch_size == 1:
            self._launch(index, [job])
            return
        window = self.windows.get(index)
        if window is None:
            assert self.loop is not None
            window = self.windows[index] = Window([job])
            window.timer = self.loop.call_later(opts.batch_timeout, self._flush, index)
        else:
            window.jobs.append(job)
        if len(window.jobs) >= opts.max_batch_size:
            self._flush(index)

    def _flush(self, index: int) -> None:
        window = self.windows.pop(index, None)
        if window is not None:
            if window.timer is not None:
                window.timer.cancel()
            self._launch(index, window.jobs)

    def _unwindow(self, window: Window) -> None:
        """End the jobs of a window that never ran (the worker stops)."""
        if window.timer is not None:
            window.timer.cancel()
        for index, w in list(self.windows.items()):
            if w is window:
                del self.windows[index]
        for job in window.jobs:
            self._drop(job)
        self._release(window.jobs)

    def _launch(self, index: int, jobs: list[Job]) -> None:
        assert self.loop is not None
        flight = Flight(jobs, self.hooks[index])
        task = self.loop.create_task(self._go(self.apis[index], flight))
        if not self.tasks:
            self._busy(time.monotonic_ns())
        self.tasks[task] = flight
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        flight = self.tasks.pop(task)
        try:
            for job in flight.jobs:
                if not job.done:  # cancelled (its client left), or before it started
                    self._drop(job)
            exc = None if task.cancelled() else task.exception()
            if exc is not None:
                raise exc
            if flight.buffers is not None and not flight.cancelled and \
                    len(flight.hooks.pool) < POOL:
                flight.hooks.pool.append(flight.buffers)
        except BaseException as exc:  # InputsNotPrivate, or a bug of ours: the worker exits
            self._die(exc)
        finally:
            flight.buffers = None
            self._release(flight.jobs)
            self._busy(time.monotonic_ns() if self.tasks else 0)

    def _release(self, jobs: list[Job]) -> None:
        for job in jobs:
            key = job.link.key
            left = self.users.get(key, 0) - 1
            if left > 0:
                self.users[key] = left
            else:
                self.users.pop(key, None)
            self.permits.release()

    def _drop(self, job: Job) -> None:
        """The final record of a job nobody waits for (the front ignores it, and frees
        what the request held)."""
        if not job.done:
            self._post(job, P.ERROR, 504, P.CT_JSON, b"", [outputs.error_json(CANCELLED)])
            job.done = True

    def _progress(self) -> None:
        self._busy(time.monotonic_ns())

    async def _watch(self) -> None:
        """Cancel the tasks whose every unfinished request lost its client."""
        while True:
            await asyncio.sleep(WATCH_S)
            for task, flight in list(self.tasks.items()):
                if flight.cancelled:
                    continue
                left = [job for job in flight.jobs if not job.done]
                if left and all(self._gone(job) for job in left):
                    flight.cancelled = True
                    task.cancel()

    # -- running hooks ----------------------------------------------------------------
    async def _go(self, api: Api, flight: Flight) -> None:
        # cancelled: _ended posts the final records of what did not finish
        with contextlib.suppress(asyncio.CancelledError):
            await self._run_async(api, flight)

    async def _run_async(self, api: Api, flight: Flight) -> None:
        hooks = flight.hooks
        if self.cb is not None:
            self._event(BEFORE_DECODE, api)
        jobs = [job for job in flight.jobs if await self._decode_async(api, hooks, job)]
        if not jobs:
            return
        if self.cb is not None:
            self._event(AFTER_DECODE, api)
        try:
            if api.spec is not None:
                await self._spec_async(api, flight, jobs)
            elif api.opts.stream:
                await self._stream_async(api, flight, jobs)
            else:
                await self._unary_async(api, flight, jobs)
        except Exception as exc:  # a hook raised: every unfinished job gets the error
            self._fail(jobs, exc, api)

    async def _decode_async(self, api: Api, hooks: Hooks, job: Job) -> bool:
        try:
            job.raw = self._wire_input(api, job)  # (no local holds the body while we await)
            job.request = await hooks.call("decode_request", job.raw, job.context)
            return True
        except Exception as exc:
            self._fail([job], exc, api, hook="decode_request")
            return False

    def _batch(self, api: Api, flight: Flight, xs: list[Any]) -> Any:
        if api.spec_batch:
            return api.spec.batch(xs)
        if not api.default_batch:
            return api.api.batch(xs)
        if flight.buffers is None:  # one per batch in flight: the next may not reuse it
            pool = flight.hooks.pool
            flight.buffers = pool.pop() if pool else BatchBuffers()
        return stack(xs, flight.buffers)

    # As in Runner: what the hooks return is kept on the Job, and the batch lives only
    # in _predict_batch_async, so a request's inputs are let go without a copy.
    async def _unary_async(self, api: Api, flight: Flight, jobs: list[Job]) -> None:
        hooks, cb = flight.hooks, self.cb
        if api.opts.max_batch_size == 1:
            job = jobs[0]
            if cb is not None:
                self._event(BEFORE_PREDICT, api)
            job.output = await hooks.call("predict", job.request, job.context)
            if cb is not None:
                self._event(AFTER_PREDICT, api)
                self._event(BEFORE_ENCODE, api)
            job.output = await hooks.call("encode_response", job.output, job.context)
            if cb is not None:
                self._event(AFTER_ENCODE, api)
            self._finish(job)
            return
        if cb is not None:
            self._event(BEFORE_PREDICT, api)
        await self._predict_batch_async(api, flight, jobs)
        if cb is not None:
            self._event(AFTER_PREDICT, api)
            self._event(BEFORE_ENCODE, api)
        for job in jobs:
            try:
                job.output = await hooks.call("encode_response", job.output, job.context)
                self._finish(job)
            except Exception as exc:
                self._fail([job], exc, api, hook="encode_response")
        if cb is not None:
            self._event(AFTER_ENCODE, api)

    async def _predict_batch_async(self, api: Api, flight: Flight, jobs: list[Job]) -> None:
        x = self._batch(api, flight, [job.request for job in jobs])
        y = await flight.hooks.call("predict", x, [job.context for job in jobs])
        for job, out in zip(jobs, api.unbatch(y, len(jobs)), strict=True):
            job.output = out

    async def _stream_async(self, api: Api, flight: Flight, jobs: list[Job]) -> None:
        if self.cb is not None:
            self._event(BEFORE_PREDICT, api)
        if api.opts.max_batch_size == 1:
            await self._stream_one_async(api, flight.hooks, jobs[0])
        else:
            await self._stream_batch_async(api, flight, jobs)
        if self.cb is not None:
            self._event(AFTER_PREDICT, api)
            self._event(AFTER_ENCODE, api)
        for job in jobs:
            self._post(job, P.END, 200, P.CT_NDJSON, b"", [])
            job.done = True

    async def _stream_one_async(self, api: Api, hooks: Hooks, job: Job) -> None:
        gen = await hooks.call("predict", job.request, job.context)
        if self.cb is not None:
            self._event(BEFORE_ENCODE, api)
        chunks = await hooks.call("encode_response", gen, job.context)
        items = hooks.iterate(chunks)
        try:
            async for chunk in items:
                self._chunk(job, chunk)
                if self._gone(job):
                    break  # the client left: stop generating
        finally:
            await _aclose(items, chunks, gen)

    async def _stream_batch_async(self, api: Api, flight: Flight, jobs: list[Job]) -> None:
        hooks = flight.hooks
        x = self._batch(api, flight, [job.request for job in jobs])
        gen = await hooks.call("predict", x, [job.context for job in jobs])
        if self.cb is not None:
            self._event(BEFORE_ENCODE, api)
        steps = await hooks.call("encode_response", gen, [job.context for job in jobs])
        items = hooks.iterate(steps)
        try:
            async for step in items:
                for job, chunk in zip(jobs, step, strict=False):
                    self._chunk(job, chunk)
                if all(self._gone(job) for job in jobs):
                    break  # every client of the batch left
        finally:
            await _aclose(items, steps, gen)

    # -- specs ------------------------------------------------------------------------
    async def _spec_async(self, api: Api, flight: Flight, jobs: list[Job]) -> None:
        hooks = flight.hooks
        lanes = [(job, k) for job in jobs for k in range(api.spec.choices(job.state))]
        size = api.opts.max_batch_size
        for part in (lanes[i : i + size] for i in range(0, len(lanes), size)):
            if size == 1:
                [(job, k)] = part
                if k and self._gone(job):
                    continue  # nobody waits for the remaining choices
                if self.cb is not None:
                    self._event(BEFORE_PREDICT, api)
                y = await hooks.call("predict", job.request, job.context)
                streamed = _streams(y)
                if self.cb is not None:
                    self._predicted(api, streamed)
                await self._spec_outputs_async(api, hooks, job, y, streamed, k)
                del y
            elif hooks.lock is not None:
                async with hooks.lock:
                    streamed = await self._spec_batch_async(api, flight, part)
            else:
                streamed = await self._spec_batch_async(api, flight, part)
            if self.cb is not None:
                self._encoded(api, streamed)
        for job in jobs:
            self._spec_finish(api, job)

    async def _spec_batch_async(self, api: Api, flight: Flight, lanes: list[tuple[Job, int]]
                                ) -> bool:
        hooks = flight.hooks
        if self.cb is not None:
            self._event(BEFORE_PREDICT, api)
        x = self._batch(api, flight, [job.request for job, _ in lanes])
        y = await hooks.call("predict", x, [job.context for job, _ in lanes])
        streamed = _streams(y)
        if self.cb is not None:
            self._predicted(api, streamed)
        if streamed:
            items = hooks.iterate(y)
            try:
                async for step in items:
                    outs: list[Any] = list(step)
                    for (job, k), out in zip(lanes, outs, strict=False):
                        await self._spec_outputs_async(api, hooks, job, hooks.one(out), True, k)
                    if all(self._gone(job) for job, _ in lanes):
                        break  # every client of the batch left
            finally:
                await _aclose(items, y)
        else:
            for (job, k), out in zip(lanes, api.unbatch(y, len(lanes)), strict=True):
                await self._spec_outputs_async(api, hooks, job, out, False, k)
        return streamed

    async def _spec_outputs_async(self, api: Api, hooks: Hooks, job: Job, y: Any,
                                  streamed: bool, choice: int) -> None:
        encoded = await hooks.call("encode_response", y, job.context)
        many = streamed and (hasattr(encoded, "__aiter__") or _iterable(encoded))
        items = hooks.iterate(encoded if many else [encoded])
        stream = bool(job.rec.flags & P.STREAM)
        try:
            async for item in items:
                data = api.spec.chunk(job.state, item, choice)
                if not data:
                    continue
                if stream:
                    self._post(job, P.CHUNK, 200, P.CT_SSE, b"", [data])
                    self._started(job)
                    if self._gone(job):
                        return  # the client left: stop generating
                else:
                    job.state.setdefault("_body", []).append(data)
        finally:
            await _aclose(items, encoded, y)


__all__ = ["AsyncRunner", "InputsNotPrivate", "MAX_IN_FLIGHT"]
