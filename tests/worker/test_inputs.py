"""What decode_request's body is made of (worker/inputs.py payload), and the runner's
rule when a kept input cannot be given a private copy (runner._let_go)."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import numpy as np
import pytest

from litserve import protocol as P
from litserve.ipc import Arena, names
from litserve.ipc.janitor import sweep
from litserve.worker import inputs
from litserve.worker.runner import InputsNotPrivate, Job, Runner

META = pickle.dumps({"dtype": "<f4", "shape": None})


@pytest.fixture
def arenas() -> Iterator[tuple[Arena, Arena]]:
    """(the front's arena, the worker's attachment with its fd kept)."""
    token = names.new_token()
    front = Arena(names.make(token, "f0.0.arena"), 1 << 20, create=True)
    worker = Arena(front.name, keep_fd=True)
    yield front, worker
    worker.close()
    front.close()
    front.unlink()
    left = names.leftovers(token)
    sweep(token)
    assert not left, f"left behind: {left}"


def posted(front: Arena, kind: int, body: bytes, meta: bytes = META) -> P.RequestRecord:
    block = front.alloc(P.align64(len(meta)) + len(body))
    front.buf[block : block + len(meta)] = meta
    start = block + P.align64(len(meta))
    front.buf[start : start + len(body)] = body
    return P.RequestRecord(0, 0, kind, 0, 0, 0, 0, block, len(body), len(meta), 0.0)


def test_a_large_tensor_body_is_lent(arenas):
    front, worker = arenas
    rec = posted(front, P.OCTET, np.ones(inputs.COPY_BELOW // 4, np.float32).tobytes())
    meta, body, loan = inputs.payload(rec, worker)
    assert meta == {"dtype": "<f4", "shape": None} and loan is not None
    x = inputs.request_object(rec, meta, body, None)
    assert x.flags.writeable and float(x.sum()) == inputs.COPY_BELOW // 4
    x /= 2  # in place, in the request's own block
    del x, body
    assert loan.settle() is True


@pytest.mark.parametrize("kind", [P.OCTET, P.NPY, P.BUNDLE, P.FORM])
def test_a_small_body_of_a_view_kind_is_a_writable_copy(arenas, kind):
    front, worker = arenas
    rec = posted(front, kind, b"\x01" * 1000)
    _, body, loan = inputs.payload(rec, worker)
    assert loan is None and isinstance(body, bytearray) and bytes(body) == b"\x01" * 1000
    front.buf[rec.block + 64 : rec.block + 72] = b"\x09" * 8  # the front reuses the block
    assert bytes(body[:8]) == b"\x01" * 8


def test_an_inline_tensor_body_is_writable():
    body = np.arange(4, dtype=np.float32).tobytes()
    rec = P.RequestRecord(0, 0, P.OCTET, 0, 0, 0, 0, P.NO_BLOCK, len(body), len(META), 0.0,
                          META + body)
    meta, raw, loan = inputs.payload(rec, None)
    x = inputs.request_object(rec, meta, raw, None)
    x /= 255  # (a view of the descriptor's bytes was read-only)
    assert loan is None and x.tolist() == pytest.approx([0, 1 / 255, 2 / 255, 3 / 255])


def test_a_json_body_is_read_from_the_shared_mapping_and_not_lent(arenas):
    front, worker = arenas
    rec = posted(front, P.JSON, b'{"a": [1, 2, 3]}' + b" " * 100_000, meta=b"")
    _, body, loan = inputs.payload(rec, worker)
    assert loan is None and inputs.request_object(rec, {}, body, None) == {"a": [1, 2, 3]}


def test_a_block_without_an_arena_is_named():
    rec = P.RequestRecord(0, 0, P.OCTET, 0, 0, 0, 0, 4096, 8, 0, 0.0)
    with pytest.raises(ValueError, match="request in arena block 4096 but no arena"):
        inputs.payload(rec, None)


class _Refused:
    nbytes = 4096

    def settle(self) -> bool:
        raise OSError(12, "privatize: mmap of the copy of 4096 bytes failed: Cannot allocate")


def test_a_kept_input_that_cannot_be_copied_ends_the_worker():
    """No hook handler may swallow it, and the job's references are dropped first."""
    job = Job(P.RequestRecord(0, 0, P.OCTET, 0, 0, 0, 0, 0, 8, 0, 0.0), None, {},  # type: ignore[arg-type]
              request="x", raw="x", output="y", loan=_Refused())  # type: ignore[arg-type]
    assert not issubclass(InputsNotPrivate, Exception)
    with pytest.raises(InputsNotPrivate, match="Cannot allocate"):
        Runner._let_go(job)
    assert (job.request, job.raw, job.output, job.loan) == (None, None, None, None)
