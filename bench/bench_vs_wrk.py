"""How fast is ``litserve bench`` as a load generator?  Compare it with wrk.

Starts a trivial server (a raw ASGI app on uvicorn with httptools + uvloop, one
process, answering every POST with the same small JSON), then, in the same run and
alternating, runs ``wrk`` and ``litserve bench`` against it with the same duration,
connections and threads/processes, and prints both req/s and their ratio.

    .venv/bin/python bench/bench_vs_wrk.py                 # 3 rounds of 5 s, 16 connections
    .venv/bin/python bench/bench_vs_wrk.py --rounds 5 --duration 10 -c 64 --procs 2

Needs ``wrk`` on PATH (``apt-get install -y wrk``).  Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BODY = b'{"input": 4.0}'
ANSWER = b'{"output":16.0}'
ROOT = Path(__file__).resolve().parents[1]


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    """The trivial server: read the body, answer a fixed JSON."""
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})


def serve() -> None:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="off",
                            access_log=False, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


def start_server() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"the trivial server did not start (said {line!r})")
    port = int(line.split()[1])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the trivial server never accepted a connection")


def run_wrk(url: str, args: argparse.Namespace, script: str) -> float:
    cmd = ["wrk", f"-t{args.procs}", f"-c{args.concurrency}", f"-d{args.duration}s",
           "-s", script, url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         timeout=args.duration + 30).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m or "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk failed or saw errors:\n{out}")
    return float(m[1])


def run_bench(url: str, args: argparse.Namespace) -> float:
    cmd = [sys.executable, "-m", "litserve", "bench", url, "--data", BODY.decode(),
           "-c", str(args.concurrency), "-d", str(args.duration), "--procs", str(args.procs),
           "--warmup", "0", "--json", "-", "--no-progress"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT,
                         timeout=args.duration + 60).stdout
    result = json.loads(out)
    if result["errors"]:
        raise SystemExit(f"litserve bench saw errors: {result['errors_by_kind']} "
                         f"{result['errors_by_status']}")
    return float(result["req_per_s"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=5, help="seconds per run")
    p.add_argument("-c", "--concurrency", type=int, default=16)
    p.add_argument("--procs", type=int, default=1, help="wrk threads = bench processes")
    args = p.parse_args()
    if args.serve:
        serve()
        return 0
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not on PATH; install it (apt-get install -y wrk)")
    proc, port = start_server()
    url = f"http://127.0.0.1:{port}/predict"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = '{BODY.decode()}'\n")
    try:
        wrk, ours = [], []
        for r in range(args.rounds):
            pair = [("wrk", lambda: run_wrk(url, args, f.name)),
                    ("litserve bench", lambda: run_bench(url, args))]
            for name, fn in pair if r % 2 == 0 else pair[::-1]:
                value = fn()
                (wrk if name == "wrk" else ours).append(value)
                print(f"round {r + 1}: {name:15} {value:10,.0f} req/s", flush=True)
        w, o = statistics.median(wrk), statistics.median(ours)
        print(f"\nmedian of {args.rounds} rounds ({args.duration} s each, "
              f"{args.concurrency} connections, {args.procs} thread(s)/process(es), "
              f"{os.cpu_count()} CPUs):")
        print(f"  wrk             {w:10,.0f} req/s")
        print(f"  litserve bench  {o:10,.0f} req/s")
        print(f"  ratio           {o / w:10.1%}")
    finally:
        os.unlink(f.name)
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
