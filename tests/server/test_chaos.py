"""Chaos under load, the CI run of bench/reliability.py: while client threads send
JSON, 1 MiB tensors, streams and batched requests and check every answer byte for byte,
a front or a worker is SIGKILLed, or SIGSTOPped for 1 s, every 3 s.  The run asserts
every check of the report (no wrong answer; only clean 5xx, or lost connections of a
killed front; no hang; every route answers within 2 s of each kill; no name left in
/dev/shm; fronts idle after the load; RSS flat; a clean stop) and prints the report.

    LITSERVE_CHAOS_S=300 .venv/bin/python -m pytest tests/server/test_chaos.py -s

$LITSERVE_CHAOS_REPORT, when set, names a file the report is written to as JSON.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

CHAOS_S = float(os.environ.get("LITSERVE_CHAOS_S", "30"))  # the fault phase, seconds
BENCH = Path(__file__).resolve().parents[2] / "bench" / "reliability.py"


def reliability() -> ModuleType:
    """bench/reliability.py as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("reliability", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["reliability"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(CHAOS_S + 150)
def test_chaos_under_load_every_answer_is_checked():
    rel = reliability()
    report = rel.run_chaos(rel.Config(duration=CHAOS_S, fault_every=3.0))
    text = rel.render(report)
    print(text)
    if os.environ.get("LITSERVE_CHAOS_REPORT"):
        Path(os.environ["LITSERVE_CHAOS_REPORT"]).write_text(
            json.dumps(report, indent=1, default=str))
    failed = {name: c["detail"] for name, c in report["checks"].items() if not c["ok"]}
    assert not failed, f"chaos checks failed (the report is printed above): {failed}"
