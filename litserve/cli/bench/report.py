"""The bench's results as a dict (``--json``), as a text summary, and the live
progress line."""

from __future__ import annotations

from typing import Any

from litserve.cli.bench.runner import Progress
from litserve.cli.bench.stats import Stats


def summary(stats: Stats, setup: dict[str, Any]) -> dict[str, Any]:
    elapsed = max(0.0, (stats.last_ns - stats.first_ns) / 1e9)
    rate = stats.requests / elapsed if elapsed else 0.0
    out: dict[str, Any] = dict(setup)
    out.update({
        "elapsed_s": round(elapsed, 4),
        "requests": stats.requests,
        "ok": stats.ok,
        "errors": stats.errors,
        "errors_by_status": {str(k): v for k, v in sorted(stats.statuses.items()) if k >= 400},
        "errors_by_kind": dict(sorted(stats.kinds.items())),
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "warmup_requests": stats.warmup,
        "sent_total": stats.sent,
        "dropped": stats.dropped,
        "req_per_s": round(rate, 2),
        "ok_per_s": round(stats.ok / elapsed, 2) if elapsed else 0.0,
        "request_mb_per_s": round(stats.bytes_out / elapsed / 1e6, 3) if elapsed else 0.0,
        "response_mb_per_s": round(stats.bytes_in / elapsed / 1e6, 3) if elapsed else 0.0,
        "latency_ms": stats.latency.summary_ms(),
    })
    if setup.get("stream"):
        out["chunks"] = stats.chunks
        out["chunks_per_s"] = round(stats.chunks / elapsed, 2) if elapsed else 0.0
        out["ttfc_ms"] = stats.ttfc.summary_ms()
        out["inter_chunk_ms"] = stats.gaps.summary_ms()
    if stats.wrong_example:
        out["first_wrong_answer"] = stats.wrong_example
    if stats.first_error:
        out["first_error"] = stats.first_error
    out["client_cpu_s"] = round(stats.cpu_s, 3)
    return out


def _ms_line(d: dict[str, float] | None) -> str:
    if not d:
        return "-"
    keys = ("p50", "p90", "p99", "p99.9", "max", "mean")
    return "   ".join(f"{k} {_num(d[k])}" for k in keys)


def _num(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}" if x >= 1 else f"{x:.3f}"


def _errors_line(s: dict[str, Any]) -> str:
    parts = [f"status {k}: {v:,}" for k, v in s["errors_by_status"].items()]
    parts += [f"{k}: {v:,}" for k, v in s["errors_by_kind"].items()]
    return f"{s['errors']:,}" + (f"  ({', '.join(parts)})" if parts else "")


def render(s: dict[str, Any]) -> str:
    mode = (f"open loop at {s['rate']:g} req/s, at most {s['concurrency']} connections"
            if s["rate"] else f"closed loop, {s['concurrency']} connections")
    bound = f"{s['duration_s']:g} s" if s["max_requests"] is None else (
        f"{s['max_requests']:,} requests")
    lines = [
        f"litserve bench  {s['url']}",
        f"  {s['payload']} payload, {mode}, {s['procs']} process(es), "
        f"{bound} after {s['warmup_s']:g} s warmup",
        "",
        f"  requests       {s['requests']:,} in {s['elapsed_s']:.2f} s   "
        f"{s['req_per_s']:,.1f} req/s",
        f"  ok             {s['ok']:,}",
        f"  errors         {_errors_line(s)}",
        f"  transfer       sent {s['request_mb_per_s']:,.2f} MB/s   "
        f"received {s['response_mb_per_s']:,.2f} MB/s",
        f"  latency ms     {_ms_line(s['latency_ms'])}",
    ]
    if s.get("stream"):
        lines += [
            f"  chunks         {s['chunks']:,}   {s['chunks_per_s']:,.1f} chunks/s",
            f"  first chunk ms {_ms_line(s['ttfc_ms'])}",
            f"  between ms     {_ms_line(s['inter_chunk_ms'])}",
        ]
    if s.get("first_wrong_answer"):
        lines.append(f"  wrong answer   {s['first_wrong_answer']}")
    if s.get("first_error"):
        lines.append(f"  first error    {s['first_error']}")
    if s["dropped"]:
        lines.append(f"  dropped        {s['dropped']:,} arrivals found every connection busy "
                     "and were never sent (raise --concurrency)")
    lines.append(f"  warmup         {s['warmup_requests']:,} requests (not counted above)")
    lines.append(f"  client CPU     {s['client_cpu_s']:.2f} s")
    return "\n".join(lines)


def progress_line(p: Progress, warmup_s: float, duration_s: float | None) -> str:
    if p.elapsed_s < warmup_s:
        return f"  warming up {p.elapsed_s:5.1f}/{warmup_s:g} s   {p.warmup:,} requests"
    t = p.elapsed_s - warmup_s
    total = f"/{duration_s:g}" if duration_s else ""
    rate = p.requests / t if t > 0 else 0.0
    return (f"  {t:6.1f}{total} s   {p.requests:,} requests   {rate:,.0f} req/s   "
            f"{p.errors:,} errors")
