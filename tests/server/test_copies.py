"""User-space copies of a large binary tensor in the worker, counted (docs/architecture.md,
"Copies per request byte"): a change that adds one fails here.

A 16 MiB float32 ``application/octet-stream`` body goes to ``predict``, which returns it
as it is, asked back as ``application/octet-stream``:

* to predict: 0 copies -- the array predict gets lies in a mapping of the front's arena
  segment (the request's own mapping of its block), unbatched and as a batch of one;
* back: the worker allocates no buffer of the tensor's size between predict and the
  single gather into its out-arena (tracemalloc), and the request's loan ends without a
  copy (nothing kept it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from litserve.ipc import names

from .harness import Server, serve

N = 4 << 20  # float32 items: 16 MiB
HEADERS = {"content-type": "application/octet-stream", "x-tensor-dtype": "float32",
           "accept": "application/octet-stream"}
SLACK = 1 << 20  # what encoding may allocate in Python objects (headers, records): far < 16 MiB


def report(server: Server) -> dict[str, Any]:
    r = server.post(json={"op": "report"})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("batch", [1, 4], ids=["unbatched", "batch-of-one"])
def test_a_large_tensor_reaches_predict_and_returns_without_a_user_space_copy(batch):
    x = np.arange(N, dtype=np.float32)
    with serve("kept:CopyCount", max_batch_size=batch, batch_timeout=0.01,
               max_payload_size=64 << 20) as server:
        for warm in (False, True):  # the second round runs with pages and buffers warm
            before = report(server)
            r = server.post(content=x.tobytes(), headers=HEADERS)
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "application/octet-stream"
            assert np.array_equal(np.frombuffer(r.content, np.float32), x)
            after = report(server)
            [note] = after["notes"]
            assert note["nbytes"] == x.nbytes
            segment = note["mapping"].split()[-1]
            role = (names.parse(segment.rsplit("/", 1)[-1]) or ("", ""))[1]
            assert segment.startswith("/dev/shm/lsv_") and role.endswith(".arena"), (
                f"predict's array is not in the front's arena but in {note['mapping']!r}")
            assert after["allocated_since_last_predict"] < SLACK, (
                f"the way back allocated {after['allocated_since_last_predict']} bytes")
            stats = {k: after["stats"][k] - before["stats"][k] for k in before["stats"]}
            # warm, the block's mapping from the first round is reused: no page faults
            assert stats == {"loans": 1, "returned": 1, "kept": 0, "kept_bytes": 0,
                             "mapped": 0 if warm else 1}
