"""The connection guard's sweep goes on past a connection that cannot be timed out."""

from __future__ import annotations

from dataclasses import dataclass, field

from litserve.http.guard import BODY, HEADERS, Guard


@dataclass(eq=False)
class Conn:
    phase: int
    since: float = 0.0
    body_start: float = 0.0
    body_got: int = 0
    holds: bool = False
    broken: bool = False
    why: list[str] = field(default_factory=list)

    def time_out(self, why: str) -> None:
        if self.broken:
            raise RuntimeError("transport already gone")
        self.why.append(why)


def test_one_broken_connection_does_not_stop_the_sweep(caplog):
    guard = Guard(header_timeout=10, body_timeout=10)
    broken, slow_headers, slow_body = Conn(HEADERS, broken=True), Conn(HEADERS), Conn(BODY)
    guard.conns |= {broken, slow_headers, slow_body}
    guard.sweep(now=100.0)
    assert slow_headers.why == ["request headers took longer than 10 s"]
    assert slow_body.why == ["no request body bytes for 10 s"]
    assert broken not in guard.conns  # no longer watched: it is not retried every sweep
    assert "could not time out a connection" in caplog.text
