"""The front's side of the pipeline: post requests, receive completions.

A dedicated thread blocks on this front's completion ring, copies each result out
of the worker's out-arena (handing the block straight back), and passes the batch
of completions it drained to the event loop in one ``call_soon_threadsafe``.  The
event loop never blocks on IPC.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque

from .. import protocol as P
from ..config import Plan
from ..ipc import Arena, Ring, RingFull
from ..ipc.errors import IPCError, SegmentNotFound
from ..ipc.slots import POSTED
from .intake import Hold, Intake
from .replies import Reply

log = logging.getLogger("litserve.front")
EXIT_COMPLETIONS = 70  # exit code of a front whose completion thread failed
DIED = "the worker running this request died; it was restarted"
WORKER_DIED = Reply(P.WORKER_DIED, 500, P.CT_JSON, b"", b"")  # what a dead worker's request gets


class Pending:
    """A request posted by this front and not yet ended; it owns the request's hold."""

    __slots__ = ("hold", "replies", "waiter", "abandoned", "timer", "record")

    def __init__(self, hold: Hold) -> None:
        self.hold = hold
        self.record = b""  # the descriptor as posted (re-posted if a worker dies)
        self.replies: deque[Reply] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.abandoned = False
        self.timer: asyncio.TimerHandle | None = None

    @property
    def slot(self) -> int:
        return self.hold.slot

    @property
    def seq(self) -> int:
        return self.hold.seq

    def push(self, reply: Reply) -> None:
        self.replies.append(reply)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def next(self, loop: asyncio.AbstractEventLoop) -> Reply:
        while not self.replies:
            self.waiter = loop.create_future()
            await self.waiter
        return self.replies.popleft()


class Dispatcher:
    def __init__(self, plan: Plan, index: int, intake: Intake, gen: int = 0) -> None:
        self.plan, self.index, self.gen = plan, index, gen
        self.intake = intake
        self.slots = intake.slots
        done = P.FrontNames.of(plan.name, index, gen).done
        self.done = Ring(done, plan.completion_ring_cells, P.CELL_SIZE, create=True)
        self.requests = Ring(P.ServerNames.of(plan.name).requests)
        self.pending: dict[int, Pending] = {}
        self.outs: dict[tuple[int, int], tuple[Arena, Ring]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._drain, name="litserve-completions",
                                        daemon=True)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._thread.start()

    # -- posting (event loop) ---------------------------------------------------------
    async def post(self, hold: Hold, rec: P.RequestRecord, wait_until: float) -> Pending:
        """Publish the request: slot POSTED, then the record on the request ring.  From
        here the dispatcher owns ``hold``; on ``Busy`` it has been given back."""
        pending = Pending(hold)
        self.slots.post(hold.slot, hold.seq)
        body = pending.record = rec.pack()
        self.pending[hold.slot] = pending
        while True:
            try:
                self.requests.put(body, timeout=0)
                return pending
            except RingFull:
                try:
                    await self.intake.wait_room(wait_until, "the request queue is full")
                except BaseException:
                    self.cancel(pending)
                    raise

    def cancel(self, pending: Pending) -> bool:
        """Withdraw a request no worker has claimed (True), else mark it abandoned."""
        if self.slots.cancel(pending.slot, pending.seq):
            self._end(pending)
            return True
        self.slots.abandon(pending.slot, pending.seq)  # lets a streaming worker stop early
        pending.abandoned = True
        return False

    def _end(self, pending: Pending) -> None:
        if self.pending.get(pending.slot) is pending:
            del self.pending[pending.slot]
        if pending.timer is not None:
            pending.timer.cancel()
        self.intake.give_back(pending.hold)

    # -- completions (thread, then event loop) -----------------------------------------
    def _drain(self) -> None:
        """The completion thread.  A record it cannot handle is logged and dropped (its
        request still ends: at its worker's WORKER_DIED, or at its deadline); if the ring
        itself fails, the front exits so that the supervisor replaces it, rather than
        answer nothing but 504s while /health says ok."""
        try:
            while self._drain_once():
                pass
        except BaseException:
            log.critical("the completion thread failed; this front exits", exc_info=True)
            os._exit(EXIT_COMPLETIONS)

    def _drain_once(self) -> bool:
        """Hand one batch of completions to the event loop; False after the WAKE record."""
        batch = [self.done.get(None)]
        while len(batch) < 256 and (more := self.done.try_get()) is not None:
            batch.append(more)
        items = []
        go_on = True
        for body in batch:
            try:
                c = P.Completion.unpack(body)
                if c.kind == P.WAKE:
                    go_on = False
                elif c.kind != P.NOOP:
                    items.append((c, self._read(c)))
            except IPCError as exc:  # e.g. the out-arena of a worker that died since
                log.warning("dropped a completion record: %s", exc)
            except Exception:
                log.exception("dropped a completion record that could not be read: %r",
                              body[: P.HEADER_SIZE])
        if items:
            assert self.loop is not None
            self.loop.call_soon_threadsafe(self._deliver, items)
        return go_on

    def _read(self, c: P.Completion) -> Reply | None:
        if c.kind == P.WORKER_DIED:
            # Everything it posted came before this record: let go of its out-arena now,
            # so that its pages are freed before its replacement backs a new one.
            self._let_go_out((c.worker, c.gen))
            return None
        if c.block == P.NO_BLOCK:
            raw = c.inline
            headers, body = raw[: c.meta_len], raw[c.meta_len :]
        else:
            arena, releases = self._out(c.worker, c.gen)
            view = arena.view(c.block, c.meta_len + c.data_len)
            headers, body = bytes(view[: c.meta_len]), bytes(view[c.meta_len :])
            view.release()
            try:
                releases.put(P.RELEASE.pack(c.block, *P.lend_tag(self.index, self.gen)),
                             timeout=1.0)
            except RingFull:
                log.error("worker %d's release ring is full; block %d leaks", c.worker, c.block)
        return Reply(c.kind, c.status, c.ctype, headers, body)

    def _out(self, worker: int, gen: int) -> tuple[Arena, Ring]:
        key = (worker, gen)
        out = self.outs.get(key)
        if out is None:
            for old in [k for k in self.outs if k[0] == worker]:
                self._let_go_out(old)
            names = P.WorkerNames.of(self.plan.name, worker, gen)
            arena = Arena(names.out)
            try:
                out = self.outs[key] = (arena, Ring(names.releases))
            except BaseException:
                arena.close()
                raise
        return out

    def _let_go_out(self, key: tuple[int, int]) -> None:
        """Close this front's mapping of a worker generation's out-arena and release ring."""
        out = self.outs.pop(key, None)
        if out is not None:
            out[1].close()
            out[0].close()

    def _deliver(self, items: list[tuple[P.Completion, Reply | None]]) -> None:
        for c, reply in items:
            try:
                self._deliver_one(c, reply)
            except Exception:
                log.exception("dropped a completion (kind %d, slot %d) that could not be "
                              "delivered", c.kind, c.slot)

    def _deliver_one(self, c: P.Completion, reply: Reply | None) -> None:
        if reply is None:
            self._worker_died(c.worker, c.gen)
            return
        pending = self.pending.get(c.slot)
        if pending is None or pending.seq != c.seq:
            return  # already ended (e.g. failed when its worker died)
        if c.kind in (P.RESULT, P.END, P.ERROR):
            self._end(pending)
        if not pending.abandoned:
            pending.push(reply)

    def _worker_died(self, worker: int, gen: int) -> None:
        """Fail what generation ``gen`` of ``worker`` claimed (not what its replacement
        claimed since), and post again what it took off the ring unclaimed."""
        for slot, seq in self.slots.claimed_by(worker, gen):
            pending = self.pending.get(slot)
            if pending is None or pending.seq != seq:
                continue
            self._end(pending)
            pending.push(WORKER_DIED)  # its route renders it (a response, or a stream's end)
        self._repost_unclaimed()

    def _repost_unclaimed(self) -> None:
        """Post again every request still waiting for a worker.

        A worker that died between taking a descriptor off the ring and claiming its slot
        took the only copy with it.  Duplicates are harmless: the first worker to claim
        the slot wins the CAS and every other copy fails its claim and is skipped.
        """
        for pending in list(self.pending.values()):
            seq, _, state = self.slots.state(pending.slot)
            if state == POSTED and seq == pending.seq and pending.record:
                try:
                    self.requests.put(pending.record, timeout=0)
                except RingFull:
                    return  # the ring is full of waiting requests; the rest stay queued

    def close(self) -> None:
        try:
            self.done.put(P.Completion(0, 0, P.WAKE, 0, 0, 0, P.NO_BLOCK, 0, 0, 0).pack(),
                          timeout=1.0)
            self._thread.join(timeout=2.0)
        except (RingFull, SegmentNotFound, RuntimeError):
            pass
        for key in list(self.outs):
            self._let_go_out(key)
        for part in (self.requests, self.done):
            part.close()
