"""Bodies of the child processes the IPC tests start (spawn context: importable,
light, no pytest).  Each reports back through a ``multiprocessing`` Pipe."""

from __future__ import annotations

import hashlib
import random
import struct
from multiprocessing.connection import Connection

from litserve.ipc import Arena, Ring, SlotTable, _shm

# -- ring / arena ---------------------------------------------------------------------


def put_then_report(ring_name: str, body: bytes, conn: Connection) -> None:
    """Say "putting", block on a put (timeout None), then say "done"."""
    ring = Ring(ring_name)
    try:
        conn.send("putting")
        ring.put(body, timeout=None)
        conn.send("done")
    finally:
        ring.close()


def drain(ring_name: str, count: int, conn: Connection) -> None:
    ring = Ring(ring_name)
    try:
        conn.send([ring.get(timeout=30) for _ in range(count)])
    finally:
        ring.close()


def arm_stall(ring: Ring, point: int | str) -> None:
    """Make this process stop itself (SIGSTOP) once inside a window of its next put /
    get: an int is a point in the C step (``_shm.STALL_*``), a str a window around it
    (``ring.PUT_HOLDS_SPACE`` ...)."""
    if isinstance(point, int):
        _shm.set_stall(point)
    else:
        ring._stall_at(point)


def stall_put(ring_name: str, body: bytes, point: int | str, conn: Connection) -> None:
    """Put ``body``, stopping once at ``point`` on the way; then say "done"."""
    ring = Ring(ring_name, spin=0)
    try:
        arm_stall(ring, point)
        ring.put(body, timeout=30)
        conn.send("done")
    finally:
        ring.close()


def stall_get(ring_name: str, point: int | str, conn: Connection) -> None:
    """Get one record, stopping once at ``point`` on the way; then send the record."""
    ring = Ring(ring_name, spin=0)
    try:
        arm_stall(ring, point)
        conn.send(ring.get(timeout=30))
    finally:
        ring.close()


def digest_block(arena_name: str, offset: int, nbytes: int, conn: Connection) -> None:
    arena = Arena(arena_name)
    try:
        view = arena.view(offset, nbytes)
        conn.send(hashlib.blake2b(view).hexdigest())
        view.release()
    finally:
        arena.close()


# -- cancellation race ----------------------------------------------------------------
REQ = struct.Struct("<QQ")  # slot, seq   (slot STOP: stop)
DONE = struct.Struct("<QQQ")  # slot, seq, worker
STOP = 2**64 - 1


def claimer(worker: int, names: dict[str, str], conn: Connection) -> None:
    """Pop descriptors; claim each; on success check the payload and post a completion;
    on failure record the skip.  Reports (claimed seqs, skipped seqs, errors)."""
    requests, done = Ring(names["requests"]), Ring(names["done"])
    table, arena = SlotTable(names["slots"]), Arena(names["arena"])
    claimed: list[int] = []
    skipped: list[int] = []
    errors: list[str] = []
    try:
        while True:
            slot, seq = REQ.unpack_from(requests.get(timeout=30))
            if slot == STOP:
                break
            if not table.claim(slot, seq, worker):
                skipped.append(seq)
                continue
            payload = struct.unpack_from("<Q", arena.buf, slot * 64)[0]
            if payload != seq:
                errors.append(f"slot {slot}: claimed seq {seq} but the payload says {payload}")
            claimed.append(seq)
            done.put(DONE.pack(slot, seq, worker), timeout=30)
        conn.send((claimed, skipped, errors))
    finally:
        for obj in (requests, done, table, arena):
            obj.close()


# -- stress ---------------------------------------------------------------------------
DESC = struct.Struct("<IIQQQ")  # producer, crc32, offset, length, seq  (producer STOP_P: stop)
COMP = struct.Struct("<QQII")  # seq, offset, consumer, ok
STOP_P = 2**32 - 1
MAX_PAYLOAD = 4 << 20
POOL = 8 << 20


def payload_size(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.005:
        return rng.randint(256 << 10, MAX_PAYLOAD)
    if r < 0.05:
        return rng.randint(4 << 10, 256 << 10)
    return rng.randint(0, 4096)


def stress_producer(pid: int, count: int, names: dict[str, str], conn: Connection) -> None:
    """Own an arena and a completion ring; post ``count`` checksummed payloads and free
    each block when its completion comes back.  Reports (sent, completed, errors)."""
    import threading
    import zlib

    rng = random.Random(pid)
    pool = rng.randbytes(POOL)
    arena = Arena(names[f"arena{pid}"], 24 << 20, create=True)
    comp = Ring(names[f"comp{pid}"], 4096, 32, create=True)
    requests = Ring(names["requests"])
    outstanding: dict[int, int] = {}  # seq -> offset
    lock = threading.Lock()
    completed: list[int] = []
    errors: list[str] = []

    def reap() -> None:
        try:
            while len(completed) < count:
                seq, offset, consumer, ok = COMP.unpack_from(comp.get(timeout=30))
                with lock:
                    expected = outstanding.pop(seq, None)
                if expected != offset:
                    errors.append(f"completion for seq {seq} at {offset}: expected {expected}")
                    continue
                if not ok:
                    errors.append(f"consumer {consumer}: checksum mismatch for seq {seq}")
                arena.free(offset)
                completed.append(seq)
        except Exception as exc:  # reported, then the parent fails the test
            errors.append(f"reaper: {exc!r}")

    reaper = threading.Thread(target=reap, daemon=True)
    reaper.start()
    try:
        sizes = [0, MAX_PAYLOAD] + [payload_size(rng) for _ in range(count - 2)]
        for seq, size in enumerate(sizes):
            offset = arena.alloc(size, timeout=30)
            start = rng.randrange(POOL - size + 1)
            head = struct.pack("<Q", seq)[: min(8, size)]
            body = memoryview(pool)[start + len(head) : start + size]
            _shm.gather_copy(arena.buf, offset, [head, body])
            crc = zlib.crc32(arena.buf[offset : offset + size])
            with lock:
                outstanding[seq] = offset
            requests.put(DESC.pack(pid, crc, offset, size, seq), timeout=30)
        reaper.join(120)
        if outstanding:
            errors.append(f"never completed: {len(outstanding)} seqs, e.g. {min(outstanding)}")
        conn.send((len(sizes), sorted(completed), errors))
    finally:
        requests.close()
        comp.close()
        comp.unlink()
        arena.close()
        arena.unlink()


def stress_consumer(cid: int, names: dict[str, str], conn: Connection) -> None:
    """Take descriptors, verify each payload's checksum in place, complete it to its
    producer.  Reports {producer: [seq, ...]} of everything it handled."""
    import zlib

    requests = Ring(names["requests"])
    attached: dict[int, tuple[Arena, Ring]] = {}
    seen: dict[int, list[int]] = {}
    try:
        while True:
            pid, crc, offset, length, seq = DESC.unpack_from(requests.get(timeout=30))
            if pid == STOP_P:
                break
            if pid not in attached:
                attached[pid] = (Arena(names[f"arena{pid}"]), Ring(names[f"comp{pid}"]))
            arena, comp = attached[pid]
            ok = zlib.crc32(arena.buf[offset : offset + length]) == crc
            ok = ok and (length < 8 or struct.unpack_from("<Q", arena.buf, offset)[0] == seq)
            seen.setdefault(pid, []).append(seq)
            comp.put(COMP.pack(seq, offset, cid, ok), timeout=30)
        conn.send(seen)
    finally:
        requests.close()
        for arena, comp in attached.values():
            arena.close()
            comp.close()
