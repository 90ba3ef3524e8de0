"""CUDA paths: run only where a GPU is visible (skipped on the CPU-only CI machine)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_batches_of_tensors_are_stacked_into_a_pinned_reused_buffer():
    from litserve.batching import BatchBuffers, stack

    buffers = BatchBuffers()
    first = stack([torch.full((3,), float(i)) for i in range(4)], buffers)
    assert first.is_pinned()
    assert first[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    again = stack([torch.zeros(3) for _ in range(4)], buffers)
    assert again.data_ptr() == first.data_ptr(), "the batch buffer is reused"


def test_numpy_batches_are_stacked_into_pinned_memory_on_cuda_machines():
    import numpy as np

    from litserve.batching import BatchBuffers, stack

    buffers = BatchBuffers()
    batch = stack([np.full((2, 3), i, np.float32) for i in range(4)], buffers)
    assert batch.shape == (4, 2, 3) and batch[:, 0, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert torch.from_numpy(batch).is_pinned()
    on_gpu = torch.from_numpy(batch).to("cuda", non_blocking=True)
    assert on_gpu.sum().item() == float(batch.sum())


def test_cuda_accelerator_serves_on_the_gpu():
    from .harness import serve

    with serve("basic:Square", accelerator="cuda", devices=[0], workers_per_device=2) as server:
        assert server.post(json={"input": 3}).json() == {"output": 9}


def test_auto_picks_cuda():
    import litserve as ls

    server = ls.LitServer(ls.examples.SimpleTorchAPI())
    assert server.accelerator == "cuda"
    assert server.devices[0] == "cuda:0"
