"""What the front answers: one completion or error as the event loop sees it."""

from __future__ import annotations

from typing import Any

import orjson

from .. import protocol as P

RETRY_AFTER_S = 1  # what a 503 tells the client to wait before it retries


class Reply:
    """One completion (or an answer made by the front itself)."""

    __slots__ = ("kind", "status", "ctype", "headers", "body")

    def __init__(self, kind: int, status: int, ctype: int, headers: bytes, body: bytes):
        self.kind, self.status, self.ctype, self.headers, self.body = (
            kind, status, ctype, headers, body)


def json_error(status: int, detail: Any, headers: bytes = b"") -> Reply:
    return Reply(P.ERROR, status, P.CT_JSON, headers, orjson.dumps({"detail": detail}))


def busy(detail: str) -> Reply:
    """A 503 that says when to come back."""
    return json_error(503, detail, b"retry-after: %d\r\n" % RETRY_AFTER_S)


class Refused(Exception):
    """The request cannot go on; ``reply`` is the answer (a 4xx, or a 503)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


class Busy(Exception):
    """No slot, arena space or ring cell within the bounded wait (503)."""

    def reply(self) -> Reply:
        return busy(str(self))
