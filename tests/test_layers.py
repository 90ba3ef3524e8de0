"""Imports point one way: down (see docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "litserve"


def _imports(path: Path) -> set[str]:
    """Absolute litserve module names imported by one file (relative imports resolved)."""
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("litserve")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("litserve"):
                found.add(mod)
                found |= {f"{mod}.{a.name}" for a in node.names}
    return found


def _files(sub: str) -> list[Path]:
    return sorted((PKG / sub).rglob("*.py"))


def _reaches(imports: set[str], forbidden: str) -> set[str]:
    return {m for m in imports if m == forbidden or m.startswith(forbidden + ".")}


@pytest.mark.parametrize("path", _files("ipc"), ids=lambda p: p.name)
def test_ipc_imports_nothing_else_of_the_package(path):
    bad = {m for m in _imports(path) if not m.startswith("litserve.ipc")}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize(("layer", "forbidden"), [
    ("http", "litserve.worker"),
    ("worker", "litserve.http"),
    ("http", "litserve.server"),
    ("worker", "litserve.server"),
    ("http", "litserve.supervisor"),
    ("worker", "litserve.supervisor"),
])
def test_fronts_and_workers_never_import_each_other_or_upwards(layer, forbidden):
    for path in _files(layer):
        bad = _reaches(_imports(path), forbidden)
        assert not bad, f"litserve/{layer}/{path.name} imports {sorted(bad)}"


def test_client_does_not_pull_in_the_server():
    for path in [PKG / "client.py", *_files("cli")] if (PKG / "client.py").exists() else []:
        imports = _imports(path)
        for forbidden in ("litserve.server", "litserve.http", "litserve.worker",
                          "litserve.supervisor"):
            assert not _reaches(imports, forbidden), f"{path.name} imports {forbidden}"
