/*
 * litserve.ipc._shm -- the thin C core of litserve.ipc.
 *
 * Atomics on aligned 64-bit words inside any buffer (an mmap of a shared-memory
 * segment), the claim-and-copy steps of the ring (ring.py documents its layout and
 * passes the offsets in), a gather-copy that releases the GIL for large copies, and
 * the two page-table steps of a request's own mapping of its bytes (map_file,
 * privatize; segment.py Loan says when each runs).
 * All policy (layouts, sizes, waiting, names) lives in Python; these functions only
 * check arguments, bounds and alignment, and raise TypeError / ValueError /
 * OverflowError naming the bad value on misuse, OSError (with errno) when the
 * kernel refuses.
 *
 * Memory ordering (GCC __atomic builtins):
 *   load64      __ATOMIC_ACQUIRE  -- later reads see what the storer wrote before
 *   store64     __ATOMIC_RELEASE  -- earlier writes (e.g. a descriptor body) are
 *                                    visible to whoever acquire-loads this word
 *   cas64       __ATOMIC_SEQ_CST on success and failure
 *   fetch_add64 __ATOMIC_SEQ_CST
 *   ring_put    seq_cst loads of the position and the cell word, seq_cst CAS of
 *               the cell word (the claim), seq_cst CAS of the position, body copy,
 *               then release-store of the cell word (publishes it)
 *   ring_take   the same on the consumer side; the body is copied out before the
 *               release-store that hands the cell back to producers
 * Words are unsigned 64-bit; Python ints outside [0, 2**64) are rejected with
 * OverflowError (fetch_add64 takes a signed delta and wraps mod 2**64).
 *
 * Every function uses METH_FASTCALL: these run several times per message.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

/* Copies at least this large run without the GIL (smaller ones are cheaper than
 * the GIL hand-off). */
#define NOGIL_COPY_BYTES (64 * 1024)

/* ring_wait busy-spins this many times (about a microsecond), then yields the CPU
 * between looks until its time is up. */
#define SPIN_PAUSES 64

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() do { } while (0)
#endif

/* ---- argument helpers ------------------------------------------------------ */

static int
check_nargs(const char *fname, Py_ssize_t nargs, Py_ssize_t want)
{
    if (nargs == want)
        return 0;
    PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", fname, want, nargs);
    return -1;
}

static int
arg_ssize(PyObject *o, const char *what, Py_ssize_t *out)
{
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    *out = PyLong_AsSsize_t(o);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int
arg_u64(PyObject *o, const char *what, uint64_t *out)
{
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_OverflowError, "%s=%R is outside [0, 2**64)", what, o);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* Check that [off, off + 8) lies inside a buffer of len bytes and is 8-aligned. */
static int
check_word(const Py_buffer *view, Py_ssize_t off)
{
    if (off < 0 || view->len < 8 || off > view->len - 8) {
        PyErr_Format(PyExc_ValueError,
                     "offset %zd is outside the buffer of %zd bytes (a word needs 8)",
                     off, view->len);
        return -1;
    }
    if (((uintptr_t)((char *)view->buf + off)) % 8 != 0) {
        PyErr_Format(PyExc_ValueError, "offset %zd is not 8-byte aligned", off);
        return -1;
    }
    return 0;
}

/* Acquire args[0] as a buffer and point *out at the word at args[1]. */
static int
word_args(PyObject *const *args, int flags, Py_buffer *view, uint64_t **out)
{
    Py_ssize_t off;
    if (arg_ssize(args[1], "offset", &off) < 0)
        return -1;
    if (PyObject_GetBuffer(args[0], view, flags) < 0)
        return -1;
    if (check_word(view, off) < 0) {
        PyBuffer_Release(view);
        return -1;
    }
    *out = (uint64_t *)((char *)view->buf + off);
    return 0;
}

/* ---- atomics --------------------------------------------------------------- */

static PyObject *
shm_load64(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer v; uint64_t *w;
    if (check_nargs("load64", nargs, 2) < 0 || word_args(args, PyBUF_SIMPLE, &v, &w) < 0)
        return NULL;
    uint64_t val = __atomic_load_n(w, __ATOMIC_ACQUIRE);
    PyBuffer_Release(&v);
    return PyLong_FromUnsignedLongLong(val);
}

static PyObject *
shm_store64(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer v; uint64_t *w, val;
    if (check_nargs("store64", nargs, 3) < 0 || arg_u64(args[2], "value", &val) < 0
        || word_args(args, PyBUF_WRITABLE, &v, &w) < 0)
        return NULL;
    __atomic_store_n(w, val, __ATOMIC_RELEASE);
    PyBuffer_Release(&v);
    Py_RETURN_NONE;
}

static PyObject *
shm_cas64(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer v; uint64_t *w, expected, desired;
    if (check_nargs("cas64", nargs, 4) < 0 || arg_u64(args[2], "expected", &expected) < 0
        || arg_u64(args[3], "desired", &desired) < 0
        || word_args(args, PyBUF_WRITABLE, &v, &w) < 0)
        return NULL;
    int ok = __atomic_compare_exchange_n(w, &expected, desired, 0,
                                         __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    PyBuffer_Release(&v);
    return PyBool_FromLong(ok);
}

static PyObject *
shm_fetch_add64(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer v; uint64_t *w;
    if (check_nargs("fetch_add64", nargs, 3) < 0)
        return NULL;
    if (!PyLong_Check(args[2])) {
        PyErr_Format(PyExc_TypeError, "delta must be an int, not %.100s",
                     Py_TYPE(args[2])->tp_name);
        return NULL;
    }
    long long delta = PyLong_AsLongLong(args[2]);
    if (delta == -1 && PyErr_Occurred())
        return NULL;
    if (word_args(args, PyBUF_WRITABLE, &v, &w) < 0)
        return NULL;
    uint64_t old = __atomic_fetch_add(w, (uint64_t)delta, __ATOMIC_SEQ_CST);
    PyBuffer_Release(&v);
    return PyLong_FromUnsignedLongLong(old);
}

/* ---- ring steps -------------------------------------------------------------
 * The ring is Vyukov's bounded MPMC queue (layout, cell states and crash repair in
 * litserve/ipc/ring.py), with one change: a position is claimed by a CAS on the
 * cell's own word that writes the claimer's pid into it, and only then is the
 * position counter moved on (by the claimer or by any neighbour that finds the cell
 * claimed), so a claimed cell always names its owner.  Cell word:
 *
 *     bits 63..23  seq   position mod 2**41 (compared as a signed 41-bit difference)
 *     bit  22      busy  a producer is writing / a consumer is reading the cell
 *     bits 21..0   pid   the owner while busy (Linux pid_max is at most 2**22), else 0
 *
 * The caller holds a semaphore unit.  Each step makes one non-blocking attempt and
 * says done (None from ring_put, the record from ring_take), RING_BUSY (the cell
 * still belongs to a neighbour: try again) or RING_SPURIOUS (the cells say there is
 * nothing for that unit: the ring is empty / full, so the unit was an excess one and
 * the caller drops it).  Waiting and timeouts stay in Python. */

#define SEQ_SHIFT 23
#define BUSY_BIT ((uint64_t)1 << 22)
#define PID_MASK (BUSY_BIT - 1)

enum { RING_DONE = 0, RING_BUSY = 1, RING_SPURIOUS = 2 };
enum { STALL_NONE = 0, STALL_PUT_CLAIMED = 1, STALL_TAKE_CLAIMED = 2 };

/* BUSY_BIT | getpid(), set at import and in every forked child (pthread_atfork). */
static uint64_t ring_owner;
/* Test hook (set_stall): the STALL_* point at which this process stops itself once. */
static int stall_point = STALL_NONE;

static void
refresh_owner(void)
{
    ring_owner = BUSY_BIT | ((uint64_t)getpid() & PID_MASK);
}

static inline void
stall_at(int point)
{
    if (__builtin_expect(stall_point == point, 0)) {
        stall_point = STALL_NONE;
        kill(getpid(), SIGSTOP);
    }
}

static inline uint64_t
cell_word(uint64_t seq, uint64_t owner)
{
    return (seq << SEQ_SHIFT) | owner;
}

/* seq(word) - pos as a signed 41-bit number. */
static inline int64_t
seq_dif(uint64_t word, uint64_t pos)
{
    return (int64_t)(((word >> SEQ_SHIFT) - pos) << SEQ_SHIFT) >> SEQ_SHIFT;
}

typedef struct {
    Py_buffer view;
    uint64_t *pos;      /* enqueue_pos or dequeue_pos */
    char *cells;
    uint64_t mask;
    Py_ssize_t cell_size;
} ring_t;

/* args: buf, pos_off, cells_off, mask, cell_size */
static int
ring_args(PyObject *const *args, ring_t *r)
{
    Py_ssize_t pos_off, cells_off, cell_size; uint64_t mask;
    if (arg_ssize(args[1], "pos_off", &pos_off) < 0
        || arg_ssize(args[2], "cells_off", &cells_off) < 0
        || arg_u64(args[3], "mask", &mask) < 0
        || arg_ssize(args[4], "cell_size", &cell_size) < 0)
        return -1;
    if (mask == UINT64_MAX || ((mask + 1) & mask) != 0) {
        PyErr_Format(PyExc_ValueError, "mask=%llu is not a power of two minus one",
                     (unsigned long long)mask);
        return -1;
    }
    if (cell_size < 16 || cell_size % 8 != 0) {
        PyErr_Format(PyExc_ValueError, "cell_size=%zd must be a multiple of 8, >= 16",
                     cell_size);
        return -1;
    }
    if (PyObject_GetBuffer(args[0], &r->view, PyBUF_WRITABLE) < 0)
        return -1;
    Py_ssize_t len = r->view.len;
    if (check_word(&r->view, pos_off) < 0)
        goto fail;
    if (cells_off < 0 || cells_off % 8 != 0 || cells_off > len
        || mask >= (uint64_t)((len - cells_off) / cell_size)) {
        PyErr_Format(PyExc_ValueError,
                     "cells at offset %zd (%llu x %zd bytes) do not fit the buffer of %zd bytes",
                     cells_off, (unsigned long long)mask + 1, cell_size, len);
        goto fail;
    }
    r->pos = (uint64_t *)((char *)r->view.buf + pos_off);
    r->cells = (char *)r->view.buf + cells_off;
    r->mask = mask;
    r->cell_size = cell_size;
    return 0;
fail:
    PyBuffer_Release(&r->view);
    return -1;
}

static inline uint64_t *
ring_cell(const ring_t *r, uint64_t pos)
{
    return (uint64_t *)(r->cells + (Py_ssize_t)(pos & r->mask) * r->cell_size);
}

/* Move the position counter from pos to pos + 1 unless someone already did; returns
 * the counter's value afterwards (as far as this CAS knows). */
static inline uint64_t
ring_advance(const ring_t *r, uint64_t pos)
{
    uint64_t seen = pos;
    if (__atomic_compare_exchange_n(r->pos, &seen, pos + 1, 0,
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        return pos + 1;
    return seen;
}

/* Claim the cell of the next position for this process: a producer (lag 0) needs
 * FREE(pos) = seq pos, a consumer (lag 1) FULL(pos) = seq pos + 1, neither busy.
 * A cell found claimed (busy, same seq) or already past pos means the counter lags:
 * help move it on.  A cell still in the previous state is RING_SPURIOUS when nobody
 * owns it (producer: FULL(pos - capacity), the ring is full; consumer: FREE(pos), the
 * ring is empty), else RING_BUSY.  The loads are seq_cst so that the counter read
 * and the cell read are one consistent picture (see ring.py on spurious units). */
static int
ring_claim(const ring_t *r, uint64_t lag, uint64_t **cell_out, uint64_t *pos_out)
{
    int64_t idle = lag ? -1 : -(int64_t)r->mask;  /* dif of the unowned previous state */
    uint64_t pos = __atomic_load_n(r->pos, __ATOMIC_SEQ_CST);
    for (;;) {
        uint64_t *cell = ring_cell(r, pos);
        uint64_t word = __atomic_load_n(cell, __ATOMIC_SEQ_CST);
        int64_t dif = seq_dif(word, pos + lag);
        if (dif == 0 && !(word & BUSY_BIT)) {
            if (__atomic_compare_exchange_n(cell, &word, word | ring_owner, 0,
                                            __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
                stall_at(lag ? STALL_TAKE_CLAIMED : STALL_PUT_CLAIMED);
                ring_advance(r, pos);  /* once: a failure means a neighbour helped */
                *cell_out = cell;
                *pos_out = pos;
                return RING_DONE;
            }
        } else if (dif >= 0) {
            pos = ring_advance(r, pos);
        } else {
            return (dif == idle && !(word & BUSY_BIT)) ? RING_SPURIOUS : RING_BUSY;
        }
    }
}

/* ring_put(buf, pos_off, cells_off, mask, cell_size, body) -> None (done) | RING_BUSY |
 * RING_SPURIOUS */
static PyObject *
shm_ring_put(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    ring_t r; Py_buffer body; uint64_t pos, *cell;
    if (check_nargs("ring_put", nargs, 6) < 0 || ring_args(args, &r) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[5], &body, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&r.view);
        return NULL;
    }
    PyObject *result = NULL;
    if (body.len > r.cell_size - 8) {
        PyErr_Format(PyExc_ValueError, "record of %zd bytes exceeds the cell body of %zd bytes",
                     body.len, r.cell_size - 8);
        goto done;
    }
    int code = ring_claim(&r, 0, &cell, &pos);
    if (code == RING_DONE) {
        char *dst = (char *)(cell + 1);
        memcpy(dst, body.buf, (size_t)body.len);
        memset(dst + body.len, 0, (size_t)(r.cell_size - 8 - body.len));
        __atomic_store_n(cell, cell_word(pos + 1, 0), __ATOMIC_RELEASE);  /* FULL(pos) */
        result = Py_NewRef(Py_None);
    } else {
        result = PyLong_FromLong(code);
    }
done:
    PyBuffer_Release(&body);
    PyBuffer_Release(&r.view);
    return result;
}

/* ring_take(buf, pos_off, cells_off, mask, cell_size) -> bytes | RING_BUSY |
 * RING_SPURIOUS */
static PyObject *
shm_ring_take(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    ring_t r; uint64_t pos, *cell;
    if (check_nargs("ring_take", nargs, 5) < 0 || ring_args(args, &r) < 0)
        return NULL;
    /* Allocate first: once a cell is claimed, nothing may fail before it is released. */
    PyObject *out = PyBytes_FromStringAndSize(NULL, r.cell_size - 8);
    if (out != NULL) {
        int code = ring_claim(&r, 1, &cell, &pos);
        if (code != RING_DONE) {
            Py_SETREF(out, PyLong_FromLong(code));
        } else {
            memcpy(PyBytes_AS_STRING(out), cell + 1, (size_t)(r.cell_size - 8));
            __atomic_store_n(cell, cell_word(pos + r.mask + 1, 0),  /* FREE(pos + capacity) */
                             __ATOMIC_RELEASE);
        }
    }
    PyBuffer_Release(&r.view);
    return out;
}

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ring_wait(buf, pos_off, cells_off, mask, cell_size, lag, spin_ns) -> bool
 * Spin without the GIL for at most spin_ns until the cell at the current position
 * has reached sequence pos + lag (lag 0: a producer could claim it, 1: a consumer
 * could); after SPIN_PAUSES looks it calls sched_yield() between looks.
 * True when it looks ready (the caller then tries its semaphore), False on time. */
static PyObject *
shm_ring_wait(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    ring_t r; uint64_t lag, spin_ns;
    if (check_nargs("ring_wait", nargs, 7) < 0 || arg_u64(args[5], "lag", &lag) < 0
        || arg_u64(args[6], "spin_ns", &spin_ns) < 0 || ring_args(args, &r) < 0)
        return NULL;
    int ready = 0;
    Py_BEGIN_ALLOW_THREADS
    uint64_t end = now_ns() + spin_ns;
    for (unsigned i = 0;; i++) {
        uint64_t pos = __atomic_load_n(r.pos, __ATOMIC_ACQUIRE);
        if (seq_dif(__atomic_load_n(ring_cell(&r, pos), __ATOMIC_ACQUIRE), pos + lag) >= 0) {
            ready = 1;  /* ready, or taken by a neighbour since we read pos */
            break;
        }
        if (i < SPIN_PAUSES) {
            CPU_RELAX();
            continue;
        }
        if (now_ns() >= end)
            break;
        /* On a busy machine the process we wait for may need this CPU. */
        sched_yield();
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&r.view);
    return PyBool_FromLong(ready);
}

/* set_stall(point) -> None.  Test hook: the next time this process passes `point`
 * (STALL_PUT_CLAIMED: a producer's cell claimed, its counter not yet moved, nothing
 * copied; STALL_TAKE_CLAIMED: the same for a consumer) it stops itself once with
 * SIGSTOP.  STALL_NONE (0) disarms it. */
static PyObject *
shm_set_stall(PyObject *self, PyObject *arg)
{
    long point = PyLong_AsLong(arg);
    if (point == -1 && PyErr_Occurred())
        return NULL;
    if (point != STALL_NONE && point != STALL_PUT_CLAIMED && point != STALL_TAKE_CLAIMED) {
        PyErr_Format(PyExc_ValueError,
                     "point=%ld is not a stall point; use STALL_NONE (0), "
                     "STALL_PUT_CLAIMED (1) or STALL_TAKE_CLAIMED (2)", point);
        return NULL;
    }
    stall_point = (int)point;
    Py_RETURN_NONE;
}

/* ---- copies ---------------------------------------------------------------- */

/* gather_copy(dst, dst_offset, sources) -> bytes copied.
 * Copies each buffer of `sources` (any objects with the buffer protocol,
 * C-contiguous) back to back into dst starting at dst_offset.  All buffers are
 * acquired first; copies of NOGIL_COPY_BYTES or more then run without the GIL. */
static PyObject *
shm_gather_copy(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t off;
    if (check_nargs("gather_copy", nargs, 3) < 0 || arg_ssize(args[1], "offset", &off) < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(args[2], "sources must be a sequence of buffers");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Py_buffer dst;
    if (PyObject_GetBuffer(args[0], &dst, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        Py_DECREF(seq);
        return NULL;
    }
    Py_buffer *views = PyMem_Calloc(n ? n : 1, sizeof(Py_buffer));
    Py_ssize_t got = 0, total = 0;
    PyObject *result = NULL;
    if (views == NULL) { PyErr_NoMemory(); goto done; }
    for (; got < n; got++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, got);
        if (PyObject_GetBuffer(item, &views[got], PyBUF_C_CONTIGUOUS) < 0)
            goto done;
        total += views[got].len;
    }
    if (off < 0 || off > dst.len || total > dst.len - off) {
        PyErr_Format(PyExc_ValueError,
                     "gather of %zd bytes at offset %zd does not fit a %zd-byte destination",
                     total, off, dst.len);
        goto done;
    }
    char *p = (char *)dst.buf + off;
    if (total >= NOGIL_COPY_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            memcpy(p, views[i].buf, (size_t)views[i].len);
            p += views[i].len;
        }
        Py_END_ALLOW_THREADS
    } else {
        for (Py_ssize_t i = 0; i < n; i++) {
            memcpy(p, views[i].buf, (size_t)views[i].len);
            p += views[i].len;
        }
    }
    result = PyLong_FromSsize_t(total);
done:
    for (Py_ssize_t i = 0; i < got; i++)
        PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    PyBuffer_Release(&dst);
    Py_DECREF(seq);
    return result;
}

/* ---- a request's own mapping --------------------------------------------------------
 * A request's bytes are handed to the user's hooks through a mapping of the front's
 * arena that belongs to that request alone.  Python reserves the address
 * range as an anonymous mmap.mmap (which owns it: it munmaps the range when closed or
 * freed, whatever lies there by then) and these functions only change what the range
 * maps.  The buffer must be page-aligned and a whole number of pages, as an mmap.mmap
 * of that length is.  mmap, mremap and munmap never fail with EINTR, so nothing here
 * retries. */

static long
page_size(void)
{
    static long size = 0;
    if (size == 0)
        size = sysconf(_SC_PAGESIZE);
    return size;
}

/* Acquire a writable buffer that covers whole pages. */
static int
page_buffer(PyObject *obj, const char *fname, Py_buffer *view)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE) < 0)
        return -1;
    long page = page_size();
    if (view->len <= 0 || view->len % page != 0 || (uintptr_t)view->buf % (uintptr_t)page) {
        PyErr_Format(PyExc_ValueError,
                     "%s() needs a page-aligned buffer of whole %ld-byte pages "
                     "(an mmap.mmap of such a length), not %zd bytes at %p",
                     fname, page, view->len, view->buf);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* OSError(errno, "<what>: <strerror>") */
static PyObject *
os_error(int err, const char *what, Py_ssize_t len)
{
    PyObject *msg = PyUnicode_FromFormat("%s of %zd bytes failed: %s", what, len,
                                         strerror(err));
    if (msg != NULL) {
        PyObject *exc = PyObject_CallFunction(PyExc_OSError, "iO", err, msg);
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        Py_DECREF(msg);
    }
    return NULL;
}

/* map_file(buf, fd, offset, private) -> None
 * Replace buf's pages (MAP_FIXED) by a mapping, PROT_READ | PROT_WRITE, of bytes
 * [offset, offset + len(buf)) of the file fd: MAP_SHARED, or MAP_PRIVATE when private
 * is true (copy-on-write: a page this process writes is copied into it first and the
 * write never reaches the file).  offset must be page-aligned. */
static PyObject *
shm_map_file(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t fd, off;
    Py_buffer view;
    if (check_nargs("map_file", nargs, 4) < 0 || arg_ssize(args[1], "fd", &fd) < 0
        || arg_ssize(args[2], "offset", &off) < 0)
        return NULL;
    int private = PyObject_IsTrue(args[3]);
    if (private < 0)
        return NULL;
    if (fd < 0 || fd > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "fd=%zd is not an open file descriptor", fd);
        return NULL;
    }
    if (off < 0 || off % page_size() != 0) {
        PyErr_Format(PyExc_ValueError, "offset=%zd must be a multiple of the page size %ld",
                     off, page_size());
        return NULL;
    }
    if (page_buffer(args[0], "map_file", &view) < 0)
        return NULL;
    void *got;
    int flags = (private ? MAP_PRIVATE : MAP_SHARED) | MAP_FIXED;
    Py_BEGIN_ALLOW_THREADS
    got = mmap(view.buf, (size_t)view.len, PROT_READ | PROT_WRITE, flags, (int)fd, (off_t)off);
    Py_END_ALLOW_THREADS
    int err = errno;
    Py_ssize_t len = view.len;
    PyBuffer_Release(&view);
    if (got == MAP_FAILED)
        return os_error(err, private ? "map_file: mmap(MAP_PRIVATE | MAP_FIXED)"
                                     : "map_file: mmap(MAP_SHARED | MAP_FIXED)", len);
    Py_RETURN_NONE;
}

/* privatize(buf) -> None
 * Replace buf's pages by a private anonymous copy of what they hold now, at the same
 * address, so every pointer into buf keeps its bytes and no longer sees the file it
 * mapped.  Linux: copy into fresh anonymous pages, then mremap(MREMAP_FIXED) moves them
 * over buf in one step (a reader never sees anything but the bytes).  Elsewhere: copy
 * out, map fresh anonymous pages over buf (MAP_FIXED), copy back; a thread reading buf
 * meanwhile could see zeros.  Either way a write into buf by another thread while the
 * copy runs may be lost.  The copy runs without the GIL. */
static PyObject *
shm_privatize(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (page_buffer(arg, "privatize", &view) < 0)
        return NULL;
    size_t len = (size_t)view.len;
    const char *failed = NULL;
    int err = 0;
    Py_BEGIN_ALLOW_THREADS
    void *copy = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (copy == MAP_FAILED) {
        failed = "privatize: mmap of the copy";
        err = errno;
    } else {
#ifdef MADV_HUGEPAGE
        /* Faulting in thousands of 4 KiB pages costs more than the copy itself; huge
         * pages, where the system allows them, cut that to a few faults. */
        madvise(copy, len, MADV_HUGEPAGE);
#endif
        memcpy(copy, view.buf, len);
#if defined(__linux__) && !defined(LITSERVE_NO_MREMAP)  /* (the macro tests the fallback) */
        if (mremap(copy, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, view.buf) == MAP_FAILED) {
            failed = "privatize: mremap(MREMAP_FIXED) of the copy over the mapping";
            err = errno;
            munmap(copy, len);
        }
#else
        if (mmap(view.buf, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                 -1, 0) == MAP_FAILED) {
            failed = "privatize: mmap(MAP_FIXED) of fresh pages over the mapping";
            err = errno;
        } else {
            memcpy(view.buf, copy, len);
        }
        munmap(copy, len);
#endif
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (failed != NULL)
        return os_error(err, failed, (Py_ssize_t)len);
    Py_RETURN_NONE;
}

/* ---- processes ------------------------------------------------------------- */

/* set_parent_death_signal(sig) -> parent pid at the time of the call.
 * The kernel sends `sig` to this process when the thread that forked it exits.
 * Callers compare the returned pid with the expected parent to close the race of
 * a parent that died before the call. */
static PyObject *
shm_set_parent_death_signal(PyObject *self, PyObject *arg)
{
    long sig = PyLong_AsLong(arg);
    if (sig == -1 && PyErr_Occurred())
        return NULL;
    if (sig < 0 || sig >= NSIG) {
        PyErr_Format(PyExc_ValueError, "sig=%ld is not a signal number (0..%d)", sig, NSIG - 1);
        return NULL;
    }
#ifdef __linux__
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong((long)getppid());
#else
    /* No such facility: -1 tells the caller to watch its parent itself. */
    return PyLong_FromLong(-1L);
#endif
}

#define FAST(name, doc) {#name, (PyCFunction)(void (*)(void))shm_##name, METH_FASTCALL, doc}

static PyMethodDef methods[] = {
    {"set_parent_death_signal", shm_set_parent_death_signal, METH_O,
     "set_parent_death_signal(sig) -> current parent pid (Linux prctl PR_SET_PDEATHSIG)"},
    FAST(load64, "load64(buf, offset) -> int (acquire)"),
    FAST(store64, "store64(buf, offset, value) (release)"),
    FAST(cas64, "cas64(buf, offset, expected, desired) -> bool (seq_cst)"),
    FAST(fetch_add64, "fetch_add64(buf, offset, delta) -> old value (seq_cst, wraps mod 2**64)"),
    FAST(ring_put, "ring_put(buf, pos_off, cells_off, mask, cell_size, body) -> None | int: "
                   "claim the next producer cell, copy body (zero-padded), publish it: "
                   "None; RING_BUSY if that cell is still being read; RING_SPURIOUS "
                   "if the ring is full"),
    FAST(ring_take, "ring_take(buf, pos_off, cells_off, mask, cell_size) -> bytes | int: "
                    "claim the next consumer cell, copy its body out, hand it back; "
                    "RING_BUSY if that cell is still being written, RING_SPURIOUS if the "
                    "ring is empty"),
    FAST(ring_wait, "ring_wait(buf, pos_off, cells_off, mask, cell_size, lag, spin_ns) -> bool: "
                    "spin without the GIL until the next cell looks ready"),
    {"set_stall", shm_set_stall, METH_O,
     "set_stall(point): test hook; stop this process (SIGSTOP) once at a ring STALL_* point"},
    FAST(gather_copy, "gather_copy(dst, offset, sources) -> bytes copied; "
                      "copies of 64 KiB or more run without the GIL"),
    FAST(map_file, "map_file(buf, fd, offset, private): map bytes [offset, offset + len(buf)) "
                   "of fd over buf's pages (page-aligned, whole pages); MAP_PRIVATE if private"),
    {"privatize", shm_privatize, METH_O,
     "privatize(buf): replace buf's pages by a private copy of their bytes, same address"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "litserve.ipc._shm",
    "Atomics, ring steps and GIL-free copies on shared-memory buffers.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__shm(void)
{
    if ((uint64_t)getpid() > PID_MASK) {
        PyErr_Format(PyExc_ImportError, "pid %ld does not fit the 22 bits a ring cell keeps "
                     "for its owner", (long)getpid());
        return NULL;
    }
    refresh_owner();
    static int hooked = 0;
    if (!hooked) {
        int err = pthread_atfork(NULL, NULL, refresh_owner);
        if (err != 0) {
            errno = err;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        hooked = 1;
    }
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && (PyModule_AddIntConstant(m, "WORD_SIZE", 8) < 0
                      || PyModule_AddIntConstant(m, "NOGIL_COPY_BYTES", NOGIL_COPY_BYTES) < 0
                      || PyModule_AddIntConstant(m, "CELL_SEQ_SHIFT", SEQ_SHIFT) < 0
                      || PyModule_AddIntConstant(m, "CELL_BUSY", (long)BUSY_BIT) < 0
                      || PyModule_AddIntConstant(m, "RING_BUSY", RING_BUSY) < 0
                      || PyModule_AddIntConstant(m, "RING_SPURIOUS", RING_SPURIOUS) < 0
                      || PyModule_AddIntConstant(m, "STALL_NONE", STALL_NONE) < 0
                      || PyModule_AddIntConstant(m, "STALL_PUT_CLAIMED", STALL_PUT_CLAIMED) < 0
                      || PyModule_AddIntConstant(m, "STALL_TAKE_CLAIMED", STALL_TAKE_CLAIMED) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
