"""Helpers of the CLI tests: the reference/real servers of tests/client, and running
``litserve bench`` as a real process."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> Any:
    """tests/client/<name>.py, loaded by path (it is not on this directory's path)."""
    if name not in sys.modules:
        path = ROOT / "tests" / "client" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


support = _load("client_support")  # server processes
fixtures = _load("server_fixtures")  # the session servers, shared with tests/client


def bench(*args: str, expect_rc: int = 0, timeout: float = 60) -> tuple[dict[str, Any], str]:
    """Run ``python -m litserve bench ARGS --json -``; its JSON result and its stderr."""
    cmd = [sys.executable, "-m", "litserve", "bench", *args, "--json", "-", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    assert proc.returncode == expect_rc, f"rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return (json.loads(proc.stdout) if proc.stdout.strip() else {}), proc.stderr


def delta(before: dict[str, Any], after: dict[str, Any], key: str, section: str = "counts"
          ) -> int:
    return int(after[section].get(key, 0)) - int(before[section].get(key, 0))


def check_plausible(r: dict[str, Any]) -> None:
    """Percentiles ordered, outcomes adding up, req/s consistent with count and time."""
    lat = r["latency_ms"]
    order = [lat[k] for k in ("min", "p50", "p90", "p99", "p99.9", "max")]
    assert order == sorted(order) and lat["min"] <= lat["mean"] <= lat["max"], lat
    assert r["requests"] == r["ok"] + r["errors"]
    assert r["errors"] == sum(r["errors_by_status"].values()) + sum(r["errors_by_kind"].values())
    if r["elapsed_s"]:
        assert r["req_per_s"] == pytest.approx(r["requests"] / r["elapsed_s"], rel=0.01)
