"""Streamed OpenAI chat: tokens/s and time to first token, ours vs upstream LitServe.

The same chat API (a generator that yields ``--tokens`` short tokens as fast as it can,
so the server's per-token cost is what is measured) runs under upstream LitServe 0.2.19
(bench/.venv-upstream) and under ours, one after the other in the same run, with
``OpenAISpec``, one worker, one API server.  The load comes from this script: an asyncio
HTTP/1.1 client on keep-alive connections that parses the chunked SSE stream, counts
``"content":"`` deltas, checks every stream got all its tokens and ``data: [DONE]``,
and times the first content event from the moment the request was written.

    bash bench/upstream/setup.sh          # once: bench/.venv-upstream
    .venv/bin/python bench/openai_stream_bench.py
    .venv/bin/python bench/openai_stream_bench.py --fast-queue   # + upstream's ZeroMQ queue
    .venv/bin/python bench/openai_stream_bench.py --only ours --tokens 64

Rows: concurrency 1 (``--streams-1`` streams one after another: TTFT percentiles) and
``--concurrency`` streams at once (``--rounds`` back-to-back streams per connection:
aggregate tokens/s).  Server logs go to bench/out/openai-stream-*.log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMPLS = {
    "upstream": ROOT / "bench" / ".venv-upstream" / "bin" / "python",
    "ours": ROOT / ".venv" / "bin" / "python",
}
CONTENT = b'"content":"'


# -- the server (run by each implementation's interpreter) ---------------------------------------
# At module level so that both servers' worker processes can import it by name.
import litserve as ls  # noqa: E402  (ours or upstream, whichever interpreter runs this)


class TokenAPI(ls.LitAPI):
    def setup(self, device):
        self.words = [f"t{i % 10} " for i in range(int(os.environ["BENCH_TOKENS"]))]

    def predict(self, messages):
        yield from self.words


def serve(tokens: int, port: int, fast_queue: int) -> None:
    os.environ["BENCH_TOKENS"] = str(tokens)
    extra = {"fast_queue": True} if fast_queue else {}  # upstream only: ZeroMQ queues
    server = ls.LitServer(TokenAPI(spec=ls.OpenAISpec()), accelerator="cpu", **extra)
    server.run(host="127.0.0.1", port=port, log_level="warning", generate_client_file=False)


# -- the load ------------------------------------------------------------------------------------
@dataclass
class Stream:
    ttft: float
    tokens: int


@dataclass
class Result:
    wall: float
    streams: list[Stream] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.streams)


def request_bytes(host: str, port: int) -> bytes:
    body = json.dumps({"model": "bench", "stream": True,
                       "messages": [{"role": "user", "content": "go"}]}).encode()
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


async def one_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     request: bytes, expect: int) -> Stream:
    start = time.perf_counter()
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"bad response: {head[:200]!r}")
    if b"chunked" not in head.lower():
        raise RuntimeError(f"expected a chunked stream: {head!r}")
    ttft, tokens, pending, done = 0.0, 0, b"", False
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        data = await reader.readexactly(size + 2)
        if size == 0:
            break
        pending += data[:-2]
        *events, pending = pending.split(b"\n\n")
        for event in events:
            if CONTENT in event:
                tokens += 1
                if ttft == 0.0:
                    ttft = time.perf_counter() - start
            elif event.startswith(b"data: [DONE]"):
                done = True
    if not done or tokens != expect:
        raise RuntimeError(f"stream ended with {tokens}/{expect} tokens, [DONE] seen: {done}")
    return Stream(ttft, tokens)


async def lane(port: int, rounds: int, expect: int, out: list[Stream]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = request_bytes("127.0.0.1", port)
    try:
        for _ in range(rounds):
            out.append(await one_stream(reader, writer, request, expect))
    finally:
        writer.close()


async def load(port: int, concurrency: int, rounds: int, expect: int) -> Result:
    streams: list[Stream] = []
    start = time.perf_counter()
    await asyncio.gather(*(lane(port, rounds, expect, streams) for _ in range(concurrency)))
    return Result(time.perf_counter() - start, streams)


# -- running one implementation ------------------------------------------------------------------
class Server:
    def __init__(self, impl: str, tokens: int, fast_queue: bool) -> None:
        python = IMPLS[impl.split("+")[0]]
        if not python.exists():
            sys.exit(f"{python} not found: run `bash bench/upstream/setup.sh` first")
        self.port = free_port()
        self.log_path = ROOT / "bench" / "out" / f"openai-stream-{impl}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(python), __file__, "--serve", str(tokens), str(self.port),
                 str(int(fast_queue))],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT / "bench",
                start_new_session=True)  # its own process group: upstream's children
                                         # outlive their parent, so stop() ends the group
        self._wait_health()

    def _wait_health(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see "
                                   f"{self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health",
                                            timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server never answered /health with 200")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the server's process group; SIGKILL what is left after ``timeout``."""
        group = self.proc.pid
        os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _group_alive(group) and time.monotonic() < deadline:
            self.proc.poll()  # reap the leader
            time.sleep(0.05)
        if _group_alive(group):
            os.killpg(group, signal.SIGKILL)
        self.proc.wait(5)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench(impl: str, args: argparse.Namespace) -> dict[str, Result]:
    server = Server(impl, args.tokens, impl == "upstream+fast_queue")
    try:
        asyncio.run(load(server.port, 4, 5, args.tokens))  # warm-up
        single = asyncio.run(load(server.port, 1, args.streams_1, args.tokens))
        many = asyncio.run(load(server.port, args.concurrency, args.rounds, args.tokens))
    finally:
        server.stop()
    return {"1": single, str(args.concurrency): many}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(results: dict[str, dict[str, Result]], args: argparse.Namespace) -> None:
    print(f"\n{args.tokens} tokens per stream; machine: {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| server | streams | tokens/s | TTFT p50 ms | TTFT p90 ms | TTFT p99 ms | "
          "stream ms p50 |")
    print("|---|---|---|---|---|---|---|")
    for impl, rows in results.items():
        for conc, r in rows.items():
            ttft = [s.ttft * 1e3 for s in r.streams]
            per_stream = r.wall / (len(r.streams) / int(conc)) * 1e3
            print(f"| {impl} | {conc} | {r.tokens / r.wall:,.0f} | "
                  f"{statistics.median(ttft):.2f} | {percentile(ttft, 0.9):.2f} | "
                  f"{percentile(ttft, 0.99):.2f} | {per_stream:.1f} |")
    if "ours" not in results:
        return
    for base in (name for name in results if name != "ours"):
        for conc in results["ours"]:
            ours, up = results["ours"][conc], results[base][conc]
            ratio = (ours.tokens / ours.wall) / (up.tokens / up.wall)
            print(f"\nours/{base} tokens/s at {conc} stream(s): {ratio:.1f}x", end="")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", type=int, nargs=3, metavar=("TOKENS", "PORT", "FASTQ"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=sorted(IMPLS), help="run one implementation")
    parser.add_argument("--fast-queue", action="store_true",
                        help="also run upstream with fast_queue=True (ZeroMQ)")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per stream")
    parser.add_argument("--streams-1", type=int, default=100,
                        help="streams at concurrency 1")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4,
                        help="streams per connection at --concurrency")
    args = parser.parse_args()
    if args.serve is not None:
        return serve(*args.serve)
    (ROOT / "bench" / "out").mkdir(exist_ok=True)
    impls = [args.only] if args.only else ["upstream", "ours"]
    if args.fast_queue and "upstream" in impls:
        impls.insert(1, "upstream+fast_queue")
    results = {impl: bench(impl, args) for impl in impls}
    report(results, args)
    return None


if __name__ == "__main__":
    main()
