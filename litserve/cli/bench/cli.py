"""``litserve bench``: the options, their checks, and the run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from litserve.cli.bench import payloads
from litserve.cli.bench.engine import EngineConfig
from litserve.cli.bench.report import progress_line, render, summary
from litserve.cli.bench.runner import LOOPS, BenchError, Runner
from litserve.client._common import parse_url

HELP = "load-test a server: req/s, latency percentiles, errors (works on any HTTP server)"
DESCRIPTION = """\
Load-test a server with keep-alive HTTP/1.1 connections and report requests/s,
errors by status and kind, MB/s and latency percentiles (plus time to first chunk
and inter-chunk latency for streams).  Runs are bounded by --duration or
--requests; nothing is retried: every failure is counted."""
EPILOG = """\
payloads:
{payloads}

examples:
  litserve bench http://127.0.0.1:8000/predict --data '{{"input": 4}}' -c 32 -d 10
  litserve bench http://127.0.0.1:8000 --tensor 1080x1920x3:uint8 --expect echo
  litserve bench http://127.0.0.1:8000 --tensor image=224x224x3:uint8 --tensor mask=224x224:bool
  litserve bench http://127.0.0.1:8000 --openai --prompt "Tell me a story" -c 8
  litserve bench http://127.0.0.1:8000/stream --stream --data '{{"n": 16}}'
  litserve bench http://127.0.0.1:8000/predict --rate 500 -d 30 --json out.json
  litserve bench URL -n 10000 --procs 2 --warmup 0
"""
MAX_CAP_S = 600.0  # a --requests run without --duration still ends after this long


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", nargs="?", default="http://127.0.0.1:8000",
                   help="server URL; without a path the route is /predict "
                        "(/v1/chat/completions with --openai). "
                        "Default: http://127.0.0.1:8000")
    g = p.add_argument_group("payload (default: JSON {\"input\": 4.0})")
    g.add_argument("--data", metavar="JSON",
                   help="JSON request body, e.g. --data '{\"input\": [1, 2, 3]}'")
    g.add_argument("--data-file", metavar="FILE", type=Path,
                   help="read the JSON request body from FILE, e.g. --data-file req.json")
    g.add_argument("--tensor", metavar="SPEC", action="append",
                   help="send a binary tensor: SHAPE:DTYPE of random values "
                        "(e.g. 1080x1920x3:uint8, 16x3x224x224:float16) or FILE.npy; "
                        "repeat as NAME=SPEC to send a bundle of named tensors "
                        "(e.g. --tensor image=224x224x3:uint8 --tensor scale=:float32)")
    g.add_argument("--tensor-format", choices=("octet", "npy"), default="octet",
                   help="body format of a single tensor: octet (raw bytes with "
                        "X-Tensor-Dtype/Shape headers) or npy (a .npy file). "
                        "Default: octet")
    g.add_argument("--openai", action="store_true",
                   help="send streamed OpenAI chat completions; counts SSE chunks, e.g. "
                        "--openai --prompt 'Hello' --max-tokens 64")
    g.add_argument("--prompt", default="Hello",
                   help="user message of --openai requests. Default: Hello")
    g.add_argument("--model", default="litserve",
                   help="model name of --openai requests. Default: litserve")
    g.add_argument("--max-tokens", type=int, metavar="N",
                   help="max_tokens of --openai requests, e.g. --max-tokens 128")
    g.add_argument("--stream", action="store_true",
                   help="the route streams (server stream=True): measure time to first "
                        "chunk and between chunks, e.g. URL/stream --stream --data '{}'")
    g.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="extra request header, repeatable, e.g. -H 'X-Trace: 1'")
    g.add_argument("--api-key", metavar="KEY",
                   help="sent as X-API-Key (default: env LIT_SERVER_API_KEY if set)")
    g.add_argument("--cacert", metavar="FILE",
                   help="https: trust the CA certificate(s) in this PEM file, e.g. "
                        "--cacert ca.pem (default: the system's)")
    g.add_argument("--insecure", action="store_true",
                   help="https: do not check the server's certificate (self-signed test "
                        "servers), e.g. https://127.0.0.1:8443 --insecure")
    g.add_argument("--accept", metavar="MEDIA",
                   help="Accept header (default: binary types for tensors, else JSON), "
                        "e.g. --accept application/json")
    g.add_argument("--expect", metavar="VALUE",
                   help="check every answer; a wrong one counts as an error: 'echo' (body "
                        "equals the request body), a JSON value (e.g. '{\"output\": 16.0}'), "
                        "@FILE.json or @FILE.npy; for --stream the list of chunks, for "
                        "--openai the streamed text (e.g. --expect 'Hello ')")
    g = p.add_argument_group("load")
    g.add_argument("-c", "--concurrency", type=int, default=16, metavar="N",
                   help="connections; closed loop: each sends its next request as soon as "
                        "the last one is answered. With --rate: the most in flight. "
                        "Default: 16, e.g. -c 64")
    g.add_argument("--rate", type=float, metavar="R",
                   help="open loop: R requests/s with Poisson arrivals; latency counts from "
                        "each arrival, e.g. --rate 1000")
    g.add_argument("-d", "--duration", type=float, metavar="S",
                   help="measure for S seconds. Default: 10 (with --requests: until done, "
                        f"at most {MAX_CAP_S:g} s), e.g. -d 30")
    g.add_argument("-n", "--requests", type=int, metavar="N",
                   help="measure N requests, then stop, e.g. -n 10000")
    g.add_argument("--warmup", type=float, default=1.0, metavar="S",
                   help="run S seconds before measuring; those requests are not counted. "
                        "Default: 1, e.g. --warmup 0")
    g.add_argument("--procs", type=int, default=1, metavar="P",
                   help="generator processes (connections and rate are split between them) "
                        "so the client is not the bottleneck. Default: 1, e.g. --procs 4")
    g.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="a request without an answer after S seconds counts as a timeout "
                        "error. Default: 30")
    g.add_argument("--loop", choices=LOOPS, default="auto",
                   help="event loop of the generators. Default: auto (uvloop if installed), "
                        "e.g. --loop asyncio")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of --rate arrivals and random tensors. Default: 0")
    g = p.add_argument_group("output")
    g.add_argument("--json", metavar="FILE",
                   help="also write the results as JSON to FILE; '-' prints only the JSON, to "
                        "stdout, e.g. --json results.json")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="live progress line on stderr (default: when stderr is a terminal)")


def _check(args: argparse.Namespace) -> None:
    kinds = [n for n, v in (("--data", args.data), ("--data-file", args.data_file),
                            ("--tensor", args.tensor), ("--openai", args.openai)) if v]
    if len(kinds) > 1:
        raise BenchError(f"give one payload, not {' and '.join(kinds)}")
    for name in ("concurrency", "procs"):
        if getattr(args, name) < 1:
            raise BenchError(f"--{name}={getattr(args, name)} is not valid; use an integer >= 1")
    for name in ("duration", "timeout", "rate"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise BenchError(f"--{name}={value} is not valid; use a number > 0")
    if args.requests is not None and args.requests < 1:
        raise BenchError(f"--requests={args.requests} is not valid; use an integer >= 1")
    if args.warmup < 0:
        raise BenchError(f"--warmup={args.warmup} is not valid; use a number of seconds >= 0")
    if args.concurrency < args.procs:
        raise BenchError(f"--concurrency={args.concurrency} is below --procs={args.procs}; "
                    "every process needs at least one connection")


def _headers(args: argparse.Namespace) -> list[tuple[str, str]]:
    out = []
    for h in args.header:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            raise BenchError(f"--header {h!r} is not valid; use 'NAME: VALUE', e.g. 'X-Trace: 1'")
        out.append((name.strip(), value.strip()))
    key = args.api_key if args.api_key is not None else os.environ.get("LIT_SERVER_API_KEY")
    if key:
        out.append(("X-API-Key", key))
    return out


def _tensors(specs: list[str], seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, spec in enumerate(specs):
        name, sep, rest = spec.partition("=")
        if not sep and len(specs) > 1:
            raise BenchError(f"--tensor {spec!r}: name each of several tensors, e.g. image={spec}")
        out[name if sep else ""] = payloads.parse_tensor_spec(rest if sep else spec, seed + i)
    return out


def _endpoint(url: str, kind: str) -> Any:
    path = urlsplit(url if "://" in url else "http://" + url).path
    return parse_url(url, payloads.DEFAULT_PATHS.get(kind) if path in ("", "/") else None)


def build_payload(args: argparse.Namespace) -> tuple[payloads.Payload, Any]:
    kind = "openai" if args.openai else "tensor" if args.tensor else "json"
    try:
        endpoint = _endpoint(args.url, kind)
        data = args.data_file.read_bytes() if args.data_file else (
            args.data.encode() if args.data is not None else None)
        if data is not None:
            json.loads(data)
        tensors = _tensors(args.tensor, args.seed) if args.tensor else None
        payload = payloads.build(
            kind, endpoint, data=data, tensors=tensors,
            tensor_format=args.tensor_format, prompt=args.prompt, model=args.model,
            max_tokens=args.max_tokens, headers=_headers(args), accept=args.accept,
            expect=args.expect, stream=args.stream)
    except (ValueError, OSError, TypeError) as exc:
        raise BenchError(str(exc)) from None
    return payload, endpoint


def run(args: argparse.Namespace) -> int:
    try:
        _check(args)
        payload, endpoint = build_payload(args)
    except BenchError as exc:
        print(f"litserve bench: error: {exc}", file=sys.stderr)
        return 2
    duration = args.duration if args.duration else (None if args.requests else 10.0)
    base = EngineConfig(
        host=endpoint.host, port=endpoint.port, payload=payload,
        connections=args.concurrency, rate=args.rate, warmup_s=args.warmup,
        duration_s=duration if duration is not None else MAX_CAP_S,
        requests=args.requests, timeout_s=args.timeout, seed=args.seed,
        tls=endpoint.scheme == "https", cafile=args.cacert, insecure=args.insecure)
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    setup = {"url": endpoint.origin + endpoint.path, "payload": payload.kind,
             "stream": payload.stream, "request_bytes": payload.size,
             "concurrency": args.concurrency, "rate": args.rate, "procs": args.procs,
             "warmup_s": args.warmup, "duration_s": duration, "max_requests": args.requests,
             "timeout_s": args.timeout}

    def on_progress(p: Any) -> None:
        print("\r" + progress_line(p, args.warmup, duration).ljust(72), end="",
              file=sys.stderr, flush=True)

    try:
        stats = Runner(base, args.procs, args.loop).run(on_progress if show else None)
    except BenchError as exc:
        print(f"\nlitserve bench: error: {exc}" if show else
              f"litserve bench: error: {exc}", file=sys.stderr)
        return 2
    if show:
        print("\r" + " " * 72 + "\r", end="", file=sys.stderr, flush=True)
    result = summary(stats, setup)
    return _output(result, args.json)


def _output(result: dict[str, Any], json_path: str | None) -> int:
    text = json.dumps(result, indent=2)
    if json_path == "-":
        print(text)
    else:
        print(render(result))
        if json_path:
            Path(json_path).write_text(text + "\n")
    if result["errors_by_kind"].get("wrong answer") or (result["requests"] and not result["ok"]):
        return 1
    return 0
