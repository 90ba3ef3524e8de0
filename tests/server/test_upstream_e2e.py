"""Upstream LitServe's own end-to-end suite passes against this package
(``bench/upstream_e2e.py``; needs upstream's repository mirrored locally).

It passes only once every part it exercises is in (async streaming, the OpenAI spec's
audio / response_format / tools, embedding batching, MCP); deselect it with
``-m 'not slow'``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIRROR = Path("/work/.mirror/Lightning-AI+LitServe/repo")


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.skipif(not MIRROR.exists(), reason=f"upstream's repository is not at {MIRROR}")
def test_upstream_e2e_suite_passes():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "upstream_e2e.py"),
                          "--upstream", str(MIRROR)], capture_output=True, text=True,
                         timeout=1100)
    report = run.stdout[run.stdout.find("upstream_e2e results:"):]
    assert run.returncode == 0, f"upstream's e2e suite did not pass:\n{report}\n{run.stderr}"
