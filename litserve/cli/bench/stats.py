"""What a bench process counts, and how the counts of several processes merge.

Latencies go into a fixed-size log-linear histogram of microseconds (HDR style: exact
below 256 µs, then 128 buckets per power of two, so any value is known to within
0.8 %), which costs one list increment per request and merges by addition.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

SUB: Final = 7  # 2**SUB buckets per power of two
BUCKETS: Final = 4096  # covers up to ~2**38 µs (3 days)
PERCENTILES: Final = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))


def bucket(us: int) -> int:
    if us < 256:
        return us if us > 0 else 0
    e = us.bit_length() - 8
    return min((e << SUB) + (us >> e), BUCKETS - 1)


def bucket_value(i: int) -> float:
    """The middle of bucket ``i`` in µs."""
    if i < 256:
        return float(i)
    e = (i >> SUB) - 1
    m = i - (e << SUB)
    return ((m << e) + ((m + 1) << e)) / 2


@dataclass
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    n: int = 0
    total_us: int = 0
    min_us: int = -1
    max_us: int = 0

    def add(self, us: int) -> None:
        if us < 256:
            self.counts[us if us > 0 else 0] += 1
        else:
            self.counts[bucket(us)] += 1
        self.n += 1
        self.total_us += us
        if us > self.max_us:
            self.max_us = us
        if us < self.min_us or self.min_us < 0:
            self.min_us = us

    def merge(self, other: Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.n += other.n
        self.total_us += other.total_us
        self.max_us = max(self.max_us, other.max_us)
        if other.min_us >= 0 and (self.min_us < 0 or other.min_us < self.min_us):
            self.min_us = other.min_us

    def percentile(self, p: float) -> float:
        """Value in µs below which ``p`` percent of the samples lie (clamped to min/max)."""
        rank = max(1, math.ceil(p / 100.0 * self.n - 1e-9))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return min(max(bucket_value(i), float(self.min_us)), float(self.max_us))
        return float(self.max_us)

    def summary_ms(self) -> dict[str, float] | None:
        if not self.n:
            return None
        out = {"min": self.min_us / 1e3, "mean": self.total_us / self.n / 1e3}
        out.update({name: self.percentile(p) / 1e3 for name, p in PERCENTILES})
        out["max"] = self.max_us / 1e3
        return {k: round(v, 3) for k, v in out.items()}

    def to_dict(self) -> dict[str, Any]:
        sparse = {i: c for i, c in enumerate(self.counts) if c}
        return {"counts": sparse, "n": self.n, "total_us": self.total_us,
                "min_us": self.min_us, "max_us": self.max_us}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Histogram:
        h = cls(n=d["n"], total_us=d["total_us"], min_us=d["min_us"], max_us=d["max_us"])
        for i, c in d["counts"].items():
            h.counts[int(i)] = c
        return h


@dataclass
class Stats:
    """The counts of one bench process (or of all, once merged)."""

    latency: Histogram = field(default_factory=Histogram)
    ttfc: Histogram = field(default_factory=Histogram)  # time to first chunk (streams)
    gaps: Histogram = field(default_factory=Histogram)  # between chunk arrivals (streams)
    requests: int = 0  # measured requests that ended (any outcome)
    ok: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)  # errors without a status
    warmup: int = 0  # requests that ended during the warmup
    sent: int = 0  # requests written to a socket, warmup included
    dropped: int = 0  # open loop: arrivals never sent because every connection was busy
    chunks: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    first_ns: int = 0  # start of the measured window
    last_ns: int = 0  # end of the last measured request
    cpu_s: float = 0.0
    wrong_example: str = ""
    first_error: str = ""  # the first error without a status, with its reason

    @property
    def errors(self) -> int:
        return self.requests - self.ok

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for name in ("latency", "ttfc", "gaps"):
            d[name] = getattr(self, name).to_dict()
        d["statuses"], d["kinds"] = dict(self.statuses), dict(self.kinds)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Stats:
        d = dict(d)
        for name in ("latency", "ttfc", "gaps"):
            d[name] = Histogram.from_dict(d[name])
        d["statuses"], d["kinds"] = Counter(d["statuses"]), Counter(d["kinds"])
        return cls(**d)

    def merge(self, other: Stats) -> None:
        for name in ("latency", "ttfc", "gaps"):
            getattr(self, name).merge(getattr(other, name))
        for name in ("requests", "ok", "warmup", "sent", "dropped", "chunks", "bytes_out",
                     "bytes_in", "cpu_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.statuses.update(other.statuses)
        self.kinds.update(other.kinds)
        self.first_ns = min(x for x in (self.first_ns, other.first_ns) if x) if (
            self.first_ns or other.first_ns) else 0
        self.last_ns = max(self.last_ns, other.last_ns)
        self.wrong_example = self.wrong_example or other.wrong_example
        self.first_error = self.first_error or other.first_error
