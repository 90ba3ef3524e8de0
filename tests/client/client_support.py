"""Start test servers as real processes and stop them by pid.

A server prints ``PORT <n>`` on stdout once it listens (``refserver.py`` does), or is
given a free port; either way it counts as started only once GET /health answers 200.
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REFSERVER = HERE / "refserver.py"
LITSERVER = HERE / "litserver_app.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 2.0, api_key: str | None = None,
             tls: bool = False) -> tuple[int, bytes]:
    """A minimal GET over a fresh connection (independent of the client under test)."""
    key = f"X-API-Key: {api_key}\r\n" if api_key else ""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock = _unverified_tls().wrap_socket(raw) if tls else raw
    except OSError:
        raw.close()
        raise
    with sock as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{key}Connection: close\r\n\r\n"
                  .encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head[9:12]), body


def _unverified_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


class ServerProcess:
    def __init__(self, argv: list[str], env: dict[str, str] | None = None,
                 port: int | None = None, tls: bool = False) -> None:
        self.argv, self.port, self.tls = argv, port, tls
        self.env = {**os.environ, **(env or {})}
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 -- closed in stop()
        self.api_key = self.env.get("LIT_SERVER_API_KEY") or None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self.log,
                                     env=self.env, cwd=ROOT)
        deadline = time.monotonic() + timeout
        if self.port is None:
            self.port = self._read_port(deadline)
        while time.monotonic() < deadline:
            self._check_alive("before answering GET /health")
            try:
                if http_get(self.port, "/health", 1.0, self.api_key, self.tls)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        log = self.output()
        self.stop()
        raise AssertionError(f"{self.argv} never answered GET /health with 200 "
                             f"within {timeout} s; log:\n{log}")

    def _read_port(self, deadline: float) -> int:
        assert self.proc is not None and self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=max(0.0, deadline - time.monotonic())):
                line = self.proc.stdout.readline().decode()
                if line.startswith("PORT "):
                    return int(line.split()[1])
                self._check_alive("before printing its port")
        log = self.output()
        self.stop()
        raise AssertionError(f"{self.argv} never printed 'PORT <n>'; log:\n{log}")

    def _check_alive(self, when: str) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.argv} exited with {self.proc.returncode} {when}; "
                                 f"log:\n{self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        import json

        assert self.port is not None
        return dict(json.loads(http_get(self.port, "/stats", 2.0, self.api_key, self.tls)[1]))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # our own child, by pid
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()


def refserver(env: dict[str, str] | None = None,
              tls: tuple[Path, Path] | None = None) -> ServerProcess:
    """The reference server; with ``tls=(certfile, keyfile)`` it serves https."""
    argv = [sys.executable, str(REFSERVER), *(str(p) for p in tls or ())]
    return ServerProcess(argv, env=env, tls=tls is not None).start()


def self_signed_cert(directory: Path) -> tuple[Path, Path] | None:
    """A certificate for 127.0.0.1 and its key, made with the openssl command (None
    where there is no openssl)."""
    if not shutil.which("openssl"):
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


# every dtype the binary format carries (bool, ints, uints, floats, complex), once each
DTYPES = sorted({np.dtype(c).str: np.dtype(c) for c in np.typecodes["All"]
                 if np.dtype(c).kind in "biufc"}.values(), key=str)


def sample(dtype: np.dtype, shape: tuple[int, ...] = (3, 5)) -> np.ndarray:
    """Random bytes viewed as ``dtype`` (any bit pattern, NaNs included)."""
    n = int(np.prod(shape)) * dtype.itemsize
    arr = np.random.default_rng(1).integers(0, 256, size=n, dtype=np.uint8).view(dtype)
    return arr.reshape(shape).astype(bool) if dtype.kind == "b" else arr.reshape(shape)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shape, dtype and bytes (NaN payloads included)."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def litserver(env: dict[str, str] | None = None) -> ServerProcess:
    """The real litserve server (``litserver_app.py``), started as ``run()`` starts it."""
    port = free_port()
    return ServerProcess([sys.executable, str(LITSERVER), str(port)], env=env, port=port).start()
