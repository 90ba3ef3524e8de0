"""``litserve`` / ``python -m litserve``: subcommands from the ``COMMANDS`` registry."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Final

# name -> module defining HELP, DESCRIPTION, EPILOG, add_arguments(parser), run(args) -> int
COMMANDS: Final = {"bench": "litserve.cli.bench.cli"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="litserve", description="litserve command line tools.",
        epilog="Run 'litserve COMMAND --help' for the options of a command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        epilog = module.EPILOG
        if "{payloads}" in epilog:
            from litserve.cli.bench.payloads import PAYLOADS

            epilog = epilog.format(payloads="\n".join(
                f"  {k:8} {v}" for k, v in PAYLOADS.items()))
        cmd = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                             epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(cmd)
        cmd.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
