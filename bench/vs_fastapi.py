"""Ours against a plain FastAPI app, same models, same wrk load, in the same run.

Scenarios (the servers are bench/servers/{hello,tensor,batched}.py for ours and
bench/servers/fastapi_plain.py for FastAPI):
  hello    {"input": 4.0} -> x*x, 64 connections
  tensor   a 24.9 MB float32 body (1080x1920x3) -> its mean, 4 connections
  batched  {"input": [512 floats]} -> a 512x4 linear map, 64 connections (ours batches
           up to 16 within 5 ms; FastAPI runs each request on its own)

    .venv/bin/python bench/vs_fastapi.py [--duration 8] [--rounds 3] [--only hello]

Prints req/s (and MB/s for the tensor) per round, the median, and ours / FastAPI.
Needs wrk (apt-get install -y wrk) and fastapi (pip install fastapi).  Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")
TENSOR_BYTES = 1080 * 1920 * 3 * 4
SCENARIOS = {
    "hello": ("hello.py", 64, 'wrk.body = \'{"input": 4.0}\'\n'
              'wrk.headers["Content-Type"] = "application/json"\n'),
    "tensor": ("tensor.py", 4, f'wrk.body = string.rep("abcd", {TENSOR_BYTES // 4})\n'
               'wrk.headers["Content-Type"] = "application/octet-stream"\n'
               'wrk.headers["X-Tensor-Dtype"] = "float32"\n'
               'wrk.headers["X-Tensor-Shape"] = "1080,1920,3"\n'),
    "batched": ("batched.py", 64, "wrk.body = '" + json.dumps({"input": [0.5] * 512}) + "'\n"
                'wrk.headers["Content-Type"] = "application/json"\n'),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(script: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([PY, str(ROOT / "bench" / "servers" / script), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"{script} exited with {proc.returncode}")
        time.sleep(0.1)
    stop(proc)
    raise SystemExit(f"{script} did not become healthy within 60 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def wrk(port: int, conns: int, lua: str, duration: int) -> tuple[float, int]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write('wrk.method = "POST"\n' + lua)
    try:
        out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "-s", f.name,
                              f"http://127.0.0.1:{port}/predict"],
                             capture_output=True, text=True, timeout=duration + 60).stdout
    finally:
        os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, int(bad.group(1)) if bad else 0


def measure(script: str, conns: int, lua: str, duration: int) -> float:
    port = free_port()
    proc = start(script, port)
    try:
        rps, bad = wrk(port, conns, lua, duration)
    finally:
        stop(proc)
    if bad:
        raise SystemExit(f"{script}: {bad} non-2xx responses")
    return rps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append")
    args = parser.parse_args()
    for name in args.only or list(SCENARIOS):
        script, conns, lua = SCENARIOS[name]
        ours, theirs = [], []
        for _ in range(args.rounds):  # alternate, so both see the same machine
            ours.append(measure(script, conns, lua, args.duration))
            theirs.append(measure("fastapi_plain.py", conns, lua, args.duration))
        o, t = statistics.median(ours), statistics.median(theirs)
        extra = (f"   ({o * TENSOR_BYTES / 1e9:.2f} GB/s vs {t * TENSOR_BYTES / 1e9:.2f} GB/s)"
                 if name == "tensor" else "")
        print(f"{name:8s} ours {o:9.1f} req/s   FastAPI {t:9.1f} req/s   "
              f"ratio {o / t:5.2f}x{extra}")
        print(f"         rounds ours {[round(x) for x in ours]}  FastAPI "
              f"{[round(x) for x in theirs]}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
