"""Reading a request body: where its bytes go, and what it holds while they arrive.

* A large body with a Content-Length is read by the protocol straight into an arena
  block reserved when its headers were parsed (``http/direct.py``); the app only waits
  for it to be complete (``await_direct``).
* A small body (at most ``PRIVATE_MAX``) is collected in the front's own memory and
  takes a slot (and a block) only once complete: a client that sends part of a small
  body and stops holds nothing that other requests need.
* Any other body goes into an arena block as it arrives: a known length is reserved
  whole (after a bounded wait for room), a body of unknown length (chunked) starts in
  private memory and moves to a block that grows with it, up to ``max_payload_size``.

Every function here gives back what it reserved when it does not return it (a
disconnect, a malformed body, an error): the caller owns a hold only once it has it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import protocol as P
from .intake import Hold, Intake, too_large
from .replies import Refused

PRIVATE_MAX = 64 * 1024  # bodies up to this size are collected before anything is reserved

Receive = Any


@dataclass(slots=True)
class Body:
    """A complete body: in ``hold``'s block, or (``hold`` None) bytes of our own."""

    data: Any  # bytes, or a memoryview of the arena
    hold: Hold | None = None


@dataclass(slots=True)
class DirectTicket:
    """What the protocol reserved for a body it reads straight into the arena."""

    hold: Hold
    kind: int
    meta: dict[str, Any]
    meta_bytes: bytes


async def await_direct(receive: Receive, intake: Intake, ticket: DirectTicket) -> Body | None:
    """Wait until the protocol has read the whole body into the arena; None (and the hold
    given back) when the client went away first."""
    try:
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                intake.give_back(ticket.hold)
                return None
            if not msg.get("more_body", False):
                hold = ticket.hold
                hold.filled = hold.capacity
                return Body(intake.view(hold), hold)
    except BaseException:
        intake.give_back(ticket.hold)
        raise


async def read_private(receive: Receive, limit: int, length: int | None = None
                       ) -> bytes | None:
    """The whole body in our own memory (bounded by ``limit``); None on disconnect."""
    msg = await receive()
    if msg["type"] == "http.request" and not msg.get("more_body", False):  # in one piece
        body: bytes = msg.get("body", b"")
        if len(body) > limit:
            raise too_large(len(body), limit)
        if length is not None and len(body) != length:
            raise _length_mismatch(len(body), length)
        return body
    if msg["type"] == "http.disconnect":
        return None
    data = bytearray(msg.get("body", b""))
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        data += msg.get("body", b"")
        if len(data) > limit:
            raise too_large(len(data), limit)
        if not msg.get("more_body", False):
            if length is not None and len(data) != length:
                raise _length_mismatch(len(data), length)
            return bytes(data)


async def read_body(receive: Receive, intake: Intake, meta: bytes, length: int | None,
                    wait_until: float) -> Body | None:
    """Read a body that the protocol did not place; None when the client went away."""
    if length is None:
        return await _read_unknown(receive, intake, meta, wait_until)
    if length > PRIVATE_MAX:
        hold = await intake.reserve(meta, length, wait_until)  # (checks the size first)
        return await _fill(receive, intake, hold, length)
    intake.check(len(meta), length)
    data = await read_private(receive, PRIVATE_MAX, length)
    return None if data is None else Body(data)


async def place(intake: Intake, meta: bytes, body: Body, wait_until: float) -> tuple[Hold, bytes]:
    """A hold for a complete body: (hold, inline bytes of the descriptor).  A body in
    our own memory travels inline when small, else is copied into a new block."""
    if body.hold is not None:
        return body.hold, b""
    data = body.data
    inline = len(meta) + len(data) <= P.INLINE_MAX
    hold = intake.try_reserve(b"" if inline else meta, 0 if inline else len(data), inline)
    if hold is None:  # no room right now: wait for it (bounded)
        hold = await intake.reserve(b"" if inline else meta, 0 if inline else len(data),
                                    wait_until, inline)
    if inline:
        return hold, meta + data
    intake.write(hold, data)
    body.data, body.hold = intake.view(hold), hold
    return hold, b""


async def _fill(receive: Receive, intake: Intake, hold: Hold, length: int | None
                ) -> Body | None:
    """Write the rest of the body into ``hold`` as it arrives."""
    try:
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                intake.give_back(hold)
                return None
            chunk = msg.get("body", b"")
            if length is not None and hold.filled + len(chunk) > length:
                raise _length_mismatch(hold.filled + len(chunk), length)
            intake.write(hold, chunk)
            if not msg.get("more_body", False):
                break
        if length is not None and hold.filled != length:
            raise _length_mismatch(hold.filled, length)
        return Body(intake.view(hold), hold)
    except BaseException:
        intake.give_back(hold)
        raise


async def _read_unknown(receive: Receive, intake: Intake, meta: bytes, wait_until: float
                        ) -> Body | None:
    """A chunked body: in our memory while small, then into a growing arena block."""
    data = bytearray()
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        data += msg.get("body", b"")
        more = msg.get("more_body", False)
        if not more:
            if len(data) > intake.limit:
                raise too_large(len(data), intake.limit)
            return Body(bytes(data))
        if len(data) > PRIVATE_MAX:
            break
    intake.check(len(meta), len(data))
    hold = await intake.reserve(meta, 0, wait_until)
    try:
        intake.write(hold, data)
    except BaseException:
        intake.give_back(hold)
        raise
    del data
    return await _fill(receive, intake, hold, None)


def _length_mismatch(got: int, declared: int) -> Refused:
    side = "longer" if got > declared else "shorter"
    return Refused(400, f"request body is {side} than its Content-Length ({declared} bytes)")
