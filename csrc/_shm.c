/*
 * litserve.ipc._shm -- the thin C core of litserve.ipc.
 *
 * Atomics on aligned 64-bit words inside any writable buffer (an mmap of a
 * shared-memory segment), and a gather-copy that releases the GIL.  All
 * policy (layouts, sizes, waiting, names) lives in Python; these functions
 * only check bounds and alignment, and raise ValueError / TypeError on misuse.
 *
 * Memory ordering (GCC __atomic builtins):
 *   load64      __ATOMIC_ACQUIRE  -- later reads see what the storer wrote before
 *   store64     __ATOMIC_RELEASE  -- earlier writes (e.g. a descriptor body) are
 *                                    visible to whoever acquire-loads this word
 *   cas64       __ATOMIC_SEQ_CST on success and failure
 *   fetch_add64 __ATOMIC_SEQ_CST
 * Words are unsigned 64-bit; Python ints outside [0, 2**64) are rejected.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <sys/prctl.h>

static int
word_ptr(PyObject *obj, Py_ssize_t off, Py_buffer *view, uint64_t **out)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE) < 0)
        return -1;
    if (off < 0 || off > view->len - 8) {
        PyErr_Format(PyExc_ValueError,
                     "offset %zd is outside the buffer of %zd bytes", off, view->len);
        PyBuffer_Release(view);
        return -1;
    }
    char *p = (char *)view->buf + off;
    if (((uintptr_t)p) % 8 != 0) {
        PyErr_Format(PyExc_ValueError, "offset %zd is not 8-byte aligned", off);
        PyBuffer_Release(view);
        return -1;
    }
    *out = (uint64_t *)p;
    return 0;
}

static PyObject *
shm_load64(PyObject *self, PyObject *args)
{
    PyObject *obj; Py_ssize_t off; Py_buffer v; uint64_t *w;
    if (!PyArg_ParseTuple(args, "On", &obj, &off) || word_ptr(obj, off, &v, &w) < 0)
        return NULL;
    uint64_t val = __atomic_load_n(w, __ATOMIC_ACQUIRE);
    PyBuffer_Release(&v);
    return PyLong_FromUnsignedLongLong(val);
}

static PyObject *
shm_store64(PyObject *self, PyObject *args)
{
    PyObject *obj; Py_ssize_t off; unsigned long long val; Py_buffer v; uint64_t *w;
    if (!PyArg_ParseTuple(args, "OnK", &obj, &off, &val) || word_ptr(obj, off, &v, &w) < 0)
        return NULL;
    __atomic_store_n(w, (uint64_t)val, __ATOMIC_RELEASE);
    PyBuffer_Release(&v);
    Py_RETURN_NONE;
}

static PyObject *
shm_cas64(PyObject *self, PyObject *args)
{
    PyObject *obj; Py_ssize_t off; unsigned long long expected, desired;
    Py_buffer v; uint64_t *w;
    if (!PyArg_ParseTuple(args, "OnKK", &obj, &off, &expected, &desired)
        || word_ptr(obj, off, &v, &w) < 0)
        return NULL;
    uint64_t exp = expected;
    int ok = __atomic_compare_exchange_n(w, &exp, (uint64_t)desired, 0,
                                         __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    PyBuffer_Release(&v);
    return PyBool_FromLong(ok);
}

static PyObject *
shm_fetch_add64(PyObject *self, PyObject *args)
{
    PyObject *obj; Py_ssize_t off; long long delta; Py_buffer v; uint64_t *w;
    if (!PyArg_ParseTuple(args, "OnL", &obj, &off, &delta) || word_ptr(obj, off, &v, &w) < 0)
        return NULL;
    uint64_t old = __atomic_fetch_add(w, (uint64_t)delta, __ATOMIC_SEQ_CST);
    PyBuffer_Release(&v);
    return PyLong_FromUnsignedLongLong(old);
}

/* gather_copy(dst, dst_offset, sources) -> bytes copied.
 * Copies each buffer of `sources` (any objects with the buffer protocol,
 * C-contiguous) back to back into dst starting at dst_offset.  All buffers are
 * acquired first, then the copies run without the GIL. */
static PyObject *
shm_gather_copy(PyObject *self, PyObject *args)
{
    PyObject *dst_obj, *srcs; Py_ssize_t off;
    if (!PyArg_ParseTuple(args, "OnO", &dst_obj, &off, &srcs))
        return NULL;
    PyObject *seq = PySequence_Fast(srcs, "sources must be a sequence of buffers");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Py_buffer dst;
    if (PyObject_GetBuffer(dst_obj, &dst, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
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
    if (off < 0 || total > dst.len - off) {
        PyErr_Format(PyExc_ValueError,
                     "gather of %zd bytes at offset %zd does not fit a %zd-byte destination",
                     total, off, dst.len);
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    char *p = (char *)dst.buf + off;
    for (Py_ssize_t i = 0; i < n; i++) {
        memcpy(p, views[i].buf, (size_t)views[i].len);
        p += views[i].len;
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(total);
done:
    for (Py_ssize_t i = 0; i < got; i++)
        PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    PyBuffer_Release(&dst);
    Py_DECREF(seq);
    return result;
}

/* set_parent_death_signal(sig) -> parent pid at the time of the call.
 * The kernel sends `sig` to this process when the thread that forked it exits.
 * Callers compare the returned pid with the expected parent to close the race of
 * a parent that died before the call. */
static PyObject *
shm_set_parent_death_signal(PyObject *self, PyObject *args)
{
    int sig;
    if (!PyArg_ParseTuple(args, "i", &sig))
        return NULL;
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong((long)getppid());
}

static PyMethodDef methods[] = {
    {"set_parent_death_signal", shm_set_parent_death_signal, METH_VARARGS,
     "set_parent_death_signal(sig) -> current parent pid (Linux prctl PR_SET_PDEATHSIG)"},
    {"load64", shm_load64, METH_VARARGS, "load64(buf, offset) -> int (acquire)"},
    {"store64", shm_store64, METH_VARARGS, "store64(buf, offset, value) (release)"},
    {"cas64", shm_cas64, METH_VARARGS,
     "cas64(buf, offset, expected, desired) -> bool (seq_cst)"},
    {"fetch_add64", shm_fetch_add64, METH_VARARGS,
     "fetch_add64(buf, offset, delta) -> old value (seq_cst, wraps mod 2**64)"},
    {"gather_copy", shm_gather_copy, METH_VARARGS,
     "gather_copy(dst, offset, sources) -> bytes copied; runs without the GIL"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "litserve.ipc._shm",
    "Atomics and GIL-free copies on shared-memory buffers.", -1, methods,
};

PyMODINIT_FUNC
PyInit__shm(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "WORD_SIZE", 8) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
