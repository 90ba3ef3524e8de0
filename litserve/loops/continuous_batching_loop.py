"""Continuous batching: many streams share each step of one model.

The worker (``litserve.worker.continuous``) drives these objects: it admits a claimed
request with ``add_request`` while ``has_capacity`` says yes, calls ``step`` once per
turn, sends each ``Output`` to its own request as a stream chunk (``encode_response``
first), ends a request's stream at its ``FINISH_STREAMING`` output (or sends its error at
``ERROR``), and calls ``mark_completed`` for every sequence that left, finished or not.
Override these four to change the policy; ``run`` and the other queue methods of
upstream LitServe are never called (see ``litserve.loops.base``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .base import LitAPIStatus, LitLoop


@dataclass
class Output:
    """One output of one step, for the sequence ``uid`` (``status``: a LitAPIStatus)."""

    uid: str
    output: Any
    status: str


class ContinuousBatchingLoop(LitLoop):
    """The LitAPI keeps the sequences: it implements ``add_request(uid, request)``,
    ``has_capacity()`` and ``step(prev_outputs) -> list[Output]`` (plain or ``async``).

    ``max_sequence_length`` is handed to the hooks that take it; ``no_pending_requests``
    and ``sleep_delay`` are accepted for upstream compatibility and have no effect (the
    worker admits requests between steps, never sleeping while sequences run).
    """

    def __init__(self, max_sequence_length: int = 2048, no_pending_requests: bool = False,
                 sleep_delay: float = 0.001) -> None:
        super().__init__()
        if isinstance(max_sequence_length, bool) or not isinstance(max_sequence_length, int) \
                or max_sequence_length < 1:
            raise ConfigError(f"max_sequence_length={max_sequence_length!r} is not valid; "
                              "use an int >= 1")
        self.max_sequence_length = max_sequence_length
        self.no_pending_requests, self.sleep_delay = no_pending_requests, sleep_delay
        self.active_sequences: dict[str, dict[str, Any]] = {}
        self.max_batch_size = 1  # the route's max_batch_size: the worker sets it

    def pre_setup(self, lit_api: Any, spec: Any = None) -> None:
        """ConfigError when neither this loop nor the LitAPI implements a hook we call."""
        mine = ContinuousBatchingLoop
        for hook, example in (("step", _STEP), ("add_request", _ADD), ("has_capacity", _CAP)):
            if getattr(type(self), hook) is getattr(mine, hook) and \
                    not callable(getattr(lit_api, hook, None)):
                raise ConfigError(f"{type(lit_api).__name__} must implement {hook}() to be "
                                  f"served with {type(self).__name__}:\n{example}")

    def add_request(self, uid: str, request: Any, lit_api: Any, lit_spec: Any = None,
                    transport: Any = None) -> None:
        """Start sequence ``uid`` for ``request`` (what the front parsed)."""
        lit_api.add_request(uid, request)
        self.active_sequences[uid] = {"input": request}

    def mark_completed(self, uid: str) -> None:
        """Forget sequence ``uid``: it finished, failed or its client left."""
        self.active_sequences.pop(uid, None)

    def has_capacity(self, lit_api: Any) -> bool:
        return bool(lit_api.has_capacity())

    async def step(self, prev_outputs: list[Output] | None, lit_api: Any, lit_spec: Any
                   ) -> list[Output]:
        """One step of every running sequence: their outputs."""
        outputs = lit_api.step(prev_outputs)
        if inspect.isawaitable(outputs):
            outputs = await outputs
        return list(outputs)


class DefaultContinuousBatchingLoop(ContinuousBatchingLoop):
    """The loop keeps the sequences: the LitAPI implements ``decode_request(request)``,
    ``predict(inputs, generated_sequences) -> one token per sequence``,
    ``has_finished(uid, token, max_sequence_length) -> bool`` and
    ``encode_response(token)``; at most ``max_batch_size`` sequences run at once.

    A sequence also ends after ``max_sequence_length`` tokens (upstream leaves that to
    ``has_finished``), so no stream runs unbounded.
    """

    def pre_setup(self, lit_api: Any, spec: Any = None) -> None:
        if not callable(getattr(lit_api, "has_finished", None)):
            raise ConfigError(f"{type(lit_api).__name__} must implement has_finished() to be "
                              f"served with {type(self).__name__}:\n{_FINISHED}")

    def add_request(self, uid: str, request: Any, lit_api: Any, lit_spec: Any = None,
                    transport: Any = None) -> None:
        self.active_sequences[uid] = {"input": lit_api.decode_request(request),
                                      "current_length": 0, "generated_sequence": []}

    def has_capacity(self, lit_api: Any) -> bool:
        return len(self.active_sequences) < self.max_batch_size

    async def step(self, prev_outputs: list[Output] | None, lit_api: Any, lit_spec: Any
                   ) -> list[Output]:
        if not self.active_sequences:
            return []
        uids = list(self.active_sequences)
        seqs = [self.active_sequences[uid] for uid in uids]
        tokens = lit_api.predict([s["input"] for s in seqs],
                                 [s["generated_sequence"] for s in seqs])
        if inspect.isawaitable(tokens):
            tokens = await tokens
        tokens = list(tokens)
        if len(tokens) != len(uids):
            raise ValueError(f"predict returned {len(tokens)} tokens for {len(uids)} "
                             "sequences; return one token per sequence, in order")
        outputs = []
        for uid, seq, token in zip(uids, seqs, tokens, strict=True):
            seq["generated_sequence"].append(token)
            seq["current_length"] += 1
            outputs.append(Output(uid, token, LitAPIStatus.OK))
            if lit_api.has_finished(uid, token, self.max_sequence_length) or \
                    seq["current_length"] >= self.max_sequence_length:
                outputs.append(Output(uid, "", LitAPIStatus.FINISH_STREAMING))
        return outputs


_STEP = """
    def step(self, prev_outputs):  # one step of every sequence
        return [Output(uid, token, LitAPIStatus.OK) for uid, token in ...]"""
_ADD = """
    def add_request(self, uid, request):  # a new sequence joins the batch
        self.sequences[uid] = request"""
_CAP = """
    def has_capacity(self):  # may another sequence join now?
        return len(self.sequences) < self.max_batch_size"""
_FINISHED = """
    def has_finished(self, uid, token, max_sequence_length):
        return token == self.eos or len(self.generated[uid]) >= max_sequence_length"""
