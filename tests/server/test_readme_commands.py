"""The README's two commands: what they are, and that the first really serves."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from .harness import Server

ROOT = Path(__file__).resolve().parents[2]


def _commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "the README must open with a bash block of commands"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_serve_and_test():
    assert _commands()[:2] == ["./scripts/serve", "./scripts/test"]


def test_ci_runs_exactly_the_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec ./scripts/test" in ci


def test_serve_command_starts_the_hello_server(tmp_path: Path):
    server = Server("", argv=[str(ROOT / "scripts" / "serve"), "--port", "0", "--host",
                              "127.0.0.1"], env={"LITSERVE_SKIP_INSTALL": "1"}, cwd=tmp_path)
    try:
        server.wait_ready()
        r = httpx.post(server.url + "/predict", json={"input": 4})
        assert r.json() == {"output": 16}
        assert server.stop() == 0
    finally:
        server.kill_group()
