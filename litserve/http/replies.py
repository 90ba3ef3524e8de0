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
    return Reply(P.ERROR, status, P.CT_JSON, headers,
                 orjson.dumps({"detail": detail}, default=str))


class Refused(Exception):
    """The request cannot go on: answer ``status`` with ``detail`` (and header lines),
    in the shape of the route that refuses it (``Route.refusal``)."""

    def __init__(self, status: int, detail: Any, headers: bytes = b"") -> None:
        super().__init__(status, detail)
        self.status, self.detail, self.headers = status, detail, headers


class Busy(Refused):
    """No slot, arena space or ring cell within the bounded wait: a 503 that says when
    to come back."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, detail, b"retry-after: %d\r\n" % RETRY_AFTER_S)
