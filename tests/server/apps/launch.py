"""Start a test server through the real path: ``LitServer(...).run(...)``.

    python launch.py 'MODULE:CLASS[;MODULE:CLASS(JSON kwargs)...]' \
        '{"server": "kwargs"}' '{"run": "kwargs"}'

Each CLASS is looked up in tests/server/apps/<MODULE>.py (next to this file).  The
server listens on 127.0.0.1 with port 0 unless told otherwise; the tests read the
actual port from uvicorn's "Uvicorn running on" line.
"""

import importlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import litserve as ls  # noqa: E402


def build(spec: str):
    apis = []
    for item in spec.split(";"):
        module, _, cls = item.partition(":")
        name, _, args = cls.partition("(")
        kwargs = json.loads(args[:-1]) if args else {}
        apis.append(getattr(importlib.import_module(module), name)(**kwargs))
    return apis if len(apis) > 1 else apis[0]


if __name__ == "__main__":
    server_kwargs = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    run_kwargs = {"host": "127.0.0.1", "port": 0, "generate_client_file": False}
    run_kwargs.update(json.loads(sys.argv[3]) if len(sys.argv) > 3 else {})
    ls.LitServer(build(sys.argv[1]), **server_kwargs).run(**run_kwargs)
