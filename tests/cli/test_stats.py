"""The bench's latency histogram: accuracy, merging, serialisation."""

from __future__ import annotations

import numpy as np

from litserve.cli.bench.stats import BUCKETS, Histogram, Stats, bucket, bucket_value


def test_buckets_are_monotonic_and_contiguous() -> None:
    values = list(range(0, 5000)) + [int(v) for v in np.geomspace(5000, 2**37, 2000)]
    idx = [bucket(v) for v in values]
    assert idx == sorted(idx) and max(idx) < BUCKETS
    steps = {bucket(v + 1) - bucket(v) for v in range(200000)}
    assert steps == {0, 1}  # consecutive values never skip a bucket
    for v in values[1:]:
        assert abs(bucket_value(bucket(v)) - v) <= 0.008 * v + 0.5, v


def test_percentiles_within_one_percent_of_exact() -> None:
    rng = np.random.default_rng(3)
    samples = (rng.lognormal(7, 1.2, 20000)).astype(int)  # ~1 ms with a long tail
    h = Histogram()
    for s in samples:
        h.add(int(s))
    for p in (50, 90, 99, 99.9):
        exact = float(np.percentile(samples, p, method="inverted_cdf"))
        assert abs(h.percentile(p) - exact) <= 0.01 * exact + 1, p
    summary = h.summary_ms()
    assert summary is not None
    assert summary["min"] == samples.min() / 1e3 and summary["max"] == samples.max() / 1e3
    keys = ["min", "p50", "p90", "p99", "p99.9", "max"]
    assert [summary[k] for k in keys] == sorted(summary[k] for k in keys)


def test_merge_equals_one_histogram_and_round_trips() -> None:
    a, b, both = Histogram(), Histogram(), Histogram()
    for v in range(0, 100000, 7):
        (a if v % 2 else b).add(v)
        both.add(v)
    a.merge(b)
    assert a == both
    assert Histogram.from_dict(a.to_dict()) == a
    s = Stats(requests=3, ok=2)
    s.statuses[200] += 2
    s.kinds["timeout"] += 1
    s.latency.add(1000)
    t = Stats.from_dict(s.to_dict())
    assert t == s and t.errors == 1
    t.merge(s)
    assert t.requests == 6 and t.statuses[200] == 4 and t.latency.n == 2


def test_empty_histogram() -> None:
    assert Histogram().summary_ms() is None
