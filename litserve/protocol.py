"""The records fronts and workers exchange over the rings, and the control board.

Nothing here knows HTTP or LitAPI: these are the fixed-size wire records of the
shared-memory pipeline.  ``litserve.http`` and ``litserve.worker`` both import this
module and never each other.

Request record (body of a request-ring cell, little-endian, 48-byte header):

    offset size type  field
    0      2    u16   front      index of the posting front
    2      2    u16   api        index of the LitAPI (route) in the server
    4      1    u8    kind       body kind: JSON 1, OCTET 2, NPY 3, BUNDLE 4, FORM 5, SPEC 6,
                                 IGNORE 14 (fills a cell a dead front claimed), STOP 15
                                 (worker: exit)
    5      1    u8    fgen       generation of the posting front (mod 256; restarts count up)
    6      2    u16   flags      STREAM 1, ACCEPT_OCTET 2, ACCEPT_NPY 4, ACCEPT_BUNDLE 8
    8      4    u32   slot       slot in the front's slot table
    12     8    u64   seq        the request's number in that table (CAS tag)
    20     8    u64   block      offset of the block in the front's arena; NO_BLOCK = inline
    28     8    u64   data_len   body bytes
    36     4    u32   meta_len   bytes of the pickled meta dict before the body (0 = none)
    40     8    f64   deadline   time.monotonic() deadline, 0.0 = none
    48     ...        inline     meta + body when block == NO_BLOCK

    In a block the meta starts at the block's offset and the body at
    offset + align64(meta_len), so tensor bodies are 64-byte aligned.

Completion record (body of a completion-ring cell, 48-byte header):

    0      2    u16   worker     worker slot index (or the dead worker, for WORKER_DIED)
    2      2    u16   gen        generation of that worker slot (restarts count up)
    4      2    u16   kind       RESULT 1, CHUNK 2, END 3, ERROR 4, WORKER_DIED 9, WAKE 10,
                                 NOOP 11 (fills a cell a dead worker claimed, ignored)
    6      2    u16   status     HTTP status (RESULT/ERROR, first CHUNK)
    8      4    u32   slot
    12     8    u64   seq
    20     8    u64   block      offset in the worker's out-arena; NO_BLOCK = inline
    28     8    u64   data_len
    36     4    u32   meta_len   bytes of header lines ("name: value\\r\\n", latin-1) first
    40     2    u16   ctype      content type code, see CONTENT_TYPES
    42     6          reserved
    48     ...        inline     meta + body when block == NO_BLOCK
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from .ipc import _shm
from .ipc.ring import unlink as ring_unlink
from .ipc.segment import Segment
from .ipc.segment import unlink as segment_unlink

NO_BLOCK = (1 << 64) - 1
CELL_SIZE = 256
HEADER_SIZE = 48
INLINE_MAX = CELL_SIZE - 8 - HEADER_SIZE
META_ROOM = 1 << 20  # room a request arena keeps beyond the largest body, for the meta

# request kinds
JSON, OCTET, NPY, BUNDLE, FORM, SPEC, IGNORE, STOP = 1, 2, 3, 4, 5, 6, 14, 15
# request flags
STREAM, ACCEPT_OCTET, ACCEPT_NPY, ACCEPT_BUNDLE = 1, 2, 4, 8
# completion kinds
RESULT, CHUNK, END, ERROR, WORKER_DIED, WAKE, NOOP = 1, 2, 3, 4, 9, 10, 11

CONTENT_TYPES = (
    b"application/json",
    b"application/octet-stream",
    b"application/x-npy",
    b"application/x-litserve-tensors",
    b"text/plain; charset=utf-8",
    b"application/x-ndjson",
    b"text/event-stream",
    b"",  # given in the meta header lines
)
CT_JSON, CT_OCTET, CT_NPY, CT_BUNDLE, CT_TEXT, CT_NDJSON, CT_SSE, CT_OTHER = range(8)

_REQ = struct.Struct("<HHBBHIQQQId")
_DONE = struct.Struct("<HHHHIQQQIH6x")
assert _REQ.size == HEADER_SIZE and _DONE.size == HEADER_SIZE


def align64(n: int) -> int:
    return (n + 63) & ~63


@dataclass(frozen=True, slots=True)
class RequestRecord:
    front: int
    api: int
    kind: int
    fgen: int
    flags: int
    slot: int
    seq: int
    block: int
    data_len: int
    meta_len: int
    deadline: float
    inline: bytes = b""

    def pack(self) -> bytes:
        return _REQ.pack(self.front, self.api, self.kind, self.fgen & 0xFF, self.flags,
                         self.slot, self.seq, self.block, self.data_len, self.meta_len,
                         self.deadline) + self.inline

    @classmethod
    def unpack(cls, body: bytes) -> RequestRecord:
        f = _REQ.unpack_from(body)
        inline = body[HEADER_SIZE : HEADER_SIZE + f[9] + f[8]] if f[7] == NO_BLOCK else b""
        return cls(*f, inline)  # type: ignore[call-arg]  # the struct's fields, in order


@dataclass(frozen=True, slots=True)
class Completion:
    worker: int
    gen: int
    kind: int
    status: int
    slot: int
    seq: int
    block: int
    data_len: int
    meta_len: int
    ctype: int
    inline: bytes = b""

    def pack(self) -> bytes:
        return _DONE.pack(self.worker, self.gen, self.kind, self.status, self.slot, self.seq,
                          self.block, self.data_len, self.meta_len, self.ctype) + self.inline

    @classmethod
    def unpack(cls, body: bytes) -> Completion:
        f = _DONE.unpack_from(body)
        inline = body[HEADER_SIZE : HEADER_SIZE + f[8] + f[7]] if f[6] == NO_BLOCK else b""
        return cls(*f, inline)  # type: ignore[call-arg]  # the struct's fields, in order


# -- control board --------------------------------------------------------------------
# One small segment made by the supervisor.  Layout (u64 words):
#   0 magic "lsv_ctl_"   8 worker count   16 front count   24-63 reserved
#   64 + 8*j   worker j state word: (generation << 8) | state
#   64 + 8*(workers + i)   front i state word (same encoding)
#   64 + 8*(workers + fronts) + 16*i       front i: request slots in use (written by front i)
#   64 + 8*(workers + fronts) + 16*i + 8   front i: request-arena bytes in use (same)
#   PIDS + 8*j             worker j: pid of its current process (written by the supervisor)
#   PIDS + 8*(workers + i) front i: the same
#   where PIDS = 64 + 8*(workers + fronts) + 16*fronts
#   BEATS + 16*j           worker j: its last heartbeat (CLOCK_MONOTONIC ns; a thread of
#                          the worker writes it every HEARTBEAT_S)
#   BEATS + 16*j + 8       worker j: when its current batch began or last made progress
#                          (a stream chunk), 0 while it waits for work
#   where BEATS = PIDS + 8*(workers + fronts)
#   word 24: 1 once every worker finished setup (written by the supervisor)
STARTING, READY, FAILED, STOPPED = 0, 1, 2, 3
HEARTBEAT_S = 0.5  # how often a worker beats
STALE_S = 3.0  # a worker that has not beaten for this long is not answering
_BOARD_MAGIC = 0x6C73765F63746C5F


def _board_layout(workers: int, fronts: int) -> tuple[int, int, int, int]:
    """(usage, pids, beats, size): where the board's sections begin (the layout above),
    and its size."""
    usage = 64 + 8 * (workers + fronts)
    pids = usage + 16 * fronts
    beats = pids + 8 * (workers + fronts)
    return usage, pids, beats, beats + 16 * workers


class Board:
    def __init__(self, name: str, workers: int = 0, fronts: int = 0, *, create: bool = False):
        self.name = name
        if create:
            self._seg = Segment(name, _board_layout(workers, fronts)[3], create=True)
            _shm.store64(self._seg.buf, 8, workers)
            _shm.store64(self._seg.buf, 16, fronts)
            _shm.store64(self._seg.buf, 0, _BOARD_MAGIC)
        else:
            self._seg = Segment(name)
        self._buf = self._seg.buf
        self.workers = _shm.load64(self._buf, 8)
        self.fronts = _shm.load64(self._buf, 16)
        self._usage, self._pids, self._beats, _ = _board_layout(self.workers, self.fronts)

    def set_worker(self, j: int, gen: int, state: int) -> None:
        _shm.store64(self._buf, 64 + 8 * j, (gen << 8) | state)

    def worker(self, j: int) -> tuple[int, int]:
        """(generation, state) of worker slot j."""
        w = _shm.load64(self._buf, 64 + 8 * j)
        return w >> 8, w & 0xFF

    def set_front(self, i: int, gen: int, state: int) -> None:
        _shm.store64(self._buf, 64 + 8 * (self.workers + i), (gen << 8) | state)

    def front(self, i: int) -> tuple[int, int]:
        """(generation, state) of front i."""
        w = _shm.load64(self._buf, 64 + 8 * (self.workers + i))
        return w >> 8, w & 0xFF

    def _usage_off(self, i: int) -> int:
        return self._usage + 16 * i

    def front_usage_writer(self, i: int) -> Callable[[int, int], None]:
        """How front i publishes what it holds now, ``write(slots, arena_bytes)`` (only
        front i writes these words; the offsets are worked out once, for the hot path)."""
        buf, off, store = self._buf, self._usage_off(i), _shm.store64

        def write(slots: int, arena_bytes: int) -> None:
            store(buf, off, slots)
            store(buf, off + 8, arena_bytes)

        return write

    def front_usage(self, i: int) -> tuple[int, int]:
        """(request slots, request-arena bytes) that front i holds now."""
        off = self._usage_off(i)
        return _shm.load64(self._buf, off), _shm.load64(self._buf, off + 8)

    def _pid_off(self, role: str, index: int) -> int:
        return self._pids + 8 * (index if role == "worker" else self.workers + index)

    def set_pid(self, role: str, index: int, pid: int) -> None:
        """Publish the pid of the process now serving as worker / front ``index``."""
        _shm.store64(self._buf, self._pid_off(role, index), pid)

    def pid(self, role: str, index: int) -> int:
        """The pid of worker / front ``index`` (``role`` "worker" or "front"); 0 before
        its first start."""
        return _shm.load64(self._buf, self._pid_off(role, index))

    def _beat_off(self, j: int) -> int:
        return self._beats + 16 * j

    def beat(self, j: int) -> None:
        """Worker j is alive and scheduled (its heartbeat thread calls this)."""
        _shm.store64(self._buf, self._beat_off(j), time.monotonic_ns())

    def busy_writer(self, j: int) -> Callable[[int], None]:
        """How worker j says when its current batch began or last made progress
        (``write(time.monotonic_ns())``), and that it waits for work (``write(0)``)."""
        buf, off, store = self._buf, self._beat_off(j) + 8, _shm.store64

        def write(since_ns: int) -> None:
            store(buf, off, since_ns)

        return write

    def reset_liveness(self, j: int) -> None:
        """Forget worker slot j's beats and batch (its next process starts afresh)."""
        _shm.store64(self._buf, self._beat_off(j), 0)
        _shm.store64(self._buf, self._beat_off(j) + 8, 0)

    def liveness(self, j: int) -> tuple[int, int]:
        """(last heartbeat, busy since) of worker j, in CLOCK_MONOTONIC ns (0: none)."""
        off = self._beat_off(j)
        return _shm.load64(self._buf, off), _shm.load64(self._buf, off + 8)

    def serving(self, j: int, predict_timeout: float | None = None) -> bool:
        """Can worker j take a request now: set up (READY), beating, and not past
        ``predict_timeout`` in one batch (when one is set)?"""
        if self.worker(j)[1] != READY:
            return False
        now = time.monotonic_ns()
        beat, busy = self.liveness(j)
        if now - beat > STALE_S * 1e9:
            return False
        return not (predict_timeout and busy and now - busy > predict_timeout * 1e9)

    def set_started(self) -> None:
        _shm.store64(self._buf, 24, 1)

    def started(self) -> bool:
        """Every worker finished setup once (after that, health is each one's liveness)."""
        return _shm.load64(self._buf, 24) == 1

    def all_workers_ready(self) -> bool:
        return all(self.worker(j)[1] == READY for j in range(self.workers))

    def all_ready(self) -> bool:
        """Every worker finished setup and every front is accepting connections."""
        return self.all_workers_ready() and all(
            self.front(i)[1] == READY for i in range(self.fronts))

    def close(self) -> None:
        self._seg.close()

    def unlink(self) -> None:
        self._seg.unlink()


# -- names of every segment, by role -------------------------------------------------
# Each role's names in one typed record: the process of that role creates them, and
# the same role's recovery code (``litserve.http.recovery``, ``litserve.worker.recovery``)
# removes them when that process died.  ``name`` is ``Plan.name`` (role -> POSIX name).
Namer = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class ServerNames:
    """What the supervisor creates: the control board and the shared request ring."""

    board: str
    requests: str

    @classmethod
    def of(cls, name: Namer) -> ServerNames:
        return cls(name("ctl"), name("req"))


@dataclass(frozen=True, slots=True)
class FrontNames:
    """What front slot ``i`` of generation ``gen`` creates: its request arena, its slot
    table and its completion ring."""

    arena: str
    slots: str
    done: str

    @classmethod
    def of(cls, name: Namer, i: int, gen: int) -> FrontNames:
        return cls(name(f"f{i}.{gen}.arena"), name(f"f{i}.{gen}.slots"),
                   name(f"f{i}.{gen}.done"))

    def unlink(self) -> None:
        segment_unlink(self.arena)
        segment_unlink(self.slots)
        ring_unlink(self.done)


@dataclass(frozen=True, slots=True)
class WorkerNames:
    """What worker slot ``j`` of generation ``gen`` creates: its response arena and the
    ring on which fronts hand its blocks back."""

    out: str
    releases: str

    @classmethod
    def of(cls, name: Namer, j: int, gen: int) -> WorkerNames:
        return cls(name(f"w{j}.{gen}.out"), name(f"w{j}.{gen}.rel"))

    def unlink(self) -> None:
        segment_unlink(self.out)
        ring_unlink(self.releases)


# A release record (front -> worker): the block's offset in the worker's out-arena and
# the index and generation (mod 2**16, see ``lend_tag``) of the front it was lent to.
# Offset NO_BLOCK: nothing (fills a cell a dead front claimed).
RELEASE = struct.Struct("<QHH")


def lend_tag(front: int, gen: int) -> tuple[int, int]:
    """How a release record names front ``front`` of generation ``gen``."""
    return front, gen & 0xFFFF


RELEASE_CELL = 24
