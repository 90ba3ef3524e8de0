"""The yardstick: upstream LitServe's own end-to-end suite, run against this package.

    python bench/upstream_e2e.py [--upstream GIT_DIR] [-k EXPR] [--timeout S]

Exports ``tests/e2e/``, ``tests/simple_server.py``, ``tests/simple_server_diff_port.py``,
``tests/conftest.py`` and ``tests/__init__.py`` from upstream's repository (a bare git
directory, default the mirror below) into a temporary directory, and runs pytest on
``tests/e2e/test_e2e.py`` there with *this* checkout's ``litserve`` importable (first on
PYTHONPATH) and this interpreter first on PATH (the suite runs ``python client.py``).
Nothing of upstream's is kept: the directory is removed afterwards.

Upstream's harness starts each server with ``subprocess.Popen``, waits for the line
``Application startup complete.``, runs the test, then SIGKILLs the server's process
tree.  The tests use ports 8000 and 8080, so both must be free.  Afterwards this script
kills whatever the run left (every process whose working directory is the temporary
one), removes the shared-memory names of the servers it started, and says if any were
left.  Prints one line per test and pytest's summary; exit status 0 when all passed.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIRROR = "/work/.mirror/Lightning-AI+LitServe/repo"
EXPORTED = ["tests/e2e", "tests/simple_server.py", "tests/simple_server_diff_port.py",
            "tests/conftest.py", "tests/__init__.py"]
PORTS = (8000, 8080)
SUITE = "tests/e2e/test_e2e.py"
SETTLE_S = 3.0  # seconds for the killed servers' last processes to finish exiting


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def export(upstream: str, dest: Path) -> str:
    """Write upstream's e2e files under ``dest``; the commit they come from."""
    git = ["git", f"--git-dir={upstream}"]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    listed = subprocess.run([*git, "ls-tree", "-r", "--name-only", commit, "tests"],
                            check=True, capture_output=True, text=True).stdout.split()
    paths = [p for p in EXPORTED if any(f == p or f.startswith(p + "/") for f in listed)]
    archive = subprocess.run([*git, "archive", commit, *paths], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return commit


def run_suite(work: Path, extra: list[str], timeout: float) -> tuple[int, bool]:
    """pytest on the suite in ``work`` (its own process group); (exit code, timed out)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("LIT_SERVER_API_KEY", None)
    cmd = [sys.executable, "-m", "pytest", SUITE, "-p", "no:cacheprovider", "-q",
           "--junitxml", str(work / "report.xml"), "-o", "addopts=", *extra]
    proc = subprocess.Popen(cmd, cwd=work, env=env, start_new_session=True)
    try:
        return proc.wait(timeout), False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return 1, True


def results(report: Path) -> list[tuple[str, str]]:
    """(test name, outcome) from pytest's JUnit XML report."""
    if not report.exists():
        return []
    found = []
    for case in ET.parse(report).getroot().iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
            elif child.tag == "skipped":
                outcome = "skipped"
        found.append((case.get("name", "?"), outcome))
    return found


def leftover_pids(work: Path) -> list[int]:
    """Processes of ours still running in ``work`` (servers the harness did not stop)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == str(work) or cwd.startswith(str(work) + "/"):
            found.append(int(entry.name))
    return found


def clean_up(work: Path, tokens_before: set[str]) -> list[str]:
    """Kill what the run left, remove its servers' shared memory; what was left."""
    from litserve.ipc import names
    from litserve.ipc.janitor import sweep_dead
    from litserve.ipc.lease import alive

    left = []
    pids = leftover_pids(work)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        left.append(f"process {pid} was still running (killed)")
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    # The harness SIGKILLed its servers, janitors included, so their names stay until
    # someone sweeps them.  Every process the run started is gone within moments (a
    # killed process may still be exiting, holding its lease): a new set whose lease is
    # still held after SETTLE_S is another session's live server, not ours.
    start, left_names = time.monotonic(), set()
    while True:
        new = _tokens(names.leftovers()) - tokens_before
        dead = {t for t in new if not alive(t)}
        if dead:
            sweep_dead(tokens=dead)
            left_names = dead & _tokens(names.leftovers())
        if time.monotonic() - start >= SETTLE_S and not left_names:
            break
        if time.monotonic() - start >= 3 * SETTLE_S:
            break
        time.sleep(0.2)
    left += [f"/dev/shm names of server {t} were left" for t in sorted(left_names)]
    return left


def _tokens(entries: list[str]) -> set[str]:
    from litserve.ipc import names

    return {t for e in entries if (t := (names.parse(e) or ("", ""))[0])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", default=MIRROR, help="upstream's git dir (bare)")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds for the whole suite (default 900)")
    args = parser.parse_args(argv)
    if not Path(args.upstream).exists():
        print(f"upstream_e2e: no upstream repository at {args.upstream}; "
              "give one with --upstream PATH", file=sys.stderr)
        return 2
    busy = [p for p in PORTS if port_in_use(p)]
    if busy:
        print(f"upstream_e2e: port(s) {', '.join(map(str, busy))} are in use; upstream's "
              f"suite needs {PORTS[0]} and {PORTS[1]} free (stop what listens there: "
              f"ss -ltnp 'sport = :{busy[0]}')", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    from litserve.ipc import names

    before = _tokens(names.leftovers())
    with tempfile.TemporaryDirectory(prefix="litserve-upstream-e2e-") as tmp:
        work = Path(tmp)
        commit = export(args.upstream, work)
        print(f"upstream_e2e: upstream {commit[:12]} in {work}", flush=True)
        extra = ["-k", args.keyword] if args.keyword else []
        code, timed_out = run_suite(work, extra, args.timeout)
        outcomes = results(work / "report.xml")
        left = clean_up(work, before)
    print("\nupstream_e2e results:")
    for name, outcome in outcomes:
        print(f"  {outcome.upper():8} {name}")
    counts = {o: sum(1 for _, x in outcomes if x == o) for o in ("passed", "failed", "error",
                                                                 "skipped")}
    summary = ", ".join(f"{n} {o}" for o, n in counts.items() if n)
    print("upstream_e2e: " + (summary or "no test ran (pytest's output is above)"))
    if timed_out:
        print(f"upstream_e2e: the suite did not finish within {args.timeout:.0f} s (killed)")
    for line in left:
        print(f"upstream_e2e: {line}")
    ok = code == 0 and not timed_out and not left and outcomes
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
