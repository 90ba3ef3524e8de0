"""Reliability runs: mixed traffic against one real server, every answer checked.

    .venv/bin/python bench/reliability.py chaos --duration 60 --fault-every 3
    .venv/bin/python bench/reliability.py soak --duration 600

The server (tests/server/apps/chaos.py) serves four LitAPIs on their own paths -- JSON,
1 MiB float32 tensors as octet-stream, NDJSON streams, a batched API (max_batch_size 8)
-- with 2 workers, 2 HTTP fronts and LitServer(timeout=3).  A few client threads
(httpx; a fresh connection after every error and every 40 requests, so that a restarted
front gets its share) send each request with its own random input and check its answer
byte for byte against the same rule the server applies.

chaos: after a quiet warm-up, every --fault-every seconds one front or worker (its pid
from the control board) is SIGKILLed, or SIGSTOPped for --stop-s and SIGCONTed; the
(role, kind) pairs take turns in a shuffled order, and a fault waits until every process
is ready again, so a peer is always serving.  Then a quiet settle phase.
soak: the same traffic with no faults, reported per minute.

Every run is bounded in time, stops on its own and talks to 127.0.0.1 only.  The report
is printed and returned as a dict by ``run_chaos`` / ``run_soak`` (tests/server/
test_chaos.py asserts its checks); the CLI exits 1 when a check failed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from server.apps import chaos as app  # noqa: E402
from server.harness import Server, shm_name, wait_for  # noqa: E402

from litserve import protocol as P  # noqa: E402
from litserve.ipc import SlotTable, _shm, names, slots  # noqa: E402

MiB = 1 << 20
ROLES = ("front", "worker")
KINDS = ("kill", "stop")
WRONG = ("foreign_answer", "wrong_answer")  # a 200 that is not the request's answer
CLEAN = {"http_500", "http_503", "http_504"}  # failures a client can act on
SLOT_STATES = ("FREE", "POSTED", "CLAIMED", "CANCELLED", "ABANDONED")  # litserve.ipc.slots
ROUTE_WEIGHTS = {"json": 3, "tensor": 1, "stream": 2, "batch": 3}


@dataclass
class Config:
    mode: str = "chaos"  # "chaos" or "soak"
    duration: float = 60.0  # chaos: the fault phase; soak: the whole run
    fault_every: float = 3.0
    stop_s: float = 1.0  # how long a SIGSTOP lasts
    warmup: float = 5.0  # chaos: quiet load before the first fault; soak: excluded from growth
    settle: float = 5.0  # chaos: quiet load after the last fault
    clients: int = 5
    pause: float = 0.01  # each client's think time between requests
    reconnect_every: int = 40  # requests per connection (a fresh one after any error)
    timeout: float = 3.0  # LitServer(timeout=...)
    margin: float = 1.0  # client-side timeout = timeout + stop_s + margin
    recover_s: float = 2.0  # every route answers again within this after a kill
    rss_warmup: float = 8.0  # a process's RSS counts from this long after its birth
    rss_tolerance_mib: float = 16.0  # allowed RssAnon growth per process after warm-up
    sample_every: float = 1.0  # RSS and /dev/shm sampling
    bucket: float = 60.0  # soak: report period
    seed: int = 0
    routes: str = ",".join(ROUTE_WEIGHTS)  # the routes the clients call
    faults: str = ",".join(f"{k}-{r}" for r in ROLES for k in KINDS)  # the kinds of fault

    @property
    def fault_list(self) -> list[tuple[str, str]]:
        """(role, kind) of each kind of fault asked for ("kill-front" -> ("front", "kill"))."""
        return [(f.split("-")[1], f.split("-")[0]) for f in self.faults.split(",") if f]

    @property
    def route_list(self) -> list[str]:
        return [r for r in self.routes.split(",") if r]

    @property
    def client_timeout(self) -> float:
        return self.timeout + self.stop_s + self.margin


@dataclass
class Outcome:
    client: int
    route: str
    rid: str
    start: float
    end: float
    kind: str  # "ok" or a failure kind
    since: float  # the connection was known to be alive from then on
    detail: str = ""


@dataclass
class Fault:
    t: float
    role: str
    index: int
    pid: int
    kind: str
    end: float = 0.0
    waited: float = 0.0  # how long it waited for every process to be ready


@dataclass
class Run:
    cfg: Config
    server: Server
    board: P.Board
    token: str
    t0: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    outcomes: list[Outcome] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    sent: dict[str, tuple[int, str, str]] = field(default_factory=dict)  # key of a request
    # (its id, or its answer's digest) -> (client, route, id)
    counts: dict[int, list[int]] = field(default_factory=dict)  # client -> [sent, answered]
    births: dict[tuple[str, int, int], list[float]] = field(default_factory=dict)
    rss: list[tuple[float, str, int, int, int, int, int]] = field(default_factory=list)
    shm: list[tuple[float, int, int]] = field(default_factory=list)  # t, entries, bytes
    cpu: dict[int, float] = field(default_factory=dict)  # pid -> CPU seconds, last seen
    usage: list[tuple[float, int, int, int]] = field(default_factory=list)  # t, front,
    # request slots and request-arena bytes it holds (from the board)
    times: tuple[float, float] = (0.0, 0.0)  # this process's CPU seconds, wall at start


# -- requests (built and checked by tests/server/apps/chaos.py) ---------------------------
def make_call(run: Run, rng: random.Random, nprng: np.random.Generator) -> app.Call:
    routes = run.cfg.route_list
    return app.make_call(rng.choices(routes, [ROUTE_WEIGHTS[r] for r in routes])[0], rng, nprng)


def verdict(r: httpx.Response, call: app.Call, run: Run) -> tuple[str, str]:
    """A 200's kind: ok, wrong_answer, stream_cut, or foreign_answer when it is the
    answer of another request this run sent."""
    v = call.check(r)
    owner = run.sent.get(v.other) if v.other not in (None, call.key) else None
    if owner is None:
        return v.kind, v.detail
    return "foreign_answer", f"the answer of {owner[2]} (client {owner[0]}, /{owner[1]}): " \
                             f"{v.detail}"


def classify(r: httpx.Response, call: app.Call, run: Run) -> tuple[str, str]:
    if r.status_code == 200:
        return verdict(r, call, run)
    kind = f"http_{r.status_code}"
    try:
        detail = str(r.json()["detail"])[:160]
    except (ValueError, KeyError, TypeError):
        return ("unclean_5xx" if kind in CLEAN else kind), repr(r.content[:120])
    return kind, detail


# -- the threads ------------------------------------------------------------------------
def client_loop(run: Run, cid: int) -> None:
    cfg = run.cfg
    rng, nprng = random.Random(cfg.seed * 1000 + cid), np.random.default_rng(cfg.seed * 1000 + cid)
    counts = run.counts.setdefault(cid, [0, 0])
    http, since = _client(cfg), None
    try:
        while not run.stop.is_set():
            call = make_call(run, rng, nprng)
            with run.lock:
                run.sent[call.key] = (cid, call.route, call.rid)
            start = time.monotonic()
            conn_since = start if since is None else since
            counts[0] += 1
            try:
                r = http.post(f"{run.server.url}/{call.route}", **call.send)
                kind, detail = classify(r, call, run)
                since = time.monotonic()
            except httpx.TimeoutException as exc:
                kind, detail = "timeout", f"{type(exc).__name__}: {exc}"
            except httpx.TransportError as exc:
                kind, detail = "conn", f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # recorded: a client never dies silently
                kind, detail = "client_error", f"{type(exc).__name__}: {exc}"
            end = time.monotonic()
            counts[1] += 1
            failed = kind in ("timeout", "conn", "client_error")
            if not failed and end - start > cfg.client_timeout:
                kind, detail = "over_deadline", f"{kind} after {end - start:.2f} s"
            with run.lock:
                run.outcomes.append(Outcome(cid, call.route, call.rid, start, end, kind,
                                            conn_since, detail))
            if failed or counts[0] % cfg.reconnect_every == 0:  # spread over the fronts
                http.close()
                http, since = _client(cfg), None
            run.stop.wait(cfg.pause)
    finally:
        http.close()


def _client(cfg: Config) -> httpx.Client:
    return httpx.Client(timeout=cfg.client_timeout, limits=httpx.Limits(max_connections=1))


def monitor_loop(run: Run) -> None:
    """Every 0.1 s: which pid serves each slot (births = restarts observed); every
    sample_every: RSS of each process and this server's /dev/shm use."""
    next_sample = 0.0
    while not run.stop.wait(0.1):
        now = time.monotonic()
        current = _processes(run)
        for key in current:
            run.births.setdefault(key, [now, 0.0])
        for key, ready in current.items():
            if ready and not run.births[key][1]:
                run.births[key][1] = now
        if now >= next_sample:
            next_sample = now + run.cfg.sample_every
            _sample(run, now, current)


def _processes(run: Run) -> dict[tuple[str, int, int], bool]:
    """(role, index, pid) -> ready, for the processes the board names now."""
    b = run.board
    found = {("supervisor", 0, run.server.proc.pid): True}
    for i in range(b.fronts):
        found[("front", i, b.pid("front", i))] = b.front(i)[1] == P.READY
    for j in range(b.workers):
        found[("worker", j, b.pid("worker", j))] = b.worker(j)[1] == P.READY
    return found


def _sample(run: Run, now: float, current: dict[tuple[str, int, int], bool]) -> None:
    for role, index, pid in current:
        mem = _status(pid)
        with suppress(OSError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            run.cpu[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if mem:
            run.rss.append((now, role, index, pid, mem.get("VmRSS", 0),
                            mem.get("RssAnon", 0), mem.get("RssShmem", 0)))
    for i in range(run.board.fronts):
        run.usage.append((now, i, *run.board.front_usage(i)))
    entries = names.leftovers(run.token)
    used = 0
    for e in entries:
        with suppress(OSError):
            used += os.stat(os.path.join(names.SHM_DIR, e)).st_blocks * 512
    run.shm.append((now, len(entries), used))


def _status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssShmem of pid in bytes ({} when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssShmem"):
            out[key] = int(value.split()[0]) * 1024
    return out


def fault_loop(run: Run, start: float, end: float) -> None:
    cfg = run.cfg
    rng = random.Random(cfg.seed)
    turns: list[tuple[str, str]] = []
    t = start
    while not run.stop.wait(max(0.0, t - time.monotonic())) and time.monotonic() < end:
        waited = _wait_all_ready(run)
        if not turns:
            turns = list(cfg.fault_list)
            rng.shuffle(turns)
        role, kind = turns.pop()
        index = rng.randrange(run.board.fronts if role == "front" else run.board.workers)
        pid = run.board.pid(role, index)
        fault = Fault(time.monotonic(), role, index, pid, kind, waited=waited)
        try:
            _inject(fault, cfg.stop_s)
        except ProcessLookupError:
            fault.kind += " (gone)"
        with run.lock:
            run.faults.append(fault)
        t = max(fault.t + cfg.fault_every, (fault.end or fault.t) + 1.0)  # never back to back


def _inject(fault: Fault, stop_s: float) -> None:
    if fault.kind == "kill":
        os.kill(fault.pid, signal.SIGKILL)
        fault.end = time.monotonic()
        return
    os.kill(fault.pid, signal.SIGSTOP)
    try:
        time.sleep(stop_s)
    finally:
        os.kill(fault.pid, signal.SIGCONT)
        fault.end = time.monotonic()


def _wait_all_ready(run: Run, timeout: float = 15.0) -> float:
    """Wait until every front and worker is ready (the replacement of the last kill
    too); how long that took.  Never longer than ``timeout``: the fault comes anyway."""
    start = time.monotonic()
    while not run.board.all_ready() and time.monotonic() - start < timeout:
        if run.stop.wait(0.05):
            break
    return time.monotonic() - start


# -- one run -------------------------------------------------------------------------------
def start_server(cfg: Config) -> tuple[Server, P.Board, str]:
    server = Server(app.spec(), {"accelerator": "cpu", "workers_per_device": 2,
                                 "timeout": cfg.timeout}, {"num_api_servers": 2},
                    env={"LITSERVE_MAX_RESTARTS": "1000"})
    try:
        server.wait_ready(90)
        ctl = wait_for(lambda: shm_name(server, "ctl"), 10, "the control board")
        return server, P.Board(ctl), server.token
    except BaseException:
        server.kill_group()
        raise


def execute(cfg: Config) -> dict[str, Any]:
    """Start the server, run the load (and the faults, in chaos mode), stop it; the report."""
    server, board, token = start_server(cfg)
    run = Run(cfg, server, board, token)
    stopped: dict[str, Any] = {}
    try:
        _drive(run)
        stopped["held_after_load"] = held_after_load(run)
        stopped["held_slots"] = {i: _few(slot_states(run, i)) for i in stopped["held_after_load"]}
        stopped["held_since"] = {i: held_since(run, i, v)
                                 for i, v in stopped["held_after_load"].items()}
        stopped["worker_gens"] = [run.board.worker(j)[0] for j in range(board.workers)]
    finally:
        run.stop.set()
        cpu = cpu_use(run)
        stopped.update(stop_server(run))
        board.close()
    report = analyse(run, stopped)
    report["cpu"] = cpu
    return report


def _drive(run: Run) -> None:
    cfg = run.cfg
    threads = [threading.Thread(target=monitor_loop, args=(run,), daemon=True)]
    threads += [threading.Thread(target=client_loop, args=(run, c), daemon=True)
                for c in range(cfg.clients)]
    run.t0 = time.monotonic()
    run.times = (_cpu_self(), run.t0)
    total = cfg.duration if cfg.mode == "soak" else cfg.warmup + cfg.duration + cfg.settle
    if cfg.mode == "chaos":
        start = run.t0 + cfg.warmup
        threads.append(threading.Thread(target=fault_loop, args=(run, start,
                                        start + cfg.duration), daemon=True))
    for t in threads:
        t.start()
    try:
        run.stop.wait(total)
    finally:
        run.stop.set()
        for t in threads:
            t.join(cfg.client_timeout + 5)
        for f in run.faults:  # never leave a process stopped
            if f.kind == "stop":
                _cont(f.pid)


def held_after_load(run: Run, timeout: float = 5.0) -> dict[int, tuple[int, int]]:
    """With the clients stopped, every front must give back its request slots and arena
    bytes within ``timeout``; what each still holds then (front -> (slots, bytes))."""
    b = run.board
    deadline = time.monotonic() + timeout
    while True:
        held = {i: b.front_usage(i) for i in range(b.fronts) if b.front_usage(i) != (0, 0)}
        if not held or time.monotonic() > deadline:
            return held
        time.sleep(0.05)


def held_since(run: Run, front: int, held: tuple[int, int]) -> str:
    """Since when the board has shown ``held`` for ``front`` without a change, and whether
    that began before the last kill of that front (then it is what the dead one held:
    "stale")."""
    samples = [(t, (n, size)) for t, i, n, size in run.usage if i == front]
    since = next((t for t, v in reversed(samples) if v != held), run.t0)
    later = [t for t, v in samples if t > since]
    first = later[0] if later else time.monotonic()
    kills = [f.t for f in run.faults if f.role == "front" and f.index == front
             and f.kind == "kill" and f.t >= first]
    text = f"unchanged since t={first - run.t0:.1f} s"
    return text + (f", before the kill at t={kills[-1] - run.t0:.1f} s: stale, the dead "
                   "front's usage, never overwritten by its replacement" if kills else "")


def _few(items: list[str], n: int = 6) -> list[str]:
    return items[:n] + ([f"... {len(items) - n} more"] if len(items) > n else [])


def slot_states(run: Run, front: int) -> list[str]:
    """Front ``front``'s slots that are not FREE: slot, seq, state, claiming worker/gen."""
    gen = run.board.front(front)[0]
    table = SlotTable(shm_name(run.server, f"f{front}.{gen}.slots"))
    try:
        out = []
        for i in range(table.count):
            value = _shm.load64(table._buf, slots.HEADER + 8 * i)
            seq, holder, state = slots.unpack(value)
            if state != slots.FREE:
                out.append(f"slot {i} seq {seq} {SLOT_STATES[state]} by worker {holder} "
                           f"gen {slots.holder_gen(value)}")
        return out
    finally:
        table.close()


def _cpu_self() -> float:
    t = os.times()
    return t.user + t.system


def cpu_use(run: Run) -> dict[str, float]:
    """CPU seconds of the server's processes (as last sampled) and of the clients, and
    their share of the machine's CPUs over the run."""
    wall = time.monotonic() - run.times[1]
    server, client = sum(run.cpu.values()), _cpu_self() - run.times[0]
    return {"wall_s": round(wall, 1), "server_cpu_s": round(server, 1),
            "client_cpu_s": round(client, 1),
            "share_of_cpus": round((server + client) / wall / (os.cpu_count() or 1), 2)}


def _cont(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


def stop_server(run: Run) -> dict[str, Any]:
    """SIGTERM, wait; the exit code and what /dev/shm still holds of this server."""
    server = run.server
    start = time.monotonic()
    try:
        code: int | str = server.stop(timeout=20)
    except AssertionError:
        code = "did not stop within 20 s (killed)"
    finally:
        server.kill_group()
    took = time.monotonic() - start
    at_exit = names.leftovers(run.token)
    deadline = time.monotonic() + 5.0  # the janitor sweeps after a crash, asynchronously
    while names.leftovers(run.token) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = names.leftovers(run.token)
    for e in left:  # leave a clean machine; the report says what was there
        with suppress(OSError):
            os.unlink(os.path.join(names.SHM_DIR, e))
    return {"exit_code": code, "stop_s": round(took, 2), "names_at_exit": at_exit,
            "names_left": left}


# -- analysis -------------------------------------------------------------------------------
def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None}
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
    return {"p50_ms": round(statistics.median(values) * 1000, 1), "p99_ms": round(p99 * 1000, 1)}


def phase_of(run: Run, t: float) -> str:
    if not run.faults or t < run.faults[0].t:
        return "before"
    return "during" if t < run.faults[-1].end + run.cfg.recover_s else "after"


def phases(run: Run) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in ("before", "during", "after"):
        mine = [o for o in run.outcomes if phase_of(run, o.start) == name]
        if not mine:
            continue
        ok = [o.end - o.start for o in mine if o.kind == "ok"]
        out[name] = {"requests": len(mine), "errors": len(mine) - len(ok), **percentiles(ok)}
    return out


def explained_conn(run: Run, o: Outcome) -> bool:
    """A connection error is a front's death only if one was killed while the
    connection was in use (from when it was last known alive to the error)."""
    return any(f.role == "front" and f.kind == "kill" and o.since - 0.05 <= f.t <= o.end
               for f in run.faults)


def worker_killed_during(run: Run, o: Outcome) -> bool:
    return any(f.role == "worker" and f.kind == "kill" and o.start <= f.t <= o.end
               for f in run.faults)


def near_fault(run: Run, o: Outcome) -> bool:
    return any(f.t <= o.end and (f.end or f.t) >= o.start - 1.0 for f in run.faults)


def recovery(run: Run) -> list[dict[str, Any]]:
    """For each kill: per route, the time from the kill to the first success of a
    request sent after it; and when the replacement was ready."""
    rows = []
    for f in (f for f in run.faults if f.kind == "kill"):
        per_route = {}
        for route in run.cfg.route_list:
            first = min((o.end for o in run.outcomes if o.route == route and o.kind == "ok"
                         and o.start >= f.t), default=None)
            per_route[route] = None if first is None else round(first - f.t, 3)
        born = [(k, v) for k, v in run.births.items()
                if k[0] == f.role and k[1] == f.index and v[0] >= f.t]
        ready = min((v[1] for _, v in born if v[1]), default=None)
        rows.append({"t": round(f.t - run.t0, 2), "role": f.role, "index": f.index,
                     "first_success_s": per_route,
                     "replacement_ready_s": None if ready is None else round(ready - f.t, 2)})
    return rows


def rss_generations(run: Run) -> list[dict[str, Any]]:
    """Per process generation: RssAnon from warm-up on (first, max, growth; MiB)."""
    cfg = run.cfg
    by_pid: dict[tuple[str, int, int], list[tuple[float, int, int]]] = defaultdict(list)
    for t, role, index, pid, vm, anon, _ in run.rss:
        by_pid[(role, index, pid)].append((t, vm, anon))
    rows = []
    for (role, index, pid), samples in sorted(by_pid.items(), key=lambda kv: kv[1][0][0]):
        born = max(run.births.get((role, index, pid), [run.t0])[0], run.t0)
        late = [s for s in samples if s[0] >= born + cfg.rss_warmup]
        row: dict[str, Any] = {"role": role, "index": index, "pid": pid,
                               "vmrss_max_mib": round(max(s[1] for s in samples) / MiB, 1)}
        if len(late) >= 3 and late[-1][0] - late[0][0] >= 5.0:
            base, top = late[0][2], max(s[2] for s in late)
            row.update(anon_first_mib=round(base / MiB, 1), anon_max_mib=round(top / MiB, 1),
                       growth_mib=round((top - base) / MiB, 1),
                       span_s=round(late[-1][0] - late[0][0], 1))
        else:
            row["judged"] = "too short after warm-up"
        rows.append(row)
    return rows


def failures(run: Run) -> tuple[Counter[str], dict[str, list[str]]]:
    kinds: Counter[str] = Counter()
    samples: dict[str, list[str]] = defaultdict(list)
    for o in run.outcomes:
        if o.kind == "ok":
            continue
        kind = o.kind
        if kind == "conn" and not explained_conn(run, o):
            kind = "conn_unexplained"
        died = kind == "http_500" and "died" in o.detail
        if kind in CLEAN and not (worker_killed_during(run, o) if died else near_fault(run, o)):
            kind += "_unexplained"
        if kind == "stream_cut" and not worker_killed_during(run, o):
            kind = "stream_cut_unexplained"
        kinds[kind] += 1
        if len(samples[kind]) < 8:
            samples[kind].append(f"t={o.start - run.t0:.2f}..{o.end - run.t0:.2f} client "
                                 f"{o.client} /{o.route} {o.rid}: {o.detail}"[:400])
    return kinds, dict(samples)


def check(ok: bool, detail: Any) -> dict[str, Any]:
    return {"ok": bool(ok), "detail": detail}


def analyse(run: Run, stopped: dict[str, Any]) -> dict[str, Any]:
    cfg = run.cfg
    kinds, samples = failures(run)
    ok = sum(o.kind == "ok" for o in run.outcomes)
    gens = rss_generations(run)
    restarts = Counter(k[0] for k in run.births if k[0] != "supervisor")
    report: dict[str, Any] = {
        "config": asdict(cfg), "requests": len(run.outcomes), "successes": ok,
        "errors": dict(kinds), "error_samples": samples,
        "faults": [{"t": round(f.t - run.t0, 2), "role": f.role, "index": f.index,
                    "pid": f.pid, "kind": f.kind, "waited_s": round(f.waited, 2)}
                   for f in run.faults],
        "restarts_observed": {r: restarts[r] - 2 for r in ROLES},
        "phases": phases(run), "max_latency_s": round(max(
            (o.end - o.start for o in run.outcomes), default=0.0), 2),
        "recovery": recovery(run), "rss": gens, "shutdown": stopped,
        "per_client": {c: {"sent": s, "answered": a} for c, (s, a) in run.counts.items()},
    }
    if cfg.mode == "soak":
        report["periods"] = buckets(run)
    report["checks"] = checks(run, report, kinds, gens)
    report["server_log"] = log_excerpt(run.server.output)
    return report


def checks(run: Run, report: dict[str, Any], kinds: Counter[str],
           gens: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    cfg = run.cfg
    allowed = CLEAN | {k + "_unexplained" for k in CLEAN} | {"conn", "stream_cut"}
    bad = {k: n for k, n in kinds.items()
           if k not in allowed and k not in (*WRONG, "timeout", "over_deadline")}
    wrong = {k: kinds[k] for k in WRONG if kinds[k]}
    hangs = {k: kinds[k] for k in ("timeout", "over_deadline") if kinds[k]}
    worst = [(v, r["t"], route) for r in report["recovery"]
             for route, v in r["first_success_s"].items()]
    missing = [(t, route) for v, t, route in worst if v is None]
    worst_s = max((w for w in worst if w[0] is not None), default=None)
    grown = [g for g in gens if g.get("growth_mib", 0) > cfg.rss_tolerance_mib]
    stopped = report["shutdown"]
    leaked = {i: v for i, v in stopped.get("held_after_load", {}).items()
              if "stale" not in stopped["held_since"][i]}
    out = {
        "no_wrong_answer": check(not wrong, wrong or "every 200 was its own answer"),
        "failures_are_clean": check(not bad, bad or "only 500/503/504, connections of a "
                                  "killed front, streams cut by a killed worker"),
        "no_hang": check(not hangs and report["max_latency_s"] <= cfg.client_timeout + 0.1,
                         {**hangs, "max_latency_s": report["max_latency_s"],
                          "limit_s": cfg.client_timeout}),
        "names_removed": check(not stopped["names_left"], stopped["names_left"]),
        "fronts_idle_after_load": check(not leaked, leaked or "no request slot or arena "
                                        "byte held (beyond what a dead front left on the "
                                        "board)"),
        "server_stopped_cleanly": check(stopped["exit_code"] == 0, stopped["exit_code"]),
        "rss_flat": check(not grown, grown or f"RssAnon growth <= {cfg.rss_tolerance_mib} "
                                               "MiB per process after warm-up"),
        "some_successes": check(report["successes"] > 0, report["successes"]),
    }
    if cfg.mode == "chaos":
        out["recovers_in_time"] = check(
            not missing and worst_s is not None and worst_s[0] <= cfg.recover_s,
            {"worst_s": worst_s, "no_success_after": missing})
        missing_kinds = set(cfg.fault_list) - {(f.role, f.kind) for f in run.faults}
        out["faults_injected"] = check(not missing_kinds, {"faults": len(run.faults),
                                                           "kinds_never_injected": missing_kinds})
    else:
        out.update(soak_checks(run, report, kinds))
    return out


def soak_checks(run: Run, report: dict[str, Any], kinds: Counter[str]) -> dict[str, Any]:
    lost = {c: v for c, v in report["per_client"].items() if v["sent"] != v["answered"]}
    shm = [s for s in run.shm if s[0] >= run.t0 + run.cfg.warmup]
    grew = bool(shm) and (max(s[1] for s in shm) != shm[0][1]
                          or max(s[2] for s in shm) - shm[0][2] > run.cfg.rss_tolerance_mib * MiB)
    return {
        "no_lost_or_duplicated_response": check(
            not lost and not any(kinds[k] for k in WRONG),
            {"sent_not_answered": lost, "not_their_own": {k: kinds[k] for k in WRONG}}),
        "no_errors": check(not kinds, dict(kinds) or 0),
        "no_restarts": check(not any(report["restarts_observed"].values()),
                             report["restarts_observed"]),
        "shm_flat": check(not grew, {"entries_bytes_first": shm[0][1:] if shm else None,
                                     "entries_bytes_max": (max(s[1] for s in shm),
                                                           max(s[2] for s in shm))
                                     if shm else None}),
    }


def buckets(run: Run) -> list[dict[str, Any]]:
    rows = []
    n = max(1, math.ceil(run.cfg.duration / run.cfg.bucket))
    for b in range(n):
        lo, hi = run.t0 + b * run.cfg.bucket, run.t0 + (b + 1) * run.cfg.bucket
        hi = hi if b < n - 1 else math.inf  # the last one takes the requests at the stop
        mine = [o for o in run.outcomes if lo <= o.start < hi]
        if not mine:
            continue
        ok = [o.end - o.start for o in mine if o.kind == "ok"]
        last: dict[str, int] = {}
        for t, role, index, _, _, anon, _ in run.rss:
            if lo <= t < hi:
                last[f"{role}{index}"] = anon
        shm = [s for s in run.shm if lo <= s[0] < hi]
        held: dict[float, list[int]] = defaultdict(lambda: [0, 0])  # all fronts, per sample
        for t, _, n, size in run.usage:
            if lo <= t < hi:
                held[t][0] += n
                held[t][1] += size
        rows.append({"from_s": round(b * run.cfg.bucket), "requests": len(mine),
                     "errors": len(mine) - len(ok),
                     "p99_ms": percentiles(ok)["p99_ms"],
                     "held_max": (max((h[0] for h in held.values()), default=0),
                                  round(max((h[1] for h in held.values()), default=0) / MiB, 1)),
                     "rss_anon_mib": {k: round(v / MiB, 1) for k, v in sorted(last.items())},
                     "shm_mib": round(shm[-1][2] / MiB, 1) if shm else None})
    return rows


def log_excerpt(output: str, limit: int = 40) -> list[str]:
    keep = [line.rstrip() for line in output.splitlines()
            if not line.startswith("INFO:") and line.strip()]
    return keep[:limit] + ([f"... {len(keep) - limit} more lines"] if len(keep) > limit else [])


# -- printing and the CLI --------------------------------------------------------------
def render(report: dict[str, Any]) -> str:
    lines = [f"requests {report['requests']}, successes {report['successes']}, "
             f"errors {report['errors'] or 0}",
             f"faults {len(report['faults'])}: " + ", ".join(
                 f"{f['t']}s {f['kind']} {f['role']}{f['index']}" for f in report["faults"]),
             f"restarts observed {report['restarts_observed']}, max latency "
             f"{report['max_latency_s']} s"]
    for name, p in report["phases"].items():
        lines.append(f"  {name:7} {p['requests']:6} req {p['errors']:4} err  "
                     f"p50 {p['p50_ms']} ms  p99 {p['p99_ms']} ms")
    for r in report["recovery"]:
        lines.append(f"  kill {r['role']}{r['index']} at {r['t']}s: first success "
                     f"{r['first_success_s']}, replacement ready {r['replacement_ready_s']} s")
    for row in report.get("periods", []):
        lines.append(f"  from {row['from_s']:4} s: {row['requests']} req {row['errors']} err "
                     f"p99 {row['p99_ms']} ms, fronts hold (slots, MiB) {row['held_max']}, shm "
                     f"{row['shm_mib']} MiB anon {row['rss_anon_mib']}")
    for g in report["rss"]:
        lines.append(f"  rss {g['role']}{g['index']} pid {g['pid']}: " + ", ".join(
            f"{k} {v}" for k, v in g.items() if k not in ("role", "index", "pid")))
    lines.append(f"shutdown {report['shutdown']}")
    lines.append(f"cpu {report.get('cpu')}")
    for kind, s in report["error_samples"].items():
        lines += [f"  {kind}: {x}" for x in s]
    lines += [f"  log| {x}" for x in report["server_log"]]
    lines += [f"{'PASS' if c['ok'] else 'FAIL'} {name}: {c['detail']}"
              for name, c in report["checks"].items()]
    return "\n".join(lines)


def run_chaos(cfg: Config | None = None) -> dict[str, Any]:
    return execute(cfg or Config())


def run_soak(cfg: Config | None = None) -> dict[str, Any]:
    cfg = cfg or Config(mode="soak", duration=600.0, warmup=60.0, sample_every=5.0,
                        rss_warmup=60.0)
    cfg.mode = "soak"
    return execute(cfg)


def _choices(parser: argparse.ArgumentParser, option: str, given: str, allowed: str) -> None:
    unknown = sorted(set(given.split(",")) - set(allowed.split(",")))
    if unknown:
        parser.error(f"{option} {given!r}: {', '.join(unknown)} not known; use some of "
                     f"{allowed}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode, duration, help_text in (("chaos", 60.0, "faults under load"),
                                      ("soak", 600.0, "load without faults")):
        p = sub.add_parser(mode, help=help_text)
        p.add_argument("--duration", type=float, default=duration,
                       help="seconds (chaos: of the fault phase)")
        p.add_argument("--clients", type=int, default=5)
        p.add_argument("--timeout", type=float, default=3.0, help="LitServer(timeout=...)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--routes", default=",".join(ROUTE_WEIGHTS),
                       help="comma-separated, of: " + ", ".join(ROUTE_WEIGHTS))
        p.add_argument("--json", type=Path, help="also write the report here")
        if mode == "chaos":
            p.add_argument("--fault-every", type=float, default=3.0)
            p.add_argument("--stop-s", type=float, default=1.0, help="SIGSTOP length")
            p.add_argument("--warmup", type=float, default=5.0)
            p.add_argument("--settle", type=float, default=5.0)
            p.add_argument("--faults", default=Config.faults,
                           help="comma-separated, of: " + Config.faults)
        else:
            p.add_argument("--warmup", type=float, default=60.0,
                           help="seconds left out of the growth verdict")
            p.add_argument("--bucket", type=float, default=60.0, help="report period")
    args = vars(parser.parse_args(argv))
    _choices(parser, "--routes", args["routes"], ",".join(ROUTE_WEIGHTS))
    _choices(parser, "--faults", args.get("faults", Config.faults), Config.faults)
    out = args.pop("json")
    if args["mode"] == "soak":
        args.update(sample_every=5.0, rss_warmup=args["warmup"])
    report = execute(Config(**args))
    print(render(report))
    if out:
        out.write_text(json.dumps(report, indent=1, default=str))
    return 0 if all(c["ok"] for c in report["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
