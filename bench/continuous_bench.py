"""Time to first chunk with many concurrent streams: continuous batching vs per request.

One server (ours, one worker, one front) serves the same "model" on two paths:

    /cb  LitAPI(loop=DefaultContinuousBatchingLoop()): every running stream shares a step
    /pr  the built-in per-request streaming path: a generator per request, one at a time

A step of the model costs ``--step-ms`` whatever the batch size (as a GPU forward pass
roughly does) and each stream is ``--tokens`` steps long.  Each round sends
``--streams`` requests at once on fresh connections and times, per stream, the first
chunk (from the moment its request was written) and the whole stream.  Both paths run
in the same server, in the same run, alternating rounds.

    .venv/bin/python bench/continuous_bench.py
    .venv/bin/python bench/continuous_bench.py --streams 16 --tokens 32 --rounds 4

Standard library only on the client side; server log: bench/out/continuous.log.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
TOKEN = b'"i":'


# -- the server (its worker imports this module by name) -------------------------------------
def _step_s() -> float:
    return float(os.environ["BENCH_STEP_MS"]) / 1000


def _make_apis(streams: int) -> list[object]:
    import litserve as ls
    from litserve.loops import DefaultContinuousBatchingLoop

    class Continuous(ls.LitAPI):
        def setup(self, device: str) -> None:
            self.step_s = _step_s()

        def decode_request(self, request: dict[str, int]) -> int:
            return request["n"]

        def predict(self, inputs: list[int], generated: list[list[int]]) -> list[int]:
            time.sleep(self.step_s)  # one forward pass, whatever the batch
            return [len(done) for done in generated]

        def has_finished(self, uid: str, token: int, max_sequence_length: int) -> bool:
            return False  # the loop's max_sequence_length ends each stream

        def encode_response(self, token: int) -> dict[str, int]:
            return {"i": token}

    class PerRequest(ls.LitAPI):
        def setup(self, device: str) -> None:
            self.step_s = _step_s()

        def decode_request(self, request: dict[str, int]) -> int:
            return request["n"]

        def predict(self, n: int) -> Iterator[int]:
            for i in range(n):
                time.sleep(self.step_s)
                yield i

        def encode_response(self, tokens: Iterator[int]) -> Iterator[dict[str, int]]:
            for i in tokens:
                yield {"i": i}

    tokens = int(os.environ["BENCH_TOKENS"])
    loop = DefaultContinuousBatchingLoop(max_sequence_length=tokens)
    return [Continuous(api_path="/cb", stream=True, max_batch_size=streams, loop=loop),
            PerRequest(api_path="/pr", stream=True)]


def serve(port: int, streams: int) -> None:
    import litserve as ls

    server = ls.LitServer(_make_apis(streams), accelerator="cpu")
    server.run(host="127.0.0.1", port=port, log_level="warning", generate_client_file=False)


# -- the load --------------------------------------------------------------------------------
async def one_stream(port: int, path: str, tokens: int) -> tuple[float, float]:
    """(seconds to the first chunk, seconds to the end) of one stream."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b'{"n": %d}' % tokens
    writer.write(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
                 % (path.encode(), len(body), body))
    start = time.perf_counter()
    data, first = b"", 0.0
    while chunk := await reader.read(65536):
        data += chunk
        if not first and TOKEN in data[data.find(b"\r\n\r\n"):]:
            first = time.perf_counter() - start
    end = time.perf_counter() - start
    writer.close()
    got = data.count(TOKEN)
    if not data.startswith(b"HTTP/1.1 200") or got != tokens:
        raise RuntimeError(f"{path}: {got} of {tokens} tokens; {data[:200]!r}")
    return first, end


async def round_of(port: int, path: str, streams: int, tokens: int
                   ) -> list[tuple[float, float]]:
    return list(await asyncio.gather(*(one_stream(port, path, tokens)
                                       for _ in range(streams))))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_health(port: int, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see bench/out")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not answer /health")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--step-ms", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(args.serve, args.streams)
    OUT.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "BENCH_TOKENS": str(args.tokens), "BENCH_STEP_MS": str(args.step_ms),
           "PYTHONPATH": str(ROOT)}
    with open(OUT / "continuous.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port),
                                 "--streams", str(args.streams)], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_health(port, proc)
        results = measure(port, args)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    report(results, args)


Results = dict[str, list[list[tuple[float, float]]]]  # path -> rounds -> (first, end)


def measure(port: int, args: argparse.Namespace) -> Results:
    results: Results = {"/cb": [], "/pr": []}
    asyncio.run(round_of(port, "/cb", 2, args.tokens))  # warm both paths
    asyncio.run(round_of(port, "/pr", 1, args.tokens))
    for _ in range(args.rounds):
        for path, rounds in results.items():
            rounds.append(asyncio.run(round_of(port, path, args.streams, args.tokens)))
    return results


def report(results: Results, args: argparse.Namespace) -> None:
    print(f"{args.streams} concurrent streams x {args.tokens} tokens, step {args.step_ms} ms, "
          f"{args.rounds} rounds; milliseconds")
    print(f"{'path':<16}{'ttfc p50':>10}{'p90':>9}{'max':>9}{'mean':>9}{'stream p50':>12}"
          f"{'tokens/s':>10}")
    means = {}
    for path, name in (("/cb", "continuous"), ("/pr", "per-request")):
        firsts = [f * 1000 for one in results[path] for f, _ in one]
        ends = [e * 1000 for one in results[path] for _, e in one]
        means[path] = statistics.mean(firsts)
        walls = [max(e for _, e in one) for one in results[path]]  # a round's wall time
        rate = args.streams * args.tokens / statistics.median(walls)
        print(f"{name:<16}{pct(firsts, .5):>10.1f}{pct(firsts, .9):>9.1f}{max(firsts):>9.1f}"
              f"{means[path]:>9.1f}{pct(ends, .5):>12.1f}{rate:>10.0f}")
    print(f"mean TTFC ratio per-request / continuous: {means['/pr'] / means['/cb']:.1f}x")


if __name__ == "__main__":
    main()
