"""Turn a run's raw measurements into its result: percentiles, throughput, errors
by kind, the correctness verdict, a timeline; as JSON and as a table."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from lrukv_client.bench.checker import ERROR_KINDS
from lrukv_client.bench.config import OPERATIONS
from lrukv_client.bench.runner import RunOutput
from lrukv_client.bench.worker import WorkerStats

__all__ = [
    "RESULT_FORMAT",
    "histogram",
    "latency_summary",
    "merged_latencies",
    "percentile",
    "render_text",
    "summarize",
]

RESULT_FORMAT = "lrukv-bench/1"
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0.0 when it is empty).

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.0
    >>> percentile([1.0, 2.0, 3.0, 4.0], 99)
    4.0
    """
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(seconds: Iterable[float]) -> dict[str, float | int]:
    """count, mean, p50/p90/p99/p99.9 and max, in milliseconds."""
    ordered = sorted(seconds)
    if not ordered:
        return {"count": 0}
    summary: dict[str, float | int] = {
        "count": len(ordered),
        "mean": round(sum(ordered) / len(ordered) * 1000, 4),
    }
    for pct in PERCENTILES:
        name = f"p{pct:g}".replace(".", "_")
        summary[name] = round(percentile(ordered, pct) * 1000, 4)
    summary["max"] = round(ordered[-1] * 1000, 4)
    return summary


def merged_latencies(workers: Sequence[WorkerStats], op: str | None = None) -> array[float]:
    """Every worker's latencies (seconds) of ``op``, or of all operations."""
    merged = array("d")
    for worker in workers:
        for name, values in worker.latencies.items():
            if op is None or name == op:
                merged.extend(values)
    return merged


def histogram(seconds: Sequence[float], buckets_per_decade: int = 10) -> dict[str, list[Any]]:
    """Counts in log-spaced buckets from 10 us to 100 s; ``bounds_ms`` are upper edges."""
    bounds = [10 ** (exp / buckets_per_decade - 2) for exp in range(7 * buckets_per_decade + 1)]
    counts = [0] * (len(bounds) + 1)
    for value in seconds:
        ms = value * 1000
        if ms <= bounds[0]:
            counts[0] += 1
            continue
        index = math.ceil((math.log10(ms) + 2) * buckets_per_decade)
        counts[min(index, len(bounds))] += 1
    while len(counts) > 1 and counts[-1] == 0:
        counts.pop()
    return {"bounds_ms": [round(b, 6) for b in bounds[: len(counts)]], "counts": counts}


def _sum_timelines(series: Iterable[list[int]]) -> list[int]:
    total: list[int] = []
    for values in series:
        if len(values) > len(total):
            total.extend([0] * (len(values) - len(total)))
        for index, value in enumerate(values):
            total[index] += value
    return total


def summarize(run: RunOutput) -> dict[str, Any]:
    """The JSON result of a run (format ``lrukv-bench/1``; docs/cli.md describes it)."""
    config = run.config
    workers = run.workers
    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    check: Counter[str] = Counter()
    error_samples: list[str] = []
    check_samples: list[str] = []
    crashes = [w.crashed for w in workers if w.crashed]
    for worker in workers:
        counts.update(worker.counts)
        errors.update(worker.errors)
        check.update(worker.check)
        error_samples.extend(worker.error_samples[: max(0, 10 - len(error_samples))])
        check_samples.extend(worker.check_samples[: max(0, 10 - len(check_samples))])
    by_op: dict[str, Any] = {}
    for op in OPERATIONS:
        done = {o: counts[f"{op}.{o}"] for o in ("ok", "miss", "error")}
        if sum(done.values()):
            by_op[op] = {**done, "latency_ms": latency_summary(merged_latencies(workers, op))}
    completed = sum(counts[f"{op}.{o}"] for op in OPERATIONS for o in ("ok", "miss"))
    failed = sum(errors.values())
    elapsed = run.elapsed
    everything = merged_latencies(workers)
    correctness_errors = sum(check[kind] for kind in ERROR_KINDS)
    return {
        "format": RESULT_FORMAT,
        "run_id": run.run_id,
        "started_at": run.started_at,
        "interrupted": run.interrupted,
        "config": config.to_json(),
        "elapsed_s": round(elapsed, 4),
        "ops": {"completed": completed, "errors": failed, "total": completed + failed},
        "throughput_ops_s": round(completed / elapsed, 2) if elapsed > 0 else 0.0,
        "latency_ms": latency_summary(everything),
        "by_op": by_op,
        "errors": dict(sorted(errors.items())),
        "error_samples": error_samples,
        "correctness": {
            "checked_reads": check["checked_reads"],
            "ok": check["ok"],
            "evicted": check["evicted"],
            "stale_read": check["stale_read"],
            **{kind: check[kind] for kind in ERROR_KINDS},
            "errors": correctness_errors,
            "samples": check_samples,
        },
        "preload": run.preload,
        "store": run.store,
        "cleanup": run.cleanup,
        "crashes": crashes,
        "timeline": {
            "interval_s": config.interval,
            "ops": _sum_timelines(w.timeline_ops for w in workers),
            "errors": _sum_timelines(w.timeline_errors for w in workers),
        },
        "latency_histogram": histogram(everything),
        "plots": [],
        "passed": correctness_errors == 0 and not crashes,
    }


def render_text(result: dict[str, Any]) -> str:
    """A plain-text report of a result, for the terminal."""
    config = result["config"]
    lines = [
        f"lrukv bench: {config['clients']} clients "
        f"({config['processes']} process(es) x {config['threads']} threads) "
        f"over {config['transport'] or 'grpc'}, {result['elapsed_s']:.2f} s"
        + ("  [interrupted]" if result["interrupted"] else ""),
        *_mode_line(config),
        f"throughput: {result['throughput_ops_s']:,.0f} ops/s "
        f"({result['ops']['completed']:,} completed, {result['ops']['errors']:,} errors)",
        "",
        f"{'op':<8}{'ok':>10}{'miss':>9}{'errors':>8}"
        f"{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'max ms':>10}",
    ]
    rows = [*result["by_op"].items(), ("all", {"latency_ms": result["latency_ms"]})]
    for op, row in rows:
        latency = row["latency_ms"]
        cells = [f"{row.get(k, ''):>{w}}" for k, w in (("ok", 10), ("miss", 9), ("error", 8))]
        if latency.get("count"):
            cells += [f"{latency[p]:>10.3f}" for p in ("p50", "p90", "p99", "max")]
        lines.append(f"{op:<8}" + "".join(cells))
    if result["errors"]:
        lines.append("")
        lines.append(
            "errors by kind: " + ", ".join(f"{k}={v}" for k, v in result["errors"].items())
        )
        lines.extend(f"  e.g. {sample}" for sample in result["error_samples"][:3])
    check = result["correctness"]
    lines.append("")
    verdict = "PASSED" if check["errors"] == 0 else "FAILED"
    lines.append(
        f"correctness {verdict}: {check['checked_reads']:,} private reads checked, "
        f"{check['errors']} wrong (wrong_value={check['wrong_value']}, "
        f"stale_value={check['stale_value']}, resurrected={check['resurrected']}), "
        f"{check['evicted']} evicted (not errors)"
        + (f", {check['stale_read']} stale reads allowed" if check["stale_read"] else "")
    )
    lines.extend(f"  {sample}" for sample in check["samples"][:5])
    cleanup = result.get("cleanup") or {}
    prefix = config.get("key_prefix", "")
    if cleanup.get("kept"):
        lines.append(f"kept the run's keys ({prefix}*) on the server (--keep)")
    elif cleanup:
        lines.append(
            f"cleaned up: deleted {cleanup['deleted']:,} shared keys ({prefix}*)"
            + (f", {cleanup['errors']:,} deletes failed" if cleanup.get("errors") else "")
            + (" [interrupted]" if cleanup.get("interrupted") else "")
        )
    for crash in result["crashes"]:
        lines.append(f"worker crashed: {crash.strip().splitlines()[-1]}")
    return "\n".join(lines)


def _mode_line(config: dict[str, Any]) -> list[str]:
    """How requests went, when not one call per operation."""
    if config.get("pipeline"):
        return [f"pipelined: {config['pipeline']} requests in flight per client"]
    if config.get("batch", 1) > 1:
        return [f"batches of {config['batch']} keys: ops count keys, latencies are per batch"]
    return []
