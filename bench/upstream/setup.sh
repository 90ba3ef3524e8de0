#!/usr/bin/env bash
# Create bench/.venv-upstream with upstream LitServe 0.2.19, for bench/compare_upstream.py.
#
# Upstream and ours share the import name `litserve`, so upstream lives in its own venv.
# Upstream 0.2.19 does not need torch; none of the bench servers import it. Idempotent:
# re-running only installs what is missing. Also installs wrk (apt) when absent and we are root.
#
#   bash bench/upstream/setup.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$(cd "$here/.." && pwd)/.venv-upstream"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
# numpy: the bench servers decode tensors; python-multipart: upstream's form uploads;
# py-spy: to profile upstream's server during a run.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$venv/bin/python" -c "import importlib.metadata as m, litserve, numpy, multipart; print('upstream litserve', m.version('litserve'), 'in', '$venv')"

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq wrk >/dev/null
    else
        echo "wrk not found: install it (apt-get install wrk)" >&2
    fi
fi
