"""Stacking requests into a batch, straight from their shared-memory slots.

``stack`` is what ``LitAPI.batch`` does by default: equal-shape NumPy arrays are
gathered into one buffer with a single GIL-free copy per slot (``gather_copy``);
the buffer is kept and reused for the next batch of the same shape and dtype.
Torch tensors are stacked into a reused buffer too.  When CUDA is present both kinds of
buffer live in pinned (page-locked) host memory, so the copy to the device can be
asynchronous (``torch.from_numpy(batch).to("cuda", non_blocking=True)``).  Anything
else stays a list.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from .ipc._shm import gather_copy


class BatchBuffers:
    """Reusable batch buffers keyed by (batch size, item shape, dtype)."""

    def __init__(self, max_buffers: int = 8) -> None:
        self._np: dict[tuple[Any, ...], np.ndarray] = {}
        self._torch: dict[tuple[Any, ...], Any] = {}
        self._max = max_buffers

    def numpy(self, n: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        key = (n, shape, dtype.str)
        buf = self._np.get(key)
        if buf is None:
            if len(self._np) >= self._max:
                self._np.clear()
            buf = self._np[key] = _pinned_numpy((n, *shape), dtype)
        return buf

    def torch(self, n: int, shape: tuple[int, ...], dtype: Any) -> Any:
        import torch

        key = (n, shape, dtype)
        buf = self._torch.get(key)
        if buf is None:
            if len(self._torch) >= self._max:
                self._torch.clear()
            pin = torch.cuda.is_available()
            buf = self._torch[key] = torch.empty((n, *shape), dtype=dtype, pin_memory=pin)
        return buf


def _cuda() -> bool:
    """CUDA is usable, asked only of a torch the API already imported (a NumPy-only API
    does not pay for importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and bool(torch.cuda.is_available())


def _pinned_numpy(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array, in pinned host memory when CUDA is usable."""
    if not _cuda():
        return np.empty(shape, dtype)
    import torch

    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    host = torch.empty(max(nbytes, 1), dtype=torch.uint8, pin_memory=True)
    # the array's base keeps the pinned tensor alive
    return host.numpy()[:nbytes].view(dtype).reshape(shape)


_default_buffers = BatchBuffers()


def stack(inputs: list[Any], buffers: BatchBuffers | None = None) -> Any:
    """Stack equal-shape arrays / tensors into a reused buffer; otherwise the list."""
    buffers = buffers or _default_buffers
    if not inputs:
        return inputs
    first = inputs[0]
    if isinstance(first, np.ndarray) and _same(inputs, np.ndarray):
        return _stack_numpy(inputs, buffers)
    torchy = type(first).__module__.startswith("torch") and _is_tensor(first)
    if torchy and _same(inputs, type(first)):
        return _stack_torch(inputs, buffers)
    return inputs


def _same(inputs: list[Any], kind: type) -> bool:
    first = inputs[0]
    return all(isinstance(x, kind) and _meta(x) == _meta(first) for x in inputs)


def _meta(x: Any) -> tuple[Any, Any]:
    return x.shape, x.dtype


def _stack_numpy(inputs: list[np.ndarray], buffers: BatchBuffers) -> np.ndarray:
    first = inputs[0]
    if len(inputs) == 1:
        return first[np.newaxis]  # one slot: a view, no copy
    out = buffers.numpy(len(inputs), first.shape, first.dtype)
    if all(x.flags.c_contiguous for x in inputs):
        flat = [x.reshape(-1).view(np.uint8) for x in inputs]
        gather_copy(out.reshape(-1).view(np.uint8), 0, flat)
    else:
        for i, x in enumerate(inputs):
            out[i] = x
    return out


def _is_tensor(x: Any) -> bool:
    import torch

    return isinstance(x, torch.Tensor)


def _stack_torch(inputs: list[Any], buffers: BatchBuffers) -> Any:
    import torch

    first = inputs[0]
    if first.device.type != "cpu":
        return torch.stack(inputs)
    out = buffers.torch(len(inputs), tuple(first.shape), first.dtype)
    torch.stack(inputs, out=out)
    return out
