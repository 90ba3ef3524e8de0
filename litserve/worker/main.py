"""Entry point of a worker process (spawned by the supervisor)."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

from .. import protocol as P
from ..callbacks.base import CallbackRunner
from ..config import Plan
from ..ipc.errors import SharedMemoryFull
from ..ipc.lease import Lease
from ..ipc.lifeline import die_with_parent
from ..loggers import attach as attach_loggers
from .runner import Runner

SETUP_FAILED = 3


def worker_main(plan: Plan, j: int, gen: int, parent: int) -> None:
    """Load the APIs, run ``setup`` on this worker's device, then serve until STOP."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when we stop
    die_with_parent(parent, signal.SIGKILL)  # the supervisor is already gone
    Lease.join(plan.token)  # held until exit: this process keeps the names alive
    logging.basicConfig(level=plan.log_level.upper(), format="%(levelname)s:%(name)s: %(message)s")
    board = P.Board(P.ServerNames.of(plan.name).board)
    device = plan.devices[j]
    try:
        _use_device(device)
        shipped = plan.unpack()
        apis, specs = shipped.apis, shipped.specs
        attach_loggers(plan, apis)
        callbacks = CallbackRunner(shipped.callbacks) if shipped.callbacks else None
        for api in apis:
            api.device = device
            if callbacks is not None:
                callbacks.trigger_event("on_before_setup", lit_api=api)
            api.setup(device)
            if callbacks is not None:
                callbacks.trigger_event("on_after_setup", lit_api=api)
        runner = _runner_class(apis)(plan, j, gen, apis, specs, callbacks)
    except SharedMemoryFull as exc:  # a sentence says it all
        print(f"litserve: worker {j} cannot start: {exc}", file=sys.stderr, flush=True)
        board.set_worker(j, gen, P.FAILED)
        os._exit(SETUP_FAILED)
    except BaseException:
        print(f"litserve: worker {j} failed in setup({device!r}):", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        board.set_worker(j, gen, P.FAILED)
        os._exit(SETUP_FAILED)
    gc.freeze()  # what setup made (the model, imports) is never scanned by the collector again
    board.beat(j)
    threading.Thread(target=_heartbeat, args=(board, j), name="litserve-heartbeat",
                     daemon=True).start()
    board.set_worker(j, gen, P.READY)
    try:
        runner.serve()
    finally:
        board.set_worker(j, gen, P.STOPPED)
        runner.close()
        board.close()


def _runner_class(apis: list[Any]) -> type[Runner]:
    """The async runner (``litserve.worker.aio``) when any LitAPI has ``enable_async``:
    it serves every route of this worker then (a plain API's hooks run one at a time in
    a thread of their own, off its event loop); else the plain one."""
    if any(getattr(api, "enable_async", False) for api in apis):
        from .aio import AsyncRunner

        return AsyncRunner
    return Runner


def _heartbeat(board: P.Board, j: int) -> None:
    """Beat on the board while this process runs (a stopped or frozen worker stops
    beating, and /health counts it out)."""
    while True:
        time.sleep(P.HEARTBEAT_S)
        board.beat(j)


def _use_device(device: str) -> None:
    """Make ``device`` the current CUDA device of this process (when it is one)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.set_device(int(device.split(":")[1]) if ":" in device else 0)
