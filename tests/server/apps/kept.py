"""LitAPIs that keep their inputs past the response, write into them, and count copies.

Each answers a JSON ``{"op": ...}`` request about itself (what it kept, what the worker
did with private mappings: ``litserve.ipc.segment.stats``), and anything else as a request
whose inputs it may keep.
"""

import gc
import os
import tracemalloc
from dataclasses import asdict
from pathlib import Path

import numpy as np

import litserve as ls
from litserve.ipc import segment


def total(x):
    """The exact sum of an input: an array, a bundle (dict of arrays) or a form's files."""
    if isinstance(x, np.ndarray):
        return float(x.sum(dtype=np.float64))
    if isinstance(x, dict):
        return sum(total(v) for v in x.values())
    files = [v for _, v in x.multi_items() if not isinstance(v, str)]
    out = 0.0
    for f in files:
        view = np.frombuffer(f.file.getbuffer(), np.uint8)
        f.file.seek(0)
        data = f.file.read()
        if bytes(view) != data:
            raise AssertionError("a form file's getbuffer() and read() disagree")
        out += float(view.sum(dtype=np.float64))
    return out


def first_value(x):
    if isinstance(x, np.ndarray):
        return float(x.reshape(-1)[0])
    if isinstance(x, dict):
        return first_value(next(iter(x.values())))
    f = next(v for _, v in x.multi_items() if not isinstance(v, str))
    return float(f.file.getbuffer()[0])


def worker_usage():
    """(resident bytes, number of mappings) of this worker process."""
    rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return rss, len(Path("/proc/self/maps").read_text().splitlines())


class Keeper(ls.LitAPI):
    """Keeps inputs (a cache) as its policy says: the first three ("first3") or those
    whose first value is odd ("odd"); every answer gives the sums of all kept inputs."""

    def setup(self, device):
        self.kept, self.policy = [], "first3"

    def predict(self, x):
        if isinstance(x, dict) and "op" in x:
            return self.op(x)
        keep = len(self.kept) < 3 if self.policy == "first3" else first_value(x) % 2 == 1
        if keep:
            self.kept.append(x)
        return {"sum": total(x), "kept": [total(k) for k in self.kept]}

    def op(self, x):
        if x["op"] == "reset":
            self.kept.clear()
            self.policy = x.get("policy", "first3")
            gc.collect()
        rss, maps = worker_usage()
        return {"kept": [total(k) for k in self.kept], "stats": asdict(segment.stats),
                "rss": rss, "maps": maps, "pid": os.getpid()}


class InPlace(ls.LitAPI):
    """Writes into its inputs: ``x /= 255`` in decode_request, ``x[...] = 0`` after
    predict read it, and into the first input it kept, on every later request."""

    def setup(self, device):
        self.kept = None

    def decode_request(self, x):
        if isinstance(x, dict):  # {"op": "reset"}
            return x
        before = float(x.sum(dtype=np.float64))
        x /= 255
        return before, x

    def predict(self, item):
        if isinstance(item, dict):
            self.kept = None
            return {"pid": os.getpid()}
        before, x = item
        if self.kept is not None:
            self.kept[...] = -1.0  # a write into an input whose request ended long ago
            self.kept /= 2
        divided = float(x.sum(dtype=np.float64))
        x[...] = 0
        if self.kept is None:
            self.kept = x
        return {"before": before, "divided": divided, "after": float(x.sum()),
                "kept": float(self.kept.sum(dtype=np.float64)), "pid": os.getpid()}


class CopyCount(ls.LitAPI):
    """Where predict's array lies (its line of /proc/self/maps), and how much Python
    memory the worker allocated at most between the end of one predict and the next
    (what encoding and posting the response tensor cost).  Works batched too."""

    def setup(self, device):
        tracemalloc.start()
        self.notes, self.base = [], 0

    def predict(self, x):
        if isinstance(x, dict | list):  # a JSON report request (a list of them, batched)
            peak = tracemalloc.get_traced_memory()[1] - self.base
            notes, self.notes = self.notes, []
            out = {"allocated_since_last_predict": peak, "notes": notes,
                   "stats": asdict(segment.stats)}
            return [out] if isinstance(x, list) else out
        self.notes.append({"mapping": _mapping_of(x.ctypes.data), "nbytes": x.nbytes,
                           "shape": list(x.shape)})
        tracemalloc.reset_peak()
        self.base = tracemalloc.get_traced_memory()[0]
        return x  # the input itself goes back


def _mapping_of(address):
    for line in Path("/proc/self/maps").read_text().splitlines():
        lo, hi = (int(v, 16) for v in line.split()[0].split("-"))
        if lo <= address < hi:
            return line
    return ""


class StreamKeeper(ls.LitAPI):
    """Streams three partial sums of its input; keeps the first one ``keep`` inputs. A
    JSON request streams the sums of the kept inputs and the worker's loan stats."""

    def setup(self, device):
        self.kept, self.keep = [], 0

    def predict(self, x):
        if isinstance(x, dict):
            self.keep = x.get("keep", self.keep)
            yield {"kept": [total(k) for k in self.kept], "stats": asdict(segment.stats)}
            return
        if len(self.kept) < self.keep:
            self.kept.append(x)
        for i in range(3):
            yield float(x[i::3].sum(dtype=np.float64))
