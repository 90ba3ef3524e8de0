"""Ours vs upstream LitServe 0.2.19, side by side, on the same box in the same run.

For each scenario this starts the same server file (bench/servers/) with upstream's
interpreter, waits for /health, checks one request by hand, loads it with wrk on
127.0.0.1, stops it (its whole process group), then does the same with ours, and prints
req/s, payload MB/s, mean batch size, latency p50/p99, the server's CPU use and the ratio
ours/upstream.

    bash bench/upstream/setup.sh            # once: bench/.venv-upstream and wrk
    python bench/compare_upstream.py                         # all scenarios, both
    python bench/compare_upstream.py --scenarios hello --only upstream --duration 10
    python bench/compare_upstream.py --profile upstream      # plus a pass under py-spy

MB/s counts request payload bytes (10**6 B): the tensor's bytes for the tensor scenario,
the JSON body otherwise. Server logs, wrk scripts, bodies and profiles go to bench/out/.
Standard library only, so any Python 3.10+ can run it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ROOT / "bench" / "servers"
OUT = ROOT / "bench" / "out"
IMPLS = {
    "upstream": ROOT / "bench" / ".venv-upstream" / "bin" / "python",
    "ours": ROOT / ".venv" / "bin" / "python",
}
TENSOR_SHAPE = (1080, 1920, 3)
SMALL_TENSOR_SHAPE = (256, 1024)  # float32: 1 MiB
BOUNDARY = "litservebenchboundary7f3a"


# ---------------------------------------------------------------- requests


@dataclasses.dataclass(frozen=True)
class Request:
    """One request, sent identically by the check and by wrk."""

    body: bytes
    headers: dict[str, str]
    payload_bytes: int  # what MB/s counts
    expect: dict[str, float]  # response fields to check (approximately)


def hello_request(impl: str, args: argparse.Namespace) -> Request:
    body = b'{"input": 4}'
    return Request(body, {"Content-Type": "application/json"}, len(body), {"output": 16})


def batched_request(impl: str, args: argparse.Namespace) -> Request:
    values = [round(((i * 7919) % 1000) / 1000.0, 3) for i in range(512)]
    body = json.dumps({"input": values}).encode()
    return Request(body, {"Content-Type": "application/json"}, len(body), {})


def _tensor_bytes(shape: tuple[int, ...]) -> tuple[bytes, float]:
    count = 1
    for d in shape:
        count *= d
    pattern = bytes.fromhex("0000803f00000040")  # float32 1.0, 2.0 (little-endian): mean 1.5
    return pattern * (count // 2), 1.5


def tensor_request(impl: str, args: argparse.Namespace,
                   shape: tuple[int, ...] = TENSOR_SHAPE) -> Request:
    data, mean = _tensor_bytes(shape)
    expect = {"mean": mean, "size": len(data) // 4}
    route = (
        args.tensor_route
        if args.tensor_route != "auto"
        else ("binary" if impl == "ours" else "multipart")
    )
    if route == "binary":
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Tensor-Dtype": "float32",
            "X-Tensor-Shape": ",".join(map(str, shape)),
        }
        return Request(data, headers, len(data), expect)
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="t.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{BOUNDARY}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return Request(body, headers, len(data), expect)


def small_tensor_request(impl: str, args: argparse.Namespace) -> Request:
    return tensor_request(impl, args, SMALL_TENSOR_SHAPE)


@dataclasses.dataclass(frozen=True)
class Scenario:
    server: str
    connections: int
    build: object  # (impl, args) -> Request
    batched: bool = False
    flags: tuple[str, ...] = ()  # extra arguments to the server file


SCENARIOS = {
    "hello": Scenario("hello.py", 64, hello_request),
    # the same with one callback and one logger (self.log in every predict)
    "hello-observed": Scenario("hello.py", 64, hello_request, flags=("--observe",)),
    "tensor": Scenario("tensor.py", 4, tensor_request),
    "tensor1m": Scenario("tensor.py", 8, small_tensor_request),
    "batched": Scenario("batched.py", 64, batched_request, batched=True),
}


# ---------------------------------------------------------------- server process


class ServerFailed(Exception):
    """The server did not start, or answered the check request wrongly."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def start_server(impl: str, scenario: str, args: argparse.Namespace) -> Server:
    port = free_port()
    cmd = [str(IMPLS[impl]), str(SERVERS / SCENARIOS[scenario].server), "--port", str(port)]
    cmd += ["--workers", str(args.workers), *SCENARIOS[scenario].flags]
    if SCENARIOS[scenario].batched:
        cmd += ["--max-batch-size", str(args.max_batch_size)]
        cmd += ["--batch-timeout", str(args.batch_timeout)]
    if impl == "upstream" and args.upstream_fast_queue:
        cmd.append("--fast-queue")
    env = dict(os.environ, BENCH_BATCH_LOG=str(batch_log(impl, scenario)), PYTHONUNBUFFERED="1")
    log = OUT / f"server-{impl}-{scenario}.log"
    with log.open("wb") as fh:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            cmd, cwd=OUT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Server(proc, port, log)


def wait_healthy(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{server.port}/health"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise ServerFailed(f"exited with code {server.proc.returncode} before /health")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.2)
    raise ServerFailed(f"/health did not answer 200 within {timeout:.0f} s")


def stop_server(server: Server, grace: float = 10.0) -> str:
    """SIGINT the server's process group (as Ctrl+C does), SIGKILL what is left after `grace`.

    Returns how it went, in a few words.
    """
    pgid = server.proc.pid  # start_new_session: the leader's pid is the group id
    start = time.monotonic()
    _signal_group(pgid, signal.SIGINT)
    while time.monotonic() - start < grace and _group_alive(pgid, server.proc):
        time.sleep(0.05)
    if _group_alive(pgid, server.proc):
        _signal_group(pgid, signal.SIGKILL)
        server.proc.wait(timeout=10)
        return f"still running {grace:.0f} s after SIGINT: SIGKILLed"
    server.proc.wait(timeout=10)
    return f"stopped {time.monotonic() - start:.1f} s after SIGINT"


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int, leader: subprocess.Popen[bytes]) -> bool:
    leader.poll()  # reap the leader so a zombie does not count
    return bool(group_pids(pgid))


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def cpu_seconds(pgid: int) -> dict[int, tuple[float, str]]:
    """utime+stime of every live process of the group, with a short command line."""
    tick = os.sysconf("SC_CLK_TCK")
    result = {}
    for pid in group_pids(pgid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        result[pid] = ((int(fields[11]) + int(fields[12])) / tick, _role(pid, pgid, cmd))
    return result


def _role(pid: int, pgid: int, cmd: str) -> str:
    if pid == pgid:
        return "main"
    if "resource_tracker" in cmd:
        return "resource_tracker"
    if "spawn_main" in cmd:
        return "spawned"
    if "bench/servers/" in cmd:
        return "forked"
    return cmd.strip()[:40]


# ---------------------------------------------------------------- the check and the load


def check_request(server: Server, request: Request) -> str:
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/predict", data=request.body, headers=request.headers
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")[:300]
        raise ServerFailed(f"check request answered {err.code}: {detail}") from err
    answer = json.loads(text)
    for key, want in request.expect.items():
        if abs(float(answer[key]) - want) > 1e-6 * max(1.0, abs(want)):
            raise ServerFailed(f"check request: {key}={answer[key]!r}, expected {want!r}")
    return text[:120]


LUA = """
local f = assert(io.open("{body}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {{"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, '
    .. '"p99_us": %d, "mean_us": %.1f, "max_us": %d}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
"""


def write_wrk_script(name: str, request: Request) -> Path:
    body = OUT / f"body-{name}.bin"
    body.write_bytes(request.body)
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in request.headers.items())
    script = OUT / f"wrk-{name}.lua"
    script.write_text(LUA.format(body=body, headers=headers))
    return script


def run_wrk(port: int, script: Path, connections: int, seconds: float, args) -> dict:
    cmd = [
        "wrk",
        f"-t{min(args.threads, connections)}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        f"--timeout={args.wrk_timeout:g}s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/predict",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    text = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)  # rusage: wrk's own CPU time
    proc.returncode = os.waitstatus_to_exitcode(status)
    for line in text.splitlines():
        if line.startswith("WRK_JSON "):
            stats = json.loads(line[len("WRK_JSON ") :])
            stats["cpu_s"] = usage.ru_utime + usage.ru_stime
            return stats
    raise RuntimeError(f"wrk printed no summary (rc {proc.returncode}): {text.strip()}")


def box_busy_seconds() -> float:
    """CPU-seconds the whole box spent busy since boot (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- batches and profiles


def batch_log(impl: str, scenario: str) -> Path:
    return OUT / f"batches-{impl}-{scenario}.txt"


def batch_sizes(path: Path, skip_bytes: int) -> list[int]:
    if not path.exists():
        return []
    with path.open("rb") as fh:
        fh.seek(skip_bytes)
        return [int(line) for line in fh.read().split() if line.strip()]


def profile(server: Server, impl: str, scenario: str, run_load, args) -> None:
    """A separate, unmeasured pass: the same load with py-spy on every server process."""
    out = OUT / f"profile-{impl}-{scenario}.txt"
    seconds = max(1, int(args.profile_seconds))
    cmd = [
        args.py_spy,
        "record",
        "-p",
        str(server.proc.pid),
        "--subprocesses",
        "--format",
        "raw",
        "-r",
        "100",
        "-d",
        str(seconds),
        "-o",
        str(out),
    ]
    cmd += ["--gil"] if args.profile_gil else []
    with (OUT / f"py-spy-{impl}-{scenario}.log").open("wb") as log:
        spy = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    time.sleep(0.5)  # let py-spy attach before the load starts
    run_load(seconds)
    spy.wait(timeout=seconds + 60)
    if out.exists():
        print(summarise_profile(out))
    else:
        print(f"  py-spy wrote no profile; see {OUT}/py-spy-{impl}-{scenario}.log")


def summarise_profile(path: Path, top: int = 8) -> str:
    """Per server process: its share of samples, self time by package and by frame."""
    procs: dict[str, tuple[Counter[str], Counter[str]]] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        names = [f for f in frames if f.startswith("process ")]
        code = [f for f in frames if not f.startswith("process ")]
        n = int(count)
        total += n
        by_frame, by_pkg = procs.setdefault(
            names[-1][:90] if names else "?", (Counter(), Counter())
        )
        by_frame["<total>"] += n
        if code:
            by_frame[_frame_name(code[-1])] += n
            by_pkg[_package(code[-1])] += n
    lines = [f"  py-spy: {total} samples at 100 Hz in {path}"]
    for proc, (by_frame, by_pkg) in sorted(procs.items(), key=lambda p: -p[1][0]["<total>"]):
        n = by_frame.pop("<total>")
        lines.append(f"  {100 * n / max(total, 1):5.1f}% {proc}")
        lines.append(
            "      by package: "
            + ", ".join(f"{name} {100 * c / n:.0f}%" for name, c in by_pkg.most_common(top))
        )
        lines += [f"      self {100 * c / n:5.1f}%  {f}" for f, c in by_frame.most_common(top)]
    return "\n".join(lines)


def _package(frame: str) -> str:
    where = frame.partition(" (")[2]
    return where.split("/")[0].removesuffix(".py").split(":")[0] if where else frame


def _frame_name(frame: str) -> str:
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


# ---------------------------------------------------------------- one measurement


@dataclasses.dataclass
class Result:
    impl: str
    scenario: str
    ok: bool
    note: str = ""
    rps: float = 0.0
    mbps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    mean_batch: float | None = None
    cpu: dict[str, float] = dataclasses.field(default_factory=dict)  # % of a core, by process
    wrk_cpu: float = 0.0  # % of a core
    other_cpu: float = 0.0  # % of a core used on the box by neither the server nor wrk
    runs: list[float] = dataclasses.field(default_factory=list)  # req/s of every repeat


def wait_for_quiet(args: argparse.Namespace) -> None:
    """Wait (bounded) until the rest of the box uses less than --quiet-below % of a core."""
    if args.quiet_below <= 0:
        return
    deadline = time.monotonic() + args.quiet_wait
    while True:
        before = box_busy_seconds()
        time.sleep(2.0)
        busy = 100 * (box_busy_seconds() - before) / 2.0
        if busy < args.quiet_below:
            return
        if time.monotonic() > deadline:
            print(
                f"    (box still {busy:.0f}% busy after {args.quiet_wait:.0f} s: measuring anyway)"
            )
            return


def measure(impl: str, scenario: str, args: argparse.Namespace) -> Result:
    wait_for_quiet(args)
    spec = SCENARIOS[scenario]
    request = spec.build(impl, args)
    connections = args.connections or spec.connections
    script = write_wrk_script(f"{impl}-{scenario}", request)
    batch_log(impl, scenario).unlink(missing_ok=True)
    server = start_server(impl, scenario, args)
    try:
        wait_healthy(server, args.start_timeout)
        answer = check_request(server, request)
        print(f"  {impl:8s} {scenario}: up on port {server.port}; check answered {answer}")
        if args.warmup > 0:
            run_wrk(server.port, script, connections, args.warmup, args)
        result = load(server, impl, scenario, request, script, connections, args)
        if args.profile in (impl, "both"):
            profile(
                server,
                impl,
                scenario,
                lambda sec: run_wrk(server.port, script, connections, sec, args),
                args,
            )
        return result
    except (ServerFailed, RuntimeError, subprocess.TimeoutExpired) as err:
        print(
            f"  {impl:8s} {scenario}: FAILED: {err}\n    server log tail:\n"
            + "\n".join("      " + ln for ln in server.tail().splitlines())
        )
        return Result(impl, scenario, ok=False, note=str(err).splitlines()[0][:100])
    finally:
        mapped = shm_names(server.proc.pid)
        print(f"  {impl:8s} {scenario}: {stop_server(server)}{leftover_shm(mapped)}")


def load(server, impl, scenario, request, script, connections, args) -> Result:
    log = batch_log(impl, scenario)
    skip = log.stat().st_size if log.exists() else 0
    cpu_before, box_before = cpu_seconds(server.proc.pid), box_busy_seconds()
    stats = run_wrk(server.port, script, connections, args.duration, args)
    cpu_after, box_after = cpu_seconds(server.proc.pid), box_busy_seconds()
    seconds = stats["duration_us"] / 1e6
    cpu = cpu_share(cpu_before, cpu_after, seconds)
    wrk_cpu = 100 * stats["cpu_s"] / seconds
    other = 100 * (box_after - box_before) / seconds - sum(cpu.values()) - wrk_cpu
    errors = sum(stats[k] for k in ("connect", "read", "write", "status", "timeout"))
    good = stats["requests"] - stats["status"]
    sizes = batch_sizes(log, skip)
    result = Result(
        impl,
        scenario,
        ok=True,
        rps=good / seconds,
        mbps=good * request.payload_bytes / seconds / 1e6,
        p50_ms=stats["p50_us"] / 1e3,
        p99_ms=stats["p99_us"] / 1e3,
        errors=errors,
        mean_batch=sum(sizes) / len(sizes) if sizes else None,
        cpu=cpu,
        wrk_cpu=wrk_cpu,
        other_cpu=max(0.0, other),
    )
    if errors:
        result.note = "wrk errors: " + ", ".join(
            f"{k} {stats[k]}" for k in ("connect", "read", "write", "status", "timeout") if stats[k]
        )
    return result


def shm_names(pgid: int) -> set[str]:
    """/dev/shm names that the server's processes have mapped and not yet unlinked."""
    names = set()
    for pid in group_pids(pgid):
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        for line in maps.splitlines():
            path = line.split(None, 5)[-1]
            if path.startswith("/dev/shm/") and not path.endswith("(deleted)"):
                names.add(path[len("/dev/shm/") :])
    return names


def leftover_shm(mapped: set[str]) -> str:
    left = sorted(name for name in mapped if os.path.exists(f"/dev/shm/{name}"))
    return (
        f"; left in /dev/shm: {' '.join(left[:6])}{' ...' if len(left) > 6 else ''}" if left else ""
    )


def cpu_share(before: dict, after: dict, seconds: float) -> dict[str, float]:
    shares: dict[str, float] = {}
    for pid, (t1, name) in after.items():
        t0 = before.get(pid, (0.0, name))[0]
        label = f"{name} [{pid}]"
        shares[label] = 100 * (t1 - t0) / seconds
    return shares


# ---------------------------------------------------------------- report


def median_runs(results: list[Result]) -> list[Result]:
    """One row per (scenario, impl): the run with the median req/s, listing every run's req/s."""
    rows = []
    for key in dict.fromkeys((r.scenario, r.impl) for r in results):
        runs = [r for r in results if (r.scenario, r.impl) == key]
        good = sorted((r for r in runs if r.ok), key=lambda r: r.rps)
        row = good[(len(good) - 1) // 2] if good else runs[-1]
        row.runs = [r.rps for r in runs if r.ok]
        rows.append(row)
    return rows


def table(rows: list[Result]) -> list[str]:
    """A Markdown table: one row per implementation and a ratio row per scenario."""
    out = [
        "| scenario | impl | req/s | MB/s | mean batch | p50 ms | p99 ms | errors "
        "| server CPU | wrk CPU | other CPU |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for scenario in dict.fromkeys(r.scenario for r in rows):
        by_impl = {r.impl: r for r in rows if r.scenario == scenario}
        out += [_row(r) for r in by_impl.values()]
        up, ours = by_impl.get("upstream"), by_impl.get("ours")
        if up and ours and up.ok and ours.ok and up.rps and ours.rps:
            out.append(
                f"| {scenario} | **ours/upstream** | **{ours.rps / up.rps:.2f}x** "
                f"| **{ours.mbps / up.mbps:.2f}x** | | "
                f"{ours.p50_ms / up.p50_ms:.2f}x | {ours.p99_ms / up.p99_ms:.2f}x | | | | |"
            )
    return out


def _row(r: Result) -> str:
    if not r.ok:
        return f"| {r.scenario} | {r.impl} | did not run: {r.note} | | | | | | | | |"
    batch = f"{r.mean_batch:.1f}" if r.mean_batch is not None else "-"
    runs = f" ({', '.join(f'{x:,.0f}' for x in r.runs)})" if len(r.runs) > 1 else ""
    mbps = f"{r.mbps:,.1f}" if r.mbps < 100 else f"{r.mbps:,.0f}"
    return (
        f"| {r.scenario} | {r.impl} | {r.rps:,.0f}{runs} | {mbps} | {batch} | {r.p50_ms:.1f} "
        f"| {r.p99_ms:.1f} | {r.errors} | {sum(r.cpu.values()):.0f}% | {r.wrk_cpu:.0f}% "
        f"| {r.other_cpu:.0f}% |"
    )


def print_report(rows: list[Result]) -> None:
    print("\n" + "\n".join(table(rows)))
    print("\nserver CPU by process (% of one core); other = the rest of the box's busy CPU:")
    for r in rows:
        if r.ok:
            parts = ", ".join(
                f"{k} {v:.0f}%" for k, v in sorted(r.cpu.items(), key=lambda i: -i[1])
            )
            print(f"  {r.scenario:8s} {r.impl:9s} {parts}")
    noisy = [f"{r.scenario}/{r.impl}" for r in rows if r.ok and r.other_cpu > 20]
    if noisy:
        print(f"\nNOTE: other processes used > 20% of a core during {', '.join(noisy)}: noisy")


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from {', '.join(SCENARIOS)} (default: all)",
    )
    p.add_argument("--only", choices=sorted(IMPLS), help="run one implementation only")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of load per run")
    p.add_argument(
        "--repeat", type=int, default=1, help="runs per implementation; the median is reported"
    )
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load first")
    p.add_argument(
        "--connections",
        type=int,
        default=0,
        help="wrk connections (default per scenario: "
        + ", ".join(f"{k} {v.connections}" for k, v in SCENARIOS.items())
        + ")",
    )
    p.add_argument("--threads", type=int, default=1, help="wrk threads (the box has 2 cores)")
    p.add_argument("--wrk-timeout", type=float, default=10.0, help="wrk per-request timeout")
    p.add_argument(
        "--quiet-below",
        type=float,
        default=0.0,
        help="before each run, wait until other processes use less than this %% of a core",
    )
    p.add_argument("--quiet-wait", type=float, default=120.0, help="at most this many seconds")
    p.add_argument("--workers", type=int, default=1, help="workers_per_device")
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument("--batch-timeout", type=float, default=0.005)
    p.add_argument(
        "--tensor-route",
        choices=["auto", "multipart", "binary"],
        default="auto",
        help="auto: ours raw binary body, upstream multipart (each one's fastest)",
    )
    p.add_argument(
        "--upstream-fast-queue",
        action="store_true",
        help="run upstream with fast_queue=True (ZeroMQ)",
    )
    p.add_argument(
        "--profile",
        choices=["upstream", "ours", "both"],
        help="after the measured run, one more load pass under py-spy (all processes)",
    )
    p.add_argument("--profile-seconds", type=float, default=8.0)
    p.add_argument(
        "--profile-gil",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="sample only threads holding the GIL (py-spy --gil): where Python time goes",
    )
    p.add_argument("--py-spy", default=str(ROOT / "bench" / ".venv-upstream" / "bin" / "py-spy"))
    p.add_argument("--start-timeout", type=float, default=120.0, help="seconds to wait for /health")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--upstream-python", type=Path, default=IMPLS["upstream"])
    p.add_argument("--ours-python", type=Path, default=IMPLS["ours"])
    args = p.parse_args(argv)
    IMPLS.update(upstream=args.upstream_python, ours=args.ours_python)
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        p.error(f"--scenarios {','.join(sorted(unknown))}: use any of {', '.join(SCENARIOS)}")
    return args


def describe(impl: str) -> str:
    code = (
        "import importlib.metadata as m, litserve; print(m.version('litserve'), litserve.__file__)"
    )
    out = subprocess.run(  # cwd OUT: as for the servers, no ./litserve to shadow the installed one
        [str(IMPLS[impl]), "-c", code], cwd=OUT, capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or (
        "not importable: " + out.stderr.strip().splitlines()[-1]
        if out.stderr.strip()
        else "missing"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    impls = [args.only] if args.only else ["upstream", "ours"]
    for impl in impls:
        print(f"{impl:8s} {IMPLS[impl]}: litserve {describe(impl)}")
    rev = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    print(f"ours at {rev or 'unknown revision'}; load average before: {os.getloadavg()[0]:.2f}")
    results = []
    for scenario in args.scenarios.split(","):
        for _ in range(args.repeat):  # alternate implementations so drift hits both alike
            results += [measure(impl, scenario, args) for impl in impls]
    rows = median_runs(results)
    print_report(rows)
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
