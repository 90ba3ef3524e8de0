"""The listening sockets of a server (made by the supervisor, served by the fronts)."""

from __future__ import annotations

import errno
import socket

from .errors import ConfigError

BACKLOG = 2048


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket bound to ``host:port``; a busy port is a ``ConfigError``
    saying so.  With ``reuse_port`` it joins the port's SO_REUSEPORT group (one socket per
    front, the kernel spreading connections over them); otherwise all fronts share it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound: {exc}"
        raise ConfigError(f"port {port} on {host} {why}") from None
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock
