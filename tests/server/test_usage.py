"""The front publishes what it holds (slots, arena bytes) on the control board."""

from __future__ import annotations

import numpy as np

from .harness import front_usage, serve, wait_idle


def test_usage_is_zero_when_idle_and_after_requests():
    with serve("basic:Echo") as server:
        assert front_usage(server) == (0, 0)
        x = np.arange(100_000, dtype=np.float32)
        r = server.post(content=x.tobytes(), headers={
            "content-type": "application/octet-stream", "x-tensor-dtype": "float32"})
        assert r.status_code == 200, r.text
        assert server.post(json={"input": 1}).status_code == 200
        wait_idle(server)
