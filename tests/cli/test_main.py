"""The ``litserve`` command line: help, option checks, entry points."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from litserve.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def help_text(*args: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main([*args, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_lists_bench(capsys: pytest.CaptureFixture[str]) -> None:
    assert "bench" in help_text(capsys=capsys)


def test_every_bench_option_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text("bench", capsys=capsys)
    sub = build_parser()._subparsers._group_actions[0].choices["bench"]  # type: ignore[union-attr]
    for action in sub._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings} has no help"
            if action.choices is None and action.dest not in ("progress", "loop"):
                assert re.search(r"e\.g\.|Default|default", action.help), action.option_strings
    for example in ("--tensor 1080x1920x3:uint8", "--openai", "--rate", "--stream", "--procs"):
        assert example in text


@pytest.mark.parametrize("args,message", [
    (["--concurrency", "0"], "--concurrency=0"),
    (["--procs", "4", "-c", "2"], "below --procs"),
    (["--data", "{bad"], "Expecting"),
    (["--data", "{}", "--openai"], "give one payload"),
    (["--tensor", "3x:float99"], "not valid"),
    (["--tensor", "3x4:float99"], "not a NumPy dtype"),
    (["--tensor", "3x4", "--tensor", "5"], "name each"),
    (["--duration", "-1"], "--duration=-1.0"),
    (["-H", "nocolon"], "NAME: VALUE"),
    (["ftp://x"], "not supported"),
    (["--tensor", "2x2:<U3"], "not supported"),
])
def test_bad_options_exit_2_with_a_message(args: list[str], message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("litserve bench: error:") and message in err, err


def test_entry_points() -> None:
    out = subprocess.run([sys.executable, "-m", "litserve", "--help"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and "bench" in out.stdout
    script = Path(sys.executable).parent / "litserve"
    if script.exists():
        out = subprocess.run([str(script), "bench", "--help"], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0 and "--concurrency" in out.stdout


def test_client_and_bench_import_neither_the_server_nor_numpy() -> None:
    """Imported with the package's __init__ bypassed (it belongs to the server)."""
    code = (
        "import sys, types; pkg = types.ModuleType('litserve'); "
        f"pkg.__path__ = [{str(ROOT / 'litserve')!r}]; sys.modules['litserve'] = pkg; "
        "import litserve.client, litserve.cli.main, litserve.cli.bench.engine; "
        "light = {'litserve.ipc', 'litserve.ipc.errors'}; "  # the exception root only
        "print(sorted(m for m in sys.modules if m not in light and (m in ('numpy', 'posix_ipc') "
        "or m.startswith(('litserve.server', 'litserve.http', 'litserve.worker', "
        "'litserve.ipc', 'starlette')))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
