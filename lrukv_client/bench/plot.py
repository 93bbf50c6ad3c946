"""PNG plots of a run, for the docs: throughput over time, latency distribution.

matplotlib is imported here only, when ``--plot`` asks for plots, and with the
Agg backend, so no display is needed and everyday commands never pay for it.
"""

from __future__ import annotations

from array import array
from pathlib import Path
from typing import Any

__all__ = ["plot_result"]


def plot_result(result: dict[str, Any], latencies: array[float], prefix: Path) -> list[Path]:
    """Write ``{prefix}-throughput.png`` and ``{prefix}-latency.png``; return their paths."""
    import matplotlib  # noqa: PLC0415 - see the module docstring

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    config = result["config"]
    latency = result["latency_ms"]
    title = (
        f"lrukv bench: {config['clients']} clients, {config['transport'] or 'grpc'}, "
        f"{config['distribution']} keys, {config['value_size']} B values\n"
        f"{result['throughput_ops_s']:,.0f} ops/s; latency p50 {latency.get('p50', 0):.2f} ms, "
        f"p99 {latency.get('p99', 0):.2f} ms, max {latency.get('max', 0):.1f} ms"
    )
    timeline = result["timeline"]
    interval = float(timeline["interval_s"])
    ops = timeline["ops"]
    errors = timeline["errors"]
    # Average to about one point per second once a run is long enough to be noisy.
    step = max(1, round(1.0 / interval)) if len(ops) * interval >= 20 else 1
    elapsed = float(result["elapsed_s"])
    times, rates, error_rates = [], [], []
    for start in range(0, len(ops), step):
        window = ops[start : start + step]
        seconds = len(window) * interval
        # The last window is cut short by the end of the run, and not every client
        # was still running in it: leave it out rather than draw a false dip.
        if start + step >= len(ops) and start * interval + seconds > elapsed:
            break
        times.append((start + len(window)) * interval)
        rates.append(sum(window) / seconds)
        error_rates.append(sum(errors[start : start + step]) / seconds)

    paths = [Path(f"{prefix}-throughput.png"), Path(f"{prefix}-latency.png")]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)

    figure, axis = plt.subplots(figsize=(8, 4))
    axis.plot(times, rates, label="completed ops/s")
    mean = float(result["throughput_ops_s"])
    axis.axhline(mean, color="tab:gray", linestyle="--", label=f"mean {mean:,.0f} ops/s")
    if any(error_rates):
        axis.plot(times, error_rates, label="errors/s", color="tab:red")
    axis.set_xlabel("seconds since start")
    axis.set_ylabel("operations per second")
    axis.set_ylim(bottom=0)
    axis.set_title(title, fontsize=9)
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(paths[0], dpi=100)
    plt.close(figure)

    figure, (hist_axis, pct_axis) = plt.subplots(1, 2, figsize=(10, 4))
    millis = sorted(value * 1000 for value in latencies)
    if millis:
        low = max(min(millis), 1e-3)
        high = max(millis[-1], low * 1.01)
        edges = [low * (high / low) ** (i / 60) for i in range(61)]
        hist_axis.hist(millis, bins=edges)
        hist_axis.set_xscale("log")
        # Latency by percentile, HdrHistogram style: the tail is where the story is.
        # Midpoint plotting positions, so the maximum gets a finite place too.
        count = len(millis)
        pct_axis.plot([count / (count - i - 0.5) for i in range(count)], millis)
        pct_axis.set_xscale("log")
        ticks = [2, 10, 100, 1000, 10000]
        pct_axis.set_xticks(ticks, ["50%", "90%", "99%", "99.9%", "99.99%"])
    hist_axis.set_xlabel("latency (ms, log scale)")
    hist_axis.set_ylabel("operations")
    hist_axis.set_title("latency distribution", fontsize=9)
    pct_axis.set_xlabel("percentile")
    pct_axis.set_ylabel("latency (ms)")
    pct_axis.set_title("latency by percentile", fontsize=9)
    for axis in (hist_axis, pct_axis):
        axis.grid(alpha=0.3)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(paths[1], dpi=100)
    plt.close(figure)
    return paths
